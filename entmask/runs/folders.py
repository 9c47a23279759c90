"""Run folders: where each stage writes, and how a finished run is found again by its config hash.

A run lives in `<runs root>/<profile>/<stage>/<name>-<hash>/` (the layout is entmask.runs's docstring). It is
*finished* when its metrics.json exists and is a metrics object: that file is written last, atomically, so a
folder without it is an interrupted run that the next attempt resumes. Runs are shared by hash whatever their
name prefix. entmask.json in each folder records the entmask and config version that wrote it.

What it is not: how files are written (entmask.runs.files) or who may write a run (entmask.runs.locks).
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from entmask import CONFIG_VERSION, __version__, schemas
from entmask.runs.files import RunError, read_json, write_json

ENV_RUNS = "ENTMASK_RUNS_DIR"


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
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def write_meta(run: Path) -> None:
    write_json(Path(run) / "entmask.json", {"entmask_version": __version__, "config_version": _config_version(),
                                           "git_commit": git_commit()})


def git_commit() -> str | None:
    """The project's commit (for provenance in metrics and notebooks), or None outside a checkout."""
    here = Path(__file__).resolve().parents[2]  # the checkout: entmask/runs/folders.py
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None

