"""Run folders: where each stage writes, how a finished run is found again by its config hash, atomic writes, locks.

Layout (one for every stage):
    runs/<profile>/pretrain/<name>-<hash>/      config.json, metrics.json, model/, checkpoints/, logs/, epochs/
    runs/<profile>/reference/<name>-<hash>/     the offline teacher
    runs/<profile>/finetune/<task>/<name>-<hash>/
    runs/<profile>/results/                     tables and figures of experiments
    runs/<profile>/notebooks/                   papermill-executed notebooks
    runs/cache/                                 tokenized corpora and teacher entropies, shared by all profiles

A run is *finished* when its `metrics.json` exists (it is written last, atomically); a folder without it is an
interrupted run that the next attempt resumes. What it is not: it holds no training logic.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from entmask import CONFIG_VERSION, __version__

ENV_RUNS = "ENTMASK_RUNS_DIR"


class RunError(RuntimeError):
    """A run folder problem; the message is one line naming the folder and the fix."""


def runs_root(root: str | Path | None = None) -> Path:
    return Path(root or os.environ.get(ENV_RUNS) or "runs")


def profile_dir(profile: str, root: str | Path | None = None) -> Path:
    return runs_root(root) / profile


def cache_dir(root: str | Path | None = None) -> Path:
    return runs_root(root) / "cache"


def results_dir(profile: str, root: str | Path | None = None) -> Path:
    d = profile_dir(profile, root) / "results"
    d.mkdir(parents=True, exist_ok=True)
    return d


# ---- fault injection ----------------------------------------------------------------------------------------
ENV_FAILPOINT = "ENTMASK_FAILPOINT"
_FAIL_HITS: dict[str, int] = {}


def failpoint(name: str) -> None:
    """kill -9 this process at the n-th time it passes `name`, when ENTMASK_FAILPOINT="name:n" is set.

    The fault-injection tests use it to die at a chosen point inside a stage (tokenizing, the teacher pass,
    a training step, a cache write): a real SIGKILL, so no handler, `finally` or atexit runs, exactly as when a
    job is preempted. Unset, it costs one dictionary lookup.
    """
    spec = os.environ.get(ENV_FAILPOINT)
    if not spec:
        return
    target, _, n = spec.rpartition(":")
    if target != name:
        return
    _FAIL_HITS[name] = _FAIL_HITS.get(name, 0) + 1
    if _FAIL_HITS[name] == int(n):
        import signal

        print(f"entmask: failpoint {name}:{n} reached, sending SIGKILL to myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


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


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers see all or nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is corrupt ({e.msg}); delete it and rerun to rebuild it") from None


# ---- locks ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(path: str | Path, timeout: float = -1) -> Iterator[None]:
    """An inter-process lock beside `path`: a second process asking for the same run waits, then reuses it."""
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
            print(f"entmask: waiting for {path}.lock: another entmask process is building the same thing, and this "
                  f"one will reuse its result", flush=True)
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


# ---- run folders ---------------------------------------------------------------------------------------------
def stage_dir(profile: str, stage: str, root: str | Path | None = None) -> Path:
    return profile_dir(profile, root) / stage


def find_run(parent: Path, short_hash: str) -> Path | None:
    """The folder in `parent` whose name ends with -<hash>, whatever its name prefix (runs are shared by hash)."""
    if not parent.is_dir():
        return None
    hits = sorted(p for p in parent.glob(f"*-{short_hash}") if p.is_dir())
    finished = [p for p in hits if (p / "metrics.json").exists()]
    return (finished or hits or [None])[0]


def run_dir_for(parent: Path, name: str, short_hash: str) -> Path:
    """The existing folder for this hash, or a new one named <name>-<hash>."""
    existing = find_run(parent, short_hash)
    return existing if existing is not None else parent / f"{safe_name(name)}-{short_hash}"


def safe_name(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return keep.strip("._") or "run"


def is_finished(run: Path) -> bool:
    """A run is finished when its metrics.json (written last, atomically) exists and parses. A damaged one is
    reported and moved aside (never deleted), so the run is redone rather than trusted."""
    m = Path(run) / "metrics.json"
    if not m.exists():
        return False
    try:
        json.loads(m.read_text())
        return True
    except (json.JSONDecodeError, UnicodeDecodeError):
        aside = m.with_name(f"metrics.corrupt-{os.getpid()}.json")
        os.replace(m, aside)
        print(f"entmask: {m} is corrupt; kept it as {aside.name} and redoing the run")
        return False


def finished_metrics(run: Path) -> dict | None:
    """The metrics of a finished run, or None; reads only (no repair, no lock): for reports beside a running job.
    metrics.json is written last and atomically, so a file that is there and parses is a finished run."""
    try:
        return json.loads((Path(run) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def check_version(run: Path) -> None:
    """Refuse to reuse a folder written by another entmask version (its config may mean something else)."""
    meta = Path(run) / "entmask.json"
    if not meta.exists():
        return
    info = read_json(meta)
    if info.get("config_version") != _config_version():
        raise RunError(f"{run} was written by entmask {info.get('entmask_version')} with config version "
                       f"{info.get('config_version')}; this is {__version__} (config version {_config_version()}): "
                       f"move the folder away or rerun with --force")


def _config_version() -> int:
    return CONFIG_VERSION


def stable_hash(obj: Any, n: int = 10) -> str:
    """A short sha256 of a JSON-able object (sorted keys): config hashes, cache keys."""
    import hashlib

    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def write_meta(run: Path) -> None:
    write_json(Path(run) / "entmask.json", {"entmask_version": __version__, "config_version": _config_version(),
                                           "git_commit": git_commit()})


def git_commit() -> str | None:
    """The project's commit (for provenance in metrics and notebooks), or None outside a checkout."""
    import subprocess

    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


# ---- distributed runs (torchrun / accelerate) ------------------------------------------------------------------
def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed() -> bool:
    """Start the process group once, before the Trainer does, so entmask can hold ranks at barriers around the
    work only rank 0 does (reference teacher, corpus, entropy cache). accelerate reuses an initialised group.
    The timeout is long because the other ranks wait while rank 0 builds a teacher (tens of minutes on a CPU)."""
    if world_size() <= 1:
        return False
    import datetime

    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "cpu:gloo,cuda:nccl"
        else:
            backend = "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=12))
    return True


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's value of `obj` on every rank (a decision made once: resume, force, finished)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish_distributed() -> None:
    """All ranks meet, then the process group is closed (no 'process group not destroyed' warning, no rank left
    behind printing an unfinished state)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main_first(work, *, what: str):
    """Run `work()` on rank 0 while the other ranks wait at a barrier, then on the others (which then only read
    what rank 0 wrote: caches hit). An exception on rank 0 is broadcast so every rank fails with the same line."""
    if world_size() <= 1 or not _dist_ready():
        return work()
    err = None
    out = None
    if is_main():
        try:
            out = work()
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks are told
            err = e
    failed = broadcast(None if err is None else f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
    if err is not None:
        raise err
    if failed is not None:
        raise RunError(f"rank 0 failed while preparing {what} ({failed})")
    if not is_main():
        out = work()
    barrier()
    return out


def _dist_ready() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()
