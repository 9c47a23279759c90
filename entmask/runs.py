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
import re
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator, NoReturn

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


def _check_profile(profile) -> str:
    if not isinstance(profile, str) or not profile or safe_name(profile) != profile:
        raise RunError(f"profile {profile!r} is not a plain name (letters, digits, . _ -); records are kept per "
                       f"profile, e.g. cpu-long")
    return profile


def _check_rel(rel) -> str:
    """A record's place, as a manifest lists it: reference/<run>, pretrain/<run> or finetune/<task>/<run>."""
    parts = Path(rel).parts if isinstance(rel, str) else ()
    ok = (bool(parts) and not Path(rel).is_absolute() and parts[0] in RECORD_STAGES
          and len(parts) == (3 if parts[0] == "finetune" else 2)
          and all(x == safe_name(x) and not x.startswith(".") for x in parts))
    if not ok:
        raise RunError(f"records list {rel!r}, which is not a run's place (stage/run or finetune/task/run); the "
                       f"records folder is damaged: export it again")
    return Path(*parts).as_posix()


def _read_manifest(folder: Path) -> dict:
    """records.json of a records folder, checked: {"profile": name, "config_version": int, "runs": [places]}."""
    m = read_json(folder / RECORDS_MANIFEST, schemas.MANIFEST)
    _check_profile(m.get("profile"))
    m["runs"] = [_check_rel(r) for r in m.get("runs", [])]
    return m


def _finished_runs(profile_root: Path) -> tuple[list[Path], int]:
    """(the finished run folders of a profile, how many links were passed over). No link is followed, whether it
    is a stage, a task or a run folder: what an export reads stays inside the profile's folder."""
    out, links = [], 0
    for stage in RECORD_STAGES:
        base = profile_root / stage
        if base.is_symlink():
            links += 1
            continue
        parents = sorted(base.iterdir()) if stage == "finetune" and base.is_dir() else [base]
        for parent in parents:
            if parent.is_symlink():
                links += 1
            elif parent.is_dir():
                for p in sorted(parent.iterdir()):
                    if p.is_symlink():
                        links += p.is_dir()  # a link to a run folder elsewhere; lock files are plain files
                    elif p.is_dir() and not p.name.startswith(".") and finished_metrics(p) is not None:
                        out.append(p)
    return out, links


def _left_out(rel: Path, size: int) -> bool:
    """Whether a run's file at `rel` stays out of its record: weights, checkpoints, per-epoch models, event logs,
    entmask's hidden temporaries and locks, model/ but its config.json (the tokenizer files are the mirror's
    vocabulary), the record's own weights.json, and anything over RECORD_MAX_BYTES."""
    return (rel.parts[0] in RECORD_SKIP_DIRS or rel.suffix in WEIGHT_SUFFIXES
            or any(x in RECORD_SKIP_ANYWHERE for x in rel.parts)
            or any(x.startswith(".") for x in rel.parts) or rel.suffix in (".lock", ".tmp")
            or (rel.parts[0] == "model" and rel.as_posix() != "model/config.json")
            or rel.as_posix() == RECORD_FILE or size > RECORD_MAX_BYTES)


def _record_files(run: Path) -> tuple[list[Path], int]:
    """(the files of `run` that go into its record, how many were left out: see _left_out). Links are left out:
    a record is committed, and a link could carry any file of this machine into it."""
    keep, left = [], 0
    for f in sorted(run.rglob("*")):
        if f.is_dir() and not f.is_symlink():
            continue
        if f.is_symlink() or not f.is_file() or _left_out(f.relative_to(run), f.stat().st_size):
            left += 1
        else:
            keep.append(f)
    return keep, left


def _link_on_way(base: Path, rel: str) -> Path | None:
    """The first link among `base`/`rel`'s folders below `base` (the last one included), or None."""
    p = base
    for part in Path(rel).parts:
        p = p / part
        if p.is_symlink():
            return p
    return None


def _is_record(folder: Path) -> bool:
    return (folder / RECORD_FILE).is_file() and (folder / "metrics.json").is_file()


def _replace_record(tmp: Path, target: Path) -> None:
    """Put the finished record `tmp` at `target`, replacing an older record only after the new one is complete.
    Only a record (it holds weights.json) is ever replaced: never a run folder or anything else."""
    import shutil

    if target.exists() or target.is_symlink():
        if target.is_symlink() or not _is_record(target):
            raise RunError(f"{target} exists and is not a record (no {RECORD_FILE}); it is left as it is: export "
                           f"to a folder of records only")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def check_records_dest(profile: str, dest: str | Path, root: str | Path | None = None) -> Path:
    """`dest` as a records folder for `profile`: empty or new, or holding records of this profile and config
    version; never inside the runs root (an export there would replace runs by their weightless records)."""
    _check_profile(profile)
    if not str(dest).strip():
        raise RunError("the records folder is empty; give one, e.g. docs/records/cpu-long")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise RunError(f"records folder {dest} is a file; give a folder")
    real, runs_real = dest.resolve(), runs_root(root).resolve()
    if real == runs_real or runs_real in real.parents or real in runs_real.parents:
        raise RunError(f"records folder {dest} is inside (or holds) the runs root {runs_root(root)}; give a folder "
                       f"outside it, e.g. docs/records/{profile}")
    man_path = dest / RECORDS_MANIFEST
    if man_path.is_symlink():
        raise RunError(f"{man_path} is a link; a records folder holds no links (the export would write through "
                       f"it): remove the link, or export to another folder")
    if man_path.exists():
        man = _read_manifest(dest)
        if man.get("profile") != profile or man.get("config_version") != _config_version():
            raise RunError(f"{dest} holds records of profile {man.get('profile')!r} at config version "
                           f"{man.get('config_version')}, not {profile!r} at {_config_version()}: export to "
                           f"another folder")
    elif dest.is_dir() and any(x for x in dest.iterdir() if not x.name.startswith(".")):
        raise RunError(f"{dest} is not empty and holds no records ({RECORDS_MANIFEST}); export to a new or empty "
                       f"folder")
    return dest


@contextlib.contextmanager
def _records_lock(dest: Path) -> Iterator[None]:
    """One export at a time into a records folder (the matrix's workers, `make records-cpu-long` beside them).
    The lock file lives in the temp folder, not beside the records, which are committed."""
    import hashlib

    key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:16]
    with locked(Path(tempfile.gettempdir()) / f"entmask-records-{key}"):
        yield


def export_records(profile: str, dest: str | Path, root: str | Path | None = None) -> dict:
    """Copy the records of every finished run of `profile` (reference, pretraining, fine-tuning) to `dest`, weights
    left out; each gets a weights.json with its model's weights key. Records already in `dest` whose run is not
    here any more are kept. The output is deterministic (no timestamps), so exporting twice changes nothing. A
    reference teacher whose weights key differs from its record's (rebuilt on a new machine, not bit for bit) keeps
    its old record and is listed in `teacher_changed`: the runs recorded earlier were masked by that teacher."""
    import shutil

    _check_profile(profile)
    src = profile_dir(profile, root)
    if not src.is_dir():
        raise RunError(f"{src} does not exist: nothing of profile {profile!r} has run here (runs root "
                       f"{runs_root(root)}; set {ENV_RUNS} or --runs-dir if the runs are elsewhere)")
    dest = check_records_dest(profile, dest, root)
    dest.mkdir(parents=True, exist_ok=True)
    done = {"exported": [], "left_out_files": 0, "bytes": 0, "no_key": [], "failed": [], "teacher_changed": []}
    with _records_lock(dest):
        man_path = dest / RECORDS_MANIFEST
        prev = _read_manifest(dest)["runs"] if man_path.exists() else []
        # the manifest first: an export interrupted after this leaves a folder that the next one recognises
        write_json(man_path, {"profile": profile, "config_version": _config_version(), "runs": prev})
        for stale in list(dest.rglob(".*.tmp-*")) + list(dest.rglob(".*.old-*")):  # an interrupted export's
            shutil.rmtree(stale, ignore_errors=True)
        found, done["left_out_files"] = _finished_runs(src)
        for run in found:
            rel = run.relative_to(src).as_posix()
            target = dest / rel
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            try:
                link = _link_on_way(dest, rel)
                if link is not None:  # writing through it would put the record outside dest
                    raise RunError(f"{link} is a link; a records folder holds no links: remove it")
                model = run / "model"
                key = (None if model.is_symlink() else  # a link's weights are not this run's to vouch for
                       weights_key(model) if has_weights(model) else recorded_key(model))
                if rel.startswith("reference/") and _is_record(target):
                    was = recorded_key(target / "model")
                    if was is not None and key is not None and was != key:
                        done["teacher_changed"].append(f"{rel}: recorded {was}, here {key}")
                        continue
                files, left = _record_files(run)
                shutil.rmtree(tmp, ignore_errors=True)
                for f in files:
                    out = tmp / f.relative_to(run)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(f, out)
                    done["bytes"] += f.stat().st_size
                write_json(tmp / RECORD_FILE, {
                    "model_key": key, "left_out": "weights, checkpoints, per-epoch models and tokenizer files",
                    "how_to_use": "entmask runs import <this records folder> (the run is then reused by its hash; "
                                  "what needs its weights says so)"})
                _replace_record(tmp, target)
            except (OSError, RunError) as e:  # one unreadable run does not stop the others
                shutil.rmtree(tmp, ignore_errors=True)
                done["failed"].append(f"{rel}: {str(e).splitlines()[0]}")
                continue
            done["exported"].append(rel)
            done["left_out_files"] += left
            if key is None and not rel.startswith("finetune/"):
                done["no_key"].append(rel)
        have = sorted({r for r in prev if _is_record(dest / r)} | set(done["exported"]))
        write_json(man_path, {"profile": profile, "config_version": _config_version(), "runs": have})
    done.update(profile=profile, dest=str(dest), total_in_dest=len(have))
    return done


# ---- verifying a record before it is imported ------------------------------------------------------------------
# A records folder is input: committed, shared, possibly edited. A record is imported only when it is what its
# manifest says: its folder name ends with the hash of its config.json (so it is reused as the run it claims to
# be, and no other), its config is of the manifest's kind and profile, its files are what an export writes and
# each JSON file has its schema (entmask.schemas), and no name is one of entmask's own (locks, temporaries).
RECORD_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*-([0-9a-f]{10})")
OWN_SUFFIXES = (".lock", ".tmp")  # <run>.lock, <run>.row.lock, .<file>.<random>.tmp: entmask's own files


class RecordsRefused(RunError):
    """Records that failed verification, so nothing was imported. `refused` holds one line per record; the
    message names the first and how many more."""

    def __init__(self, src: Path, refused: list[str]):
        self.refused = refused
        more = f" (and {len(refused) - 1} more record(s), listed above)" if len(refused) > 1 else ""
        super().__init__(f"{src}: refused record {refused[0]}{more}; nothing was imported: export the records again "
                         f"from the machine that ran them, or drop the refused runs from its {RECORDS_MANIFEST}")


def _refuse(why: str) -> NoReturn:
    raise RunError(why)


def verify_record(src: Path, rel: str, man: dict) -> None:
    """Raise RunError (one line: the record's place, then why) unless the record at `src`/`rel` is what the
    manifest `man` says it is. Reads only; links inside the record are passed over (import does not copy them)."""
    try:
        _verify(src, rel, man)
    except RunError as e:
        raise RunError(f"{rel}: {e}") from None


def _verify(src: Path, rel: str, man: dict) -> None:
    link = _link_on_way(src, rel)
    if link is not None:
        _refuse(f"{link.relative_to(src)} is a link; a record is a plain folder inside the records folder")
    name, stage = Path(rel).name, Path(rel).parts[0]
    m = RECORD_NAME.fullmatch(name)
    if name.endswith(OWN_SUFFIXES):
        _refuse(f"its name {name!r} is named like entmask's own lock or temporary files, not like a run")
    if m is None:
        _refuse(f"its name {name!r} is not a run's (<name>-<10 hex digits of its config hash>)")
    docs = _record_docs(src / rel, stage)
    meta = docs.get("entmask.json")
    if meta is not None and meta["config_version"] != man["config_version"]:
        _refuse(f"its entmask.json says config version {meta['config_version']}, its manifest "
                f"{man['config_version']}")
    {"pretrain": _pretrain_identity, "finetune": _finetune_identity, "reference": _reference_identity}[stage](
        docs, m.group(1), rel, man["profile"])


def _record_docs(rec: Path, stage: str) -> dict:
    """{place in the record: parsed JSON} of every JSON file of the record `rec`, each checked against its schema;
    refuses a file an export never writes, or named like entmask's own files, and a record missing a file."""
    docs = {}
    for folder, dirs, files in os.walk(rec):  # does not follow links to folders
        here = Path(folder)
        for n in [*dirs, *files]:
            r = (here / n).relative_to(rec)
            if (here / n).is_symlink():
                continue  # not copied on import
            if n.startswith(".") or n.endswith(OWN_SUFFIXES):
                _refuse(f"it holds {r.as_posix()}, named like entmask's own lock or temporary files")
            if n in files and r.as_posix() != RECORD_FILE and _left_out(r, (here / n).stat().st_size):
                _refuse(f"it holds {r.as_posix()}, which an export never writes (weights, checkpoints, tokenizer "
                        f"files, event logs or a file over {RECORD_MAX_BYTES >> 20} MB)")
            if n in files and n.endswith(".json"):
                try:
                    docs[r.as_posix()] = schemas.load(here / n, schemas.for_record_file(stage, r.as_posix(),
                                                                                        RECORD_MAX_BYTES))
                except schemas.SchemaError as e:
                    _refuse(f"its {r.as_posix()} {e}")
    missing = [f for f in ("config.json", "metrics.json", RECORD_FILE) if f not in docs]
    if missing:
        _refuse(f"it has no {missing[0]}")
    return docs


def _forged(what: str, got: str, h: str) -> str:
    return (f"its {what} hashes to {got}, not to the {h} its name says (changed after the run, or another run's "
            f"record under this name)")


def _pretrain_identity(docs: dict, h: str, rel: str, profile: str) -> None:
    from entmask import config

    d = docs["config.json"]
    try:
        config.from_dict(d, strict=True, where="config.json")  # the types of every value
        got = config.from_dict(d).short_hash()  # values as written: exactly what the run hashed
    except config.ConfigError as e:
        _refuse(f"its {str(e).splitlines()[0]}")
    except (TypeError, ValueError, AttributeError, KeyError) as e:  # a crafted config a strict read let through
        _refuse(f"its config.json cannot be hashed ({type(e).__name__}: {str(e)[:80]})")
    if got != h:
        _refuse(_forged("config.json", got, h))
    _same_profile(d, profile)
    _same_run(docs["metrics.json"], {"hash": h})


def _finetune_identity(docs: dict, h: str, rel: str, profile: str) -> None:
    from entmask.config import FinetuneConfig
    from entmask.data import TASKS
    from entmask.finetune import finetune_hash_dict

    d, task = docs["config.json"], Path(rel).parts[1]
    hd = d["hash_dict"]
    if task not in TASKS:
        _refuse(f"its task folder {task!r} is not a GLUE task ({', '.join(TASKS)})")
    got = stable_hash(hd)
    if got != h or d["hash"] != h:
        _refuse(_forged("config.json's hash_dict", got, h) if got != h else
                f"its config.json says hash {d['hash']}, its name {h}")
    said = {"task": d["task"], "seed": d["seed"], "frozen": d["frozen"], "pretrained": d["pretrained_key"]}
    wrong = [k for k, v in said.items() if hd[k] != v] + (["task"] if d["task"] != task else [])
    if wrong:
        _refuse(f"its config.json's {wrong[0]} disagrees with its hash_dict or its place {rel}")
    try:
        ft = finetune_hash_dict(FinetuneConfig(**d["finetune"]), task, d["seed"], d["frozen"], d["pretrained_key"])
    except TypeError as e:
        _refuse(f"its config.json's finetune section is not this entmask's ({str(e)[:80]})")
    if ft["finetune"] != hd["finetune"]:
        _refuse("its config.json's finetune section is not the one its hash_dict was made from")
    _same_profile(d, profile)
    _same_run(docs["metrics.json"], {"hash": h, "task": task, "seed": d["seed"], "frozen": d["frozen"]})


def _reference_identity(docs: dict, h: str, rel: str, profile: str) -> None:
    got = stable_hash(docs["config.json"])  # a teacher's config.json is its hash dict (reference_hash_dict)
    if got != h:
        _refuse(_forged("config.json", got, h))


def _same_profile(cfg: dict, profile: str) -> None:
    if cfg.get("profile", profile) != profile:
        _refuse(f"its config.json is of profile {cfg['profile']!r}, its manifest's {profile!r}")


def _same_run(metrics: dict, expect: dict) -> None:
    """The metrics name the run the config is (where they name it at all)."""
    for k, v in expect.items():
        if k in metrics and metrics[k] is not None and metrics[k] != v:
            _refuse(f"its metrics.json is of another run ({k} {metrics[k]!r}, its config's {v!r})")


def import_records(src: str | Path, root: str | Path | None = None) -> dict:
    """Copy the run records in `src` (an export_records folder) into the runs root, so that experiments find them
    by hash and reuse them. Every listed record is verified first (verify_record); if any fails, RecordsRefused
    names them and nothing is imported. Nothing here is overwritten: a run whose hash has a folder here (finished,
    or an interrupted run with checkpoints) is kept as it is and listed. Links in a record are not copied. The
    reference teacher is not imported: without its weights it could not mask anything; the first run that needs
    it rebuilds it from its config, and the next export says if the rebuilt one differs (teacher_changed)."""
    src = Path(src)
    manifest = src / RECORDS_MANIFEST
    if manifest.is_symlink() or not manifest.is_file():
        raise RunError(f"{src} is not a records folder (no {RECORDS_MANIFEST}{', only a link' * manifest.is_symlink()}"
                       f"); give the folder that `entmask runs export` wrote")
    man = _read_manifest(src)
    if man.get("config_version") != _config_version():
        raise RunError(f"{src} was exported with config version {man.get('config_version')}; this entmask has "
                       f"{_config_version()}, whose hashes mean something else: import it with the entmask that "
                       f"wrote it")
    out = {"profile": man["profile"], "imported": [], "kept": [], "busy": [], "not_imported": []}
    todo, refused = [], []
    for rel in man["runs"]:
        rec = src / rel
        if rec.is_symlink() or not (rec / "metrics.json").is_file():
            out["not_imported"].append(f"{rel} (listed, but its record is missing from {src})")
            continue
        try:
            verify_record(src, rel, man)
        except RunError as e:
            refused.append(str(e))
            continue
        stage = Path(rel).parts[0]
        if stage == "reference":
            out["not_imported"].append(f"{rel} (the teacher: rebuilt from its config by the first run that needs "
                                       f"it; its recorded weights key is {recorded_key(rec / 'model') or 'unknown'})")
        elif stage == "pretrain" and recorded_key(rec / "model") is None:
            out["not_imported"].append(f"{rel} (its record names no weights key, so its fine-tuning runs could not "
                                       f"be found; export it again from the machine that has its weights)")
        else:
            todo.append(rel)
    if refused:  # all verified before anything is copied: a bad folder imports nothing
        raise RecordsRefused(src, refused)
    for rel in todo:
        out[_import_one(src / rel, profile_dir(man["profile"], root) / rel)].append(rel)
    return out


def _import_one(rec: Path, target: Path) -> str:
    """Copy the verified record `rec` to `target` (via a hidden temporary, renamed into place): "imported", or
    "kept" when this hash has a folder here by any name, or "busy" when another process is writing that run."""
    import shutil

    h = target.name.rsplit("-", 1)[-1]
    if target.exists() or find_run(target.parent, h) is not None:
        return "kept"
    # the lock pretraining takes on a run folder (a fine-tuning run's lock is its parent's .<hash>): a run
    # another process is starting right now is left to it
    lock = target if target.parent.name == "pretrain" else target.parent / f".{h}"
    try:
        with locked(lock, timeout=0):
            if target.exists() or find_run(target.parent, h) is not None:
                return "kept"
            tmp = target.with_name(f".{target.name}.import-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(rec, tmp, ignore=lambda d, names: [n for n in names if (Path(d) / n).is_symlink()])
            os.replace(tmp, target)
            return "imported"
    except RunError:
        return "busy"
