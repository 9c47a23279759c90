"""Scores of GLUE predictions, the majority-class baseline, and the early-stopping rule, as pure functions.

What it is: `classification_metrics` (accuracy, f1, mcc by scikit-learn, and the task's paper and GLUE scores x100),
`prediction_summary` (the share of each predicted class, and whether the classifier collapsed onto one),
`majority_label` / `majority_scores` (always predicting the most frequent training label) and `early_stop_epoch`
(HF's EarlyStoppingCallback decision on a curve of validation losses, so a run's stop can be checked).

What it is not: nothing here loads data or trains (entmask.glue_data, entmask.glue_training); no statistics across
runs (entmask.analysis).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from entmask.data import TASKS, DataError

COLLAPSE_SHARE = 0.95  # predictions this concentrated on one class count as a collapsed classifier


# ---- metrics ---------------------------------------------------------------------------------------------------
def _metric(name: str, y_true, y_pred) -> float:
    """One metric as a fraction, by scikit-learn. f1 is binary with positive class 1 (macro beyond 2 classes)."""
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
