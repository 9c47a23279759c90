"""The benchmark's printed tables and targets, from a result dict (a run's, or a saved --json file's).

What it is: `format_steps` (table 1: tokens/s, the median of the timed repeats; speed-up over the stock HF step, the
median of the per-round ratios via `speedup`, so a slow stretch of the machine cancels; step time; peak memory of
the step above the resident weights and optimizer state; model TFLOP/s and, on a GPU with a known bf16 peak, model
FLOP utilisation, MFU), `format_entropy` (table 2), `format_teacher` (table 3), `_targets` + `format_targets`
(the measured ratios against the speed-work targets, beside their FLOP bounds from `flops.step_flops`), and
`render(res)` (all of them, as `--render` prints them).

What it is not: no measuring; everything here is a pure function of the result dict, so a saved run prints again
byte for byte.
"""
from __future__ import annotations

import math
import statistics

from entmask.bench.entropy_kernels import ENTR
from entmask.bench.flops import step_flops
from entmask.bench.synthetic import VOCAB


def _fmt(x, spec: str = ",.0f", none: str = "–") -> str:
    return none if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def speedup(steps: dict, name: str, base: str = "stock HF") -> float | None:
    """Median over the rounds of base's step time / name's step time. Both ran in the same round, so a slow
    stretch of the machine (other jobs) cancels out; more robust than the ratio of the two medians."""
    if base not in steps or name not in steps:
        return None
    a, b = steps[base]["step_ms_all"], steps[name]["step_ms_all"]
    if len(a) != len(b) or not a:
        return steps[name]["tokens_per_s"] / steps[base]["tokens_per_s"]
    return statistics.median(x / y for x, y in zip(a, b))


def format_steps(res: dict) -> str:
    steps, mfu_peak = res["steps"], res.get("peak_tflops")
    load = f"; load average {res['load_before'][0]:.1f} at the start" \
        if res.get("load_before") and res["device"] == "cpu" else ""
    lines = [f"Training step: {res['preset']}, seq_len {res['seq_len']}, batch {res['batch_size']}, "
             f"{res['precision']} ({res['device_name']}); median of {res['repeats']} interleaved repeats after "
             f"{res['warmup']} warm-up rounds{load}", "",
             "× stock: median over the rounds of the per-round ratio of step times (paired, so drift cancels)", "",
             ("| variant | tokens/s | × stock | step ms | min–max tokens/s | peak step mem MiB | model TFLOP/s | MFU "
              "| 1st step s |"), "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in steps.items():
        ratio = speedup(steps, name)
        mfu = r["tflops"] / mfu_peak if (mfu_peak and r["precision"] == "bf16" and res["device"] == "cuda") else None
        lines.append(f"| {name} | {_fmt(r['tokens_per_s'])} | {_fmt(ratio, '.2f')}× | {_fmt(r['step_ms'], '.1f')} | "
                     f"{_fmt(r['tokens_per_s_min'])}–{_fmt(r['tokens_per_s_max'])} | "
                     f"{_fmt(r['peak_step_mib'], ',.0f')} | {_fmt(r['tflops'], '.2f')} | "
                     f"{_fmt(100 * mfu if mfu is not None else None, '.1f')}{'%' if mfu is not None else ''} | "
                     f"{_fmt(r['first_step_s'], '.1f')} |")
    return "\n".join(lines)


def format_entropy(rows: list[dict], device_name: str) -> str:
    if not rows:
        return ""
    r0 = rows[0]
    lines = [f"Entropy of [N={r0['rows']}, V={r0['vocab']}] float32 logits ({device_name})", "",
             "| method | chunk | ms | speed vs naive | peak extra MiB | memory vs naive | max |Δ| nats |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['chunk'] or 'none'} | {_fmt(r['ms'], '.1f')} | "
                     f"{_fmt(r['speed_vs_naive'], '.2f')}× | {_fmt(r['peak_extra_mib'], ',.1f')} | "
                     f"{_fmt(100 * r['mem_vs_naive'] if r['mem_vs_naive'] else None, '.0f')}"
                     f"{'%' if r['mem_vs_naive'] else ''} | {r['max_abs_diff']:.1e} |")
    return "\n".join(lines)


def format_teacher(rows: list[dict], cache: dict | None, info: str) -> str:
    lines = [f"Teacher entropy pass ({info})", "",
             "| model | params M | precision | head chunk | entropy kernel | tokens/s | × fp32 (today's chunk) |",
             "|---|---:|---|---:|---|---:|---:|"]
    for r in rows:
        kernel = "entr(softmax), proposed" if r.get("entr_kernel") else "today's"
        lines.append(f"| {r['model']} | {r['params_m']:.1f} | {r['precision']} | {r.get('chunk', 128)} | {kernel} | "
                     f"{_fmt(r['tokens_per_s'])} | {r['speed_vs_fp32']:.2f}× |")
    if cache:
        lines += ["", f"teacher_entropies ({cache['model']}, {cache['tokens']:,} tokens): first call "
                      f"{cache['first_call_s']:.2f}s (pass {_fmt(cache['pass_tokens_per_s'])} tokens/s, "
                      f"{cache['precision']}), second call {cache['cached_call_s']:.3f}s from the cache; teacher "
                      f"passes run: {cache['passes_run']}; identical: {cache['identical']}"]
    return "\n".join(lines)


def format_targets(res: dict) -> str:
    t = res.get("targets") or {}
    if not t:
        return ""
    out = ["Targets (same model, batch, length, precision):"]
    if "teacher_vs_stock" in t:
        out.append(f"  teacher-masked / stock HF = {t['teacher_vs_stock']:.2f}× (target ≥ 1.8×, FLOP bound "
                   f"{t['teacher_flop_bound']:.2f}×)")
    if "self_vs_stock" in t:
        out.append(f"  self-masked cold / stock HF = {t['self_vs_stock']:.2f}× (target ≥ 1.1×, FLOP bound "
                   f"{t['self_flop_bound']:.2f}×)")
    if "self_overhead_vs_random" in t:
        out.append(f"  self-masked cold costs {100 * t['self_overhead_vs_random']:.0f}% more time per step than "
                   f"entmask random (FLOP ratio {100 * t['self_flop_overhead']:.0f}%)")
    if "self_best" in t:
        b = t["self_best"]
        extra = f", {100 * b['overhead_vs_random']:.0f}% over entmask random" if "overhead_vs_random" in b else ""
        out.append(f"  best measured self-masking row: {b['name']} = {b['vs_stock']:.2f}× stock{extra}")
    for e in t.get("entropy", []):
        out.append(f"  {e['label']}: {100 * e['mem']:.0f}% of the naive peak extra memory (target ≤ 25%) at "
                   f"{e['speed']:.2f}× its speed (target ≥ 1)")
    return "\n".join(out)


def render(res: dict) -> str:
    """All tables of a result dict (from `main` or a --json file), as markdown."""
    res = dict(res)
    res["targets"] = _targets(res, res["preset"], res["seq_len"], res["batch_size"],
                              (res.get("entropy_chunk") or 128))
    parts = [format_steps(res), format_targets(res)]
    if res.get("entropy"):
        parts.append(format_entropy(res["entropy"], res["device_name"]))
    if res.get("teacher_pass"):
        parts.append(format_teacher(res["teacher_pass"], res.get("teacher_cache"), res["teacher_pass_info"]))
    return "\n\n".join(p for p in parts if p)


def _targets(res: dict, preset: str, seq_len: int, batch: int, chunk: int) -> dict:
    """The ratios `format_targets` prints: step speed-ups beside their FLOP bounds, then the entropy kernels."""
    t = _step_targets(res["steps"], res["precision"], preset, seq_len, batch)
    entropy = _entropy_targets(res.get("entropy") or [], chunk)
    if entropy:
        t["entropy"] = entropy
    return t


def _step_targets(s: dict, precision: str, preset: str, seq_len: int, batch: int) -> dict:
    t: dict = {}
    fl = {k: step_flops(k, preset, VOCAB, batch, seq_len)["flops"] for k in ("stock", "random", "teacher", "self")}
    if "stock HF" in s and "teacher-masked" in s:
        t["teacher_vs_stock"] = speedup(s, "teacher-masked")
        t["teacher_flop_bound"] = fl["stock"] / fl["teacher"]
    if "stock HF" in s and "self-masked cold" in s:
        t["self_vs_stock"] = speedup(s, "self-masked cold")
        t["self_flop_bound"] = fl["stock"] / fl["self"]
    alts = [n for n, r in s.items() if r.get("kind") == "self" and n != "self-masked cold"
            and r.get("precision") == precision and "stock HF" in s]
    if alts:
        best = max(alts, key=lambda n: speedup(s, n))
        t["self_best"] = {"name": best, "vs_stock": speedup(s, best)}
        if "entmask random" in s:
            t["self_best"]["overhead_vs_random"] = 1 / speedup(s, best, "entmask random") - 1
    if "entmask random" in s and "self-masked cold" in s:
        t["self_overhead_vs_random"] = 1 / speedup(s, "self-masked cold", "entmask random") - 1
        t["self_flop_overhead"] = fl["self"] / fl["random"] - 1
    return t


def _entropy_targets(entropy: list[dict], chunk: int) -> list[dict]:
    """The configured chunk's token_entropy row, and each kernel's fastest chunk within the memory target."""
    ent = [r for r in entropy if r.get("mem_vs_naive") is not None and r["chunk"]]
    rows = [r for r in ent if r["method"] == "token_entropy" and r["chunk"] == chunk]  # the configured chunk
    for method in ("token_entropy", ENTR):  # and each kernel's fastest chunk within the memory target
        ok = [r for r in ent if r["method"] == method and r["mem_vs_naive"] <= 0.25]
        rows += [max(ok, key=lambda r: r["speed_vs_naive"])] if ok else []
    out, seen = [], set()
    for r in rows:
        if (r["method"], r["chunk"]) not in seen:
            seen.add((r["method"], r["chunk"]))
            out.append({"label": f"{r['method']} (chunk {r['chunk']})", "mem": r["mem_vs_naive"],
                        "speed": r["speed_vs_naive"]})
    return out
