"""CPU peak memory of each training step and entropy method, measured in a subprocess.

What it is: `cpu_memory_probe(variants, preset, seq_len, batch_size, entropy, precision)` starts
`python -c _PROBE_PRELUDE SPEC_JSON`, which imports `entmask.bench.memory._probe_main` by module path (the
repository root is put first on PYTHONPATH, so the probe runs this checkout's code) and prints one `@@probe {...}`
line: MiB per row name under "steps" and per entropy method under "entropy" (in `entropy_kernels.entropy_methods`
order). None when /proc/self/clear_refs is missing (not Linux) or the subprocess times out.

How: torch's CPU allocations are invisible to tracemalloc, so the subprocess sets glibc malloc to serve every block
of 64 KiB or more with mmap (freed memory goes back at once), resets the kernel's peak-RSS counter
(/proc/self/clear_refs) before the step and reads VmHWM - VmRSS after it. A fresh process keeps the main run's
allocator state and earlier rows out of the figure.

What it is not: no CUDA memory (`machine._timed` reads torch.cuda's counters in the main process) and no timing.
"""
from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from entmask.bench.entropy_kernels import _entropy_fn, entropy_methods
from entmask.bench.steps import Runner
from entmask.bench.synthetic import synthetic_tokenizer
from entmask.bench.variants import parse_variant

_PROBE_PRELUDE = ("import ctypes, sys\n"
                  "libc = ctypes.CDLL('libc.so.6')\n"
                  "libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD: blocks >= 64 KiB are mmapped, freed at once\n"
                  "libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD: give the heap top back at once\n"
                  "from entmask.bench.memory import _probe_main\n"
                  "_probe_main(sys.argv[1])\n")
_ROOT = Path(__file__).resolve().parents[2]  # the repository: entmask/bench/memory.py


def _status_kib(key: str) -> int:
    m = re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(m.group(1)) if m else 0


def _peak_rss_extra(fn) -> float:
    """MiB the peak RSS rose above the RSS before `fn()` (the kernel's high-water mark, reset just before)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) / 1024


def _probe_main(spec_json: str) -> None:
    """The subprocess's body: measure what `spec_json` asks for and print one `@@probe` JSON line."""
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    out: dict = {"steps": {}, "entropy": []}
    if spec.get("variants"):
        out["steps"] = _probe_steps(spec)
    if spec.get("entropy"):
        out["entropy"] = _probe_entropy(spec["entropy"])
    print("@@probe " + json.dumps(out), flush=True)


def _probe_steps(spec: dict) -> dict[str, float]:
    steps = {}
    tok = synthetic_tokenizer()
    with tempfile.TemporaryDirectory(prefix="entmask-probe-") as work:
        for name in spec["variants"]:
            r = Runner(parse_variant(name, spec["precision"]), spec["preset"], spec["seq_len"],
                       spec["batch_size"], torch.device("cpu"), tok, work)
            r.step()  # the optimizer state now exists (resident from here on)
            steps[name] = _peak_rss_extra(r.step)
            r.close()
            del r
            gc.collect()
    return steps


def _probe_entropy(e: dict) -> list[float]:
    out = []
    logits = torch.randn(e["rows"], e["vocab"], generator=torch.Generator().manual_seed(3)) * 3
    for m, c in entropy_methods(tuple(e["chunks"])):
        fn = _entropy_fn(m, c)
        fn(logits)
        out.append(_peak_rss_extra(lambda fn=fn: fn(logits)))
    return out


def cpu_memory_probe(variants: list[str], preset: str, seq_len: int, batch_size: int, entropy: dict | None,
                     precision: str = "fp32", timeout: float = 1800) -> dict | None:
    if not Path("/proc/self/clear_refs").exists():
        return None
    spec = {"variants": variants, "preset": preset, "seq_len": seq_len, "batch_size": batch_size,
            "entropy": entropy, "threads": torch.get_num_threads(), "precision": precision}
    env = dict(os.environ)
    # the probe measures peak RSS with glibc's own settings (its prelude): entmask.allocator's tunables keep freed
    # blocks resident (mmap_max=0, which M_MMAP_THRESHOLD cannot undo), so the probe's "before" would count them
    env.pop("GLIBC_TUNABLES", None)
    root = str(_ROOT)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE_PRELUDE, json.dumps(spec)], env=env, capture_output=True,
                           text=True, timeout=timeout, check=False)  # a failed probe is reported below, not raised
    except subprocess.TimeoutExpired:
        return None
    for line in p.stdout.splitlines():
        if line.startswith("@@probe "):
            return json.loads(line[len("@@probe "):])
    print(f"entmask bench: the memory probe failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:200]}",
          file=sys.stderr)
    return None
