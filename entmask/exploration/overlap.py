"""Every strategy's masks over the same rows and how they overlap: Jaccard pooled and per row, the Jaccard two
random masks would have by chance, and what each strategy masks (entropy, '##' share, train frequency).

What it is: `strategy_masks` (through `entmask.masking.select_mask`, with `alternating`'s coin per batch of rows as
training tosses it), `jaccard`, `jaccard_rows`, `jaccard_matrix`, `chance_jaccard` and `mask_profile`.

What it is not: no selection of its own (masks come only from `select_mask`, so they are training's) and no
model runs: the entropies are given.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from entmask.exploration.tables import piece_kinds
from entmask.exploration.view import EntropyView
from entmask.masking import STRATEGIES, canonical_strategy, num_to_mask, select_mask


def strategy_masks(entropy: torch.Tensor, candidates: torch.Tensor, strategies: Sequence[str] = STRATEGIES,
                   ratio: float = 0.15, seed: int = 0, batch_size: int = 1, num_tokens: int | None = None
                   ) -> dict[str, torch.Tensor]:
    """Each strategy's mask over the same rows, from `select_mask` with a generator seeded by `seed`.

    `alternating` flips one coin per call of select_mask; training calls it once per batch, so here the rows are
    cut into batches of `batch_size` (default 1: a coin per row), which is what the strategy does over training.
    """
    out = {}
    for s in strategies:
        name = canonical_strategy(s)
        gen = torch.Generator().manual_seed(int(seed))
        if name == "alternating":
            parts = [select_mask(entropy[i:i + batch_size], candidates[i:i + batch_size], name, ratio, num_tokens,
                                 generator=gen) for i in range(0, entropy.shape[0], batch_size)]
            out[name] = torch.cat(parts) if parts else torch.zeros_like(candidates, dtype=torch.bool)
        else:
            out[name] = select_mask(entropy, candidates, name, ratio, num_tokens, generator=gen)
    return out


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a ∧ b| / |a ∨ b| over all positions (pooled over rows). Two empty masks are identical: 1.0."""
    a, b = torch.as_tensor(a).bool(), torch.as_tensor(b).bool()
    if a.shape != b.shape:
        raise ValueError(f"masks of shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be compared")
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def jaccard_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jaccard per row of two [N, T] masks (1.0 where both rows are empty). [N] float64"""
    a, b = torch.as_tensor(a).bool(), torch.as_tensor(b).bool()
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def jaccard_matrix(masks: Mapping[str, torch.Tensor], per_row: bool = False):
    """Pairwise Jaccard of named masks as a square DataFrame (pooled over rows; per_row=True: mean of rows)."""
    names = list(masks)
    m = np.ones((len(names), len(names)))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if j > i:
                v = float(jaccard_rows(masks[a], masks[b]).mean()) if per_row else jaccard(masks[a], masks[b])
                m[i, j] = m[j, i] = v
    return pd.DataFrame(m, index=names, columns=names)


def chance_jaccard(candidates: torch.Tensor, ratio: float = 0.15, num_tokens: int | None = None) -> float:
    """Jaccard expected (to first order) between two independent random masks of the same k per row: pooled
    E|A∧B| / E|A∨B| with E|A∧B| = k²/n per row."""
    cand = torch.as_tensor(candidates).bool()
    n = cand.sum(1).double()
    k = num_to_mask(cand, ratio, num_tokens).double()
    inter = torch.where(n > 0, k * k / n.clamp(min=1), torch.zeros_like(n))
    union = 2 * k - inter
    return float(inter.sum() / union.sum()) if float(union.sum()) > 0 else 1.0


def mask_profile(masks: Mapping[str, torch.Tensor], view: EntropyView):
    """What each strategy masks: masked tokens, their mean entropy, share of '##' pieces, median train count."""
    ids, ent = view.ids, view.entropy
    cont = torch.zeros_like(view.candidates)
    for r in range(ids.shape[0]):
        kinds = piece_kinds(view.tokenizer.convert_ids_to_tokens(ids[r].tolist()))
        cont[r] = torch.tensor([k == "continuation" for k in kinds])
    counts = view.counts[ids]  # [N, T]
    recs = []
    for name, m in masks.items():
        m = m.bool()
        k = int(m.sum())
        recs.append({"strategy": name, "masked": k,
                     "entropy_mean": float(ent[m].double().mean()) if k else float("nan"),
                     "continuation_share": float(cont[m].double().mean()) if k else float("nan"),
                     "median_count": float(counts[m].double().median()) if k else float("nan")})
    recs.append({"strategy": "(all candidates)", "masked": int(view.candidates.sum()),
                 "entropy_mean": float(ent[view.candidates].double().mean()),
                 "continuation_share": float(cont[view.candidates].double().mean()),
                 "median_count": float(counts[view.candidates].double().median())})
    return pd.DataFrame(recs)
