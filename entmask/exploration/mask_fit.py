"""Mask fit: does a student predict its strategy's masked tokens, or has it memorised its training rows' answers?

What it is: `mask_fit` (a student's accuracy and loss under each strategy's masks on seeded train rows, seen in
training, and test rows, never seen), `mask_fit_rows` (the same on given rows), `fit_masks` (the masks it scores,
"random-static" a `masking.static` student's own included), `own_masks` (the masks a run trained on, named as
mask_fit names them), `check_fit_strategies`, `check_max_rows` and `student_model_dir` (a run folder or its model/).
`FIT_STRATEGIES`, `STATIC` and `SELF` are the names it uses.

What it is not: no training, no report (`entmask.experiments.memorisation_report` runs it over an experiment's
runs), and no selection of its own: masks come from `entmask.masking` as training draws them.
"""
from __future__ import annotations

import json
import numbers
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from entmask.entropy import model_entropy
from entmask.exploration.overlap import strategy_masks
from entmask.exploration.view import EntropyView, teacher_view
from entmask.masking import STRATEGIES, apply_mask, canonical_strategy, select_mask, static_scores
from entmask.models import load_teacher, score_masked, transformers_bars
from entmask.runs import read_json


FIT_STRATEGIES = ("random",) + tuple(x for x in STRATEGIES if x != "random")  # the baseline first
STATIC = "random-static"  # mask_fit's name for masking.static's masks: random, drawn once per row, kept every epoch
# mask_fit's prefix for a strategy applied to the scored model's *own* entropies ("self-high"): the masks a
# self-masking student would pick for a row at the end of training. Its training masks moved as it learned, so
# these are its last masks, not all of them.
SELF = "self-"


def fit_masks(ids: torch.Tensor, entropy: torch.Tensor, candidates: torch.Tensor, strategies: Sequence[str],
              ratio: float = 0.15, seed: int = 0, static_seed: int = 0, num_tokens: int | None = None
              ) -> dict[str, torch.Tensor]:
    """The masks mask_fit scores: `strategy_masks`, plus "random-static", the masks a `masking.static` student
    trained on at `static_seed` (the k highest of masking.static_scores, as its training steps draw them)."""
    masks = strategy_masks(entropy, candidates, [s for s in strategies if s != STATIC], ratio, seed,
                           num_tokens=num_tokens)
    if STATIC in strategies:
        masks[STATIC] = select_mask(static_scores(ids, static_seed), candidates, "high", ratio, num_tokens)  # [N, T]
    return masks


def mask_fit_rows(model, ids: torch.Tensor, entropy: torch.Tensor, candidates: torch.Tensor, mask_id: int,
                  strategies: Sequence[str] = FIT_STRATEGIES, ratio: float = 0.15, seed: int = 0,
                  batch_size: int = 128, static_seed: int = 0, num_tokens: int | None = None) -> list[dict]:
    """A masked LM's accuracy and loss on `ids` [N, T] under each strategy's masks (from `entropy` [N, T], as
    `fit_masks` draws them, or for "self-<strategy>" from the model's own entropies), [MASK] at every selected
    position: one dict per strategy, in the order asked."""
    strategies = check_fit_strategies(strategies)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: give a positive number of rows per forward pass")
    if ids.shape[0] == 0:
        raise ValueError("mask_fit_rows got no rows to score: give at least one row")
    own = [s for s in strategies if s.startswith(SELF)]
    masks = fit_masks(ids, entropy, candidates, [s for s in strategies if s not in own], ratio, seed, static_seed,
                      num_tokens)
    if own:
        with torch.no_grad():
            own_entropy = torch.cat([model_entropy(model, ids[i:i + batch_size].to(model.device)).cpu()
                                     for i in range(0, ids.shape[0], batch_size)])  # [N, T]
        for name in own:
            masks[name] = strategy_masks(own_entropy, candidates, [name[len(SELF):]], ratio, seed,
                                         num_tokens=num_tokens)[canonical_strategy(name[len(SELF):])]  # [N, T]
    out = []
    for name in strategies:
        mask = masks[name if name in own or name == STATIC else canonical_strategy(name)]  # fit_masks keys canonically
        masked, labels = apply_mask(ids, mask, mask_id, "mask")  # [N, T], labels -100 off the mask
        out.append({"strategy": name, **score_masked(model, masked, labels, batch_size)})
    return out


def check_fit_strategies(strategies) -> list[str]:
    """mask_fit's strategy names as a list (one name given as a string is one strategy), each one checked: a
    masking strategy or alias, "random-static", or "self-<strategy>"."""
    names = [strategies] if isinstance(strategies, str) else list(strategies or [])
    valid = f"choose from {', '.join(STRATEGIES)} (or an alias), {STATIC}, or {SELF}<strategy> such as {SELF}high"
    if not names:
        raise ValueError(f"mask_fit needs at least one strategy: {valid}")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"mask_fit strategy {name!r} is not a name: {valid}")
        if name == STATIC:
            continue
        try:
            canonical_strategy(name[len(SELF):] if name.startswith(SELF) else name)
        except ValueError:
            raise ValueError(f"unknown mask_fit strategy {name!r}: {valid}") from None
    return names


def own_masks(masking) -> str | None:
    """The name mask_fit gives the masks a pretraining row trained on (from its MaskingConfig), or None where
    mask_fit cannot redraw them (a scorer other than entropy, whole words, a schedule, a strategy outside
    masking.STRATEGIES). `alternating` is redrawn with one coin per row where training tossed one per batch and
    epoch: a row trained under both mask sets about half the epochs each, so over many epochs its drawn set is
    one it trained on; after a few epochs some rows may never have seen theirs."""
    m = masking
    strategy = canonical_strategy(m.strategy)
    if m.scorer != "entropy" or m.whole_word != "none" or m.schedule != "constant" or strategy not in STRATEGIES:
        return None
    if m.static:
        return STATIC
    if strategy == "random":
        return "random"
    return SELF + strategy if m.source == "self" else strategy


def mask_fit(cfg, model_dir, strategies: Sequence[str] = FIT_STRATEGIES, max_rows: int | None = 512,
             seed: int = 0, root=None, progress: bool = True, views: Mapping[str, EntropyView] | None = None):
    """Does a student predict its strategy's masked tokens, or has it memorised its training rows' answers?

    Teacher-masking is static (paper §2.2): every epoch masks the same positions of the same row, so over many
    epochs of a small corpus a student can learn each training row's masked answers by heart. This scores the
    model under each strategy's teacher masks on `max_rows` seeded train rows (seen in training) and test rows
    (never seen), [MASK] only. A student that generalises scores alike on both; one that memorised scores high on
    train under its own strategy and near zero on test. Returns a DataFrame: split, strategy, accuracy, loss,
    masked_tokens. (Random masks here are drawn from `seed`, not the held-out evaluation's fixed masks.)
    The masks follow what the student trained with: the masking ratio / number of tokens and, for
    "random-static" (a `masking.static` student's own training masks), the pretraining seed are read from the run's
    config.json beside `model_dir` (else from `cfg`), so a seed-1 run is scored on its seed-1 masks.
    "self-<strategy>" (e.g. "self-high") selects with the model's own entropies instead of the teacher's: for a
    self-masking student, the masks it would pick for each row now (its training masks moved as it learned).
    `views` ({"train": ..., "test": ...} from teacher_view) saves rebuilding them when scoring many models.
    `model_dir` is a pretraining run folder or its model/ folder.
    """
    strategies = check_fit_strategies(strategies)
    check_max_rows(max_rows)
    model_dir = student_model_dir(model_dir)
    run_cfg = model_dir.parent / "config.json"
    trained = read_json(run_cfg) if run_cfg.is_file() else {}
    tm, tt = trained.get("masking", {}), trained.get("train", {})
    if tm.get("whole_word", "none") != "none":
        raise ValueError(f"{model_dir} was trained with whole-word masking ({tm['whole_word']}); mask_fit scores "
                         f"token-level masks only")
    ratio, num_tokens = tm.get("ratio", cfg.masking.ratio), tm.get("num_tokens", cfg.masking.num_tokens)
    with transformers_bars(progress):
        model = load_teacher(model_dir).eval()
    rows = []
    for split in ("train", "test"):
        v = (views or {}).get(split)
        if v is None:
            v = teacher_view(cfg, split=split, max_rows=max_rows, seed=seed, root=root, progress=progress)
        for r in mask_fit_rows(model, v.ids, v.entropy, v.candidates, v.tokenizer.mask_token_id, strategies,
                               ratio, seed, cfg.train.eval_batch_size, static_seed=tt.get("seed", cfg.train.seed),
                               num_tokens=num_tokens):
            rows.append({"split": split, **r})
    return pd.DataFrame(rows)


def check_max_rows(max_rows) -> None:
    """max_rows is None (every row) or a positive whole number (a seeded sample of that many rows)."""
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral)
                                 or max_rows < 1):
        raise ValueError(f"max_rows={max_rows!r}: give a positive number of rows, or None for every row")


def student_model_dir(path) -> Path:
    """The model folder of a pretraining run, given the run folder (which holds model/) or the model folder. A
    run folder's own config.json is entmask's, not a model's: a model folder's names a transformers model_type."""
    p = Path(path).expanduser()

    def is_model(d: Path) -> bool:
        try:
            return "model_type" in json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            return False

    for cand in (p / "model", p):
        if is_model(cand):
            if not any(cand.glob("*.safetensors")):
                raise ValueError(f"{cand} has no weights (*.safetensors)"
                                 + ("; the run was imported from run records, which leave weights out: retrain it "
                                    "(entmask pretrain ... --force) to score it" if (cand.parent / "weights.json")
                                    .is_file() else ": it is not a saved model"))
            return cand
    unfinished = (p / "checkpoints").is_dir() and not (p / "metrics.json").exists()
    raise ValueError(f"{p} holds no model (no transformers config.json there or in model/): give a pretraining run "
                     f"folder or its model/ folder" + ("; this run has not finished (no model/ yet)" if unfinished
                                                       else ""))
