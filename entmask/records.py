"""Records: finished runs that outlive the machine. `export_records` copies what each finished run of a profile
measured (configs, metrics, logs, predictions; no weights) to a folder to commit; `import_records` verifies every
record of such a folder (its name's hash is its config's, it is of the kind and place the manifest says, every JSON
file has its schema) and only then copies them into the runs root, where experiments reuse them by hash.

What it is not: run folders, hashes, atomic writes and locks themselves (entmask.runs), or the JSON schemas
(entmask.schemas). It sits above config and finetune in the import graph, since checking a record's identity needs
their hashes.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Iterator, NoReturn

from entmask import schemas
from entmask.runs import (
    ENV_RUNS,
    RECORD_FILE,
    RECORD_MAX_BYTES,
    RECORD_SKIP_ANYWHERE,
    RECORD_SKIP_DIRS,
    RECORD_STAGES,
    RECORDS_MANIFEST,
    WEIGHT_SUFFIXES,
    RunError,
    _config_version,
    find_run,
    finished_metrics,
    has_weights,
    locked,
    profile_dir,
    read_json,
    recorded_key,
    runs_root,
    safe_name,
    stable_hash,
    weights_key,
    write_json,
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
