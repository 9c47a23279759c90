"""Checkpoints and resume: the newest complete checkpoint, training time across resumes, and the stops that tests
of killing and resuming use.

What it is: `last_complete_checkpoint` / `checkpoint_state` (the newest checkpoint written to the end; read-only,
so a report can look at a run another process is training), `WallClock` (seconds of training behind the final
model, carried from process to process in the checkpoints), `checkpoint_pace` and `wall_seconds` (read them back),
`FailpointCallback` (runs.failpoint after every optimizer step: the kill -9 tests) and `_StopAt` (stop right after
a given step: the resume tests). Fine-tuning resumes and fails by the same checkpoint finder and failpoint.

What it is not: the Trainer writes and reloads checkpoints itself; nothing here trains, evaluates or deletes one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import ExportableState

from entmask import runs


def last_complete_checkpoint(folder: Path, quiet: bool = False) -> str | None:
    """The newest checkpoint that was written to the end. The Trainer writes trainer_state.json last, so a
    checkpoint without a parseable one was cut off (kill -9, full disk) and is skipped, never half-read."""
    found = checkpoint_state(folder, quiet)
    return found[0] if found else None


def checkpoint_state(folder: Path, quiet: bool = False) -> tuple[str, dict] | None:
    """(path, trainer_state) of the newest complete checkpoint in `folder`, or None. Reads only, so a report can
    look at a run another process is training (a checkpoint rotated away meanwhile is skipped)."""
    if not Path(folder).is_dir():
        return None
    cands = sorted((p for p in Path(folder).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for c in cands:
        try:
            state = json.loads((c / "trainer_state.json").read_text())
        except (OSError, ValueError):
            if not quiet:
                print(f"entmask: skipping incomplete checkpoint {c.name}")
            continue
        if list(c.glob("*.safetensors")) and (c / "optimizer.pt").exists():
            return str(c), state
    return None


class WallClock(TrainerCallback, ExportableState):
    """Seconds of training behind the final model, across resumes. The Trainer writes an ExportableState
    callback's `state()` into every checkpoint's trainer_state.json, so a run resumed three times still knows how
    long its earlier processes took to reach the checkpoint it resumed from. Time a killed process spent past its
    last checkpoint produced no step of the final model and is not counted. (Read back in on_train_begin rather
    than through `restore_callback_states_from_checkpoint`, which would also restore TrainerControl's flags: a
    checkpoint saved by a stopped run carries should_training_stop=True.)"""

    def __init__(self):
        self.segments: list[dict] = []  # one per process: {"from_step", "to_step", "seconds"}
        self.complete = True  # False when resumed from a checkpoint written before entmask recorded this
        self._t0 = self._from = self._step = self._end = None

    @classmethod
    def saved(cls, stateful_callbacks: dict | None) -> dict | None:
        """The attributes this callback stored in a trainer state's stateful_callbacks, or None if it stored none."""
        entry = (stateful_callbacks or {}).get(cls.__name__)
        entry = entry[0] if isinstance(entry, list) and entry else entry
        return entry.get("attributes") or {} if isinstance(entry, dict) and entry else None

    def on_train_begin(self, args, state, control, **kw):
        attrs = self.saved(state.stateful_callbacks)
        self.segments = [dict(s) for s in (attrs or {}).get("segments", [])]
        self.complete = state.global_step == 0 or (attrs is not None and attrs.get("complete", True))
        self._t0, self._from, self._step, self._end = time.perf_counter(), state.global_step, state.global_step, None
        # The Trainer indexes stateful_callbacks by name when it saves; a state loaded from a checkpoint written
        # without this callback lacks the key (a KeyError at the first save after the resume).
        state.stateful_callbacks[type(self).__name__] = self.state()

    def on_step_end(self, args, state, control, **kw):
        self._step = state.global_step

    def on_train_end(self, args, state, control, **kw):
        self._end = time.perf_counter()  # training time only: not the held-out evaluation that follows

    def all_segments(self) -> list[dict]:
        if self._t0 is None:
            return list(self.segments)
        end = self._end if self._end is not None else time.perf_counter()
        return self.segments + [{"from_step": self._from, "to_step": self._step, "seconds": round(end - self._t0, 3)}]

    def total_seconds(self, segments: list[dict] | None = None) -> float | None:
        """Seconds of every process up to the steps it handed on (of `segments`, a snapshot of all_segments(),
        so that the total and the list agree); None if an earlier process's are unknown."""
        segments = self.all_segments() if segments is None else segments
        return round(sum(s["seconds"] for s in segments), 3) if self.complete else None

    def state(self) -> dict:
        return {"args": {}, "attributes": {"segments": self.all_segments(), "complete": self.complete}}


def checkpoint_pace(state: dict) -> float | None:
    """Seconds per step of the process that wrote a checkpoint (its trainer_state.json as a dict, WallClock's last
    segment), or None if unknown: for reports on a run another process is training."""
    segs = (WallClock.saved(state.get("stateful_callbacks")) or {}).get("segments")
    if not segs:
        return None
    last = segs[-1]
    steps = last.get("to_step", 0) - last.get("from_step", 0)
    return last["seconds"] / steps if steps > 0 and last.get("seconds") else None


def wall_seconds(metrics: dict) -> float | None:
    """A finished run's training wall time across resumes: train_seconds_total, or for a run finished before
    entmask recorded it, train_seconds if it never resumed (else unknown: that is the last process's only)."""
    if "train_seconds_total" in metrics:
        return metrics["train_seconds_total"]
    return metrics.get("train_seconds") if not metrics.get("resumed_from") else None


class FailpointCallback(TrainerCallback):
    """Passes `runs.failpoint(name)` after every optimizer step (the kill -9 tests pick the step)."""

    def __init__(self, name: str):
        self.name = name

    def on_step_end(self, args, state, control, **kw):
        runs.failpoint(self.name)


class _StopAt(TrainerCallback):
    """Stop after a given optimizer step (tests of resume: a run interrupted right after a checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True
