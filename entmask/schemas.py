"""The shapes of the JSON files entmask reads back, and one loader that checks them.

What it is: a small schema per file that entmask writes and later trusts (a run's metrics.json, config.json and
entmask.json; a record's weights.json; a records folder's records.json; the logs a run keeps), with the types of
its known keys, the keys it must have, and limits on its size and nesting; `load` reads a file and checks it, and
`for_record_file` says which schema a file of an imported record must meet. Committed or shared records travel
between machines and people, so these files are input like any other: a file of the wrong shape is reported in one
line (SchemaError, a phrase the caller completes with the file's name and the fix) instead of a traceback later.

What it is not: not JSON Schema (no $ref, no coercion: a value is of the right type or refused); not a judge of
whether the numbers are true (a run's identity, its config hash against its folder name, is checked by
records.verify_record); it reads nothing but the file it is given and imports nothing of entmask.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DEPTH = 32  # entmask's own files nest at most 4 levels; a deeper file is not one of them
MAX_BYTES = 64 << 20  # generous: a long run's metrics.json (its curve) is a few hundred KB
MAX_ITEMS = 1_000_000  # keys of an object or items of a list
ANY = "any"  # a spec: any JSON value (still within the depth and size limits)


class SchemaError(ValueError):
    """What is wrong with a JSON file, as a predicate ("is corrupt (...)", "is not a run's metrics.json: ..."):
    the caller puts the file's name before it and the fix after it, in one line."""


@dataclass(frozen=True)
class Obj:
    """A JSON object: `fields` maps a known key to its spec (checked when present), `required` keys must be
    there; other keys are allowed (a newer entmask may add some)."""
    fields: dict = field(default_factory=dict)
    required: tuple = ()


@dataclass(frozen=True)
class Arr:
    """A JSON list whose every item meets `item`."""
    item: Any = ANY


@dataclass(frozen=True)
class Schema:
    """One file: what it is (for messages), the spec of its top level, its limits, and the usual fix."""
    what: str
    root: Any
    fix: str = "delete it and rerun to rebuild it"
    max_bytes: int = MAX_BYTES
    max_depth: int = MAX_DEPTH


# ---- the specs ------------------------------------------------------------------------------------------------
# A spec is ANY, a type (str, int, bool, type(None); float means any number), a tuple of specs (one of them), an
# Obj or an Arr. bool is never an int here, although Python says it is.
NUM = (float, type(None))  # entmask writes a missing or non-finite number as null
INT = (int, type(None))
STR = (str, type(None))
BOOL = (bool, type(None))

_CURVE_POINT = Obj({"step": int, "heldout_accuracy": NUM, "heldout_loss": NUM, "unigram_accuracy": NUM,
                    "entropy_sd": NUM, "left_plateau": BOOL, "whole_rows_accuracy": NUM}, required=("step",))
_EPOCH_POINT = Obj({"epoch": float, "step": INT, "source": STR, "entropy_mean": NUM, "entropy_sd": NUM})

# One schema for the metrics.json of every stage (pretrain, reference, fine-tuning): a reader such as is_finished
# does not know the stage, and the keys they share have the same types.
_METRICS = Obj({
    **{k: STR for k in ("name", "hash", "profile", "task", "status", "strategy", "source", "self_start", "kd",
                        "device", "protocol", "split", "resumed_from", "teacher", "model_dir", "pretrained_key",
                        "paper_metric", "glue_metric", "eval_note", "kind", "precision")},
    **{k: INT for k in ("steps", "seed", "n_eval", "n_train", "n_stop", "epochs_run", "best_epoch", "num_tokens",
                        "steps_per_epoch")},
    **{k: NUM for k in ("heldout_loss", "heldout_accuracy", "unigram_accuracy", "entropy_mean", "entropy_sd",
                        "entropy_masked_mean", "entropy_maskable_mean", "paper_score", "glue_score", "eval_loss",
                        "accuracy", "f1", "mcc", "ratio", "epochs", "train_seconds", "train_seconds_total",
                        "tokens_per_s", "train_loss", "final_train_loss", "first_train_loss")},
    **{k: BOOL for k in ("frozen", "collapsed", "left_plateau", "reused", "bf16")},
    "curve": Arr(_CURVE_POINT), "epoch_entropy": Arr(_EPOCH_POINT), "wallclock_segments": Arr(Obj()),
    "val_losses": Arr(NUM), "compute": Obj(), "corpus": Obj(), "pred_distribution": Obj(),
    "early_stopping": Obj(), "reference": Obj(),
})
METRICS = Schema("a run's metrics.json (a JSON object of what the run measured)", _METRICS,
                 fix="move it aside and rerun the run to redo it")

ENTMASK_META = Schema("entmask's run metadata (entmask.json: entmask_version, config_version)",
                      Obj({"entmask_version": str, "config_version": int, "git_commit": STR},
                          required=("entmask_version", "config_version")),
                      fix="move the run folder aside, or rerun with --force")

_CFG_PARTS = ("model", "data", "masking", "kd", "train", "reference", "finetune", "experiment")
PRETRAIN_CONFIG = Schema("a pretraining run's config.json (a JSON object of the config's sections)",
                         Obj({"name": str, "profile": str, "version": int, "teacher": str,
                              **{k: Obj() for k in _CFG_PARTS}},
                             required=("version", "model", "data", "masking", "train")))
_FT_HASH_DICT = Obj({"finetune": Obj(), "task": str, "seed": int, "frozen": bool, "pretrained": str,
                     "version": int, "finetune_version": int},
                    required=("finetune", "task", "seed", "frozen", "pretrained", "version"))
FINETUNE_CONFIG = Schema("a fine-tuning run's config.json (task, seed, hash and hash_dict)",
                         Obj({"finetune": Obj(), "task": str, "seed": int, "frozen": bool, "name": str,
                              "profile": str, "pretrained_key": str, "hash": str, "hash_dict": _FT_HASH_DICT,
                              "model_dir": STR, "data_dir": STR, "bf16": bool, "device": str},
                             required=("finetune", "task", "seed", "frozen", "pretrained_key", "hash",
                                       "hash_dict")))
REFERENCE_CONFIG = Schema("a reference teacher's config.json (its recipe: reference, data, train, version)",
                          Obj({"reference": Obj(), "data": Obj(), "train": Obj(), "version": int},
                              required=("reference", "data", "version")))
CONFIGS = {"pretrain": PRETRAIN_CONFIG, "finetune": FINETUNE_CONFIG, "reference": REFERENCE_CONFIG}

WEIGHTS = Schema("a record's weights.json (the key of the weights it was exported without)",
                 Obj({"model_key": STR, "left_out": str, "how_to_use": str}, required=("model_key",)),
                 fix="export the record again")
SCORES = Schema("a reference record's scores.json (the teacher's score files it holds)",
                Obj({"teacher_key": str, "files": Arr(Obj({"path": str, "sha256": str, "bytes": int},
                                                           required=("path", "sha256", "bytes")))},
                    required=("teacher_key", "files")),
                fix="export the record again")
MANIFEST = Schema("a records manifest (a JSON object with a list of runs)",
                  Obj({"profile": ANY, "config_version": ANY, "runs": Arr(ANY)}),
                  fix="export the records again")

CURVE = Schema("a run's logs/curve.json (a list of evaluation points)", Arr(_CURVE_POINT))
EPOCHS = Schema("a run's logs/epochs.json (a list of per-epoch entropy points)", Arr(_EPOCH_POINT))
STOP = Schema("a reference's logs/stop.json (its early-stopping record)",
              Obj({"best_loss": NUM, "best_step": INT, "bad": int, "stopped_at": INT,
                   "points": Arr(Obj({"step": int, "loss": NUM, "accuracy": NUM}, required=("step",)))},
                  required=("best_loss", "best_step", "bad", "points")))
LOG_HISTORY = Schema("a run's log_history.json (a list of Trainer log entries)", Arr(Obj()))
JSON_OBJECT = Schema("a JSON object", Obj())
JSON_ANY = Schema("JSON", ANY)

# The files of an imported record, by their place in it (`stage` is the manifest's: pretrain, finetune, reference).
_RECORD_FILES = {"metrics.json": METRICS, "entmask.json": ENTMASK_META, "weights.json": WEIGHTS,
                 "logs/curve.json": CURVE, "logs/epochs.json": EPOCHS, "logs/stop.json": STOP,
                 "logs/log_history.json": LOG_HISTORY, "log_history.json": LOG_HISTORY,
                 "scores.json": SCORES, "model/config.json": JSON_OBJECT, "predictions.json": JSON_OBJECT}


def for_record_file(stage: str, rel: str, max_bytes: int) -> Schema:
    """The schema a record's file at `rel` (posix, inside the record) must meet, at most `max_bytes` large."""
    s = CONFIGS[stage] if rel == "config.json" else _RECORD_FILES.get(rel, JSON_ANY)
    return Schema(s.what, s.root, s.fix, min(s.max_bytes, max_bytes), s.max_depth)


# ---- checking -------------------------------------------------------------------------------------------------
def load(path: str | Path, schema: Schema = JSON_ANY) -> Any:
    """The JSON value in `path`, checked against `schema`; SchemaError (a one-line predicate) when the file is too
    large, not UTF-8, not JSON, nested too deep or of the wrong shape. A missing file raises FileNotFoundError as
    before (callers test for it); a folder where the file belongs is a SchemaError."""
    path = Path(path)
    if path.exists() and not path.is_file():
        raise SchemaError(f"is not a file (a folder or a device where {schema.what} belongs)")
    size = path.stat().st_size
    if size > schema.max_bytes:
        raise SchemaError(f"is {size:,} bytes, more than {schema.what} may hold ({schema.max_bytes:,})")
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise SchemaError("is corrupt (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise SchemaError(f"is corrupt ({e.msg} at line {e.lineno})") from None
    except RecursionError:  # the parser recurses once per level: nesting in the thousands ends here
        raise SchemaError(f"is not {schema.what}: it nests deeper than {schema.max_depth} levels") from None
    check(value, schema)
    return value


def check(value: Any, schema: Schema) -> Any:
    """`value` if it meets `schema` (depth first, so the shape check below never recurses deep), else SchemaError."""
    deep = _too_deep(value, schema.max_depth)
    if deep:
        raise SchemaError(f"is not {schema.what}: it nests deeper than {schema.max_depth} levels")
    problem = _problem(value, schema.root, "")
    if problem:
        raise SchemaError(f"is not {schema.what}: {problem}")
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` lists/objects, or holds more than MAX_ITEMS in one; iterative, so
    a hostile file cannot exhaust the stack here."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]  # containers only: a record's predictions are lists of thousands of scalars, skipped here
    while stack:
        v, d = stack.pop()
        if d > limit or len(v) > MAX_ITEMS:
            return True
        stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v) if isinstance(x, (dict, list)))
    return False


def _problem(value: Any, spec: Any, where: str) -> str | None:
    """What is wrong with `value` against `spec`, as a phrase naming its place (e.g. "key 'curve[2].step' is a
    string, not an integer"), or None. Recursion follows the spec, whose depth is fixed above."""
    if spec == ANY:
        return None
    if isinstance(spec, tuple):
        if any(_problem(value, s, where) is None for s in spec):
            return None
        return f"{_place(where)} is {_kind(value)}, not {' or '.join(_expected(s) for s in spec)}"
    if isinstance(spec, Obj):
        if not isinstance(value, dict):
            return f"{_place(where)} is {_kind(value)}, not an object"
        missing = [k for k in spec.required if k not in value]
        if missing:
            return f"{_place(where)} has no key {missing[0]!r}"
        for k, s in spec.fields.items():
            if k in value:
                p = _problem(value[k], s, f"{where}.{k}" if where else k)
                if p:
                    return p
        return None
    if isinstance(spec, Arr):
        if not isinstance(value, list):
            return f"{_place(where)} is {_kind(value)}, not a list"
        for i, x in enumerate(value):
            p = _problem(x, spec.item, f"{where}[{i}]")
            if p:
                return p
        return None
    return None if _is(value, spec) else f"{_place(where)} is {_kind(value)}, not {_expected(spec)}"


def _is(value: Any, typ: type) -> bool:
    if typ is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, typ)


_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null",
          dict: "an object", list: "a list"}


def _kind(value: Any) -> str:
    return "true or false" if isinstance(value, bool) else _NAMES.get(type(value), type(value).__name__)


def _expected(spec: Any) -> str:
    if isinstance(spec, Obj):
        return "an object"
    if isinstance(spec, Arr):
        return "a list"
    return _NAMES.get(spec, str(spec))


def _place(where: str) -> str:
    return f"key {where!r}" if where else "the top level"
