"""The GLUE examples a fine-tuning run uses: the same seeded subsamples and splits for every model and seed.

What it is: `task_data` (train subsampled to max_train, the early-stopping slice carved from it under the
`heldout` protocol or validation itself under `paper`, the reported split subsampled to max_eval), `TaskData`,
`TaskAbsent` and `absent_reason` (a task with no data offline is reported as absent, never faked; a task without
a train split, QNLI in the mirror, is trained on a seeded 80% of validation and says so), `majority_row` (the
majority-class baseline row of the paper's tables, on the full reported split), and tokenization:
`truncated_share` (what max_len cuts) and `_encode` (a datasets.Dataset, unpadded).

What it is not: no training and no scores (entmask.glue_training, entmask.glue_metrics); the parquet mirror and the
hub are entmask.data's.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import datasets
import numpy as np

from entmask.config import FinetuneConfig
from entmask.data import GLUE, TASKS, DataError, load_glue_split, mirror_dir, mirror_name
from entmask.glue_metrics import majority_scores

SUBSAMPLE_SEED = 0  # fixed: every model and every fine-tuning seed sees the same examples
NO_TRAIN_NOTE = "{task}: train missing offline; trained and evaluated on a seeded split of validation"
QNLI_NOTE = NO_TRAIN_NOTE.format(task="qnli")  # the one task the mirror has without train
NO_TRAIN_SHARE = 0.8  # the share of validation used as training data when a task's train split is missing


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
    cols = TASKS[task]["text"]
    ds = datasets.Dataset.from_pandas(df[cols + ["label"]].reset_index(drop=True), preserve_index=False)

    def tokenize(batch):
        # Sentence pairs go in as two segments (token_type_ids 0/1), as BERT was fine-tuned on GLUE.
        return tok(*[batch[c] for c in cols], truncation=True, max_length=max_len)

    # In memory, nothing is cached, so a fresh fingerprint spares datasets from hashing the tokenizer (~0.3 s).
    return ds.map(tokenize, batched=True, remove_columns=cols, desc=f"tokenize {task}",
                  new_fingerprint=uuid.uuid4().hex)
