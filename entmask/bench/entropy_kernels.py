"""The entropy-computation table: ways to turn [N, V] float32 logits into N entropies, timed against each other.

What it is: `bench_entropy(rows, vocab, chunks, repeats, device)` times naive `log_softmax` over the whole tensor,
`entropy.token_entropy` unchunked and with each chunk, and the proposed entr(softmax) kernel (`entr_rows`, three
kernels instead of eight) with each chunk, round-robin; each row gets its time, its ratio to naive, its peak extra
memory on CUDA (on CPU `memory` measures it in a subprocess) and its largest difference from naive.
`_entr_kernel(on)` swaps `entr_rows` in as `entropy._entropy_rows` for one call, which is how the training-step and
teacher tables measure the kernel without editing entropy.py.

What it is not: no model; the logits are random (scaled N(0, 9)), so the entropies are numbers to compare, not
predictions.
"""
from __future__ import annotations

import contextlib
import statistics

import torch

from entmask.bench.machine import _rotate, _timed

ENTR = "entr(softmax), proposed"


def entr_rows(x: torch.Tensor) -> torch.Tensor:
    """Proposed `entropy._entropy_rows`: entropy = sum of entr(softmax(x)), three kernels instead of eight.
    entr(0) = 0, so -inf logits need no masking; a row with NaN/+inf, or all -inf, still gives NaN. [N, V] -> [N]"""
    return torch.special.entr(torch.softmax(x.float(), dim=-1)).sum(dim=-1)


@contextlib.contextmanager
def _entr_kernel(on: bool):
    """Swap entropy._entropy_rows for `entr_rows` during one variant's step (model_entropy looks it up per call)."""
    if not on:
        yield
        return
    from entmask import entropy

    old = entropy._entropy_rows
    entropy._entropy_rows = entr_rows
    try:
        yield
    finally:
        entropy._entropy_rows = old


def _naive_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)  # [N, V]
    return -(logp.exp() * logp).sum(dim=-1)


def entropy_methods(chunks: tuple[int, ...]) -> list[tuple[str, int | None]]:
    return ([("naive log_softmax", None), ("token_entropy", None)] + [("token_entropy", c) for c in chunks]
            + [(ENTR, None)] + [(ENTR, c) for c in chunks])


def _entropy_fn(method: str, chunk: int | None):
    from entmask.entropy import token_entropy

    if method.startswith("naive"):
        return _naive_entropy
    if method == ENTR:
        def entr(x):
            with _entr_kernel(True):
                return token_entropy(x, chunk_size=chunk)
        return entr
    return lambda x: token_entropy(x, chunk_size=chunk)


def bench_entropy(rows: int, vocab: int, chunks: tuple[int, ...], repeats: int, device: torch.device) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(3)
    logits = torch.randn(rows, vocab, generator=g, device=device) * 3  # float32 [N, V]
    methods = entropy_methods(chunks)
    ref = _naive_entropy(logits)
    times = {i: [] for i in range(len(methods))}
    peaks = {i: [] for i in range(len(methods))}
    diffs = {}
    for i, (m, c) in enumerate(methods):  # warm-up, and the agreement check
        diffs[i] = float((_entropy_fn(m, c)(logits) - ref).abs().max())
    for rnd in range(repeats):
        for i in _rotate(list(range(len(methods))), rnd):
            fn = _entropy_fn(*methods[i])
            secs, peak = _timed(lambda fn=fn: fn(logits), device)
            times[i].append(secs)
            if peak is not None:
                peaks[i].append(peak)
    out = []
    for i, (m, c) in enumerate(methods):
        out.append({"method": m, "chunk": c, "rows": rows, "vocab": vocab, "ms": 1e3 * statistics.median(times[i]),
                    "peak_extra_mib": max(peaks[i]) / 2 ** 20 if peaks[i] else None, "max_abs_diff": diffs[i]})
    base = out[0]
    for r in out:
        r["speed_vs_naive"] = base["ms"] / r["ms"]
        r["mem_vs_naive"] = (r["peak_extra_mib"] / base["peak_extra_mib"]) if r["peak_extra_mib"] and \
            base["peak_extra_mib"] else None
    return out
