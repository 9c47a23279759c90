"""Run folders: where each stage writes, how a finished run is found again by its config hash, atomic writes, locks.

Layout (one for every stage):
    runs/<profile>/pretrain/<name>-<hash>/      config.json, metrics.json, model/, checkpoints/, logs/, epochs/
    runs/<profile>/reference/<name>-<hash>/     the offline teacher
    runs/<profile>/finetune/<task>/<name>-<hash>/
    runs/<profile>/results/                     tables and figures of experiments
    runs/<profile>/notebooks/                   papermill-executed notebooks
    runs/cache/                                 tokenized corpora and teacher entropies, shared by all profiles

A run is *finished* when its `metrics.json` exists (it is written last, atomically); a folder without it is an
interrupted run that the next attempt resumes. Records (export_records / import_records) carry what finished runs
measured, without their weights, to another machine. What it is not: it holds no training logic.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import sys
from pathlib import Path
from typing import Any, Iterator

from filelock import FileLock, Timeout

from entmask import CONFIG_VERSION, __version__, schemas

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


# ---- locks ---------------------------------------------------------------------------------------------------
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
    """A run is finished when its metrics.json (written last, atomically) exists and is a metrics object
    (schemas.METRICS). A damaged one (not JSON, or JSON of the wrong shape) is reported and moved aside as
    metrics.corrupt-<pid>.json (never deleted), so the run is redone, resuming from its checkpoints, not trusted."""
    m = Path(run) / "metrics.json"
    if not m.exists():
        return False
    try:
        schemas.load(m, schemas.METRICS)
        return True
    except schemas.SchemaError as e:
        aside = m.with_name(f"metrics.corrupt-{os.getpid()}.json")
        os.replace(m, aside)
        print(f"entmask: {m} {e}; kept it as {aside.name} and redoing the run")
        return False


_SAID_DAMAGED: set[str] = set()


def finished_metrics(run: Path) -> dict | None:
    """The metrics of a finished run, or None; reads only (no repair, no lock): for reports beside a running job.
    metrics.json is written last and atomically, so a file that is there and is a metrics object is a finished
    run; a damaged one is not (said once per file, on stderr; the run that owns it moves it aside when redone)."""
    m = Path(run) / "metrics.json"
    try:
        return schemas.load(m, schemas.METRICS)
    except OSError:
        return None
    except schemas.SchemaError as e:
        if str(m) not in _SAID_DAMAGED:
            _SAID_DAMAGED.add(str(m))
            print(f"entmask: {m} {e}; not taken as finished: rerun the run to redo it", file=sys.stderr)
        return None


def check_version(run: Path) -> None:
    """Refuse to reuse a folder written by another entmask version (its config may mean something else)."""
    meta = Path(run) / "entmask.json"
    if not meta.exists():
        return
    info = read_json(meta, schemas.ENTMASK_META)
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


# ---- background runs ------------------------------------------------------------------------------------------
def _has_tty() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY))
        return True
    except OSError:
        return False


def lower_priority(n: int, *, autogroup: str | Path = "/proc/self/autogroup", has_tty=_has_tty) -> str:
    """Lower this process, and every process it starts, by `n` nice steps, so a long matrix yields the CPU to
    interactive work. Returns what it did, in one line, to print.

    Why not just `nice`: Linux with autogroups (kernel.sched_autogroup_enabled=1, the default on most kernels)
    shares the CPU between login sessions first and applies nice only inside a session, so a `nice -n 19` job
    still takes half the CPU from a test suite started in another terminal (measured on 2 cores: the matrix's
    two nice-10 workers ran at 50% and 44% beside one nice-19 fine-tuning process in another session, at 97% each
    once that session's autogroup was set to 19). So when this process has no controlling terminal (started with
    `setsid`, `nohup setsid`, cron or a service: its session holds only what it started) the session's autogroup
    is lowered too. From a terminal that would lower the user's shell as well, so it says how instead.
    The autogroup nice is absolute and shared by the session: it is only ever raised, never lowered."""
    if not 0 <= n <= 19:
        raise ValueError(f"nice {n} is out of range: give 0 (no change) to 19 (the lowest priority)")
    if n == 0:
        return "priority unchanged (nice 0)"
    os.nice(n)
    p = Path(autogroup)
    try:
        text = p.read_text()
    except OSError:  # not Linux, or a kernel without autogroups: nice alone orders every process
        return f"nice +{n}"
    cur = int(text.split("nice")[-1]) if "nice" in text else 0
    if has_tty():
        return (f"nice +{n} (this process only: Linux autogroups share the CPU between login sessions before nice "
                f"applies, so other terminals still get no more than an equal share with it; start it with "
                f"`setsid` to lower its whole session too)")
    if cur >= n:
        return f"nice +{n}; this session's autogroup already at nice {cur}"
    try:
        p.write_text(str(n))
    except OSError as e:
        return f"nice +{n}; could not lower this session's autogroup ({e.strerror or e})"
    return f"nice +{n}, and this session's autogroup to nice {n} (so other sessions' work comes first)"


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


# ---- run records: what a finished run measured, without its weights ------------------------------------------
# A long matrix outlives its machine: sessions end, a fresh machine has an empty runs/. The records of its finished
# runs (configs, metrics, logs, per-example predictions; a few hundred KB a run) are small enough to commit, and a
# run imported from them is found by its hash and reused like one trained here. Its weights are not in them, so
# whatever needs the weights (fine-tuning it on a task it has no record for, the memorisation scores, the weight
# analysis) says so instead of training again.
RECORD_STAGES = ("reference", "pretrain", "finetune")
RECORD_SKIP_DIRS = ("checkpoints", "epochs")  # resumable state and per-epoch models: weights, all of it
# TensorBoard event files repeat log_history.json, as binaries named by host and time (a record must be the same
# whichever machine exports it)
RECORD_SKIP_ANYWHERE = ("tensorboard",)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy")
RECORD_MAX_BYTES = 5 << 20  # a file larger than this is not a record (a few hundred KB is typical)
RECORD_FILE = "weights.json"  # in each exported run: the key of the weights it was exported without
RECORDS_MANIFEST = "records.json"


def weights_key(model_dir: str | Path) -> str:
    """A hash of a saved model's config.json and safetensors weights: the identity that fine-tuning runs and
    entropy caches are keyed by (entropy.teacher_key)."""
    import hashlib

    d = Path(model_dir)
    h = hashlib.sha256()
    h.update((d / "config.json").read_bytes())
    for f in sorted(d.glob("*.safetensors")):
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:12]


def has_weights(model_dir: str | Path) -> bool:
    d = Path(model_dir)
    return (d / "config.json").is_file() and any(d.glob("*.safetensors"))


def recorded_key(model_dir: str | Path) -> str | None:
    """The weights key of `<run>/model` from the run's weights.json, for a run imported from records (no weights);
    None when there is no such file or it names no key."""
    rec = Path(model_dir).parent / RECORD_FILE
    if Path(model_dir).name != "model" or not rec.is_file():
        return None
    try:
        key = schemas.load(rec, schemas.WEIGHTS)["model_key"]
    except (OSError, schemas.SchemaError):
        return None
    return key if key else None
