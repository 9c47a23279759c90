"""§3.1, Table 1: teacher-masking strategies (random baseline vs high, low, mid, marginal, alternating).

What it is: the experiment's record and entry function. What it is not: the rows' definitions (specs.RUN_SPECS)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="table1", title="Table 1: teacher-masking strategies", section="§3.1",
    doc="teacher-masking: random vs high, low, mid, marginal, alternating (the paper's Table 1)",
    rows=("baseline", "teacher-high", "teacher-low", "teacher-mid", "teacher-marginal", "teacher-alternating"),
    paper_table=True, entropy_plot=True, compute_plot=True, poolable=True))


def table1(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """Teacher-masking: random baseline vs high, low, mid, marginal, alternating (the paper's Table 1)."""
    return _experiment("table1", cfg, root=root, progress=progress, train=train)
