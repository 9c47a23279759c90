"""The benchmark's own command line, `python -m entmask.bench [flags]` (`__main__` calls `_cli`).

What it is: `_cli(argv)` parses the flags and runs `run.main`, or with `--scorers` only the token-scorer table, or
with `--render JSON` prints the tables of a saved run. `entmask bench` (entmask/cli.py) is the package CLI's
shorter form: it validates its flags and calls `bench.main` with the defaults for the rest.

What it is not: no measuring and no formatting of its own.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from entmask.bench.machine import describe_device
from entmask.bench.report import render
from entmask.bench.run import main
from entmask.bench.scorers import bench_scorers, format_scorers

# The package docstring's first paragraph (kept equal by tests/test_bench.py): --help's description.
DESCRIPTION = ("Throughput benchmark: training steps of stock HF vs entmask's variants, the entropy pass, the teacher "
               "pass.")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m entmask.bench", description=DESCRIPTION)
    p.add_argument("--preset", default="bertlet")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="default: bf16 on a GPU that supports it, else fp32")
    p.add_argument("--ablations", action="store_true",
                   help="add rows: eager attention, vocab 30528, CPU bf16, bf16 self pass, no per-step sync")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to compile on a CPU)")
    p.add_argument("--variants", default=None,
                   help="';'-separated rows, e.g. 'stock HF;teacher-masked · compiled'")
    p.add_argument("--entropy-chunks", default=None, help="comma-separated chunk sizes for the entropy table")
    p.add_argument("--no-entropy", action="store_true")
    p.add_argument("--no-teacher", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the CPU memory probe subprocess")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write every number to this file")
    p.add_argument("--quiet-progress", action="store_true")
    p.add_argument("--render", default=None, metavar="JSON", help="print the tables of a saved --json run and exit")
    p.add_argument("--scorers", action="store_true", help="only the token-scorer table (entropy.SCORERS), then exit")
    return p


def _cli(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    if a.scorers:
        return _scorers(a)
    if a.render:
        print(render(json.loads(Path(a.render).read_text())))
        return 0
    variants = [v.strip() for v in a.variants.split(";") if v.strip()] if a.variants else None
    chunks = tuple(int(c) for c in a.entropy_chunks.split(",")) if a.entropy_chunks else None
    main(preset=a.preset, seq_len=a.seq_len, batch_size=a.batch_size, repeats=a.repeats, device=a.device,
         warmup=a.warmup, precision=a.precision, ablations=a.ablations, compile=a.compile, variants=variants,
         entropy=not a.no_entropy, teacher=not a.no_teacher, memory=not a.no_memory, entropy_chunks=chunks,
         threads=a.threads, json_path=a.json, progress=not a.quiet_progress)
    return 0


def _scorers(a: argparse.Namespace) -> int:
    if a.threads:
        torch.set_num_threads(a.threads)
    dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    rows = bench_scorers(a.preset, a.seq_len, a.batch_size, a.repeats, dev, progress=not a.quiet_progress)
    print(format_scorers(rows, f"{a.preset}, {a.batch_size} x {a.seq_len}, {describe_device(dev)}"))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    return 0
