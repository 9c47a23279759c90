"""What a records folder is, for both sides: its manifest (records.json: profile, config version, the records'
places), the place of a record (reference/<run>, pretrain/<run>, finetune/<task>/<run>), and which files of a run
a record holds (`_left_out`: never weights, checkpoints, tokenizer files, event logs, entmask's own temporaries
and locks, or a file over RECORD_MAX_BYTES).

Export writes by these rules and import refuses what breaks them, so they live here, once.

What it is not: writing records (entmask.records.export), checking one (entmask.records.verify) or copying them
into a runs root (entmask.records.importing).
"""
from __future__ import annotations

from pathlib import Path

from entmask import schemas
from entmask.runs import (
    RECORD_FILE,
    RECORD_MAX_BYTES,
    RECORD_SKIP_ANYWHERE,
    RECORD_SKIP_DIRS,
    RECORD_STAGES,
    RECORDS_MANIFEST,
    WEIGHT_SUFFIXES,
    RunError,
    read_json,
    safe_name,
)


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


def _left_out(rel: Path, size: int) -> bool:
    """Whether a run's file at `rel` stays out of its record: weights, checkpoints, per-epoch models, event logs,
    the live progress file, entmask's hidden temporaries and locks, model/ but its config.json (the tokenizer files
    are the mirror's vocabulary), the record's own weights.json, and anything over RECORD_MAX_BYTES."""
    return (rel.parts[0] in RECORD_SKIP_DIRS or rel.suffix in WEIGHT_SUFFIXES
            or any(x in RECORD_SKIP_ANYWHERE for x in rel.parts)
            or any(x.startswith(".") for x in rel.parts) or rel.suffix in (".lock", ".tmp")
            or (rel.parts[0] == "model" and rel.as_posix() != "model/config.json")
            or rel.as_posix() == RECORD_FILE or size > RECORD_MAX_BYTES)


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

