"""GLUE as data: the task table (text columns, classes, the split reported, the paper's metric and GLUE's) and
loading one split.

What it is: `GLUE` (the hub name), `TASKS`, `load_glue_split` and `glue_train_text` (the training sentences of
every task, as extra pretraining text).

What it is not: no fine-tuning, metrics or scoring (`entmask.finetune`).
"""
from __future__ import annotations

from entmask.data_sources import DataError, load_split


GLUE = "nyu-mll/glue"
# text columns, classes, the split reported, the paper's metric (deduced from its majority-class rows) and GLUE's
TASKS: dict[str, dict] = {
    "cola": {"text": ["sentence"], "num_labels": 2, "eval_split": "validation", "paper_metric": "accuracy",
             "glue_metric": "mcc"},
    "mrpc": {"text": ["sentence1", "sentence2"], "num_labels": 2, "eval_split": "validation", "paper_metric": "f1",
             "glue_metric": "f1"},
    "qnli": {"text": ["question", "sentence"], "num_labels": 2, "eval_split": "validation",
             "paper_metric": "accuracy", "glue_metric": "accuracy"},
    "qqp": {"text": ["question1", "question2"], "num_labels": 2, "eval_split": "validation", "paper_metric": "accuracy",
            "glue_metric": "f1"},
    "rte": {"text": ["sentence1", "sentence2"], "num_labels": 2, "eval_split": "validation",
            "paper_metric": "accuracy", "glue_metric": "accuracy"},
    "sst2": {"text": ["sentence"], "num_labels": 2, "eval_split": "validation", "paper_metric": "accuracy",
             "glue_metric": "accuracy"},
    # The paper's MNLI majority row (35.22) is the majority rate of validation_mismatched.
    "mnli": {"text": ["premise", "hypothesis"], "num_labels": 3, "eval_split": "validation_mismatched",
             "paper_metric": "accuracy", "glue_metric": "accuracy"},
}


def load_glue_split(task: str, split: str, data_dir: str | None = None):
    """One GLUE split as a DataFrame (columns per TASKS, `label`, `idx`), from the mirror or the hub."""
    if task not in TASKS:
        raise DataError(f"unknown GLUE task {task!r}; choose one of {', '.join(TASKS)}")
    return load_split(GLUE, task, split, data_dir)


def glue_train_text(data_dir: str | None) -> list[str]:
    """GLUE *training* sentences as extra pretraining text (validation splits are evaluated, so never these)."""
    out = []
    for task, spec in TASKS.items():
        try:
            df = load_glue_split(task, "train", data_dir)
        except DataError:
            continue
        for col in spec["text"]:
            out.extend(df[col].astype(str).tolist())
    return out
