"""The GPU check's report: its tables as markdown, and the page docs/performance-gpu.md made of them.

What it is: `mfu(row, peak)` (model FLOP utilisation of one training-step row, or None where it is not defined),
`format_steps` (stock HF vs entmask random / teacher-masked / self-masked [/ compiled] per model: tokens/s, the
paired speed-up over stock, step time, model TFLOP/s, MFU), `format_teacher` (the teacher pass in tokens/s),
`format_e2e` (the short pretraining: loss, checkpoint, resume), `format_checks` (each check and whether it held),
`report(res)` (all four, as printed) and `page(res)` (the report with the machine, versions, date, command and how
to read it: what `gpu_check` writes to docs/performance-gpu.md).

What it is not: no measuring (entmask.bench.gpu_check runs the parts) and no FLOP formula (the rows carry
`bench.step_flops`'s counts, built on `models.forward_flops`); a pure function of the result dict.
"""
from __future__ import annotations

from entmask.bench.report import _fmt, speedup

NA_CPU = "n/a (CPU)"


def mfu(row: dict, res: dict) -> float | None:
    """TFLOP/s of the row / the peak: on a GPU with a known bf16 peak for bf16 rows, or wherever --peak-tflops was
    given (the user's peak, for the precision the rows ran at). None elsewhere: a CPU has no peak in the table."""
    peak = res.get("peak_tflops")
    if not peak:
        return None
    if res.get("peak_source") == "--peak-tflops" or (res["device"] == "cuda" and row["precision"] == "bf16"):
        return row["tflops"] / peak
    return None


def _mfu_cell(row: dict, res: dict) -> str:
    m = mfu(row, res)
    if m is not None:
        return f"{100 * m:.1f}%"
    return NA_CPU if res["device"] == "cpu" else "n/a (no peak)"


def format_steps(res: dict) -> str:
    lines = [f"Training step, seq_len {res['seq_len']}, {res['precision']}; median of {res['repeats']} interleaved "
             f"repeats after {res['warmup']} warm-up rounds; × stock HF = median of the per-round ratios", "",
             "| model | row | batch | tokens/s | × stock HF | step ms | model TFLOP/s | MFU |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for m in res["models"]:
        steps = m["steps"]
        for name, r in steps.items():
            label = f"{name} (train.compile)" if r.get("compiled") else name
            lines.append(f"| {m['label']} | {label} | {m['batch']} | {_fmt(r['tokens_per_s'])} | "
                         f"{_fmt(speedup(steps, name), '.2f')}× | {_fmt(r['step_ms'], '.1f')} | "
                         f"{_fmt(r['tflops'], '.3f')} | {_mfu_cell(r, res)} |")
    return "\n".join(lines)


def format_teacher(res: dict) -> str:
    lines = ["Teacher entropy pass (`entropy.teacher_entropies`, random teacher of each shape; second call from the "
             "cache)", "",
             "| teacher | rows × seq | batch | precision | tokens/s | cached call s | passes | identical |",
             "|---|---:|---:|---|---:|---:|---:|---|"]
    for m in res["models"]:
        t = m["teacher"]
        lines.append(f"| {m['label']} | {t['tokens'] // res['seq_len']:,} × {res['seq_len']} | {t['batch']} | "
                     f"{t['precision']} | {_fmt(t['pass_tokens_per_s'])} | {t['cached_call_s']:.3f} | "
                     f"{t['passes_run']} | {t['identical']} |")
    return "\n".join(lines)


def format_e2e(e: dict) -> str:
    files = ", ".join(f for f in e["checkpoint_files"] if not f.endswith(".json")) or "none"
    return "\n".join([
        f"Pretraining end to end: {e['preset']}, `high` teacher-masking, {e['steps']} steps of {e['batch']} × "
        f"{e['seq_len']}, {e['precision']} (synthetic text; bench.short_pretrain)", "",
        "| | |", "|---|---|",
        f"| training loss (first → last logged) | {e['first_loss']:.3f} → {e['last_loss']:.3f} |",
        f"| checkpoint at the interruption | {e['checkpoint'] or 'none'} ({files}) |",
        f"| resume | from {e['resumed_from'] or 'nothing'}: started at step {e['resume_started_at']}, "
        f"ended at step {e['final_step']} |",
        f"| tokens/s after the resume | {_fmt(e['tokens_per_s'])} |",
        f"| held-out masked accuracy (unigram baseline) | {e['heldout_accuracy']:.3f} ({e['unigram_accuracy']:.3f}) |",
        f"| metrics.json, model/ written | {e['metrics_written']}, {e['model_written']} |",
        f"| wall time (both halves, evaluation, saving) | {e['seconds']:.1f} s |"])


def format_checks(res: dict) -> str:
    bad = [c for c in res["checks"] if not c["ok"]]
    head = (f"All {len(res['checks'])} checks passed" if not bad
            else f"{len(bad)} of {len(res['checks'])} checks FAILED")
    return "\n".join([f"{head} ({res['seconds']:.0f} s in all):", ""] +
                     [f"- [{'x' if c['ok'] else ' '}] {c['name']}: {c['detail']}" for c in res["checks"]])


def report(res: dict) -> str:
    """The tables and the checks, as the command prints them."""
    head = (f"entmask gpu-check ({res['mode']} mode) on {res['device_name']}; torch {res['torch']}, transformers "
            f"{res['transformers']}; peak {_peak(res)}")
    if res["device"] == "cpu" and res.get("load_before"):
        head += f"; load average {res['load_before'][0]:.1f} at the start on {res['cpus']} cores"
    return "\n\n".join([head, format_steps(res), format_teacher(res), format_e2e(res["e2e"]), format_checks(res)])


def _peak(res: dict) -> str:
    if not res.get("peak_tflops"):
        return "unknown (MFU n/a; give --peak-tflops)"
    return f"{res['peak_tflops']:g} TFLOP/s ({res['peak_source']})"


def page(res: dict) -> str:
    """docs/performance-gpu.md: the report with the machine, the versions, the date, the command and how to read it."""
    return "\n".join([
        "# Performance on a GPU: `make gpu-check`", "",
        "Written by `python -m entmask.bench.gpu_check` (`make gpu-check`); rerun it to replace this page. "
        "docs/performance.md explains the rows, the timing and the FLOP count.", "",
        f"- device: {res['device_name']}",
        f"- torch {res['torch']}, transformers {res['transformers']}, accelerate {res['accelerate']}",
        f"- date: {res['date']}",
        f"- command: `{res['command']}`",
        f"- peak for MFU: {_peak(res)}", "",
        "MFU = model FLOPs per step (matrix multiplications, `bench.step_flops` on `models.forward_flops`) / step time "
        "/ peak. Rows: `stock HF` is `Trainer` + `BertForMaskedLM` + HF's MLM collator; `entmask random`, "
        "`teacher-masked` (strategy high on a cached teacher column) and `self-masked cold` (the student's own "
        "entropy pass each step) are `EntropyMaskingTrainer` with the sparse head; `(train.compile)` is the "
        "teacher-masked row under torch.compile, what `--set train.compile=true` asks for.", "",
        report(res), ""])
