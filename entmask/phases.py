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
taken on the view being trained.

Where a short row sits: `train.short_positions = "own"` (the default) gives every short row the positions 0 .. t-1,
as BERT's short phase did, so positions t .. T-1 are first trained in the long phase. `"natural"` gives each piece
the positions its tokens hold in the long row: [CLS] at 0, piece i's body at i*b+1 .. i*b+b, its [SEP] at i*b+b+1
(the last piece's [SEP] at T-1, where the long row's is), so every position embedding trains from the first step.
Measured on cpu-wiki (session 22): it does not help. A student with natural positions learned rows of 12 slower
(14.1% against 18.6% at step 1,050), scored the same on its short rows at natural and at own positions (it had
learned to ignore them) and no better on whole rows (5.2% against 3.0%, both below the unigram 7.8%): what a
short-row student lacks on whole rows is attention over 152 tokens, not trained positions. The teacher always
scores short rows at their own positions (its cached scores do not depend on this setting).

A length ramp (`train.length_ramp`, e.g. [[5, 0.15], [2, 0.15]]) puts stages between the short phase and whole
rows, each a split of the row for a share of the steps: rows of 12 -> 32 -> 77 -> 152 on cpu-wiki. Measured there
(session 22, docs/small-scale.md, "The long phase"), from one student of 1,000 steps on rows of 12 (3.6% on whole
rows): 400 steps on rows of 32, 400 on 77 and 200 on 152 reached 15.2% on whole rows; 1,000 steps straight on whole
rows at the same learning rate reached 17.5%. So cpu-wiki goes straight to whole rows, for 60% of its steps; the
ramp stays an option.

It is not a data pipeline (rows are packed once, in `data`) and not a scheduler of
anything but the view.
"""

from __future__ import annotations

import contextlib
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


def stages(k: int, fraction: float, ramp=()) -> list[tuple[int, float]]:
    """The views in training order as (rows per row, fraction of the steps at which the stage ends): the short
    phase, then each [k_i, share_i] of `ramp` (train.length_ramp), then whole rows to the end. [] when k = 1."""
    if k <= 1:
        return []
    out, end = [(k, fraction)], fraction
    for k_i, share in ramp:
        end += share
        out.append((int(k_i), end))
    return out


def view_rows(step: int, max_steps: int, k: int, fraction: float, ramp=()) -> int:
    """How many short rows each row is split into at optimizer step `step` (0-based): k in the short phase, each
    ramp stage's k in its share of the steps, then 1."""
    for k_i, end in stages(k, fraction, ramp):
        if step < int(math.ceil(end * max_steps)):
            return k_i
    return 1


def view_steps(max_steps: int, k: int, fraction: float, ramp=()) -> dict[int, int]:
    """Optimizer steps spent in each view {rows per row: steps}, whole rows (1) included."""
    out, start = {}, 0
    for k_i, end in stages(k, fraction, ramp):
        stop = min(max_steps, int(math.ceil(end * max_steps)))
        out[k_i] = stop - start
        start = stop
    out[1] = max_steps - start
    return out


def short_views(k: int, ramp=()) -> list[int]:
    """Every split a run trains on besides whole rows (teacher scores are needed for each)."""
    return [k_i for k_i, _ in stages(k, 1.0, ramp)]


POSITIONS = ("own", "natural")  # train.short_positions: where a short row's tokens sit (module docstring)


def natural_positions(seq_len: int, k: int) -> torch.Tensor:
    """Position ids of the k pieces of a row of `seq_len` at their place in it. [k, (seq_len-2)/k + 2] long:
    piece i is [0, i*b+1, ..., i*b+b, i*b+b+1] with b = (seq_len-2)/k ([CLS] at 0 as in every row)."""
    b = (seq_len - 2) // k
    start = torch.arange(k).unsqueeze(1) * b  # [k, 1]
    inner = start + torch.arange(1, b + 2)  # [k, b+1]: the body and the [SEP] right after it
    return torch.cat([torch.zeros(k, 1, dtype=torch.long), inner], 1)  # [k, b+2]


@contextlib.contextmanager
def piece_positions(model, seq_len: int, k: int, mode: str):
    """Within the block, every forward of `model`'s encoder on short rows gets the position ids `mode` gives them
    (module docstring); "own" or k = 1 changes nothing. The rows must come in whole groups of k pieces, in
    split_rows' order (row j is piece j mod k), as a training batch and heldout_eval's batches do: a forward
    pre-hook on the embeddings, so every pass (the loss, a self-masking score, an evaluation) sees the same
    positions without each call site passing them. The hook is removed on exit, so no other call is touched."""
    if k <= 1 or mode == "own":
        yield
        return
    if mode not in POSITIONS:
        raise ValueError(f"short positions {mode!r}: choose from {', '.join(POSITIONS)}")
    table = natural_positions(seq_len, k)  # [k, t]

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids")
        ids = ids if ids is not None else (args[0] if args else kwargs["inputs_embeds"])
        n, t = ids.shape[0], ids.shape[1]
        if t != table.shape[1] or n % k:
            raise ValueError(f"{n} rows of {t} tokens are not whole groups of {k} short rows of {table.shape[1]}: "
                             f"natural positions need each row's pieces together (a batch size that is a multiple "
                             f"of {k})")
        kwargs["position_ids"] = table.to(ids.device).repeat(n // k, 1)  # [n, t]
        return args, kwargs

    handle = model.bert.embeddings.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def describe_schedule(cfg) -> str:
    """The row lengths a run trains on, in words: '40% of the steps as 15 rows of 12 (own positions), then 60% whole
    rows of 152' (`entmask info`)."""
    t, T = cfg.train, cfg.data.seq_len
    parts, start = [], 0.0
    for k, end in stages(t.short_rows, t.short_fraction, t.length_ramp):
        parts.append(f"{(end - start) * 100:.0f}% of the steps as {k} rows of {short_len(T, k)}")
        start = end
    pos = f" ({t.short_positions} positions)" if parts else ""
    return ", ".join(parts) + pos + f", then {(1 - start) * 100:.0f}% whole rows of {T}"
