"""Beyond the paper: the paper's claims judged on the finished table1/table2 (and static) results, by the pooled
mixed model and the conservative per-claim rule; trains nothing.

What it is: the experiment's record (its own runner). What it is not: the statistics (pooled, claims, stats)."""
from __future__ import annotations

from entmask.experiments.record import Experiment, register
from entmask.experiments.verdicts_report import verdicts

EXPERIMENT = register(Experiment(
    name="verdicts", title="The paper's claims, judged", section="beyond the paper",
    doc="the paper's claims judged on finished table1/table2 results", runner=verdicts, trains=False))

__all__ = ["verdicts", "EXPERIMENT"]
