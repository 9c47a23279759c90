"""Importing records: `import_records` verifies every record of a records folder (entmask.records.verify) and
only then copies them into the runs root, where experiments find them by hash and reuse them.

Nothing is overwritten: a run whose hash has a folder here is kept, and one another process is writing is left
to it. A reference teacher is imported, weightless, only when its record holds its scores of the train rows
(entmask.records.scores), which are copied beside their corpus first; without them it could mask nothing.

What it is not: exporting (entmask.records.export) or the checks themselves (entmask.records.verify).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from entmask.records.layout import _read_manifest
from entmask.records.scores import SCORES_DIR, SCORES_FILE, has_scores, import_scores, verify_scores
from entmask.records.verify import RecordsRefused, verify_record
from entmask.runs import (
    RECORDS_MANIFEST,
    RunError,
    _config_version,
    cache_dir,
    find_run,
    locked,
    profile_dir,
    recorded_key,
)


def import_records(src: str | Path, root: str | Path | None = None) -> dict:
    """Copy the run records in `src` (an export_records folder) into the runs root, so that experiments find them
    by hash and reuse them. Every listed record is verified first (verify_record); if any fails, RecordsRefused
    names them and nothing is imported. Nothing here is overwritten: a run whose hash has a folder here (finished,
    or an interrupted run with checkpoints) is kept as it is and listed. Links in a record are not copied. A
    reference teacher recorded without its scores is not imported (it could mask nothing): the first run that
    needs it rebuilds it from its config, and the next export says if the rebuilt one differs (teacher_changed). A
    reference whose record holds its scores is imported, weightless, with its scores put beside their corpus
    (`scores`: how many files were copied): students masked by it then train here without rebuilding it."""
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
    out = {"profile": man["profile"], "imported": [], "kept": [], "busy": [], "not_imported": [],
           "scores": 0}
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
        if stage == "reference" and has_scores(rec):
            todo.append(rel)  # a weightless teacher whose scores students mask by (entmask.records.scores)
        elif stage == "reference":
            out["not_imported"].append(f"{rel} (the teacher, recorded without its scores: rebuilt from its config by "
                                       f"the first run that needs it; its recorded weights key is "
                                       f"{recorded_key(rec / 'model') or 'unknown'})")
        elif stage == "pretrain" and recorded_key(rec / "model") is None:
            out["not_imported"].append(f"{rel} (its record names no weights key, so its fine-tuning runs could not "
                                       f"be found; export it again from the machine that has its weights)")
        else:
            todo.append(rel)
    if refused:  # all verified before anything is copied: a bad folder imports nothing
        raise RecordsRefused(src, refused)
    for rel in todo:
        if Path(rel).parts[0] == "reference":  # its scores first: a teacher without them here could mask nothing
            out["scores"] += import_scores(src / rel, cache_dir(root), verify_scores(
                src / rel, recorded_key(src / rel / "model")))
        out[_import_one(src / rel, profile_dir(man["profile"], root) / rel)].append(rel)
    return out


def _import_one(rec: Path, target: Path) -> str:
    """Copy the verified record `rec` to `target` (via a hidden temporary, renamed into place): "imported", or
    "kept" when this hash has a folder here by any name, or "busy" when another process is writing that run."""
    h = target.name.rsplit("-", 1)[-1]
    if target.exists() or find_run(target.parent, h) is not None:
        return "kept"
    # the lock pretraining and a teacher's build take on a run folder (a fine-tuning run's lock is its parent's
    # .<hash>): a run another process is starting right now is left to it
    lock = target if target.parent.name in ("pretrain", "reference") else target.parent / f".{h}"
    try:
        with locked(lock, timeout=0):
            if target.exists() or find_run(target.parent, h) is not None:
                return "kept"
            tmp = target.with_name(f".{target.name}.import-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            # links are not copied; nor are a teacher's scores, which import_scores put beside their corpus
            shutil.copytree(rec, tmp, ignore=lambda d, names: [
                n for n in names if (Path(d) / n).is_symlink() or (Path(d) == rec and n in (SCORES_FILE, SCORES_DIR))])
            os.replace(tmp, target)
            return "imported"
    except RunError:
        return "busy"
