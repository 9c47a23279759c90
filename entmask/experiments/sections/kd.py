"""§3.6: knowledge distillation with entropy masking (random, self high init, KD-only, complete, after-init).

What it is: the experiment's record and entry function. What it is not: the KD loss (pretrain)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="kd", title="Knowledge distillation with entropy masking", section="§3.6",
    doc="knowledge distillation: random, self high init, KD-only, complete, after-init",
    rows=("baseline", "self-high-init", "kd-only", "kd-complete", "kd-after-init"),
    entropy_plot=True, compute_plot=True, poolable=True))


def kd(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """KD: baseline, self high init without KD, KD-only (random + KD), complete, after-init."""
    return _experiment("kd", cfg, root=root, progress=progress, train=train)
