"""The `entmask` command line: a thin argparse front for the library.

What it is: subcommands `pretrain`, `reference`, `finetune`, `experiment`, `reproduce`, `info`, `runs` (and
`bench`), each mapping flags onto a resolved config and one library call. Every expected failure (bad flag, bad
value, missing data offline, unusable teacher, foreign run folder) prints one line `entmask: error: ...` and exits
with code 2, without a traceback (set ENTMASK_DEBUG=1 to see one).

This module is the entry point (`main`, the console script `entmask.cli:main`), the table of commands and that
error reporting. The parser and flags -> config are `entmask.cli_parser`, the handlers `entmask.cli_commands`;
every name they define is re-exported here, so `from entmask.cli import ...` keeps working.

What it is not: no logic of its own beyond turning flags into config overrides.
"""
from __future__ import annotations

import contextlib
import os
import sys

from entmask import __version__  # noqa: F401 - re-exported (it was importable from here)
from entmask.cli_commands import (  # noqa: F401 - the handlers, re-exported
    _fmt, _print_run, _refuse_tasks_without_data, _refuse_unfinished_run, _teacher_info, cmd_bench, cmd_blimp,
    cmd_experiment, cmd_finetune, cmd_heldout, cmd_info, cmd_pretrain, cmd_reference, cmd_reproduce, cmd_runs)
from entmask.cli_parser import (  # noqa: F401 - the parser, re-exported
    FLAG_KEYS, CLIError, _common, _masking_flags, _Parser, _setup_env, build_parser, resolve_from_args)
from entmask.config import ConfigError, default_name  # noqa: F401 - one naming rule, re-exported for callers
from entmask.data_sources import DataError
from entmask.notebook_run import NotebookError
from entmask.runs import RunError
from entmask.token_scores import EntropyError

try:
    from safetensors import SafetensorError  # a failed weights write (a full disk) or read
except ImportError:
    SafetensorError = None


# Expected errors defined in modules that load transformers or pandas (seconds), which the light commands never
# import: each is looked up only where its module was imported, since an error whose class never loaded cannot have
# been raised. (`entmask --help` and `runs status` start in ~2 s instead of ~9.)
_HEAVY_ERRORS = (("entmask.models", "ModelError"), ("entmask.experiments.core", "ExperimentError"))


def _expected_errors() -> tuple:
    errs = [CLIError, ConfigError, DataError, RunError, EntropyError, NotebookError, ValueError, OSError]
    if SafetensorError is not None:
        errs.append(SafetensorError)
    errs += [getattr(sys.modules[m], name) for m, name in _HEAVY_ERRORS if m in sys.modules]
    return tuple(errs)


def _one_line(e: BaseException) -> str:
    """The message of an expected error; an OS error names its file and what to check."""
    if isinstance(e, OSError) and not type(e).__module__.startswith("entmask") and e.filename:
        what = e.strerror or type(e).__name__
        return (f"{e.filename}: {what}; check that the path exists, is the right kind (file or folder), is "
                f"writable and that the disk has room (--runs-dir chooses where runs go)")
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if type(e).__name__ == "SafetensorError":
        return (f"a weights file could not be written or read ({msg}); check that the disk has room, then rerun "
                f"the same command (finished work is kept, the damaged file is rebuilt)")
    return msg


COMMANDS = {"pretrain": cmd_pretrain, "reference": cmd_reference, "info": cmd_info, "finetune": cmd_finetune,
            "experiment": cmd_experiment, "reproduce": cmd_reproduce, "bench": cmd_bench,
            "runs": cmd_runs, "blimp": cmd_blimp, "heldout": cmd_heldout}


def main(argv: list[str] | None = None) -> int:
    saved = {k: os.environ.get(k) for k in ("ENTMASK_RUNS_DIR", "ENTMASK_DATA_DIR")}
    try:
        return _main(argv)
    finally:  # --runs-dir/--data-dir hold for this call only (main() is also called in process, e.g. by tests)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _main(argv: list[str] | None) -> int:
    started = False  # before the command starts only CLIError is expected (a parse-time ValueError is a bug)
    try:
        a = build_parser().parse_args(argv)
        if not a.cmd:
            raise CLIError("a command is needed: pretrain, reference, finetune, experiment, blimp, heldout, reproduce, "
                           "info, runs, bench (see `entmask --help`)")
        _setup_env(a)
        started = True
        return COMMANDS[a.cmd](a)
    except BrokenPipeError:
        # the reader of the output went away (`entmask runs status | head`): not an error of the command. Point
        # stdout at devnull so that the interpreter's final flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        # looked up now, not before the command ran: the command imports the modules whose errors are expected
        if not isinstance(e, _expected_errors() if started else CLIError) or os.environ.get("ENTMASK_DEBUG"):
            raise
        print(f"entmask: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("entmask: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
