"""The `entmask` console script: set the process's malloc tuning (entmask.allocator), then run entmask.cli.

What it is: the entry point named in pyproject.toml and `python -m entmask`. It re-executes the interpreter once with
GLIBC_TUNABLES set (before importing torch or the CLI) and then calls `entmask.cli.main`.

What it is not: no command logic; `entmask.cli.main(argv)` stays callable in process (tests) without any re-exec.
"""
from __future__ import annotations

import sys

from entmask import allocator


def main() -> int:
    """The console script. The restart must come first: anything run before it would run again after the exec."""
    allocator.reexec_tuned(list(getattr(sys, "orig_argv", []) or []), sys.executable)
    from entmask.cli import main as cli_main
    return cli_main()
