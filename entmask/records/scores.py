"""The teacher's scores in its record: what lets a new machine train teacher-masked students without rebuilding
the teacher.

A reference teacher's record holds no weights, so on its own it could mask nothing, and every new machine had to
adapt the teacher again (70 minutes of two cores at cpu-wiki) before any teacher-masked row could train. The
students need only the teacher's per-position scores of the train rows, which entmask caches beside the corpus
(entmask.entropy: `entropy-<split>-<teacher key>.safetensors`). So `export_scores` copies those cache files, byte
for byte, into the reference's record (`scores/<corpus key>/<file>`) and lists each with its sha256 in
`scores.json`; `verify_scores` refuses a record whose files are not exactly those, unchanged and of this teacher;
`import_scores` puts them back beside the corpus, where the cache finds them (its own checks of corpus, teacher
key and token digest still run when a student reads them). A reference record with scores is imported as a
weightless teacher: students masked by it train; what needs its weights (KD, a new corpus) says so in one line.
The sha256 list catches a changed or damaged file, not a forged record (the record supplies its own digests): the
scores are trusted like the rest of a committed record, and they decide what the students mask.

What it is not: the cache itself or its checks (entmask.entropy), or the rest of a record (export, verify,
importing).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from safetensors import safe_open

from entmask import schemas
from entmask.runs import RunError, locked, write_json

SCORES_FILE = "scores.json"  # in a reference's record: the score files it holds, each with its sha256
SCORES_DIR = "scores"  # scores/<corpus key>/entropy-<split>-<teacher key>[...].safetensors
SCORES_MAX_BYTES = 64 << 20  # one view of a corpus of ~16M positions in fp32; cpu-wiki's are 10-12 MB
SCORES_MAX_FILES = 16  # views x corpora x scorers of one teacher; a record listing more is refused
SCORES_MAX_TOTAL = 256 << 20  # and all of them together
# the cache's file names (entropy.cache_path): split, then the teacher key and, for masked-view scorers, more
_NAME = re.compile(r"entropy-[A-Za-z0-9_-]+-([0-9a-f]{12})(-[A-Za-z0-9._-]+)?\.safetensors")
_CORPUS = re.compile(r"[0-9a-f]{10}")  # a corpus cache folder: data.corpus_key



def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def _teacher_of(path: Path) -> str | None:
    """The teacher key a score cache file says it was computed with (its safetensors metadata), or None."""
    try:
        with safe_open(str(path), "pt") as fh:
            return (fh.metadata() or {}).get("teacher_key")
    except Exception:  # noqa: BLE001 - a damaged or foreign file names no teacher
        return None


def score_caches(cache_root: Path, key: str) -> tuple[list[Path], list[str]]:
    """(the finished score cache files of the teacher `key` under a runs root's cache folder, sorted: those whose
    name and metadata both name this teacher, no partial passes, no links; why others of its files were passed
    over: too large, or past SCORES_MAX_FILES / SCORES_MAX_TOTAL)."""
    out, skipped, total = [], [], 0
    for f in sorted((Path(cache_root) / "corpus").glob(f"*/entropy-*-{key}*.safetensors")):
        m = _NAME.fullmatch(f.name)
        if not (m and m.group(1) == key and _CORPUS.fullmatch(f.parent.name) and f.is_file() and not f.is_symlink()
                and not f.parent.is_symlink() and _teacher_of(f) == key):
            continue
        size = f.stat().st_size
        if size > SCORES_MAX_BYTES or len(out) >= SCORES_MAX_FILES or total + size > SCORES_MAX_TOTAL:
            skipped.append(f"{f.parent.name}/{f.name} ({size / 1e6:.1f} MB; a record holds at most "
                           f"{SCORES_MAX_FILES} score files of {SCORES_MAX_BYTES >> 20} MB, "
                           f"{SCORES_MAX_TOTAL >> 20} MB in all)")
            continue
        out.append(f)
        total += size
    return out, skipped


def export_scores(record: Path, key: str, cache_root: Path) -> tuple[int, list[str]]:
    """Copy the teacher `key`'s score caches into `record` (a reference's record being written) and list them in
    its scores.json; nothing is written when there are none. Returns (bytes copied, files passed over and why)."""
    files, total = [], 0
    found, skipped = score_caches(cache_root, key)
    for f in found:
        rel = Path(SCORES_DIR) / f.parent.name / f.name
        (record / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, record / rel)
        files.append({"path": rel.as_posix(), "sha256": _sha256(record / rel), "bytes": f.stat().st_size})
        total += f.stat().st_size
    if files:
        write_json(record / SCORES_FILE, {"teacher_key": key, "files": files})
    return total, skipped


def has_scores(record: Path) -> bool:
    return (Path(record) / SCORES_FILE).is_file()


def verify_scores(record: Path, model_key: str | None) -> list[dict]:
    """The files of `record`'s scores.json, verified (raises RunError, one line, on the first problem): the record
    names its teacher, scores.json is of that teacher, every listed file is under scores/<corpus>/, named as the
    cache names it, no larger than SCORES_MAX_BYTES, unchanged (sha256) and computed by that teacher (its
    metadata); and no file under scores/ is unlisted."""
    if (record / SCORES_FILE).is_symlink():
        raise RunError(f"its {SCORES_FILE} is a link; a record is plain files")
    try:
        doc = schemas.load(record / SCORES_FILE, schemas.SCORES)
    except schemas.SchemaError as e:
        raise RunError(f"its {SCORES_FILE} {e}") from None
    if not model_key or doc["teacher_key"] != model_key:
        raise RunError(f"its {SCORES_FILE} is of teacher {doc['teacher_key']!r}, its weights.json names "
                       f"{model_key!r}")
    n, total = len(doc["files"]), sum(int(x["bytes"]) for x in doc["files"])
    if not 1 <= n <= SCORES_MAX_FILES or total > SCORES_MAX_TOTAL:
        raise RunError(f"its {SCORES_FILE} lists {n} file(s) of {total / 1e6:.1f} MB; a teacher's record holds 1 to "
                       f"{SCORES_MAX_FILES}, {SCORES_MAX_TOTAL >> 20} MB in all")
    listed = set()
    for item in doc["files"]:
        parts = Path(item["path"]).parts
        m = _NAME.fullmatch(parts[-1]) if len(parts) == 3 else None
        if (len(parts) != 3 or parts[0] != SCORES_DIR or not _CORPUS.fullmatch(parts[1]) or m is None
                or m.group(1) != model_key):
            raise RunError(f"its {SCORES_FILE} lists {item['path']!r}, which is not a score file of teacher "
                           f"{model_key} (scores/<corpus key>/entropy-<split>-<teacher key>.safetensors)")
        f = record / Path(*parts)
        if any(p.is_symlink() for p in (record / parts[0], record / parts[0] / parts[1], f)):
            raise RunError(f"its {item['path']} is reached through a link; a record is plain files")
        if not f.is_file():
            raise RunError(f"its {SCORES_FILE} lists {item['path']}, which is missing")
        size = f.stat().st_size
        if size > SCORES_MAX_BYTES or size != item["bytes"]:
            raise RunError(f"its {item['path']} has {size} bytes, not the {item['bytes']} its {SCORES_FILE} says "
                           f"(at most {SCORES_MAX_BYTES >> 20} MB)")
        if _sha256(f) != item["sha256"]:
            raise RunError(f"its {item['path']} was changed after the export (sha256 differs from its "
                           f"{SCORES_FILE})")
        if _teacher_of(f) != model_key:
            raise RunError(f"its {item['path']} was not computed by teacher {model_key} (its metadata says "
                           f"{_teacher_of(f)!r})")
        listed.add(Path(*parts).as_posix())
    if (record / SCORES_DIR).is_symlink():
        raise RunError(f"its {SCORES_DIR}/ is a link; a record is plain files")
    for f in sorted((record / SCORES_DIR).rglob("*")) if (record / SCORES_DIR).is_dir() else []:
        r = f.relative_to(record).as_posix()
        if not f.is_dir() and r not in listed:
            raise RunError(f"it holds {r}, which its {SCORES_FILE} does not list")
    return doc["files"]


def import_scores(record: Path, cache_root: Path, files: list[dict]) -> int:
    """Copy the verified score files of `record` beside their corpus under `cache_root` (a file already there is
    kept: the cache checks what it reads). Returns how many were copied."""
    n = 0
    for item in files:
        src = record / item["path"]
        parts = Path(item["path"]).parts
        dest = Path(cache_root) / "corpus" / parts[1] / parts[2]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with locked(dest):  # the lock the entropy cache takes on this file: a pass writing it is left to finish
            if dest.exists():
                continue
            tmp = dest.with_name(f".{dest.name}.import-{os.getpid()}")
            try:
                shutil.copyfile(src, tmp)
                if _sha256(tmp) != item["sha256"]:  # changed between the check and the copy
                    raise RunError(f"{item['path']} changed while it was imported; import the records again")
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
            n += 1
    return n
