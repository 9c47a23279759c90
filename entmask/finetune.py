"""GLUE fine-tuning of a pretrained student (the paper's §3 evaluation) and the frozen-encoder probe (§3.3).

What it is: `finetune_task` (one task, one seed: a BertForSequenceClassification initialised from a saved
BertForMaskedLM, trained with the HF Trainer, early stopping on the validation loss, its run folder reused by
hash), `finetune_all` (tasks x seeds), `task_data` (the seeded subsamples and splits every model sees),
`classification_metrics` (scikit-learn only), `majority_row` (the majority-class baseline row of the paper's
tables) and `early_stop_epoch` (the early-stopping decision as a pure function, equal to HF's callback).

Protocols (`FinetuneConfig.protocol`):
    heldout  early stopping on a seeded slice (heldout_fraction) carved from the training data; the official
             validation split is reported and never seen during training or model selection.
    paper    early stopping on the validation loss; validation is reported at the best checkpoint (the paper's
             protocol, which selects on the split it reports).

Offline gaps: a task with no data at all (QQP, MNLI in the mirror) returns {"status": "absent", ...} and writes
nothing; a task whose train split is missing (QNLI) is trained and reported on a seeded 80/20 split of validation
and says so in `eval_note`. A split that is there but holds no examples is refused (DataError) before training.

Run folder `runs/<profile>/finetune/<task>/<name>-<hash>/`: config.json, entmask.json, head_init.safetensors
(the initial pooler/classifier, which have no pretrained counterpart: the weight analysis compares against it),
model/ (the fine-tuned classifier, safetensors), log_history.json, predictions.json and metrics.json, written
last. Checkpoints (with optimizer, scheduler and RNG state) live in checkpoints/ during training, one per epoch,
and are deleted after success; an interrupted run resumes from its last complete checkpoint and reaches the same
metrics as an uninterrupted one (tests/test_faults.py kills one with SIGKILL to show it).

The parts live in their own modules, each saying what it is and is not; every name they define is re-exported
here, so `from entmask.finetune import task_data` and the like keep working:
    glue_metrics   classification_metrics, prediction_summary, majority_scores, early_stop_epoch
    glue_data      task_data, TaskData, TaskAbsent, absent_reason, majority_row, truncated_share, _encode
    glue_training  _train_and_report (the Trainer run inside a run folder), _assert_encoder_unchanged
This module keeps the run's identity (finetune_hash_dict), its checks and the finding/locking/reuse by hash.

What it is not: no plotting and no statistics across runs (see `entmask.analysis`).
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import torch

from entmask import __version__, runs, schemas
from entmask.config import CONFIG_VERSION, FinetuneConfig, stable_hash
from entmask.models import ModelError, check_folder_config, check_safetensors
from entmask.run_log import say_run
from entmask.training_run import use_bf16

# Re-exported: the names finetune.py defined before it was split (the modules say what each part is).
from entmask.glue_metrics import (  # noqa: F401
    COLLAPSE_SHARE, _metric, classification_metrics, early_stop_epoch, majority_label, majority_scores,
    prediction_summary,
)
from entmask.glue_data import (  # noqa: F401
    NO_TRAIN_NOTE, NO_TRAIN_SHARE, QNLI_NOTE, SUBSAMPLE_SEED, TaskAbsent, TaskData, _carve, _encode, _labelled,
    _nonempty, _raw_splits, _subsample, absent_reason, majority_row, task_data, truncated_share,
)
from entmask.glue_training import (  # noqa: F401
    _assert_encoder_unchanged, _load_state, _train_and_report, _train_and_report_inner,
)

FINETUNE_VERSION = 1  # bump when the protocol's code changes results, so old run folders are not reused
# Fields of FinetuneConfig that do not change one (task, seed) run: which runs exist, and the bootstrap size.
UNHASHED_FIELDS = ("tasks", "seeds", "bootstrap")


# ---- run identity --------------------------------------------------------------------------------------------
def finetune_hash_dict(cfg: FinetuneConfig, task: str, seed: int, frozen: bool, pretrained_key: str) -> dict:
    d = dataclasses.asdict(cfg)
    for k in UNHASHED_FIELDS:
        d.pop(k, None)
    return {"finetune": d, "task": task, "seed": int(seed), "frozen": bool(frozen), "pretrained": pretrained_key,
            "version": CONFIG_VERSION, "finetune_version": FINETUNE_VERSION}


def _check_model_dir(model_dir: Path, trust_remote_code: bool = False) -> None:
    if not (model_dir / "config.json").exists() or not list(model_dir.glob("*.safetensors")):
        raise ModelError(f"{model_dir} is not a saved model (needs config.json and *.safetensors); give the "
                         f"model/ folder of a pretraining run, written by save_pretrained")
    check_folder_config(model_dir, "finetune", trust_remote_code)
    check_safetensors(model_dir, "finetune")


def _resolve_bf16(precision: str) -> bool:
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"finetune.precision={precision!r} is not valid; choose auto, bf16 or fp32")
    if precision == "bf16":
        return True
    # auto: CUDA with bf16, or a CPU that runs bf16 natively (AVX512-BF16/AMX), as pretraining decides it. cpu-long
    # names fp32, so its records keep their meaning; smoke's and tiny's fp32 runs are found again with
    # --set finetune.precision=fp32 (the precision is in a fine-tuning run's hash as written: auto | bf16 | fp32).
    return precision == "auto" and use_bf16("auto")


# ---- one run -------------------------------------------------------------------------------------------------
def finetune_task(model_dir, task: str, cfg: FinetuneConfig, seed: int, *, profile: str, name: str,
                  data_dir: str | None = None, root=None, frozen: bool = False, force: bool = False,
                  progress: bool = True, train: bool = True) -> dict:
    """Fine-tune (or, frozen=True, probe) the model in `model_dir` on one GLUE task; return its metrics.

    A finished run with the same hash is reused (its metrics returned, with "reused": True) unless force=True.
    A task whose data are absent returns {"task", "status": "absent", "reason"} and writes nothing.
    train=False trains nothing and takes no lock (a report while another process trains): an unfinished run
    returns {"task", "seed", "frozen", "status": "not finished"}.
    """
    model_dir = Path(model_dir)
    weights = runs.has_weights(model_dir)
    # a pretraining run imported from records (records.import_records) has no weights, only their key: its finished
    # fine-tuning runs are still found by it
    recorded = None if weights else runs.recorded_key(model_dir)
    if recorded is None:
        if not weights and (model_dir.parent / runs.RECORD_FILE).is_file():
            raise ModelError(f"{model_dir.parent} was imported from run records, but its {runs.RECORD_FILE} names "
                             f"no weights key, so its fine-tuning runs cannot be found: export its record again from "
                             f"the machine that has its weights")
        _check_model_dir(model_dir)
    pkey = recorded or runs.weights_key(model_dir)
    hdict = finetune_hash_dict(cfg, task, seed, frozen, pkey)
    h = stable_hash(hdict)
    parent = runs.stage_dir(profile, f"finetune/{task}", root)
    if not train:  # read only: no data loaded for a finished run, no lock, nothing repaired
        run = runs.find_run(parent, h)
        found = runs.finished_metrics(run) if run is not None else None
        if found is not None:
            runs.check_version(run)
            return {**found, "reused": True, "run_dir": str(run)}
    try:
        data = task_data(task, cfg, data_dir)
    except TaskAbsent as e:  # other DataErrors (too few examples, unlabelled split) are real errors
        return {"task": task, "seed": int(seed), "frozen": bool(frozen), "status": "absent", "reason": str(e)}
    if not train:
        return {"task": task, "seed": int(seed), "frozen": bool(frozen), "status": "not finished"}
    with runs.locked(parent / f".{h}"):
        run = runs.run_dir_for(parent, f"{name}-frozen" if frozen else name, h)
        if runs.is_finished(run) and not force:
            runs.check_version(run)
            out = runs.read_json(run / "metrics.json", schemas.METRICS)
            say_run(f"finetune {task}", f"{run.name} (seed {seed}{', frozen' if frozen else ''})", "reused", out)
            out.update(reused=True, run_dir=str(run))
            return out
        if not weights:
            why = ("--force retrains it" if force and runs.is_finished(run) else
                   f"its {task} seed {seed}{' frozen' if frozen else ''} fine-tuning has no record")
            raise ModelError(f"{model_dir.parent.name} was imported from run records without its weights, and "
                             f"{why}: "
                             f"import records that hold it, or retrain the pretraining run (entmask pretrain ... "
                             f"--force) to fine-tune it here")
        # A restart keeps its checkpoints (to resume from); force keeps nothing.
        for stale in ("metrics.json", "model") + (("checkpoints",) if force else ()):
            p = run / stale
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
        run.mkdir(parents=True, exist_ok=True)
        runs.write_meta(run)
        bf16 = _resolve_bf16(cfg.precision)
        runs.write_json(run / "config.json", {
            "finetune": dataclasses.asdict(cfg), "task": task, "seed": int(seed), "frozen": bool(frozen),
            "name": name, "profile": profile, "model_dir": str(model_dir), "pretrained_key": pkey, "hash": h,
            "hash_dict": hdict, "data_dir": data_dir, "bf16": bf16,
            "device": "cuda" if torch.cuda.is_available() else "cpu"})
        metrics = _train_and_report(model_dir, data, cfg, seed, run, frozen=frozen, bf16=bf16, progress=progress)
        metrics.update(task=task, seed=int(seed), frozen=bool(frozen), name=name, profile=profile,
                       protocol=cfg.protocol, model_dir=str(model_dir), pretrained_key=pkey, hash=h,
                       entmask_version=__version__, git_commit=runs.git_commit())
        runs.write_json(run / "metrics.json", metrics)  # last: marks the run finished
    say_run(f"finetune {task}", f"{run.name} (seed {seed}{', frozen' if frozen else ''})", "trained", metrics)
    metrics.update(reused=False, run_dir=str(run))
    return metrics


def finetune_all(model_dir, cfg: FinetuneConfig, *, profile: str, name: str, data_dir: str | None = None,
                 root=None, frozen: bool = False, progress: bool = True, train: bool = True) -> list[dict]:
    """finetune_task over cfg.tasks x cfg.seeds (absent tasks included as status 'absent' rows)."""
    out = []
    for task in cfg.tasks:
        for seed in cfg.seeds:
            out.append(finetune_task(model_dir, task, cfg, seed, profile=profile, name=name, data_dir=data_dir,
                                     root=root, frozen=frozen, progress=progress, train=train))
    return out
