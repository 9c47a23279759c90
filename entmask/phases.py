"""BERT's two-phase length schedule: short rows for most steps, the full row length for the rest.

Devlin et al. (2019) pretrained on 128-token rows for 90% of the steps and on 512 for the last 10%, "to speed up
pretraining", which still trains every position embedding. For a small student on a CPU it does more: a 2x128 model
left the unigram plateau on 32-token rows and did not on 128 or 144 within the budget (docs/small-scale.md), while
GLUE needs rows long enough not to truncate the inputs.

This module is the row arithmetic only: with `train.short_rows = k` every packed row `[CLS] body [SEP]` of
`data.seq_len` tokens is seen, during the first `train.short_fraction` of the optimizer steps, as k rows
`[CLS] body_i [SEP]` of (seq_len - 2) / k + 2 tokens, the body cut in k consecutive pieces. Batches keep their rows
(a batch of B long rows is B*k short rows, the same text), the data order and the learning-rate schedule are one;
masks, entropies (teacher, cached per view; self, computed on what the student sees) and held-out curve points are
taken on the view being trained. It is not a data pipeline (rows are packed once, in `data`) and not a scheduler of
anything but the view.
"""

from __future__ import annotations

import math

import torch


def short_len(seq_len: int, k: int) -> int:
    """Length of one short row (with its [CLS] and [SEP]) when a row of `seq_len` is split in k."""
    return (seq_len - 2) // k + 2


def split_rows(x: torch.Tensor, k: int, first=None, last=None) -> torch.Tensor:
    """[N, T] rows `[CLS] body [SEP]` -> [N*k, (T-2)/k + 2]: each body cut in k consecutive pieces, framed by
    `first` / `last` (the [CLS] / [SEP] ids for token ids; None: the row's own first / last value, e.g. False for a
    mask or 0 for scores). k = 1 returns x itself."""
    if k == 1:
        return x
    n, t = x.shape
    if (t - 2) % k:
        raise ValueError(f"rows of {t} tokens have a body of {t - 2}, which does not split into {k} equal pieces")
    body = x[:, 1:-1].reshape(n * k, (t - 2) // k)  # [N*k, b]: row i's pieces are rows i*k .. i*k+k-1
    head = x[:, :1].repeat_interleave(k, 0) if first is None else torch.full((n * k, 1), first, dtype=x.dtype,
                                                                              device=x.device)
    tail = x[:, -1:].repeat_interleave(k, 0) if last is None else torch.full((n * k, 1), last, dtype=x.dtype,
                                                                             device=x.device)
    return torch.cat([head, body, tail], 1)  # [N*k, b+2]


def split_ids(ids: torch.Tensor, k: int, cls_id: int, sep_id: int) -> torch.Tensor:
    """Token ids [N, T] -> [N*k, (T-2)/k + 2], every short row framed by [CLS] ... [SEP]."""
    return split_rows(ids, k, cls_id, sep_id)


def short_steps(max_steps: int, k: int, fraction: float) -> int:
    """Optimizer steps trained on short rows: the first ceil(fraction * max_steps), none when k = 1."""
    return 0 if k <= 1 else int(math.ceil(fraction * max_steps))


def view_rows(step: int, max_steps: int, k: int, fraction: float) -> int:
    """How many short rows each row is split into at optimizer step `step` (0-based): k in phase 1, else 1."""
    return k if step < short_steps(max_steps, k, fraction) else 1
