"""`main`: one benchmark run, its three tables measured in order and printed as each is done.

What it is: `main(preset, seq_len, batch_size, repeats, device, ...)` (what `entmask bench` and
`python -m entmask.bench` call) resolves the device and precision, picks the rows (`variants.default_specs`, or
`--variants`), measures the training-step table (`steps.bench_steps`, plus the CPU memory probe of `memory`), the
entropy table (`entropy_kernels.bench_entropy`) and the teacher-pass table (`teacher`), prints each table as soon as
it is measured (`report`) and rewrites the JSON after each, and returns every number as a dict. The entropy and
teacher tables fail on their own: an exception there is recorded under res["errors"] and the other tables stand.

What it is not: no measuring or formatting of its own; it sequences the modules that do.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from entmask.bench.entropy_kernels import bench_entropy
from entmask.bench.flops import peak_tflops
from entmask.bench.machine import _load, _say, cpu_bf16_native, describe_device
from entmask.bench.memory import cpu_memory_probe
from entmask.bench.report import _targets, format_entropy, format_steps, format_targets, format_teacher
from entmask.bench.steps import bench_steps
from entmask.bench.synthetic import VOCAB
from entmask.bench.teacher import REFERENCE_SIZE, bench_teacher_cache, bench_teacher_pass
from entmask.bench.variants import default_specs, parse_variant

TEST_PRESETS = ("bert-micro", "bert-tiny")  # sizes whose teacher table skips the reference-sized model


def main(preset: str = "bertlet", seq_len: int = 128, batch_size: int = 16, repeats: int = 5,
         device: str | None = None, warmup: int = 2, *, precision: str | None = None, ablations: bool = False,
         compile: bool = False, variants: list[str] | None = None, entropy: bool = True, teacher: bool = True,
         memory: bool = True, entropy_chunks: tuple[int, ...] | None = None, entropy_chunk: int = 128,
         threads: int | None = None, json_path: str | None = None, progress: bool = True,
         quiet: bool = False) -> dict:
    """Run the benchmark and print its tables. Returns every number as a dict (also written to `json_path`).

    precision: None = bf16 on a GPU that supports it, else fp32. ablations: add the rows that measure SDPA vs
    eager attention, the vocabulary padded to 30528, bf16 autocast on CPU, the bf16 self pass and a step without
    per-step host syncs. compile: add torch.compile rows. variants: run exactly these rows (names as printed).
    threads: torch's intra-op threads (default: torch's own choice, the core count).
    """
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _main(preset, seq_len, batch_size, repeats, device, warmup, precision, ablations, compile, variants,
                     entropy, teacher, memory, entropy_chunks, entropy_chunk, json_path, progress, quiet)
    finally:
        torch.set_num_threads(threads_before)


def _main(preset, seq_len, batch_size, repeats, device, warmup, precision, ablations, compile, variants, entropy,
          teacher, memory, entropy_chunks, entropy_chunk, json_path, progress, quiet) -> dict:
    from entmask.entropy import _bf16_ok

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if precision is None:
        precision = "bf16" if dev.type == "cuda" and _bf16_ok(dev) else "fp32"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the PyTorch default)
    specs = [parse_variant(v, precision) for v in variants] if variants else \
        default_specs(precision, ablations, compile, dev.type == "cpu" and cpu_bf16_native(), dev.type == "cuda")
    res = _header(preset, seq_len, batch_size, repeats, warmup, precision, dev, entropy_chunk)
    chunks = entropy_chunks or ((32, 128, 512) if dev.type == "cpu" else (128, 1024, 4096))

    def emit(text: str) -> None:  # each table as soon as it is measured; the JSON rewritten after each
        if not quiet and text:
            print("\n" + text, flush=True)
        if json_path:
            Path(json_path).write_text(json.dumps(res, indent=2, default=str) + "\n")

    _say(progress, f"{len(specs)} variants on {res['device_name']}")
    _warn_oversubscribed(res["load_before"], dev)
    probe = _steps_section(res, specs, chunks if entropy else None, dev, memory, progress)
    emit(format_steps(res) + "\n\n" + format_targets(res))
    if entropy:
        _say(progress, "entropy table")
        _section(res, "entropy", emit, lambda: _entropy_section(res, chunks, probe, dev))
    if teacher:
        _say(progress, "teacher pass")
        _section(res, "teacher", emit, lambda: _teacher_section(res, dev))
    res["load_after"] = _load()
    emit("")
    return res


def _header(preset, seq_len, batch_size, repeats, warmup, precision, dev: torch.device, entropy_chunk) -> dict:
    """The result dict's description of the run: its shape, the machine and the library versions."""
    res: dict = {"preset": preset, "seq_len": seq_len, "batch_size": batch_size, "repeats": repeats,
                 "warmup": warmup, "precision": precision, "device": dev.type, "device_name": describe_device(dev),
                 "torch": torch.__version__, "threads": torch.get_num_threads(), "load_before": _load(),
                 "entropy_chunk": entropy_chunk}
    import transformers

    res["transformers"] = transformers.__version__
    res["peak_tflops"] = peak_tflops(res["device_name"]) if dev.type == "cuda" else None
    res["errors"] = {}
    return res


def _warn_oversubscribed(load: list[float] | None, dev: torch.device) -> None:
    if dev.type == "cpu" and load and torch.get_num_threads() > 1 and load[0] > 0.5 * (os.cpu_count() or 1):
        print(f"entmask bench: load average {load[0]:.1f} on {os.cpu_count()} cores from other processes; with "
              f"{torch.get_num_threads()} torch threads the steps are oversubscribed (threads wait for descheduled "
              f"ones): consider --threads 1", file=sys.stderr)


def _steps_section(res: dict, specs, chunks, dev: torch.device, memory: bool, progress: bool) -> dict | None:
    """Table 1 into res["steps"] (and res["targets"]); on CPU the memory probe, which also measures the entropy
    methods when `chunks` is given. Returns the probe's result for the entropy table."""
    preset, seq_len, batch_size = res["preset"], res["seq_len"], res["batch_size"]
    res["steps"] = bench_steps(specs, preset, seq_len, batch_size, res["repeats"], res["warmup"], dev, progress)
    probe = None
    if memory and dev.type == "cpu":
        _say(progress, "CPU memory probe (subprocess)")
        probe = cpu_memory_probe([s.name for s in specs if not s.compiled], preset, seq_len, batch_size,
                                 {"rows": batch_size * seq_len, "vocab": VOCAB, "chunks": list(chunks)}
                                 if chunks is not None else None, res["precision"])
        for name, mib in (probe or {}).get("steps", {}).items():
            res["steps"][name]["peak_step_mib"] = mib
        res["memory_method"] = "peak RSS above the step's starting RSS (subprocess, mmap'd allocations)"
    elif dev.type == "cuda":
        res["memory_method"] = "torch.cuda.max_memory_allocated above the allocation before the step"
    res["targets"] = _targets(res, preset, seq_len, batch_size, res["entropy_chunk"])
    return probe


def _section(res: dict, key: str, emit, measure) -> None:
    """Measure one optional table and print it; a failure is recorded and printed, and the run goes on."""
    try:
        emit(measure())
    except Exception as e:  # noqa: BLE001 - one section failing must not lose the others
        res["errors"][key] = f"{type(e).__name__}: {e}"
        label = "entropy table" if key == "entropy" else "teacher pass"
        emit(f"{label} failed: {res['errors'][key]}")


def _entropy_section(res: dict, chunks, probe: dict | None, dev: torch.device) -> str:
    """Table 2 into res["entropy"], with the probe's CPU memory figures; returns the printed table."""
    res["entropy"] = bench_entropy(res["batch_size"] * res["seq_len"], VOCAB, chunks, max(res["repeats"], 3), dev)
    if probe and probe.get("entropy"):
        for r, mib in zip(res["entropy"], probe["entropy"]):
            r["peak_extra_mib"] = mib
        base = res["entropy"][0]["peak_extra_mib"]
        for r in res["entropy"]:
            r["mem_vs_naive"] = r["peak_extra_mib"] / base if base else None
    res["targets"] = _targets(res, res["preset"], res["seq_len"], res["batch_size"], res["entropy_chunk"])
    return format_entropy(res["entropy"], res["device_name"])


def _teacher_section(res: dict, dev: torch.device) -> str:
    """Table 3 into res["teacher_pass"] and res["teacher_cache"]; returns the printed table. At the test sizes only
    the benchmarked preset, else also a reference-teacher-sized model."""
    preset, seq_len, batch_size, chunk = res["preset"], res["seq_len"], res["batch_size"], res["entropy_chunk"]
    if preset in TEST_PRESETS:
        models = {preset: {"preset": preset}}
        rows, tbatch = 4 * batch_size, batch_size
    else:
        models = {preset: {"preset": preset}, "reference size (MiniLM-L6: 6×384×12)":
                  {"preset": "bertlet", "overrides": REFERENCE_SIZE}}
        rows, tbatch = (64, 32) if dev.type == "cpu" else (4096, 256)
    res["teacher_pass_info"] = f"{rows} rows × {seq_len}, batch {tbatch}, head chunk {chunk}, {res['device_name']}"
    res["teacher_pass"] = bench_teacher_pass(models, rows, seq_len, tbatch, chunk, dev)
    res["teacher_cache"] = bench_teacher_cache(preset, rows, seq_len, tbatch, chunk, dev)
    return format_teacher(res["teacher_pass"], res.get("teacher_cache"), res["teacher_pass_info"])
