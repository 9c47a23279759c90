"""Inter-process locks on run folders: `locked` (a second process asking for the same run waits, then reuses it)
and `claim_first` (several processes split one list of runs between them).

The locks are OS file locks (filelock) in `<path>.lock` beside what they guard: a killed holder releases its lock,
so a lock is never stale.

What it is not: locks inside one process, or anything that decides what a run is (entmask.runs.folders).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from filelock import FileLock, Timeout

from entmask.runs.files import RunError


@contextlib.contextmanager
def locked(path: str | Path, timeout: float = -1, waiting: str | None = None) -> Iterator[None]:
    """An inter-process lock beside `path`: a second process asking for the same run waits, then reuses it.
    `waiting` says what the wait is for where that is not a run to reuse (e.g. workers taking turns to export)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path) + ".lock")
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if timeout == 0:
                raise
            # Say why nothing happens. (The lock is an OS lock: a killed holder releases it, so it is never stale.)
            print(f"entmask: waiting for {path}.lock: "
                  + (waiting or "another entmask process is building the same thing, and this one will reuse its "
                                "result"), flush=True)
            lock.acquire(timeout=timeout)
        try:
            yield
        finally:
            lock.release()
    except Timeout:
        raise RunError(f"{path} is locked by another entmask process; wait for it or remove {path}.lock") from None


def claim_first(paths: list[str | Path], on_wait=None) -> tuple[int, FileLock]:
    """Claim the first of `paths` that no other process holds: returns (its index, the held lock; release it when
    done). Lets several processes split one list of runs between them (`entmask experiment --workers`, or the same
    command started twice). When every path is held elsewhere it waits for the first (`on_wait(path)` is told),
    because the caller needs that run next and will then reuse it rather than train it again."""
    if not paths:
        raise ValueError("claim_first needs at least one path")
    for i, p in enumerate(paths):
        Path(p).parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(p) + ".lock")
        try:
            lock.acquire(timeout=0)
            return i, lock
        except Timeout:
            continue
    if on_wait is not None:
        on_wait(Path(paths[0]))
    lock = FileLock(str(paths[0]) + ".lock")
    lock.acquire()
    return 0, lock

