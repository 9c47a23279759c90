"""Beyond the paper's tables, asked by the results issue: does bf16 change a student? The same random-masked student
trained and fine-tuned in bf16 autocast (the profile's `auto`, where the CPU runs it natively) and in fp32, at
the same seeds: held-out masked accuracy, GLUE and BLiMP side by side, and the seconds each step took.

What it is: the experiment's record (rows `baseline` and `baseline-fp32`, its row spec) and a report section with
the precision each run actually ran at and its time per step. What it is not: a benchmark of kernels
(`python -m entmask.bench`), or a claim about bf16 in general: one recipe, one model size, this machine.
"""
from __future__ import annotations

import pandas as pd

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, Report, register

HEADER = ("bf16 vs fp32: the random-masked student of `baseline` (pretraining, the held-out evaluation and GLUE "
          "fine-tuning at `auto` precision: bf16 autocast where the CPU runs it natively, else fp32) against the same "
          "config in fp32 throughout, at the same seeds. Δ is fp32 − baseline: an interval that holds 0 and excludes "
          "the effects the paper reports (2-3 points) says precision does not matter at this scale.")


def _per_step(r: Report) -> pd.DataFrame:
    """One line per row and pretraining seed: the device and precision the run ran at (rows trained on different
    machines differ in both: compare their seconds per step only on one device), its steps, and seconds per step."""
    out = []
    for run in r.rs:
        for s in run.seed_runs:
            m = s.get("metrics") or {}
            # a resumed run's train_seconds is its last segment only; train_seconds_total sums them
            steps, secs = m.get("steps"), m.get("train_seconds_total") or m.get("train_seconds")
            out.append({"row": run.label, "pretrain_seed": s.get("pretrain_seed"), "device": m.get("device"),
                        "precision": m.get("precision"),
                        "steps": steps, "seconds_per_step": (secs / steps) if steps and secs else None,
                        "heldout_accuracy": m.get("heldout_accuracy")})
    return pd.DataFrame(out)


def _report(r: Report) -> None:
    r.header.append(HEADER)
    steps = _per_step(r)
    if len(steps):
        r.extra["per_step"] = steps
        shown = steps.copy()
        shown["seconds_per_step"] = shown["seconds_per_step"].map(lambda x: "" if x is None or x != x else f"{x:.3f}")
        shown["heldout_accuracy"] = shown["heldout_accuracy"].map(
            lambda x: "" if x is None or x != x else f"{100 * x:.2f}%")
        r.sections.append(("Precision and time per pretraining step (wall time of the run, shared cores included)",
                           shown))


EXPERIMENT = register(Experiment(
    name="precision", title="Precision: the random student in bf16 autocast and in fp32",
    section="beyond the paper",
    doc="the random student in bf16 autocast (auto) and in fp32 at the same seeds: held-out, GLUE, BLiMP, s/step",
    rows=("baseline", "baseline-fp32"),
    specs={"baseline-fp32": ({"masking.strategy": "random", "masking.source": "teacher", "masking.self_start": "cold",
                              "kd.mode": "none", "train.precision": "fp32", "finetune.precision": "fp32"},
                             "random, fp32")},
    poolable=True, report=_report))


def precision(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """The random student in bf16 autocast (the profile's precision) and in fp32, at the same seeds."""
    return _experiment("precision", cfg, root=root, progress=progress, train=train)
