"""A run's weights and its record: the key that identifies a saved model's weights, and what a run's record (what
it measured, without its weights) leaves out.

A long matrix outlives its machine, so the records of its finished runs are committed and imported elsewhere
(entmask.records); a run imported from them keeps its model's weights key in weights.json, so that fine-tuning
runs and entropy caches keyed by that key are still found.

What it is not: exporting, verifying or importing records (entmask.records), or loading weights (entmask.models).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from entmask import schemas
from entmask.runs.files import RunError

# ---- run records: what a finished run measured, without its weights ------------------------------------------
# A long matrix outlives its machine: sessions end, a fresh machine has an empty runs/. The records of its finished
# runs (configs, metrics, logs, per-example predictions; a few hundred KB a run) are small enough to commit, and a
# run imported from them is found by its hash and reused like one trained here. Its weights are not in them, so
# whatever needs the weights (fine-tuning it on a task it has no record for, the memorisation scores, the weight
# analysis) says so instead of training again.
RECORD_STAGES = ("reference", "pretrain", "finetune")
RECORD_SKIP_DIRS = ("checkpoints", "epochs")  # resumable state and per-epoch models: weights, all of it
# TensorBoard event files repeat log_history.json, as binaries named by host and time (a record must be the same
# whichever machine exports it); progress.json is the live progress of a training process (its pid and clock)
RECORD_SKIP_ANYWHERE = ("tensorboard", "progress.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy")
RECORD_MAX_BYTES = 5 << 20  # a file larger than this is not a record (a few hundred KB is typical)
RECORD_FILE = "weights.json"  # in each exported run: the key of the weights it was exported without
RECORDS_MANIFEST = "records.json"


def weights_key(model_dir: str | Path) -> str:
    """A hash of a saved model's config.json and safetensors weights: the identity that fine-tuning runs and
    entropy caches are keyed by (entropy.teacher_key)."""
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


def model_key(run: str | Path) -> str | None:
    """A run's model identity: its weights' hash, or the key recorded for a run imported without weights. `run` is a
    model folder itself or a run folder holding model/ (scores written beside a run name the model they came from)."""
    run = Path(run)
    mdir = run if has_weights(run) else run / "model"
    return weights_key(mdir) if has_weights(mdir) else recorded_key(mdir)


def weightless_teacher(model_dir: str | Path) -> bool:
    """Whether `model_dir` is a reference teacher imported from records (entmask.records.scores): its record names
    its weights key, but its weights are not here; only its cached scores of the profile's rows are."""
    return not has_weights(model_dir) and recorded_key(model_dir) is not None


def no_weights_error(model_dir: str | Path, what: str, overrides: str = "") -> RunError:
    """The one line for a step that needs the weights of a teacher imported without them; `overrides` are the
    config's `--set` arguments, so that the fix builds the same teacher."""
    run = Path(model_dir).parent
    extra = f" {overrides}" if overrides else ""
    return RunError(f"{what} needs the weights of the teacher {run.name}, which was imported from records without "
                    f"them (its record holds only its scores of the profile's own train rows): build a teacher here "
                    f"with `entmask reference --profile {run.parent.parent.name}{extra} --force` (a new teacher: its "
                    f"weights key, and so the masks, may differ from the recorded runs')")

