"""Run folders: where each stage writes, how a finished run is found again by its config hash, atomic writes, locks.

Layout (one for every stage):
    runs/<profile>/pretrain/<name>-<hash>/      config.json, metrics.json, model/, checkpoints/, logs/, epochs/
    runs/<profile>/reference/<name>-<hash>/     the offline teacher
    runs/<profile>/finetune/<task>/<name>-<hash>/
    runs/<profile>/results/                     tables and figures of experiments
    runs/<profile>/notebooks/                   papermill-executed notebooks
    runs/cache/                                 tokenized corpora and teacher entropies, shared by all profiles

A run is *finished* when its `metrics.json` exists (it is written last, atomically); a folder without it is an
interrupted run that the next attempt resumes. Records (entmask.records) carry what finished runs measured,
without their weights, to another machine. What it is not: it holds no training logic.

This package's own module only re-exports: use `entmask.runs` as before (`runs.write_json`, `runs.locked`, ...).
Its modules:
    files        RunError; atomic writes, write_json, read_json (checked against entmask.schemas)
    folders      the runs root and its folders, finding a run by hash, finished or not, versions, stable_hash
    locks        locked, claim_first: inter-process locks beside run folders
    failpoints   failpoint: kill -9 at a named point, for the fault-injection tests
    priority     lower_priority: a background job that yields the CPU (Linux autogroups included)
    distributed  ranks, barriers and main_first under torchrun / accelerate
    weights      weights_key of a saved model, and what a run's record leaves out
A name patched on this package (tests patch `runs.locked`) reaches every caller that looks it up here
(`runs.locked(...)`), not calls made inside the modules themselves.
"""
from __future__ import annotations

from entmask.runs.distributed import (
    barrier,
    broadcast,
    finish_distributed,
    init_distributed,
    is_main,
    main_first,
    world_size,
)
from entmask.runs.failpoints import ENV_FAILPOINT, failpoint
from entmask.runs.files import RunError, atomic_write_bytes, atomic_write_text, read_json, read_tensors, write_json
from entmask.runs.folders import (
    ENV_RUNS,
    cache_dir,
    check_version,
    find_run,
    finished_metrics,
    git_commit,
    is_finished,
    profile_dir,
    results_dir,
    run_dir_for,
    runs_root,
    safe_name,
    stable_hash,
    stage_dir,
    write_meta,
)
from entmask.runs.locks import claim_first, locked
from entmask.runs.priority import lower_priority
from entmask.runs.weights import (
    RECORD_FILE,
    RECORD_MAX_BYTES,
    RECORD_SKIP_ANYWHERE,
    RECORD_SKIP_DIRS,
    RECORD_STAGES,
    RECORDS_MANIFEST,
    WEIGHT_SUFFIXES,
    has_weights,
    model_key,
    no_weights_error,
    recorded_key,
    weightless_teacher,
    weights_key,
)

# Private names of the single module this package was, kept importable from here (entmask.records uses
# _config_version; the dicts and sets are the same objects as in their modules).
from entmask.runs.distributed import _dist_ready  # noqa: F401
from entmask.runs.failpoints import _FAIL_HITS  # noqa: F401
from entmask.runs.files import _TMP_FLAGS, _clean_nan, _json_default, _open_temporary  # noqa: F401
from entmask.runs.folders import _SAID_DAMAGED, _config_version  # noqa: F401
from entmask.runs.priority import _has_tty  # noqa: F401

__all__ = [
    "ENV_FAILPOINT", "ENV_RUNS", "RECORDS_MANIFEST", "RECORD_FILE", "RECORD_MAX_BYTES", "RECORD_SKIP_ANYWHERE",
    "RECORD_SKIP_DIRS", "RECORD_STAGES", "RunError", "WEIGHT_SUFFIXES", "atomic_write_bytes", "atomic_write_text",
    "barrier", "broadcast", "cache_dir", "check_version", "claim_first", "failpoint", "find_run", "finish_distributed",
    "finished_metrics", "git_commit", "has_weights", "init_distributed", "is_finished", "is_main", "locked",
    "lower_priority", "main_first", "model_key", "no_weights_error", "profile_dir", "read_json", "read_tensors",
    "recorded_key", "results_dir", "run_dir_for", "runs_root", "safe_name", "stable_hash", "stage_dir",
    "weightless_teacher", "weights_key", "world_size", "write_json", "write_meta",
]
