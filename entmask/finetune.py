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

What it is not: no plotting and no statistics across runs (see `entmask.analysis`).
"""
from __future__ import annotations

import dataclasses
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from entmask import __version__, runs, schemas
from entmask.config import CONFIG_VERSION, FinetuneConfig, stable_hash
from entmask.data import TASKS, DataError, load_glue_split, load_tokenizer

FINETUNE_VERSION = 1  # bump when the protocol's code changes results, so old run folders are not reused
SUBSAMPLE_SEED = 0  # fixed: every model and every fine-tuning seed sees the same examples
NO_TRAIN_NOTE = "{task}: train missing offline; trained and evaluated on a seeded split of validation"
QNLI_NOTE = NO_TRAIN_NOTE.format(task="qnli")  # the one task the mirror has without train
NO_TRAIN_SHARE = 0.8  # the share of validation used as training data when a task's train split is missing
COLLAPSE_SHARE = 0.95  # predictions this concentrated on one class count as a collapsed classifier
# Fields of FinetuneConfig that do not change one (task, seed) run: which runs exist, and the bootstrap size.
UNHASHED_FIELDS = ("tasks", "seeds", "bootstrap")


# ---- metrics ---------------------------------------------------------------------------------------------------
def _metric(name: str, y_true, y_pred) -> float:
    """One metric as a fraction, by scikit-learn. f1 is binary with positive class 1 (macro beyond 2 classes)."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if name == "accuracy":
        return float(accuracy_score(y_true, y_pred))
    if name == "f1":
        binary = set(np.unique(y_true)) | set(np.unique(y_pred)) <= {0, 1}
        # zero_division=0: a classifier that never predicts class 1 scores 0 (sklearn's value, without the warning)
        if binary:
            return float(f1_score(y_true, y_pred, average="binary", pos_label=1, zero_division=0))
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    if name == "mcc":
        return float(matthews_corrcoef(y_true, y_pred))
    raise ValueError(f"unknown metric {name!r}; choose accuracy, f1 or mcc")


def classification_metrics(y_true, y_pred, task: str) -> dict:
    """accuracy, f1, mcc (fractions) and the task's paper_score and glue_score (x100), all by scikit-learn."""
    if task not in TASKS:
        raise DataError(f"unknown GLUE task {task!r}; choose one of {', '.join(TASKS)}")
    spec = TASKS[task]
    out = {m: _metric(m, y_true, y_pred) for m in ("accuracy", "f1", "mcc")}
    out["paper_metric"] = spec["paper_metric"]
    out["glue_metric"] = spec["glue_metric"]
    out["paper_score"] = 100.0 * out[spec["paper_metric"]]
    out["glue_score"] = 100.0 * out[spec["glue_metric"]]
    return out


def prediction_summary(y_pred, num_labels: int) -> dict:
    """Share of each predicted class and whether the classifier collapsed onto one class."""
    y_pred = np.asarray(y_pred, dtype=np.int64)
    counts = np.bincount(y_pred, minlength=num_labels) if y_pred.size else np.zeros(num_labels, dtype=np.int64)
    shares = counts / max(1, y_pred.size)
    return {"pred_distribution": {str(k): float(s) for k, s in enumerate(shares)},
            "collapsed": bool(y_pred.size and shares.max() >= COLLAPSE_SHARE)}


def majority_label(train_labels) -> int:
    """The most frequent training label (ties go to the smaller label, as np.bincount().argmax())."""
    labels = np.asarray(train_labels, dtype=np.int64)
    if labels.size == 0:
        raise DataError("no training labels to take a majority class from; check max_train and the data")
    return int(np.bincount(labels).argmax())


def majority_scores(train_labels, eval_labels, task: str) -> dict:
    """Scores of always predicting the most frequent training label on the reported split."""
    lab = majority_label(train_labels)
    m = classification_metrics(eval_labels, np.full(len(eval_labels), lab), task)
    return {"majority_label": lab, "majority_paper_score": m["paper_score"], "majority_glue_score": m["glue_score"]}


# ---- early stopping ------------------------------------------------------------------------------------------
def early_stop_epoch(val_losses: list[float], patience: int) -> tuple[int | None, int]:
    """(best_epoch, stop_epoch), 1-based, of HF's EarlyStoppingCallback on a curve of validation losses.

    The callback counts evaluations since the last *strict* improvement over the best loss so far (equal is not
    better, threshold 0) and stops training after the evaluation where that count reaches `patience`. The first
    evaluation never counts against patience. If the count never reaches `patience`, training stops at the end of
    the curve (the epoch cap). `best_epoch` is the first epoch of the lowest loss: the checkpoint
    `load_best_model_at_end` restores (None only if no loss is a number). NaN never improves, as in HF (np.less).
    """
    if patience < 1:
        raise ValueError(f"patience={patience} must be at least 1")
    if not val_losses:
        raise ValueError("early_stop_epoch needs at least one validation loss")
    best, best_epoch, count = float("inf"), None, 0
    for epoch, loss in enumerate(val_losses, start=1):
        # HF order: the callback compares with the best of *earlier* evaluations, then the Trainer updates the best.
        if epoch == 1 or loss < best:
            count = 0
        else:
            count += 1
        if loss < best:
            best, best_epoch = loss, epoch
        if count >= patience:
            return best_epoch, epoch
    return best_epoch, len(val_losses)


# ---- data ----------------------------------------------------------------------------------------------------
class TaskAbsent(DataError):
    """The task's data cannot be had at all (QQP and MNLI offline): reported as status 'absent', never faked."""


@dataclass
class TaskData:
    """The examples one fine-tuning run uses; the same for every model and seed (seeded with SUBSAMPLE_SEED)."""

    task: str
    train: object  # DataFrame the classifier is trained on
    stop: object  # DataFrame whose loss drives early stopping (validation itself under `paper`)
    eval: object  # DataFrame of the reported split
    eval_split: str  # the reported split's name
    note: str | None = None  # set when the data deviate from the protocol (QNLI offline)


def _subsample(df, k: int | None, seed: int = SUBSAMPLE_SEED):
    if k is None or k >= len(df):
        return df.reset_index(drop=True)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(df), size=k, replace=False))  # sorted: keeps the split's own order
    return df.iloc[keep].reset_index(drop=True)


def _carve(df, fraction: float, seed: int = SUBSAMPLE_SEED):
    """(rest, slice) with round(fraction * n) rows (at least 1) in the slice, chosen with a seeded permutation."""
    if not 0 < fraction < 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1), e.g. finetune.heldout_fraction=0.1")
    n = len(df)
    n_slice = max(1, int(round(n * fraction)))
    if n - n_slice < 1:
        raise DataError(f"{n} examples are too few to carve a {fraction:.0%} slice; raise finetune.max_train")
    perm = np.random.default_rng(seed).permutation(n)
    return (df.iloc[np.sort(perm[n_slice:])].reset_index(drop=True),
            df.iloc[np.sort(perm[:n_slice])].reset_index(drop=True))


def _labelled(df, task: str, split: str):
    if "label" not in df.columns or (df["label"] < 0).any():
        raise DataError(f"{task} split {split!r} has no gold labels (GLUE test splits carry -1); report a "
                        f"labelled split")
    return df


def _nonempty(df, task: str, split: str, data_dir: str | None):
    """`df`, unless the split holds no examples: that would train on nothing or end in scikit-learn on an empty
    evaluation after training, so it is refused before anything trains (one line naming the file)."""
    if len(df):
        return df
    from entmask.data import GLUE, mirror_dir, mirror_name

    root = mirror_dir(data_dir)
    where = root / mirror_name(GLUE) / task / f"{split}.parquet" if root else f"the hub's {GLUE}/{task}"
    raise DataError(f"{task} split {split!r} holds no examples ({where}); restore the file (the mirror's "
                    f"MANIFEST.md lists each file's sha256) or drop {task} from finetune.tasks / --tasks")


def _raw_splits(task: str, data_dir: str | None):
    """(train, eval, eval_split, note) before subsampling; TaskAbsent when the task cannot be had at all.

    A task with validation but no train (QNLI offline) is trained on a seeded 80% of validation and reported on
    the other 20%, and says so in `note`.
    """
    if task not in TASKS:
        raise DataError(f"unknown GLUE task {task!r}; choose one of {', '.join(TASKS)}")
    eval_split = TASKS[task]["eval_split"]
    try:
        train = load_glue_split(task, "train", data_dir)
    except DataError as missing_train:
        try:
            evaluation = load_glue_split(task, eval_split, data_dir)
        except DataError:
            raise TaskAbsent(str(missing_train)) from None  # entirely absent: say so by its train split
        evaluation = _nonempty(evaluation, task, eval_split, data_dir)
        rest, held = _carve(_labelled(evaluation, task, eval_split), 1 - NO_TRAIN_SHARE)
        return rest, held, f"{eval_split}[seeded {1 - NO_TRAIN_SHARE:.0%}]", NO_TRAIN_NOTE.format(task=task)
    try:
        evaluation = load_glue_split(task, eval_split, data_dir)
    except DataError as e:
        raise TaskAbsent(str(e)) from None  # nothing to report on
    train, evaluation = _nonempty(train, task, "train", data_dir), _nonempty(evaluation, task, eval_split, data_dir)
    return _labelled(train, task, "train"), _labelled(evaluation, task, eval_split), eval_split, None


def absent_reason(task: str, data_dir: str | None = None) -> str | None:
    """Why `task` has no data here (it would be reported as 'absent'), or None when it has; trains nothing. A split
    that is there but unusable (empty, unlabelled) raises its DataError instead."""
    try:
        _raw_splits(task, data_dir)
    except TaskAbsent as e:
        return str(e)
    return None


def task_data(task: str, cfg: FinetuneConfig, data_dir: str | None = None) -> TaskData:
    """Subsample train to max_train, then (heldout) carve the early-stopping slice from it; eval to max_eval."""
    if cfg.protocol not in ("heldout", "paper"):
        raise ValueError(f"finetune.protocol={cfg.protocol!r} is not valid; choose heldout or paper")
    train, evaluation, eval_split, note = _raw_splits(task, data_dir)
    train = _subsample(train, cfg.max_train)
    evaluation = _subsample(evaluation, cfg.max_eval)
    if cfg.protocol == "heldout":
        train, stop = _carve(train, cfg.heldout_fraction)
    else:
        stop = evaluation
    return TaskData(task, train, stop, evaluation, eval_split, note)


def majority_row(task: str, data_dir: str | None = None) -> dict:
    """The majority-class baseline on the full reported split (most frequent train label), as the paper's row.

    CoLA validation accuracy 69.13 and MRPC validation F1 81.22 come out of this exactly (after rounding).
    """
    try:
        train, evaluation, eval_split, note = _raw_splits(task, data_dir)
    except TaskAbsent as e:
        return {"task": task, "status": "absent", "reason": str(e)}
    m = majority_scores(train["label"], evaluation["label"], task)
    row = {"task": task, "status": "ok", "split": eval_split, "n_eval": len(evaluation),
           "paper_metric": TASKS[task]["paper_metric"], "glue_metric": TASKS[task]["glue_metric"],
           "majority_label": m["majority_label"], "paper_score": m["majority_paper_score"],
           "glue_score": m["majority_glue_score"]}
    if note:
        row["eval_note"] = note
    return row


def truncated_share(df, tok, task: str, max_len: int) -> float:
    """The share of `df`'s examples longer than max_len wordpieces ([CLS]/[SEP] included): what truncation cuts.
    Every table reports it per task: at length 32, 95% of MRPC's validation pairs lost their ends."""
    if not len(df):
        return 0.0
    cols = TASKS[task]["text"]
    enc = tok(*[df[c].astype(str).tolist() for c in cols], truncation=False)["input_ids"]
    return float(sum(len(x) > max_len for x in enc) / len(enc))


def _encode(df, tok, task: str, max_len: int):
    """A datasets.Dataset of input_ids/attention_mask/token_type_ids/label, truncated to max_len, unpadded."""
    import datasets

    cols = TASKS[task]["text"]
    ds = datasets.Dataset.from_pandas(df[cols + ["label"]].reset_index(drop=True), preserve_index=False)

    def tokenize(batch):
        # Sentence pairs go in as two segments (token_type_ids 0/1), as BERT was fine-tuned on GLUE.
        return tok(*[batch[c] for c in cols], truncation=True, max_length=max_len)

    # In memory, nothing is cached, so a fresh fingerprint spares datasets from hashing the tokenizer (~0.3 s).
    return ds.map(tokenize, batched=True, remove_columns=cols, desc=f"tokenize {task}",
                  new_fingerprint=uuid.uuid4().hex)


# ---- run identity --------------------------------------------------------------------------------------------
def finetune_hash_dict(cfg: FinetuneConfig, task: str, seed: int, frozen: bool, pretrained_key: str) -> dict:
    d = dataclasses.asdict(cfg)
    for k in UNHASHED_FIELDS:
        d.pop(k, None)
    return {"finetune": d, "task": task, "seed": int(seed), "frozen": bool(frozen), "pretrained": pretrained_key,
            "version": CONFIG_VERSION, "finetune_version": FINETUNE_VERSION}


def _check_model_dir(model_dir: Path, trust_remote_code: bool = False) -> None:
    from entmask.models import ModelError, check_folder_config, check_safetensors

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
    # auto: CUDA with bf16, or a CPU that runs bf16 natively (AVX512-BF16/AMX), as pretraining decides it. The
    # CPU profiles that fine-tuned before this (smoke, tiny, cpu-long) name fp32, so their records keep their meaning.
    from entmask.pretrain import use_bf16

    return precision == "auto" and use_bf16("auto")


def _load_state(model_dir: Path) -> dict:
    """The pretrained tensors, by safetensors (never pickle)."""
    from safetensors.torch import load_file

    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    return state


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
    from entmask.models import ModelError

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
    if progress:
        print(f"entmask finetune {task} seed {seed}{' (frozen)' if frozen else ''}: {metrics['paper_metric']} "
              f"{metrics['paper_score']:.2f} (majority {metrics['majority_paper_score']:.2f}), "
              f"{metrics['epochs_run']} epoch(s), {metrics['train_seconds']:.0f}s -> {run}")
    metrics.update(reused=False, run_dir=str(run))
    return metrics


def _train_and_report(model_dir: Path, data: TaskData, cfg: FinetuneConfig, seed: int, run: Path, *,
                      frozen: bool, bf16: bool, progress: bool) -> dict:
    from entmask.models import _quiet_transformers, transformers_bars

    _quiet_transformers()
    with transformers_bars(progress):
        return _train_and_report_inner(model_dir, data, cfg, seed, run, frozen=frozen, bf16=bf16, progress=progress)


def _train_and_report_inner(model_dir: Path, data: TaskData, cfg: FinetuneConfig, seed: int, run: Path, *,
                            frozen: bool, bf16: bool, progress: bool) -> dict:
    import datasets
    from safetensors.torch import save_file
    from transformers import (BertForSequenceClassification, DataCollatorWithPadding, EarlyStoppingCallback,
                              Trainer, TrainingArguments, set_seed)
    from transformers.trainer_callback import PrinterCallback

    from entmask.models import ModelError
    from entmask.pretrain import FailpointCallback, last_complete_checkpoint

    task = data.task
    num_labels = TASKS[task]["num_labels"]
    tok = load_tokenizer(str(model_dir))

    bars = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        train_ds = _encode(data.train, tok, task, cfg.max_len)
        stop_ds = _encode(data.stop, tok, task, cfg.max_len)
        eval_ds = stop_ds if data.stop is data.eval else _encode(data.eval, tok, task, cfg.max_len)
    finally:
        if bars:
            datasets.enable_progress_bars()

    set_seed(seed)  # the classifier's (and pooler's) initialisation, before the model is built
    model, info = BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=num_labels,
                                                                output_loading_info=True, use_safetensors=True,
                                                                trust_remote_code=False)
    fresh = sorted(info.get("missing_keys", []))
    if any(not k.startswith(("classifier.", "bert.pooler.")) for k in fresh):
        bad = [k for k in fresh if not k.startswith(("classifier.", "bert.pooler."))]
        raise ModelError(f"{model_dir} lacks {len(bad)} encoder weights (e.g. {bad[0]}); give a BertForMaskedLM "
                         f"folder written by save_pretrained")
    if len(tok) > model.config.vocab_size:
        raise ModelError(f"{model_dir}: tokenizer has {len(tok)} tokens but the model {model.config.vocab_size}; "
                         f"save the pretraining tokenizer beside the model")
    params = dict(model.named_parameters())
    # A MaskedLM has no pooler and no classifier: they start random, so keep their start for the weight analysis.
    head_init = {k: params[k].detach().cpu().clone().contiguous() for k in fresh if k in params}
    save_file(head_init, str(run / "head_init.safetensors"))

    if frozen:
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith("classifier."))  # embeddings, encoder and pooler frozen

    cuda = torch.cuda.is_available()
    common = dict(output_dir=str(run / "checkpoints"), learning_rate=cfg.lr,
                  per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
                  logging_strategy="epoch", seed=seed, bf16=bf16, use_cpu=not cuda, report_to=[],
                  disable_tqdm=not progress, dataloader_num_workers=0)
    if frozen:
        # The probe trains exactly frozen_epochs epochs: no early stopping, no model selection.
        args = TrainingArguments(num_train_epochs=cfg.frozen_epochs, eval_strategy="no", save_strategy="no",
                                 **common)
        callbacks = []
    else:
        args = TrainingArguments(num_train_epochs=cfg.epochs, eval_strategy="epoch", save_strategy="epoch",
                                 save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="eval_loss",
                                 greater_is_better=False, **common)
        callbacks = [EarlyStoppingCallback(early_stopping_patience=cfg.patience)]
    callbacks.append(FailpointCallback("finetune-step"))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=None if frozen else stop_ds,
                      processing_class=tok, data_collator=DataCollatorWithPadding(tok), callbacks=callbacks)
    if not progress:
        trainer.remove_callback(PrinterCallback)  # with tqdm off, it would print every log dict instead
    last = None if frozen else last_complete_checkpoint(run / "checkpoints")
    if last and progress:
        print(f"entmask: resuming {task} seed {seed} from {Path(last).name}")
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=last)
    train_seconds = time.perf_counter() - t0
    model = trainer.model

    out: dict = {"resumed_from": Path(last).name if last else None, "status": "ok", "split": data.eval_split,
                 "n_train": len(data.train), "n_eval": len(data.eval),
                 "n_stop": 0 if frozen else len(data.stop), "train_seconds": train_seconds, "bf16": bf16,
                 "precision": "bf16" if bf16 else "fp32", "max_len": cfg.max_len,
                 "eval_truncated": truncated_share(data.eval, tok, task, cfg.max_len),
                 "stop_set": None if frozen else ("heldout-train-slice" if cfg.protocol == "heldout"
                                                  else data.eval_split)}
    if data.note:
        out["eval_note"] = data.note
    history = trainer.state.log_history
    if frozen:
        out.update(epochs_run=cfg.frozen_epochs, best_epoch=None, stop_epoch=cfg.frozen_epochs, val_losses=[])
        out["encoder_unchanged"] = _assert_encoder_unchanged(model, _load_state(model_dir), head_init)
    else:
        val_losses = [float(e["eval_loss"]) for e in history if "eval_loss" in e]
        best, stop = early_stop_epoch(val_losses, cfg.patience)
        by_step = {e["step"]: e.get("epoch") for e in history if "eval_loss" in e}
        hf_best = by_step.get(trainer.state.best_global_step)
        hf_best = None if hf_best is None else int(round(hf_best))
        out.update(epochs_run=len(val_losses), best_epoch=best, stop_epoch=stop, val_losses=val_losses,
                   hf_best_epoch=hf_best, early_stop_agrees=bool(best == hf_best and stop == len(val_losses)))

    pred = trainer.predict(eval_ds)
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions  # [N, K]
    y_pred = np.asarray(logits).argmax(-1).astype(np.int64)  # [N]
    y_true = np.asarray(data.eval["label"], dtype=np.int64)  # [N]
    out["eval_loss"] = float(pred.metrics.get("test_loss", float("nan")))
    out.update(classification_metrics(y_true, y_pred, task))
    out.update(majority_scores(data.train["label"], y_true, task))
    out.update(prediction_summary(y_pred, num_labels))

    runs.write_json(run / "predictions.json", {
        "task": task, "split": data.eval_split, "idx": [int(i) for i in data.eval["idx"]],
        "y_true": y_true.tolist(), "y_pred": y_pred.tolist()})
    out["predictions_file"] = "predictions.json"
    runs.write_json(run / "log_history.json", history)
    model.save_pretrained(str(run / "model"))  # safetensors; the weight analysis compares it with model_dir
    tok.save_pretrained(str(run / "model"))
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    return out


def _assert_encoder_unchanged(model, pretrained: dict, head_init: dict) -> bool:
    """Every non-classifier parameter bitwise equal to where it started (pretrained, or init for the pooler).

    Parameters, not activations, are compared, so dropout during training plays no part.
    """
    changed, checked = [], 0
    for n, p in model.named_parameters():
        if n.startswith("classifier."):
            continue
        ref = pretrained.get(n, head_init.get(n))
        if ref is None:
            raise RuntimeError(f"frozen probe: {n} has neither a pretrained nor an initial value to compare with")
        checked += 1
        if not torch.equal(p.detach().cpu(), ref.to(p.dtype)):
            changed.append(n)
    if changed:
        raise RuntimeError(f"frozen probe changed {len(changed)} of {checked} frozen tensors (e.g. {changed[0]}); "
                           f"the encoder must stay bitwise equal to the pretrained one")
    return True


def finetune_all(model_dir, cfg: FinetuneConfig, *, profile: str, name: str, data_dir: str | None = None,
                 root=None, frozen: bool = False, progress: bool = True, train: bool = True) -> list[dict]:
    """finetune_task over cfg.tasks x cfg.seeds (absent tasks included as status 'absent' rows)."""
    out = []
    for task in cfg.tasks:
        for seed in cfg.seeds:
            out.append(finetune_task(model_dir, task, cfg, seed, profile=profile, name=name, data_dir=data_dir,
                                     root=root, frozen=frozen, progress=progress, train=train))
    return out
