"""How far fine-tuning moved each weight tensor from its reference, by layer and component (the paper's §3.7).

What it is: `weight_deltas` (one row per tensor), `aggregate_deltas` (pooled per group, e.g. layer x component),
`most_moved_component`, `classify_parameter` (layer and component of a BERT parameter name) and `load_weights`
(float tensors by canonical name from a folder, a .safetensors file, a model or a state dict; safetensors only,
never pickle). `COMPONENTS`, `EPS` and `HEAD_INIT_FILE` are the names and constants it uses.

What it is not: no plotting (entmask.experiments.plots draws the heatmap), no training, and no statistics over
fine-tuning results (`entmask.analysis.bootstrap`).

Weight deltas. Every tensor of the fine-tuned model is compared with its reference:
    pretrained  the same `bert.*` tensor of the BertForMaskedLM it was initialised from;
    init        for tensors a masked LM does not have (the pooler and the classifier), their value at the start
                of fine-tuning, which `entmask.finetune` saves as <run>/head_init.safetensors;
    none        no reference found: the norms are reported and the changes are NaN.
The MLM prediction head (`cls.*`) has no fine-tuned counterpart and is left out; so are integer buffers.
rel_norm_change = ||W_ft - W_ref||_F / ||W_ref||_F (0 when nothing moved; NaN when a tensor with ||W_ref|| = 0,
e.g. a zero-initialised bias, moved: the ratio is undefined), and
mean_rel_elementwise = mean(|w_ft - w_ref| / (|w_ref| + EPS)) with EPS = 1e-8, which keeps exact zeros finite but
makes a moved zero weight count as a huge relative change: read it together with rel_norm_change. All in float64.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

EPS = 1e-8  # denominator guard of mean_rel_elementwise
COMPONENTS = ("embeddings", "attention_q", "attention_k", "attention_v", "attention_out", "ffn_in", "ffn_out",
              "layernorm", "pooler", "classifier")
HEAD_INIT_FILE = "head_init.safetensors"

_LAYER = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(.+)$")
_IN_LAYER = (  # (pattern on the part after bert.encoder.layer.<i>., component); LayerNorm first
    (re.compile(r"LayerNorm\."), "layernorm"),
    (re.compile(r"^attention\.self\.query\."), "attention_q"),
    (re.compile(r"^attention\.self\.key\."), "attention_k"),
    (re.compile(r"^attention\.self\.value\."), "attention_v"),
    (re.compile(r"^attention\.output\.dense\."), "attention_out"),
    (re.compile(r"^intermediate\.dense\."), "ffn_in"),
    (re.compile(r"^output\.dense\."), "ffn_out"),
)


def classify_parameter(name: str) -> tuple[int, str]:
    """(layer, component) of a BERT parameter name; layer is -1 outside the encoder layers.

    The embeddings' LayerNorm counts as `layernorm` at layer -1 (it is a LayerNorm, not an embedding table).
    """
    m = _LAYER.match(name)
    if m:
        rest = m.group(2)
        for pattern, component in _IN_LAYER:
            if pattern.search(rest):
                return int(m.group(1)), component
        raise ValueError(f"unrecognised encoder parameter {name!r}; extend entmask.analysis.weights._IN_LAYER")
    if name.startswith("bert.embeddings."):
        return -1, "layernorm" if "LayerNorm." in name else "embeddings"
    if name.startswith("bert.pooler."):
        return -1, "pooler"
    if name.startswith("classifier."):
        return -1, "classifier"
    raise ValueError(f"unrecognised parameter {name!r}; expected bert.embeddings/encoder/pooler or classifier")


def _canonical(name: str) -> str:
    """BertModel keys (embeddings.*, encoder.*, pooler.*) get the `bert.` prefix the task models use."""
    if name.startswith(("embeddings.", "encoder.", "pooler.")):
        return "bert." + name
    return name


def _weights_files(p: Path) -> list[Path]:
    def weights(d: Path) -> list[Path]:
        files = sorted(d.glob("model*.safetensors")) or sorted(d.glob("*.safetensors"))
        return [f for f in files if f.name != HEAD_INIT_FILE]  # a run's initial heads are not its model

    files = weights(p)
    if not files and (p / "model").is_dir():
        files = weights(p / "model")  # a fine-tuning run folder: its model/
    if not files:
        raise ValueError(f"{p} holds no *.safetensors weights; give a folder written by save_pretrained")
    return files


def load_weights(source) -> dict:
    """Float tensors by canonical name, from a folder, a .safetensors file, an nn.Module or a dict."""
    if isinstance(source, torch.nn.Module):
        state = {k: v.detach().cpu() for k, v in source.state_dict().items()}
    elif isinstance(source, dict):
        state = dict(source)
    else:
        p = Path(source)
        if p.is_file():
            if p.suffix != ".safetensors":
                raise ValueError(f"{p} is not a .safetensors file; weights are read with safetensors only")
            files = [p]
        elif p.is_dir():
            files = _weights_files(p)
        else:
            raise ValueError(f"{p} does not exist; give a model folder, a .safetensors file or a model")
        state = {}
        for f in files:
            state.update(load_file(str(f)))
    return {_canonical(k): v for k, v in state.items() if v.is_floating_point()}


def _auto_head_init(finetuned) -> dict:
    if isinstance(finetuned, (str, Path)):
        p = Path(finetuned)
        for cand in (p / HEAD_INIT_FILE, p.parent / HEAD_INIT_FILE):
            if cand.is_file():
                return load_weights(cand)
    return {}


def weight_deltas(pretrained, finetuned, head_init="auto"):
    """One row per tensor of the fine-tuned model, with how far it moved from its reference (see the module doc).

    pretrained, finetuned: a model folder (save_pretrained), a fine-tuning run folder, a .safetensors file, a
    model or a state dict. head_init: the initial pooler/classifier ("auto": <finetuned>/head_init.safetensors or
    the file beside it, as entmask.finetune writes it; None: no init reference; or any weights source).
    Columns: name, layer, component, reference (pretrained | init | none), numel, ref_norm, finetuned_norm,
    delta_norm, rel_norm_change, mean_rel_elementwise, max_abs_delta.
    """
    pre = load_weights(pretrained)
    ft = load_weights(finetuned)
    init = _auto_head_init(finetuned) if isinstance(head_init, str) and head_init == "auto" else (
        load_weights(head_init) if head_init is not None else {})
    rows = []
    for name, w in ft.items():
        if name.startswith("cls."):
            continue  # an MLM head inside the "fine-tuned" source: nothing to compare it with
        layer, component = classify_parameter(name)
        ref, kind = (pre[name], "pretrained") if name in pre else (init[name], "init") if name in init else (None,
                                                                                                            "none")
        w64 = w.detach().to(torch.float64)
        row = {"name": name, "layer": layer, "component": component, "reference": kind, "numel": w.numel(),
               "finetuned_norm": float(torch.linalg.vector_norm(w64))}
        if ref is None:
            row.update(ref_norm=math.nan, delta_norm=math.nan, rel_norm_change=math.nan,
                       mean_rel_elementwise=math.nan, max_abs_delta=math.nan)
        else:
            if ref.shape != w.shape:
                raise ValueError(f"{name}: shape {tuple(w.shape)} fine-tuned vs {tuple(ref.shape)} reference; "
                                 f"compare a model with the checkpoint it was initialised from")
            r64 = ref.detach().to(torch.float64)
            d = w64 - r64
            ref_norm = float(torch.linalg.vector_norm(r64))
            delta_norm = float(torch.linalg.vector_norm(d))
            row.update(ref_norm=ref_norm, delta_norm=delta_norm,
                       rel_norm_change=0.0 if delta_norm == 0 else delta_norm / ref_norm if ref_norm > 0 else
                       math.nan,
                       mean_rel_elementwise=float((d.abs() / (r64.abs() + EPS)).mean()),
                       max_abs_delta=float(d.abs().max()) if d.numel() else 0.0)
        rows.append(row)
    cols = ["name", "layer", "component", "reference", "numel", "ref_norm", "finetuned_norm", "delta_norm",
            "rel_norm_change", "mean_rel_elementwise", "max_abs_delta"]
    # Model order whatever the source (files list keys alphabetically): embeddings, layers 0.., pooler, classifier.
    stage = {"bert.embeddings.": 0, "bert.encoder.": 1, "bert.pooler.": 2, "classifier.": 3}
    rows.sort(key=lambda r: (next(v for k, v in stage.items() if r["name"].startswith(k)), r["layer"], r["name"]))
    return pd.DataFrame(rows, columns=cols)


def aggregate_deltas(df, by=("layer", "component"), wide: bool = False):
    """Pool the tensors of each group (default layer x component).

    rel_norm_change of a group is sqrt(sum ||dW||^2) / sqrt(sum ||W||^2): the relative change of the group's
    weights taken as one vector, so a large matrix is not outvoted by its bias. mean_rel_elementwise is weighted
    by numel. Tensors without a reference are left out. wide=True returns rel_norm_change pivoted to
    layer rows x component columns.
    """
    d = df[df["reference"] != "none"].copy()
    by = list(by)
    d["_d2"] = d["delta_norm"] ** 2
    d["_w2"] = d["ref_norm"] ** 2
    d["_wrel"] = d["mean_rel_elementwise"] * d["numel"]
    g = d.groupby(by, sort=True)
    out = pd.DataFrame({
        "n_tensors": g.size(),
        "numel": g["numel"].sum(),
        "delta_norm": np.sqrt(g["_d2"].sum()),
        "ref_norm": np.sqrt(g["_w2"].sum()),
        "mean_rel_elementwise": g["_wrel"].sum() / g["numel"].sum(),
    })
    out["rel_norm_change"] = (out["delta_norm"] / out["ref_norm"].where(out["ref_norm"] > 0)).where(
        out["delta_norm"] > 0, 0.0)  # as per tensor: unmoved is 0, a moved all-zero group is NaN
    out = out.reset_index()
    if wide:
        if by != ["layer", "component"]:
            raise ValueError("wide=True needs by=('layer', 'component')")
        return out.pivot(index="layer", columns="component", values="rel_norm_change")
    return out


def most_moved_component(df, exclude=()) -> str:
    """The component whose weights, pooled over all layers, moved most relative to their pretrained values.

    Only tensors compared with pretrained weights count: the classifier (and the pooler of a masked LM, which has
    none) are compared with their random init, a different question. `exclude` drops further components.
    """
    d = df[(df["reference"] == "pretrained") & ~df["component"].isin(list(exclude))]
    agg = aggregate_deltas(d, by=("component",)).dropna(subset=["rel_norm_change"])
    if agg.empty:
        raise ValueError("no component with a pretrained reference to compare with; check the pretrained source")
    return str(agg.loc[agg["rel_norm_change"].idxmax(), "component"])
