"""The experiments by name: `EXPERIMENTS` (name -> entry function) and `run(name, cfg)`, what `entmask experiment
NAME` calls. Both read the registry of `record.Experiment`s that the modules under sections/ fill (the package's
__init__ imports sections/ before this module, and any import of this module runs that __init__ first).

What it is: dispatch and option checking. What it is not: the experiments themselves (sections/)."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentError
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import REGISTRY, Experiment, get


def _entry(exp: Experiment):
    """The function `run` calls for `exp`: its own runner, else the shared table-making driver."""
    if exp.runner is not None:
        return exp.runner

    def entry(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True, **options):
        return _experiment(exp.name, cfg, root=root, progress=progress, train=train,
                           corpus_name=options.get("corpus"))
    entry.__doc__ = exp.doc
    return entry


class _Entries(Mapping):
    """name -> entry function of every registered experiment, read live."""

    def __getitem__(self, name):
        return _entry(REGISTRY[name])

    def __iter__(self):
        return iter(REGISTRY)

    def __len__(self) -> int:
        return len(REGISTRY)


EXPERIMENTS = _Entries()
_OPTION_FLAGS = {"corpus": "--corpus", "recipes": "--recipes"}


def run(name: str, cfg: PretrainConfig, progress: bool = True, root=None, **kw) -> Path:
    """Run experiment `name` (what `entmask experiment NAME` calls); returns the path of its .md table."""
    exp = get(name)
    train = kw.pop("train", True)
    options = {k: v for k, v in kw.items() if v is not None}
    unknown = [k for k in options if k not in _OPTION_FLAGS]
    if unknown:
        raise ExperimentError(f"unexpected option(s) {', '.join(sorted(unknown))} for experiment {name!r}")
    for k in options:
        if k not in exp.options:
            takers = [n for n, e in REGISTRY.items() if k in e.options]
            raise ExperimentError(f"{_OPTION_FLAGS[k]} applies to the {' / '.join(takers)} experiment only, "
                                  f"not {name!r}")
    if exp.runner is None:
        res = _experiment(name, cfg, root=root, progress=progress, train=train, corpus_name=options.get("corpus"))
    elif exp.trains:
        res = exp.runner(cfg, root=root, progress=progress, train=train, **options)
    else:
        res = exp.runner(cfg, root=root, progress=progress, **options)  # trains nothing either way
    return res.paths["md"]
