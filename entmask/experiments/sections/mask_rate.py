"""§3.4: the masking-rate ablation, high and low teacher-masking at 15%, 40% and one token per row; each rate is
compared with the same strategy at 15% (there is no random row), which is the question the ablation asks.

What it is: the experiment's record and entry function. What it is not: the rows' definitions (specs.RUN_SPECS)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="mask-rate", title="Masking rate: high and low entropy at 15%, 40% and one token", section="§3.4",
    doc="high and low teacher-masking at 15%, 40% and one token per row",
    rows=("high-r15", "low-r15", "high-r40", "low-r40", "high-n1", "low-n1"),
    delta_base={"high-r15": None, "low-r15": None, "high-r40": "high-r15", "low-r40": "low-r15",
                "high-n1": "high-r15", "low-n1": "low-r15"},
    entropy_plot=True, poolable=True))


def mask_rate(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """High and low teacher-masking at 15%, 40% and one token per row."""
    return _experiment("mask-rate", cfg, root=root, progress=progress, train=train)
