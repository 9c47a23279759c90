"""`make gpu-check`: one command that says, in tables a user can trust, what entmask's training step costs on this
GPU next to stock Hugging Face, and that a pretraining run on it works end to end.

What it is: `python -m entmask.bench.gpu_check [--peak-tflops N] [--out PATH]` (under 8 minutes on one H100/H200)
measures, at bf16 and sequence length 128, for bert-let (4×512×8) and BERT-base (12×768×12):
  * the training step of stock HF BertForMaskedLM vs entmask random / teacher-masked / self-masked, and the
    teacher-masked step under `train.compile` (torch.compile): tokens/s, paired speed-up, model TFLOP/s and MFU
    (`bench.bench_steps`, FLOPs from `bench.step_flops` on `models.forward_flops`; the peak from
    `bench.PEAK_BF16_TFLOPS`, or --peak-tflops);
  * the teacher's entropy pass in tokens/s (`bench.bench_teacher_cache`: `entropy.teacher_entropies` itself,
    computed once and then read from its cache);
  * a 200-step bert-let pretraining with `high` teacher-masking (`bench.short_pretrain`): the loss goes down, a
    checkpoint is written, a fresh Trainer resumes from it and the step count continues;
then prints the report and writes it to docs/performance-gpu.md (`gpu_report.page`). It exits 0 when every check
held, 1 when one failed (the report says which), 2 on a bad input (one line: the problem and the fix).

`--cpu` is its smoke mode for machines without a GPU (tests/test_gpu_check.py runs it): tiny models (bert-micro,
bert-tiny), a handful of steps, a 10-step pretraining, well under a minute; MFU is "n/a (CPU)" unless
--peak-tflops is given; the report goes to runs/gpu-check/report-cpu.md (or --out), never to the committed GPU page.

What it is not: not the full benchmark (`python -m entmask.bench`: ablations, entropy kernels, memory) and no
convergence study (the pretraining is on synthetic text with a random teacher).
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

GPU_DOC = Path("docs") / "performance-gpu.md"
BUDGET_S = 480  # the GPU mode's promise: under 8 minutes on one H100/H200


@dataclass(frozen=True)
class Mode:
    """What one mode measures: the models (label, preset), the step shape and repeats, the teacher pass's rows and
    batch, and the end-to-end pretraining's preset, steps, batch, length and corpus rows."""
    name: str
    models: tuple
    seq_len: int
    batch: int
    repeats: int
    warmup: int
    teacher_rows: int
    teacher_batch: int
    e2e_preset: str
    e2e_steps: int
    e2e_batch: int
    e2e_seq_len: int
    e2e_rows: int
    compile: bool


GPU = Mode("gpu", (("bert-let (4×512×8)", "bertlet"), ("BERT-base (12×768×12)", "bert")), seq_len=128, batch=128,
           repeats=10, warmup=3, teacher_rows=4096, teacher_batch=256, e2e_preset="bertlet", e2e_steps=200,
           e2e_batch=128, e2e_seq_len=128, e2e_rows=4096, compile=True)
CPU = Mode("cpu", (("bert-micro (2×64×2)", "bert-micro"), ("bert-tiny (2×128×2)", "bert-tiny")), seq_len=32,
           batch=4, repeats=2, warmup=1, teacher_rows=32, teacher_batch=16, e2e_preset="bert-micro", e2e_steps=10,
           e2e_batch=8, e2e_seq_len=32, e2e_rows=64, compile=False)


class UsageError(Exception):
    """A bad input, reported in one line with its fix (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{message} (see `python -m entmask.bench.gpu_check --help`)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m entmask.bench.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu", action="store_true", help="smoke mode on the CPU: tiny models, a handful of steps")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's peak TFLOP/s for MFU (default: the known GPUs' dense bf16 peaks)")
    p.add_argument("--out", default=None, help=f"where the report goes (default {GPU_DOC} on a GPU, "
                                                f"runs/gpu-check/report-cpu.md with --cpu)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="the train.compile row (default: on a GPU only; compiling on a CPU takes minutes)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: 1 with --cpu, else torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p


def _checked(a: argparse.Namespace) -> tuple[Mode, Path]:
    """The mode and the report's path, or UsageError naming the bad input and its fix."""
    if a.peak_tflops is not None and not (math.isfinite(a.peak_tflops) and a.peak_tflops > 0):
        raise UsageError(f"--peak-tflops {a.peak_tflops}: give the device's peak as a positive number of TFLOP/s, "
                         f"e.g. --peak-tflops 989 for an H100 SXM at bf16")
    if a.threads is not None and a.threads < 1:
        raise UsageError(f"--threads {a.threads}: give at least 1 (or leave it out)")
    mode = CPU if a.cpu else GPU
    out = Path(a.out) if a.out else (Path("runs") / "gpu-check" / "report-cpu.md" if a.cpu else GPU_DOC)
    if a.cpu and out.resolve() == GPU_DOC.resolve():
        raise UsageError(f"--out {a.out}: {GPU_DOC} holds the GPU's numbers and --cpu would overwrite them with the "
                         f"CPU smoke mode's; give another path, or run without --cpu on a GPU")
    if out.exists() and out.is_dir():
        raise UsageError(f"--out {a.out} is a folder; give a file path such as {Path(a.out) / 'report.md'}")
    return mode, out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        a = _parser().parse_args(argv)
        mode, out = _checked(a)
        if a.cpu:
            os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch first looks: the smoke mode is CPU-only
        import torch

        if not a.cpu and not torch.cuda.is_available():
            raise UsageError(f"no CUDA device here (torch {torch.__version__}); run it on a GPU machine, or pass "
                             f"--cpu for the smoke mode")
    except UsageError as e:
        print(f"gpu-check: {e}", file=sys.stderr)
        return 2
    threads = a.threads or (1 if a.cpu else None)
    if threads:
        torch.set_num_threads(threads)  # one thread: a shared CPU's other jobs oversubscribe two (performance.md)
    compile_ = mode.compile if a.compile is None else a.compile
    command = " ".join(["python -m entmask.bench.gpu_check", *argv])
    res = run_check(mode, a.peak_tflops, compile_, command, progress=not a.quiet)
    from entmask.bench.gpu_report import page, report

    print(report(res), flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(res))
    print(f"\ngpu-check: wrote {out}")
    return 0 if all(c["ok"] for c in res["checks"]) else 1


def run_check(mode: Mode, peak: float | None, compile_: bool, command: str, progress: bool = True) -> dict:
    """Every measurement of the mode, and the checks on them, as one dict (what gpu_report formats)."""
    import accelerate
    import torch
    import transformers

    from entmask.bench.flops import peak_tflops
    from entmask.bench.machine import _load, _say, describe_device
    from entmask.training_run import use_bf16

    t0 = time.perf_counter()
    dev = torch.device("cpu" if mode.name == "cpu" else "cuda")
    name = describe_device(dev)
    found = peak_tflops(name) if dev.type == "cuda" else None
    res = {"mode": mode.name, "device": dev.type, "device_name": name, "torch": torch.__version__,
           "transformers": transformers.__version__, "accelerate": accelerate.__version__, "cpus": os.cpu_count(),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
           "peak_tflops": peak or found, "peak_source": "--peak-tflops" if peak else
           ("ENTMASK_PEAK_TFLOPS" if os.environ.get("ENTMASK_PEAK_TFLOPS") and found else "bench.PEAK_BF16_TFLOPS"),
           "precision": "bf16" if use_bf16("auto") else "fp32", "seq_len": mode.seq_len, "repeats": mode.repeats,
           "warmup": mode.warmup, "load_before": _load(), "models": []}
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in the bench
    for label, preset in mode.models:
        _say(progress, f"{label}: training steps")
        steps, compile_error = _steps(mode, preset, res["precision"], compile_, dev, progress)
        _say(progress, f"{label}: teacher pass")
        teacher = _teacher(mode, preset, dev)
        res["models"].append({"label": label, "preset": preset, "batch": mode.batch, "steps": steps,
                              "teacher": teacher, "compile": compile_, "compile_error": compile_error})
    _say(progress, f"pretraining end to end: {mode.e2e_preset}, {mode.e2e_steps} steps")
    res["e2e"] = _e2e(mode)
    res["seconds"] = time.perf_counter() - t0
    res["checks"] = checks(res)
    return res


def _steps(mode: Mode, preset: str, precision: str, compile_: bool, dev, progress: bool) -> tuple[dict, str | None]:
    """The training-step rows of one model, and the train.compile row's error (None: it ran, or was not asked)."""
    from entmask.bench.machine import _say
    from entmask.bench.steps import bench_steps
    from entmask.bench.variants import Spec

    specs = [Spec(k, precision=precision, main_precision=precision) for k in ("stock", "random", "teacher", "self")]
    shape = (preset, mode.seq_len, mode.batch, mode.repeats, mode.warmup, dev, progress)
    if compile_:
        try:  # one call, so the compiled row's rounds pair with stock's like every other row's
            return bench_steps(specs + [Spec("teacher", precision=precision, compiled=True,
                                             main_precision=precision)], *shape), None
        except Exception as e:  # noqa: BLE001 - a compiler failure must not cost the other rows
            _say(progress, f"the train.compile row failed ({type(e).__name__}); measuring the others without it")
            return bench_steps(specs, *shape), f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    return bench_steps(specs, *shape), None


def _teacher(mode: Mode, preset: str, dev) -> dict:
    from entmask.bench.teacher import bench_teacher_cache
    from entmask.config import TrainConfig

    with contextlib.redirect_stdout(io.StringIO()):  # its "teacher entropy over train: ..." line: in the table
        t = bench_teacher_cache(preset, mode.teacher_rows, mode.seq_len, mode.teacher_batch,
                                TrainConfig.entropy_chunk, dev)
    return {**t, "batch": mode.teacher_batch}


def _e2e(mode: Mode) -> dict:
    from entmask.bench.short_pretrain import short_pretrain
    from entmask.models import transformers_bars

    with tempfile.TemporaryDirectory(prefix="entmask-gpu-check-") as d:
        log = Path(d) / "pretrain.log"  # the Trainer's log lines: shown only if the run fails
        try:
            with open(log, "w") as fh, contextlib.redirect_stdout(fh), transformers_bars(False):
                return short_pretrain(mode.e2e_preset, mode.e2e_steps, mode.e2e_batch, mode.e2e_seq_len,
                                      mode.e2e_rows, Path(d), test_rows=max(16, mode.e2e_batch))
        except Exception:
            sys.stderr.write(log.read_text()[-4000:])
            raise


def checks(res: dict) -> list[dict]:
    """Each claim the report makes, as (name, ok, detail)."""
    out = []
    for m in res["models"]:
        rates = {n: r["tokens_per_s"] for n, r in m["steps"].items()}
        out.append({"name": f"{m['label']}: every training-step row ran", "ok": all(v > 0 for v in rates.values())
                    and len(rates) >= 4, "detail": ", ".join(f"{n} {v:,.0f} tokens/s" for n, v in rates.items())})
        if m["compile"]:
            out.append({"name": f"{m['label']}: the train.compile row ran", "ok": m["compile_error"] is None,
                        "detail": m["compile_error"] or "teacher-masked under torch.compile, timed after warm-up"})
        t = m["teacher"]
        out.append({"name": f"{m['label']}: teacher pass computed once, then read from its cache",
                    "ok": t["pass_tokens_per_s"] > 0 and t["passes_run"] == 1 and t["identical"],
                    "detail": f"{t['pass_tokens_per_s']:,.0f} tokens/s ({t['precision']}), cached call "
                              f"{t['cached_call_s']:.3f} s, identical {t['identical']}"})
    e = res["e2e"]
    loss_ok = all(math.isfinite(x) for x in (e["first_loss"], e["last_loss"])) and e["last_loss"] < e["first_loss"]
    out.append({"name": "pretraining: the loss went down", "ok": loss_ok,
                "detail": f"{e['first_loss']:.3f} -> {e['last_loss']:.3f} over {e['steps']} steps"})
    half = e["steps"] // 2
    out.append({"name": "pretraining: a checkpoint was written", "ok": e["checkpoint"] == f"checkpoint-{half}"
                and "model.safetensors" in e["checkpoint_files"] and "optimizer.pt" in e["checkpoint_files"],
                "detail": f"{e['checkpoint']}: {', '.join(e['checkpoint_files'])}"})
    out.append({"name": "pretraining: resumed from the checkpoint and the step continued",
                "ok": e["resumed_from"] == f"checkpoint-{half}" and e["resume_started_at"] == half
                and e["final_step"] == e["steps"] and e["metrics_written"] and e["model_written"],
                "detail": f"resumed from {e['resumed_from']} at step {e['resume_started_at']}, ended at step "
                          f"{e['final_step']}"})
    if res.get("mode") == "gpu":
        out.append({"name": "the check fits its budget (8 minutes on one GPU)", "ok": res["seconds"] <= BUDGET_S,
                    "detail": f"{res['seconds']:.0f} s"})
    return out


if __name__ == "__main__":
    sys.exit(main())
