"""Exporting records: `export_records` copies what each finished run of a profile measured (configs, metrics,
logs, predictions; no weights) to a folder to commit, each with a weights.json naming its model's weights key.

The output is deterministic (no timestamps): exporting twice changes nothing. An export is atomic per record (a
hidden temporary renamed into place), one at a time per records folder (a lock), and never follows a link: what
it reads stays inside the profile's folder, what it writes inside the records folder.

What it is not: the rules of what a record holds (entmask.records.layout), or importing (entmask.records.importing).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from entmask.records.layout import _check_profile, _is_record, _left_out, _link_on_way, _read_manifest
from entmask.records.scores import export_scores, has_scores
from entmask.runs import (
    ENV_RUNS,
    RECORD_FILE,
    RECORD_STAGES,
    RECORDS_MANIFEST,
    RunError,
    _config_version,
    cache_dir,
    finished_metrics,
    has_weights,
    locked,
    profile_dir,
    recorded_key,
    runs_root,
    weights_key,
    write_json,
)


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


def _replace_record(tmp: Path, target: Path) -> None:
    """Put the finished record `tmp` at `target`, replacing an older record only after the new one is complete.
    Only a record (it holds weights.json) is ever replaced: never a run folder or anything else."""
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
    key = hashlib.sha256(str(dest.resolve()).encode()).hexdigest()[:16]
    with locked(Path(tempfile.gettempdir()) / f"entmask-records-{key}"):
        yield


def export_records(profile: str, dest: str | Path, root: str | Path | None = None) -> dict:
    """Copy the records of every finished run of `profile` (reference, pretraining, fine-tuning) to `dest`, weights
    left out; each gets a weights.json with its model's weights key. Records already in `dest` whose run is not
    here any more are kept. The output is deterministic (no timestamps), so exporting twice changes nothing. A
    reference teacher whose weights key differs from its record's (rebuilt on a new machine, not bit for bit) keeps
    its old record and is listed in `teacher_changed`: the runs recorded earlier were masked by that teacher. A
    reference's record also holds the teacher's cached scores of the train rows (entmask.records.scores), so that
    another machine trains teacher-masked students without rebuilding it."""
    _check_profile(profile)
    src = profile_dir(profile, root)
    if not src.is_dir():
        raise RunError(f"{src} does not exist: nothing of profile {profile!r} has run here (runs root "
                       f"{runs_root(root)}; set {ENV_RUNS} or --runs-dir if the runs are elsewhere)")
    dest = check_records_dest(profile, dest, root)
    dest.mkdir(parents=True, exist_ok=True)
    done = {"exported": [], "left_out_files": 0, "bytes": 0, "no_key": [], "failed": [], "teacher_changed": [],
            "scores_left_out": [], "scores_kept": []}
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
                if rel.startswith("reference/") and key is not None:  # the teacher's scores: students need only
                    copied, skipped = export_scores(tmp, key, cache_dir(root))  # these, not its weights
                    done["bytes"] += copied
                    done["scores_left_out"] += [f"{rel}: {x}" for x in skipped]
                    if not has_scores(tmp) and _is_record(target) and has_scores(target):
                        # its scores are not here (an imported teacher whose caches were cleaned): the record that
                        # has them is kept, since a teacher without them could mask nothing elsewhere
                        shutil.rmtree(tmp, ignore_errors=True)
                        done["scores_kept"].append(rel)
                        continue
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


