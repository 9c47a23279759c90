"""The machine under the benchmark and how one call on it is timed.

What it is: `_timed` (seconds of one call, synchronised on CUDA, and its peak CUDA memory above what was allocated
before), `_rotate` (the round-robin order: round r starts at item r, so no variant always runs first),
`describe_device` (the GPU's name, or the CPU's model, cores and bf16 flags), `cpu_bf16_native`, `_load` (load
averages: other jobs make CPU timings noisy, and the tables say so) and `_say` (progress lines on stderr).

What it is not: no CPU memory measurement (torch's CPU allocations are invisible here; `memory` measures them in a
subprocess) and no peak FLOP/s table (`flops`).
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from pathlib import Path

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, int | None]:
    """(seconds, peak bytes allocated above what was allocated before; CUDA only) of one call."""
    peak = None
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    secs = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - before
    return secs, peak


def _rotate(items: list, r: int) -> list:
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = m.group(1).strip() if m else model
    flags = ""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        flags = ", AVX512-BF16" if "avx512_bf16" in info else ""
        flags += ", AMX" if "amx_bf16" in info else ""
    return f"{model} ({os.cpu_count()} cores{flags}; torch threads {torch.get_num_threads()})"


def cpu_bf16_native() -> bool:
    from entmask.entropy import _bf16_ok

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return _bf16_ok(torch.device("cpu"))


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load averages (other jobs make CPU timings noisy; the table says so)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"  [bench] {msg}", file=sys.stderr, flush=True)
