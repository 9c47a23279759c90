"""§3.2, Table 2: self-masking (random, teacher-high, self high cold, self high init).

What it is: the experiment's record and entry function. What it is not: the rows' definitions (specs.RUN_SPECS)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="table2", title="Table 2: self-masking", section="§3.2",
    doc="self-masking: random, teacher-high, self high cold and init (the paper's Table 2)",
    rows=("baseline", "teacher-high", "self-high-cold", "self-high-init"),
    paper_table=True, entropy_plot=True, compute_plot=True, poolable=True))


def table2(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """Self-masking: baseline, teacher-high, self high cold, self high init (the paper's Table 2)."""
    return _experiment("table2", cfg, root=root, progress=progress, train=train)
