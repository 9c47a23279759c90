"""What a training run shows on the screen: progress bars or nothing while it trains, then one line.

What it is: `screen_callbacks(trainer, progress)` takes the HF Trainer's own printing callback out (with tqdm off
its PrinterCallback prints every log dict, ~60 lines a run; with tqdm on its ProgressCallback writes each dict under
the bar, and in a notebook NotebookProgressCallback draws them as a table) and puts `BarsOnly` in its place when
`progress` is on: the bars, no dicts. The logs themselves are untouched: the Trainer keeps them in
state.log_history (written to the run folder's logs/log_history.json or log_history.json) and the TensorBoard
callback writes them to logs/tensorboard. `summary_line` / `say_run` are the one line each pretraining,
reference or fine-tuning run prints when it is trained or found: stage, name, "trained" or "reused", steps, seconds
and the held-out score where there is one. `ProgressFile` writes the run's logs/progress.json at every logging step
(step, max_steps, time, pid), which `entmask runs status` reads (entmask.runs.status).

What it is not: no logging configuration (entmask.models quiets transformers' loggers and weight-loading bars), and
it decides nothing about runs; the callers print the line.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback


class BarsOnly(ProgressCallback):
    """ProgressCallback's tqdm bars (training, evaluation) without the log dict it writes at every logging step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


class ProgressFile(TrainerCallback):
    """logs/progress.json of a run folder, rewritten (atomically) when training starts and at every logging step:
    {"step", "max_steps", "time" (unix seconds), "pid", "recent": the last 6 [step, time] points this process
    logged (its start is not one)}, so that `entmask runs status` can say how far a run got, at what pace and when it
    ends, while it trains. Only the main process of a torchrun writes it. A failure to write is ignored: it is a
    report, not part of the run."""

    KEEP = 6

    def __init__(self, run: str | Path):
        self.path = Path(run) / "logs" / "progress.json"
        self.recent: list[list] = []

    def _write(self, state, point: bool = True) -> None:
        from entmask import runs

        if not state.is_world_process_zero:
            return
        now = round(time.time(), 3)
        if point and (not self.recent or self.recent[-1][0] != state.global_step):
            self.recent = (self.recent + [[state.global_step, now]])[-self.KEEP:]
        try:
            runs.atomic_write_text(self.path, json.dumps({
                "step": state.global_step, "max_steps": state.max_steps, "time": now, "pid": os.getpid(),
                "recent": self.recent}))
        except OSError:
            pass

    def on_train_begin(self, args, state, control, **kw):
        # a resumed process's pace is its own; and the start is no pace point: the first step also loads data,
        # scores and checkpoints (a cpu-wiki student's first step read as 24 s a step and 35 h left)
        self.recent = []
        self._write(state, point=False)

    def on_log(self, args, state, control, logs=None, **kw):
        self._write(state)


def screen_callbacks(trainer, progress: bool) -> None:
    """Replace whatever the Trainer prints its logs with: `BarsOnly` when `progress`, else nothing. (Removes every
    PrinterCallback and ProgressCallback, NotebookProgressCallback being one.)"""
    for cb in list(trainer.callback_handler.callbacks):
        if isinstance(cb, (PrinterCallback, ProgressCallback)):
            trainer.callback_handler.remove_callback(cb)
    if progress:
        trainer.add_callback(BarsOnly)


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def summary_line(stage: str, name: str, how: str, *, steps=None, seconds=None, score: str | None = None) -> str:
    """'entmask: pretrain random-5f42e0ed44 trained: 6 steps, 7.5 s, held-out masked acc 1.6% (unigram 7.2%)'.
    `how` is "trained" or "reused"; a part that is unknown is left out."""
    parts = []
    if _num(steps):
        parts.append(f"{int(steps):,} step{'' if int(steps) == 1 else 's'}")
    if _num(seconds):
        parts.append(f"{seconds:,.1f} s")
    if score:
        parts.append(score)
    return f"entmask: {stage} {name} {how}" + (": " + ", ".join(parts) if parts else "")


def pretrain_score(metrics: dict) -> str | None:
    """The held-out part of a pretraining or reference run's line, from its metrics.json."""
    acc, uni = metrics.get("heldout_accuracy"), metrics.get("unigram_accuracy")
    if not _num(acc):
        return None
    return f"held-out masked acc {acc:.1%}" + (f" (unigram {uni:.1%})" if _num(uni) else "")


def finetune_score(metrics: dict) -> str | None:
    """The reported split's score of a fine-tuning run, with its majority-class score."""
    score, name = metrics.get("paper_score"), metrics.get("paper_metric")
    if not _num(score):
        return None
    maj = metrics.get("majority_paper_score")
    return f"{metrics.get('split') or 'held-out'} {name} {score:.2f}" + (f" (majority {maj:.2f})" if _num(maj) else "")


def say_run(stage: str, name: str, how: str, metrics: dict) -> None:
    """Print a run's one line from its metrics (pretrain / reference: held-out masked accuracy; finetune: score)."""
    score = finetune_score(metrics) if stage.startswith("finetune") else pretrain_score(metrics)
    seconds = metrics.get("train_seconds_total")
    seconds = seconds if _num(seconds) else metrics.get("train_seconds")
    print(summary_line(stage, name, how, steps=metrics.get("steps"), seconds=seconds, score=score), flush=True)
