"""The token-scorer table (`entmask bench --scorers`): seconds per batch of each registered scorer.

What it is: `bench_scorers(preset, seq_len, batch_size, repeats, device, ratio)` times every scorer of
`entropy.SCORERS` on one student (and, for excess_loss, a second model of the same preset as its reference; for
excess_loss_fixed, that reference's half computed once, as training caches it),
round-robin, and gives each its ratio to the paper's unmasked-view entropy; `format_scorers` prints it.

What it is not: no training step and no quality measure of a scorer (docs/beyond.md has those); synthetic ids only.
"""
from __future__ import annotations

import statistics

import torch

from entmask.bench.machine import _rotate, _say, _timed
from entmask.bench.synthetic import VOCAB, synthetic_ids


def bench_scorers(preset: str = "bertlet", seq_len: int = 128, batch_size: int = 16, repeats: int = 3,
                  device: str | torch.device | None = None, ratio: float = 0.15, progress: bool = True) -> list[dict]:
    """Seconds per batch of each registered scorer (`entropy.SCORERS`) on one model (the student) and, for
    excess_loss, a second of the same preset as reference; ratios to the paper's unmasked-view entropy. Timed
    round-robin (each repeat runs every scorer once), median over repeats. Synthetic ids, no data."""
    from entmask.entropy import SCORERS, fixed_groups, score_tokens
    from entmask.models import build_model

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(preset, VOCAB, seed=0).to(dev).eval()
    ref = build_model(preset, VOCAB, seed=1).to(dev).eval()
    ids = synthetic_ids(batch_size, seq_len).to(dev)  # [B, T]
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, 0] = cand[:, -1] = False
    times: dict[str, list[float]] = {n: [] for n in SCORERS}
    # a scorer whose reference half is cached in training (excess_loss_fixed) is timed as it trains: the
    # reference's scores given, computed once here on fixed groups, outside the timing
    group = fixed_groups(ids.shape, ratio, 0).to(dev)  # [B, T]
    cached_halves = {n: {"group": group, "reference_scores": score_tokens(sc.reference_score, ref, ids, cand,
                                                                          mask_id=103, ratio=ratio, group=group)}
                     for n, sc in SCORERS.items() if sc.reference_score}
    for r in range(repeats + 1):  # the first round warms up
        for name in _rotate(list(SCORERS), r):
            gen = torch.Generator(device=dev).manual_seed(r)

            cached = cached_halves.get(name, {})

            def fn(name=name, gen=gen, cached=cached):
                return score_tokens(name, model, ids, cand, mask_id=103, ratio=ratio, reference=ref, generator=gen,
                                    **cached)

            secs, _ = _timed(fn, dev)
            if r:
                times[name].append(secs)
        _say(progress, f"scorers: round {r}/{repeats}")
    base = statistics.median(times["entropy"])
    return [{"scorer": n, "view": SCORERS[n].view, "passes": _passes(SCORERS[n], ratio),
             "seconds_per_batch": statistics.median(t), "tokens_per_s": ids.numel() / statistics.median(t),
             "x entropy time": statistics.median(t) / base} for n, t in times.items()]


def _passes(scorer, ratio: float) -> int:
    """Forward passes per batch: the scorer's own, twice where it also runs the reference model (not where the
    reference's half is cached: excess_loss_fixed)."""
    return scorer.passes(ratio) * (2 if scorer.uses_reference and scorer.reference_score is None else 1)


def format_scorers(rows: list[dict], info: str) -> str:
    lines = [f"token scorers ({info}): seconds per batch, median; ratio to the paper's unmasked-view entropy", "",
             "| scorer | view | forward passes | s / batch | tokens/s | x entropy time |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scorer']} | {r['view']} | {r['passes']} | {r['seconds_per_batch']:.4f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['x entropy time']:.2f} |")
    return "\n".join(lines)
