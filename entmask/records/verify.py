"""Verifying a record before it is imported: `verify_record` raises, in one line, unless the record is what its
manifest says it is.

A records folder is input: committed, shared, possibly edited. A record passes only when its folder name ends
with the hash of its config.json (so it is reused as the run it claims to be, and no other), its config is of the
manifest's kind and profile, its metrics name the same run, its files are what an export writes and each JSON file
has its schema (entmask.schemas), and no name is one of entmask's own (locks, temporaries). Checking a record's
identity needs the config and fine-tuning hashes, so this module sits above entmask.config and entmask.finetune.

What it is not: copying anything (entmask.records.importing); it only reads.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NoReturn

from entmask import config, schemas
from entmask.config import FinetuneConfig
from entmask.records.layout import _left_out, _link_on_way
from entmask.records.scores import SCORES_DIR, SCORES_FILE, verify_scores
from entmask.runs import RECORD_FILE, RECORD_MAX_BYTES, RECORDS_MANIFEST, RunError, stable_hash


# a record's folder name: <run name>-<10 hex digits of its config hash>
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
    if (stage == "reference" and (src / rel / SCORES_DIR).exists()) or (src / rel / SCORES_FILE).exists():
        if stage != "reference" or not (src / rel / SCORES_FILE).is_file():
            _refuse(f"it holds {SCORES_DIR}/ or {SCORES_FILE} without the other, or outside a teacher's record")
        verify_scores(src / rel, docs[RECORD_FILE]["model_key"])


def _record_docs(rec: Path, stage: str) -> dict:
    """{place in the record: parsed JSON} of every JSON file of the record `rec`, each checked against its schema;
    refuses a file an export never writes, or named like entmask's own files, and a record missing a file."""
    docs = {}
    for folder, dirs, files in os.walk(rec):  # does not follow links to folders
        here = Path(folder)
        if stage == "reference" and here == rec:  # the teacher's score files: verify_scores checks them
            dirs[:] = [d for d in dirs if d != SCORES_DIR]
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
    # local: data and finetune import torch and transformers, which importing entmask.records (the CLI's
    # `runs export`, experiments' workers) does not need until a fine-tuning record is checked
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

