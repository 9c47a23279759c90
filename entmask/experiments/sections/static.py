"""Beyond the paper: static masks. Random masks kept every epoch (masking.static) beside random, high and low
teacher-masking, which are static too: if random-static moves GLUE as far from random as high does, the
difference is staticness (memorised on a small corpus), not entropy.

What it is: the experiment's record and entry function. What it is not: the rows' definitions (specs.RUN_SPECS)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="static", title="Static masks: random masks kept every epoch against teacher-masking's static entropy masks",
    section="beyond the paper",
    doc="random masks kept every epoch beside random, high and low teacher-masking (staticness vs entropy)",
    rows=("baseline", "random-static", "teacher-high", "teacher-low"), poolable=True))


def static(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """Beyond the paper: random masks kept every epoch (masking.static) beside random, high and low teacher-masking,
    which are static too: separates what the static masks do (memorised on a small corpus) from the entropy."""
    return _experiment("static", cfg, root=root, progress=progress, train=train)
