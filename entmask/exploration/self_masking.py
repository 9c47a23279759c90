"""Self-masking over training: the entropy spread each run recorded at every epoch end, and how the masks a run's
kept epoch models pick from their own entropies overlap the teacher's masks on the same rows.

What it is: `runs_with_epochs` (the runs that kept `epochs/epoch-N` models), `epoch_entropy_frame` (metrics.json's
'epoch_entropy', else logs/epochs.json), `self_mask_overlap` and `self_mask_overlaps` (Jaccard, chance level and
Spearman of self vs teacher entropy, epoch by epoch).

What it is not: no training and no writing; it loads each kept epoch model once, in turn.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import torch

from entmask.entropy import model_entropy
from entmask.exploration.overlap import chance_jaccard, jaccard, jaccard_rows
from entmask.exploration.view import EntropyView
from entmask.masking import canonical_strategy, select_mask
from entmask.models import load_teacher
from entmask.widgets.sources import sources_from_run


def runs_with_epochs(runs: Mapping[str, Path]) -> dict[str, Path]:
    """The runs (label -> folder) that kept per-epoch models (self-masking and KD-with-self runs)."""
    return {k: Path(v) for k, v in runs.items() if any((Path(v) / "epochs").glob("epoch-*/config.json"))}


def _epoch_history(run: Path) -> list[dict]:
    m = Path(run) / "metrics.json"
    if m.exists():
        hist = json.loads(m.read_text()).get("epoch_entropy") or []
        if hist:
            return hist
    e = Path(run) / "logs" / "epochs.json"
    return json.loads(e.read_text()) if e.exists() else []


def epoch_entropy_frame(runs: Mapping[str, Path]):
    """The student's entropy spread at each epoch end, as each run recorded it (metrics.json 'epoch_entropy'):
    label, epoch, step, source (where masks came from during that epoch), entropy_mean, entropy_sd."""
    recs = []
    for label, run in runs.items():
        for h in _epoch_history(Path(run)):
            recs.append({"label": label, "epoch": h.get("epoch"), "step": h.get("step"), "source": h.get("source"),
                         "entropy_mean": h.get("entropy_mean"), "entropy_sd": h.get("entropy_sd")})
    return pd.DataFrame(recs, columns=["label", "epoch", "step", "source", "entropy_mean", "entropy_sd"])


def _epoch_dirs(run: Path) -> list[tuple[int, Path]]:
    out = []
    for name, d in sources_from_run(run).items():
        out.append((int(name.split()[-1]), Path(d)))
    return out


@torch.no_grad()
def self_mask_overlap(run: str | Path, view: EntropyView, strategy: str | None = None, ratio: float | None = None,
                      rows: int | None = 64, device: str | None = None, chunk: int = 1024):
    """For a fixed sample of rows: the Jaccard between the mask a run's model would pick from its *own* entropy at
    each epoch end (its kept `epochs/epoch-N` models) and the mask the teacher's entropy gives on the same rows.

    strategy/ratio default to the run's own (config.json); rows: the first `rows` rows of `view`.
    Columns: epoch, source (mask source during that epoch), jaccard (pooled), jaccard_row_mean, chance (random
    masks' expected Jaccard), spearman (self vs teacher entropy, pooled over candidates), entropy_mean/sd (self).
    """
    run = Path(run)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    strategy = canonical_strategy(strategy or cfg.get("masking", {}).get("strategy", "high"))
    if strategy in ("random", "bernoulli"):
        raise ValueError(f"strategy {strategy!r} ignores entropy; self vs teacher overlap needs an entropy strategy")
    ratio = ratio or cfg.get("masking", {}).get("ratio", 0.15)
    ids, cand, t_ent = view.ids[:rows], view.candidates[:rows], view.entropy[:rows]
    gen = torch.Generator().manual_seed(0)
    t_mask = select_mask(t_ent, cand, strategy, ratio, generator=gen)
    sources = {h.get("epoch"): h.get("source") for h in _epoch_history(run)}
    chance = chance_jaccard(cand, ratio)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    recs = []
    for epoch, d in _epoch_dirs(run):
        model = load_teacher(d, device=dev)
        ent = model_entropy(model, ids.to(dev), torch.ones_like(ids).to(dev), chunk).float().cpu()
        gen = torch.Generator().manual_seed(0)
        s_mask = select_mask(ent, cand, strategy, ratio, generator=gen)
        e = ent[cand]
        rho = _spearman(e, t_ent[cand])
        recs.append({"epoch": epoch, "source": sources.get(epoch), "strategy": strategy,
                     "jaccard": jaccard(s_mask, t_mask), "jaccard_row_mean": float(jaccard_rows(s_mask, t_mask).mean()),
                     "chance": chance, "spearman": rho, "entropy_mean": float(e.double().mean()),
                     "entropy_sd": float(e.double().std())})
        del model
    return pd.DataFrame(recs, columns=["epoch", "source", "strategy", "jaccard", "jaccard_row_mean", "chance",
                                       "spearman", "entropy_mean", "entropy_sd"])


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr  # here, not at the top: scipy.stats takes a second to import, for one function

    a, b = a.double().numpy(), b.double().numpy()
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def self_mask_overlaps(runs: Mapping[str, Path], view: EntropyView, **kw):
    """`self_mask_overlap` of several runs (label -> folder) in one frame, with a `label` column first."""
    frames = []
    for label, run in runs.items():
        df = self_mask_overlap(run, view, **kw)
        df.insert(0, "label", label)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["label", "epoch", "source", "strategy", "jaccard", "jaccard_row_mean", "chance", "spearman",
                 "entropy_mean", "entropy_sd"])
