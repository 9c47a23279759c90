"""The teacher-pass table: the teacher's entropy pass in tokens/s, and `teacher_entropies` with its cache.

What it is: `bench_teacher_pass(models, rows, seq_len, batch, chunk, device)` times `entropy.model_entropy` as
`teacher_entropies` runs it (inference mode, batched, the head in chunks) at fp32 vs bf16 autocast, and on a GPU
the proposed larger chunk and entr(softmax) kernel (`teacher_pass_configs`), interleaved batch by batch;
`bench_teacher_cache` calls `entropy.teacher_entropies` twice on a saved random teacher (the first call computes
and caches, the second reads the cache) and checks both give the same tensor. `REFERENCE_SIZE` is a
reference-teacher-sized model (all-MiniLM-L6-v2's shape) for the table's second model.

What it is not: no trained teacher (random weights; the pass costs the same) and no hub download.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from entmask.bench.entropy_kernels import _entr_kernel
from entmask.bench.machine import _rotate, _timed
from entmask.bench.synthetic import VOCAB, synthetic_ids

# A reference-teacher-sized model (all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads) for the teacher-pass table.
REFERENCE_SIZE = dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)


def teacher_pass_configs(device: torch.device, chunk: int, big_chunk: int = 2048) -> list[tuple[str, int, bool]]:
    """(precision, head chunk, entr kernel) rows of the teacher-pass table: today's fp32 and bf16 paths, and on a
    GPU the proposed larger chunk and entropy kernel."""
    from entmask.entropy import _bf16_ok

    rows = [("fp32", chunk, False)]
    if _bf16_ok(device):
        rows.append(("bf16", chunk, False))
    low = rows[-1][0]
    rows.append((low, chunk, True))
    if device.type == "cuda":
        rows += [(low, big_chunk, False), (low, big_chunk, True)]
    return rows


def bench_teacher_pass(models: dict[str, dict], rows: int, seq_len: int, batch: int, chunk: int,
                       device: torch.device, repeats: int = 1) -> list[dict]:
    """Tokens/s of the teacher's entropy pass as `teacher_entropies` runs it (inference mode, batched, the head in
    chunks), fp32 vs bf16 autocast (and the proposed chunk/kernel), interleaved batch by batch."""
    from entmask.models import build_model

    configs = teacher_pass_configs(device, chunk)
    ids = synthetic_ids(rows, seq_len, VOCAB, seed=4).to(device)
    out = []
    for label, m in models.items():
        model = build_model(m["preset"], VOCAB, m.get("overrides"), seed=0).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        secs = _time_pass(model, ids, batch, configs, repeats, device)
        for cfg in configs:
            out.append({"model": label, "precision": cfg[0], "chunk": cfg[1], "entr_kernel": cfg[2],
                        "tokens_per_s": repeats * ids.numel() / secs[cfg],
                        "params_m": sum(q.numel() for q in model.parameters()) / 1e6})
        del model
    first = {}
    for r in out:
        first.setdefault(r["model"], r["tokens_per_s"])
        r["speed_vs_fp32"] = r["tokens_per_s"] / first[r["model"]]
    return out


def _time_pass(model, ids: torch.Tensor, batch: int, configs: list[tuple[str, int, bool]], repeats: int,
               device: torch.device) -> dict:
    """Seconds per (precision, chunk, kernel) config over all batches of `ids`, the configs rotated per batch."""
    from entmask.entropy import model_entropy

    attn = torch.ones_like(ids)

    def run(cfg, s):
        prec, c, fast = cfg
        with _entr_kernel(fast):
            model_entropy(model, ids[s:s + batch], attn[s:s + batch], c,
                          autocast_dtype=torch.bfloat16 if prec == "bf16" else None)

    secs = {cfg: 0.0 for cfg in configs}
    with torch.inference_mode():
        for cfg in configs:
            run(cfg, 0)  # warm-up
        for _ in range(repeats):
            for s in range(0, ids.shape[0], batch):
                for cfg in _rotate(configs, s // batch):
                    t, _ = _timed(lambda cfg=cfg, s=s: run(cfg, s), device)
                    secs[cfg] += t
    return secs


def bench_teacher_cache(preset: str, rows: int, seq_len: int, batch: int, chunk: int, device: torch.device) -> dict:
    """`entropy.teacher_entropies` itself on a saved (random) teacher: the first call computes and caches, the
    second reads the cache."""
    from transformers.utils import logging as hf_logging

    from entmask import entropy
    from entmask.models import build_model

    ids = synthetic_ids(rows, seq_len, VOCAB, seed=5)
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="entmask-bench-teacher-") as d:
        tdir, cdir = Path(d) / "teacher", Path(d) / "corpus"
        cdir.mkdir()
        build_model(preset, VOCAB, seed=0).save_pretrained(str(tdir))
        passes = entropy.STATS["passes"]
        t0 = time.perf_counter()
        first = entropy.teacher_entropies(tdir, cdir, "train", ids, device=str(device), batch_size=batch,
                                          chunk_size=chunk, progress=False)
        t1 = time.perf_counter()
        again = entropy.teacher_entropies(tdir, cdir, "train", ids, device=str(device), batch_size=batch,
                                          chunk_size=chunk, progress=False)
        t2 = time.perf_counter()
        meta = entropy.describe_cache(cdir)[0]
        return {"model": preset, "tokens": ids.numel(), "first_call_s": t1 - t0, "cached_call_s": t2 - t1,
                "passes_run": entropy.STATS["passes"] - passes, "identical": bool(torch.equal(first, again)),
                "pass_tokens_per_s": float(meta.get("tokens_per_s", "nan")), "precision": meta.get("precision")}
