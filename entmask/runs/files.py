"""Writing files so that a killed process leaves the old file or the new one, never half of either; reading JSON
files as input that may be damaged; and RunError, the one-line error of every run-folder problem.

`atomic_write_bytes` writes a hidden temporary beside the target, fsyncs it and renames it into place, with the
mode any new file of the process gets (0666 less the umask). `read_tensors` reads a safetensors cache into memory
rather than mapping it: safetensors 0.8's `load_file` maps the file, and a tensor mapped from a file that anything
rewrites in place (a killed non-atomic writer, `cp` over it, a test truncating it) kills the process with SIGBUS
on its next read. `write_json` writes sorted, indented JSON with NaN
as null; `read_json` checks what it reads against a schema (entmask.schemas) and fails in one line.

What it is not: where files go (entmask.runs.folders) or who may write them (entmask.runs.locks).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

from entmask import schemas


class RunError(RuntimeError):
    """A run folder problem; the message is one line naming the folder and the fix."""

def read_tensors(path: str | Path) -> dict:
    """The tensors of a safetensors file, copied into memory (no mapping of the file outlives this call)."""
    from safetensors.torch import load  # imported here: entmask.runs stays importable without torch

    return load(Path(path).read_bytes())


# ---- atomic writes -------------------------------------------------------------------------------------------
def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _clean_nan(o: Any) -> Any:
    # JSON has no NaN; a missing value is None so every reader (pandas, jq) agrees.
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _clean_nan(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean_nan(v) for v in o]
    return o


_TMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _open_temporary(path: Path) -> tuple[int, str]:
    """A new hidden temporary file beside `path`, created with mode 0666 so that the kernel applies the user's
    umask (tempfile.mkstemp makes every file 0600, and a runs folder shared with a group could not be read)."""
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, _TMP_FLAGS, 0o666), tmp
        except FileExistsError:  # a name another writer holds: draw again
            continue
    raise FileExistsError(f"no free temporary name beside {path}; remove the .{path.name}.*.tmp files there")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers see all or nothing. The file gets
    the mode any new file of this process gets (0666 less the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temporary(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_clean_nan(obj), indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path, schema: schemas.Schema = schemas.JSON_ANY, fix: str | None = None) -> Any:
    """The JSON in `path`, checked against `schema` (entmask.schemas; by default only its size and nesting): a bad
    file is a RunError of one line naming the file and the fix (`fix`, or the schema's), never a traceback."""
    path = Path(path)
    try:
        return schemas.load(path, schema)
    except schemas.SchemaError as e:
        raise RunError(f"{path} {e}; {fix or schema.fix}") from None

