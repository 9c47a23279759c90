"""Per-token tables of the teacher's entropies and their summaries by train frequency, position and wordpiece kind.

What it is: `token_table` / `view_table` (one row per maskable token: entropy, train-split count, wordpiece kind),
`piece_kinds` and `PIECE_KINDS` ('##' handling), `frequency_bins` (decade bins of counts), `entropy_by_frequency`,
`entropy_by_position`, `entropy_by_piece` and `frequency_correlation`: DataFrames a notebook plots.

What it is not: no plotting (notebooks draw), no model runs, and no masks (`entmask.exploration.overlap`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from entmask.exploration.view import EntropyView

PIECE_KINDS = ("word", "first", "continuation")  # whole word | first piece of a split word | a '##' piece


def piece_kinds(tokens: Sequence[str]) -> list[str]:
    """The kind of each wordpiece in a row: 'continuation' ('##x'), 'first' (followed by a '##' piece), else 'word'."""
    out = []
    for i, t in enumerate(tokens):
        if t.startswith("##"):
            out.append("continuation")
        elif i + 1 < len(tokens) and tokens[i + 1].startswith("##"):
            out.append("first")
        else:
            out.append("word")
    return out


def token_table(ids: torch.Tensor, entropy: torch.Tensor, candidates: torch.Tensor, tokenizer,
                counts: torch.Tensor | None = None):
    """One row per candidate position: row, pos, token_id, token, entropy, count (train frequency), piece.

    `pos` is the position in the packed row (packed rows run across sentence boundaries). [N, T] inputs.
    """
    ids, entropy, candidates = ids.cpu(), entropy.float().cpu(), candidates.bool().cpu()
    recs = []
    for r in range(ids.shape[0]):
        toks = tokenizer.convert_ids_to_tokens(ids[r].tolist())
        kinds = piece_kinds(toks)
        for p in torch.nonzero(candidates[r]).flatten().tolist():
            tid = int(ids[r, p])
            recs.append((r, p, tid, toks[p], float(entropy[r, p]),
                         int(counts[tid]) if counts is not None else -1, kinds[p]))
    return pd.DataFrame.from_records(recs, columns=["row", "pos", "token_id", "token", "entropy", "count", "piece"])


def view_table(view: EntropyView):
    """`token_table` of an EntropyView."""
    return token_table(view.ids, view.entropy, view.candidates, view.tokenizer, view.counts)


# ---- frequency, position, subword pieces ----------------------------------------------------------------------
def frequency_bins(counts, base: int = 10) -> np.ndarray:
    """Bin of each count on a log scale: floor(log_base(count)); 0 for counts 1..base-1, 1 for base..base^2-1, ...
    A count of 0 (unseen in the train split) gets -1."""
    c = np.asarray(counts, dtype=np.int64)
    out = np.full(c.shape, -1, dtype=np.int64)
    pos = c > 0
    b = np.floor(np.log(c[pos]) / math.log(base)).astype(np.int64)
    # guard floating error at exact powers (log(1000)/log(10) = 2.9999999999999996)
    b = b + (base ** (b + 1) <= c[pos]) - (base ** b > c[pos])
    out[pos] = b
    return out


def _bin_label(b: int, base: int) -> str:
    return "unseen" if b < 0 else f"{base ** b}-{base ** (b + 1) - 1}"


def _summary(df, by: str):
    g = df.groupby(by, sort=True)["entropy"]
    out = g.agg(tokens="size", entropy_mean="mean", entropy_sd="std", entropy_median="median").reset_index()
    return out


def entropy_by_frequency(table, base: int = 10):
    """Entropy by log-frequency bin: freq_bin, label ('10-99'), tokens, types, entropy mean/sd/median."""
    df = table.assign(freq_bin=frequency_bins(table["count"].to_numpy(), base))
    out = _summary(df, "freq_bin")
    out["types"] = df.groupby("freq_bin", sort=True)["token_id"].nunique().to_numpy()
    out.insert(1, "label", [_bin_label(int(b), base) for b in out["freq_bin"]])
    return out


def frequency_correlation(table) -> float:
    """Spearman correlation between a token's train frequency and its entropy (NaN if either is constant)."""
    from scipy.stats import spearmanr  # here, not at the top: scipy.stats takes a second to import, for one function

    if len(table) < 3 or table["count"].nunique() < 2 or table["entropy"].nunique() < 2:
        return float("nan")
    return float(spearmanr(table["count"], table["entropy"]).statistic)


def entropy_by_position(table, width: int = 1):
    """Entropy by position in the packed row, in bins of `width` positions (pos_bin = first position of the bin)."""
    df = table.assign(pos_bin=(table["pos"] // width) * width)
    return _summary(df, "pos_bin")


def entropy_by_piece(table):
    """Entropy of whole words, first pieces of split words, and '##' continuation pieces (in PIECE_KINDS order)."""
    out = _summary(table, "piece").set_index("piece")
    out = out.reindex([k for k in PIECE_KINDS if k in out.index]).reset_index()
    out["share"] = out["tokens"] / out["tokens"].sum()
    return out
