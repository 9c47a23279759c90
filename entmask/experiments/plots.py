"""The figures of an experiment's table: Totals, compute, learning curves, entropies of masked tokens, weight movement.

What it is: one function per figure, each writing .png and .svg beside the table.
What it is not: the numbers (they come from the table and the runs)."""
from __future__ import annotations

import contextlib
import contextvars
import io
import math
from pathlib import Path

import numpy as np

from entmask import runs
from entmask.config import PretrainConfig
from entmask.experiments.collect import _seed_totals, _task_rows, run_compute
from entmask.experiments.core import TASK_LABEL, TASK_ORDER, _num
from entmask.experiments.running import _Run
from entmask.experiments.specs import RUN_SPECS


def _figure(w: float, h: float):
    # Object-oriented matplotlib with the Agg canvas: no pyplot state, no global backend switch in notebooks.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


_OFF = contextvars.ContextVar("entmask_figures_off", default=False)  # figures_off(): _save draws and writes nothing


@contextlib.contextmanager
def figures_off():
    """Inside, every figure function here (and those built on `_save`) writes no file and returns {}: for callers
    that keep only the numbers. The committed records' report build (entmask.committed_results) spent 19 of its 73 s
    (cpu-long, AVX2 CPU) drawing png + svg that nobody read; its verdict figures are drawn outside."""
    token = _OFF.set(True)  # per thread and task: a report built in one thread leaves another's figures alone
    try:
        yield
    finally:
        _OFF.reset(token)


def _save(fig, stem: Path) -> dict:
    if _OFF.get():  # figures_off(): drawing (savefig) is the expensive part; the Figure itself is garbage
        return {}
    out = {}
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, bbox_inches="tight")
        path = stem.with_name(stem.name + f".{ext}")
        runs.atomic_write_bytes(path, buf.getvalue())
        out[ext] = path
    return out


def plot_totals(name: str, rs: list[_Run], cov: list[str], majority_total: float, stem: Path) -> dict:
    """Bar per strategy: mean Total over seeds, error bar = sd over seeds, dots = each seed."""
    ok = [r for r in rs if r.error is None]
    if not ok or not cov:
        return {}
    fig = _figure(max(4.0, 1.1 * len(ok) + 1.5), 3.6)
    ax = fig.add_subplot(111)
    for i, r in enumerate(ok):
        tot = _seed_totals(r, cov)
        mu = float(np.mean(tot))
        sd = float(np.std(tot, ddof=1)) if len(tot) > 1 else 0.0
        ax.bar(i, mu, yerr=sd if len(tot) > 1 else None, capsize=4, color="#4C72B0" if r.label != "baseline"
               else "#999999")
        ax.scatter([i] * len(tot), tot, color="black", s=10, zorder=3)
    if _num(majority_total):
        ax.axhline(majority_total, ls="--", color="#C44E52", lw=1, label="majority class")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels([RUN_SPECS[r.label][1] for r in ok], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"Total ({len(cov)} tasks)")
    lo = min(min(_seed_totals(r, cov)) for r in ok)
    ax.set_ylim(max(0.0, lo - 15), None)
    ax.set_title(f"{name}: GLUE Total ({', '.join(TASK_LABEL[t] for t in cov)}), seeds as dots", fontsize=9)
    return _save(fig, stem)


def plot_compute(name: str, rs: list[_Run], cov: list[str], stem: Path) -> dict:
    """Total (left) and held-out masked accuracy (right) against pretraining FLOPs, one point per row and
    pretraining seed: a strategy that costs more compute is read against random masking at the same compute."""
    pts = []
    for r in rs:
        if r.error is not None:
            continue
        for sr in r.seed_runs or [{"run_dir": r.run_dir, "metrics": r.metrics, "pretrain_seed": r.cfg.train.seed}]:
            c = run_compute(r.cfg, sr.get("run_dir"), sr.get("metrics") or {})
            if not c:
                continue
            seed = sr.get("pretrain_seed", r.cfg.train.seed)
            per_task = {}
            for f in r.ft:
                if f.get("status") == "ok" and f.get("pretrain_seed", seed) == seed and f.get("task") in cov:
                    per_task.setdefault(f["task"], []).append(f["paper_score"])
            total = (float(np.mean([np.mean(v) for v in per_task.values()])) if cov and len(per_task) == len(cov)
                     else math.nan)
            pts.append((r.label, c["total_flops"], total, (sr.get("metrics") or {}).get("heldout_accuracy")))
    if not pts:
        return {}
    fig = _figure(9.0, 3.6)
    axes = [fig.add_subplot(121), fig.add_subplot(122)]
    labels = list(dict.fromkeys(p[0] for p in pts))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    for ax, j, ylab in ((axes[0], 2, f"Total ({len(cov)} tasks)"), (axes[1], 3, "held-out masked accuracy")):
        for lab in labels:
            xs = [p[1] for p in pts if p[0] == lab and p[j] is not None and _num(p[j])]
            ys = [p[j] for p in pts if p[0] == lab and p[j] is not None and _num(p[j])]
            if xs:
                ax.scatter(xs, ys, color=colors[lab], label=RUN_SPECS[lab][1], s=22)
        base = []  # random masking at 1x (and 2x) steps, mean over seeds: the line a costlier strategy has to beat
        for lab in ("baseline", "baseline-2x"):
            got = [(p[1], p[j]) for p in pts if p[0] == lab and p[j] is not None and _num(p[j])]
            if got:
                base.append((float(np.mean([g[0] for g in got])), float(np.mean([g[1] for g in got]))))
        if len(base) > 1:
            ax.plot([b[0] for b in base], [b[1] for b in base], color="#999999", lw=1, ls="--", zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("pretraining FLOPs (log)")
        ax.set_ylabel(ylab)
    axes[1].legend(fontsize=7, loc="best")
    two = any(p[0] == "baseline-2x" for p in pts)
    fig.suptitle(f"{name}: results against pretraining compute" + (" (dashed: random masking at 1x and 2x steps)"
                                                                   if two else ""), fontsize=9)
    fig.subplots_adjust(wspace=0.35)
    return _save(fig, stem)


def curves_frame(rs: list[_Run]):
    """Pretraining log history as a long frame: label, step, loss, masked_accuracy, kd_loss, entropy_*."""
    import pandas as pd

    rows = []
    keys = ("loss", "mlm_loss", "masked_accuracy", "kd_loss", "entropy_masked", "entropy_maskable", "self_source")
    for r in rs:
        if r.run_dir is None or not (r.run_dir / "logs" / "log_history.json").exists():
            continue
        for h in runs.read_json(r.run_dir / "logs" / "log_history.json"):
            if "loss" in h and "step" in h:
                rows.append({"label": r.label, "step": h["step"], **{k: h.get(k) for k in keys}})
    return pd.DataFrame(rows, columns=["label", "step", *keys])


def plot_curves(curves, stem: Path) -> dict:
    if curves.empty:
        return {}
    fig = _figure(9, 3.4)
    axes = [fig.add_subplot(1, 2, i) for i in (1, 2)]
    for label, g in curves.groupby("label", sort=False):
        axes[0].plot(g["step"], g["loss"], label=RUN_SPECS[label][1], lw=1.2)
        axes[1].plot(g["step"], g["masked_accuracy"], label=RUN_SPECS[label][1], lw=1.2)
    axes[0].set(xlabel="step", ylabel="training loss", title="pretraining loss")
    axes[1].set(xlabel="step", ylabel="masked accuracy", title="masked-token accuracy (training masks)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def entropy_frame(cfg: PretrainConfig, rs: list[_Run], root=None, progress: bool = False, sample_rows: int = 256):
    """Teacher entropies of the tokens each strategy masks vs all maskable tokens, on a seeded sample of rows.

    (summary DataFrame, {label: (masked values, maskable values)}). Masks are drawn batch by batch
    (train.batch_size rows) as in training, so `alternating` mixes high and low batches. Self-masking rows are
    shown on the teacher's entropies (the student's change during training): what the teacher would call
    high-entropy, not what the student picked.
    """
    import pandas as pd
    import torch

    from entmask.data import prepare_corpus
    from entmask.entropy import teacher_entropies
    from entmask.masking import candidate_mask, needs_entropy, select_mask
    from entmask.pretrain import resolve_teacher

    ent_runs = [r for r in rs if r.error is None and needs_entropy(r.cfg.masking.strategy)
                and r.cfg.kd.mode != "kd-only"]
    if not ent_runs:
        return pd.DataFrame(), {}
    c0 = ent_runs[0].cfg
    corpus = prepare_corpus(c0.data, root, progress=False)
    teacher = resolve_teacher(c0, root, progress)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ent = teacher_entropies(teacher, corpus.dir, "train", corpus.train_ids, device=dev,
                            batch_size=c0.train.eval_batch_size, chunk_size=c0.train.entropy_chunk,
                            progress=progress)  # cached beside the corpus by the teacher-masking runs
    n = corpus.train_ids.shape[0]
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:min(sample_rows, n)].sort().values
    ids, e = corpus.train_ids[idx], ent[idx]
    cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id, c0.masking.include_unk)
    rows, values = [], {}
    for r in ent_runs:
        m = r.cfg.masking
        gen = torch.Generator().manual_seed(0)
        bs = max(1, r.cfg.train.batch_size)
        mask = torch.cat([select_mask(e[s:s + bs], cand[s:s + bs], m.strategy, m.ratio, m.num_tokens, generator=gen)
                          for s in range(0, ids.shape[0], bs)])
        masked, maskable = e[mask].double().numpy(), e[cand].double().numpy()
        values[r.label] = (masked, maskable)
        rows.append({"label": r.label, "strategy": m.strategy, "source": m.source, "ratio": m.ratio,
                     "num_tokens": m.num_tokens, "n_rows": int(ids.shape[0]), "n_maskable": int(maskable.size),
                     "n_masked": int(masked.size), "maskable_mean": float(maskable.mean()),
                     "maskable_sd": float(maskable.std()), "masked_mean": float(masked.mean()) if masked.size else
                     math.nan, "masked_sd": float(masked.std()) if masked.size else math.nan,
                     "train_entropy_masked_mean": r.metrics.get("entropy_masked_mean"),
                     "train_entropy_maskable_mean": r.metrics.get("entropy_maskable_mean")})
    return pd.DataFrame(rows), values


def plot_entropy(values: dict, stem: Path) -> dict:
    if not values:
        return {}
    k = len(values)
    cols = min(3, k)
    nrows = math.ceil(k / cols)
    fig = _figure(3.4 * cols, 2.6 * nrows)
    allv = np.concatenate([v[1] for v in values.values()])
    bins = np.linspace(float(allv.min()), float(allv.max()) + 1e-6, 40)
    for i, (label, (masked, maskable)) in enumerate(values.items(), 1):
        ax = fig.add_subplot(nrows, cols, i)
        # one filled outline per histogram, not 40 bars: the same picture, a third less time to save (png + svg)
        ax.hist(maskable, bins=bins, density=True, alpha=0.5, color="#999999", label="maskable", histtype="stepfilled")
        if masked.size:
            ax.hist(masked, bins=bins, density=True, alpha=0.6, color="#C44E52", label="masked",
                    histtype="stepfilled")
        ax.set_title(RUN_SPECS[label][1], fontsize=9)
        ax.set_xlabel("teacher entropy (nats)", fontsize=8)
        ax.ticklabel_format(axis="x", useOffset=False)  # absolute nats, not an offset that hides the scale
        ax.locator_params(axis="x", nbins=4)
        ax.tick_params(labelsize=7)
        if i == 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def weight_movement(rs: list[_Run]):
    """(aggregated deltas: label, task, layer, component, rel_norm_change..., movement table) of fine-tuned models
    against their pretrained start, pooled over seeds; the movement table names each task's most-moved component
    and gives its training-set size."""
    import pandas as pd

    from entmask.analysis import aggregate_deltas, most_moved_component, weight_deltas

    aggs, moves = [], []
    for r in rs:
        if r.error is not None:
            continue
        for t in TASK_ORDER:
            ok = [f for f in _task_rows(r, t) if f.get("status") == "ok" and not f.get("frozen")]
            if not ok:
                continue
            df = pd.concat([weight_deltas(r.run_dir / "model", f["run_dir"]) for f in ok], ignore_index=True)
            pre = df[df["reference"] == "pretrained"]
            agg = aggregate_deltas(pre)  # pooled over seeds: each seed's tensors count once
            agg.insert(0, "task", t)
            agg.insert(0, "label", r.label)
            aggs.append(agg)
            comp = aggregate_deltas(pre, by=("component",))
            top = most_moved_component(df)
            enc = float(np.sqrt((pre["delta_norm"] ** 2).sum()) / np.sqrt((pre["ref_norm"] ** 2).sum()))
            moves.append({"label": r.label, "task": t, "n_train": int(ok[0].get("n_train") or 0),
                          "seeds": len(ok), "most_moved": top,
                          "most_moved_rel_change": float(comp.set_index("component").loc[top, "rel_norm_change"]),
                          "encoder_rel_change": enc})
    return (pd.concat(aggs, ignore_index=True) if aggs else pd.DataFrame()), pd.DataFrame(moves)


WEIGHTS_NOTE = (
    "Two measures per layer x component, pooled over seeds: `rel` = ||W_ft − W_pre|| / ||W_pre|| (the group's "
    "weights as one vector) and `elem` = mean over elements of |w_ft − w_pre| / (|w_pre| + 1e-12), the paper's kind "
    "of number (it reports 7077.23% for the final-layer FFN on MNLI and 167.33% on CoLA for BERTlet max,init). The "
    "element-wise mean is dominated by weights that start near zero: a weight of 1e-6 that moves by 1e-4 counts "
    "10,000%, and biases initialised at zero count without bound, so it reaches thousands of percent while the "
    "weights as a whole moved by a few percent. Trust `rel` to compare how far layers and tasks moved; read `elem` "
    "only as the paper's number, next to it. `final FFN` is the last encoder layer's feed-forward block "
    "(ffn_in + ffn_out) as one cell.")


def layer_component_view(deltas):
    """One row per (run, layer, component) of pretrained tensors plus a `final FFN` row per run; per task, the
    relative Frobenius change (rel %) and the mean element-wise relative change (elem %), both in percent."""
    import pandas as pd

    if deltas.empty:
        return pd.DataFrame()
    rows = []
    last = int(deltas.loc[deltas["layer"] >= 0, "layer"].max()) if (deltas["layer"] >= 0).any() else None
    for label, g in deltas.groupby("label", sort=False):
        for (layer, comp), h in g.groupby(["layer", "component"], sort=True):
            row = {"strategy": RUN_SPECS[label][1], "layer": "emb" if layer == -1 else str(layer), "component": comp}
            for _, t in h.iterrows():
                row[f"{TASK_LABEL[t['task']]} rel %"] = round(100 * t["rel_norm_change"], 3)
                row[f"{TASK_LABEL[t['task']]} elem %"] = round(100 * t["mean_rel_elementwise"], 2)
            rows.append(row)
        if last is not None:
            ffn = g[(g["layer"] == last) & g["component"].isin(["ffn_in", "ffn_out"])]
            row = {"strategy": RUN_SPECS[label][1], "layer": str(last), "component": "final FFN"}
            for t, h in ffn.groupby("task", sort=False):
                d2 = float((h["delta_norm"] ** 2).sum())
                w2 = float((h["ref_norm"] ** 2).sum())
                elem = float((h["mean_rel_elementwise"] * h["numel"]).sum() / h["numel"].sum())
                row[f"{TASK_LABEL[t]} rel %"] = round(100 * math.sqrt(d2 / w2), 3) if w2 > 0 else math.nan
                row[f"{TASK_LABEL[t]} elem %"] = round(100 * elem, 2)
            rows.append(row)
    return pd.DataFrame(rows)


def movement_vs_size(moves) -> dict:
    """Spearman correlation of encoder movement with training-set size, per run (needs >= 3 distinct sizes)."""
    from scipy.stats import spearmanr

    out = {}
    if moves.empty:
        return out
    for label, g in moves.groupby("label", sort=False):
        if g["n_train"].nunique() < 3:
            out[label] = None
        else:
            out[label] = float(spearmanr(g["n_train"], g["encoder_rel_change"]).statistic)
    return out


def plot_weights(deltas, stem: Path) -> dict:
    if deltas.empty:
        return {}
    import seaborn as sns

    from entmask.analysis import COMPONENTS

    labels = list(dict.fromkeys(deltas["label"]))
    tasks = [t for t in TASK_ORDER if t in set(deltas["task"])]
    fig = _figure(3.6 * len(tasks), 2.8 * len(labels))
    vmax = float(np.nanmax(deltas["rel_norm_change"])) or 1.0
    for i, label in enumerate(labels):
        for j, t in enumerate(tasks):
            ax = fig.add_subplot(len(labels), len(tasks), i * len(tasks) + j + 1)
            g = deltas[(deltas["label"] == label) & (deltas["task"] == t)]
            if g.empty:
                ax.axis("off")
                continue
            wide = g.pivot(index="layer", columns="component", values="rel_norm_change")
            wide = wide[[c for c in COMPONENTS if c in wide.columns]]  # the model's order, not the alphabet's
            wide.index = ["emb" if x == -1 else str(x) for x in wide.index]
            sns.heatmap(wide, ax=ax, vmin=0, vmax=vmax, cmap="viridis", cbar=j == len(tasks) - 1,
                        annot=False)
            ax.set_title(f"{RUN_SPECS[label][1]} · {TASK_LABEL[t]}: ||ΔW|| / ||W||", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("")
            ax.set_ylabel("layer" if j == 0 else "")
    fig.tight_layout()
    return _save(fig, stem)
