"""The experiments by name: `EXPERIMENTS` and `run(name, cfg)`, what `entmask experiment NAME` calls.

What it is: the name -> function table and the options each experiment takes.
What it is not: the experiments themselves."""
from __future__ import annotations

from pathlib import Path

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentError
from entmask.experiments.memorisation_report import memorisation
from entmask.experiments.plateau_search import plateau
from entmask.experiments.sections import beyond, corpus, frozen, kd, mask_rate, static, table1, table2, weights
from entmask.experiments.verdicts_report import verdicts

EXPERIMENTS = {"table1": table1, "table2": table2, "kd": kd, "mask-rate": mask_rate, "frozen": frozen,
               "weights": weights, "corpus": corpus, "plateau": plateau, "verdicts": verdicts, "beyond": beyond,
               "static": static, "memorisation": memorisation}


def run(name: str, cfg: PretrainConfig, progress: bool = True, root=None, **kw) -> Path:
    """Run experiment `name` (what `entmask experiment NAME` calls); returns the path of its .md table."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    other = kw.pop("corpus", None)
    recipes = kw.pop("recipes", None)
    train = kw.pop("train", True)
    if kw:
        raise ExperimentError(f"unexpected option(s) {', '.join(sorted(kw))} for experiment {name!r}")
    if other is not None and name != "corpus":
        raise ExperimentError(f"--corpus applies to the corpus experiment only, not {name!r}")
    if recipes is not None and name != "plateau":
        raise ExperimentError(f"--recipes applies to the plateau experiment only, not {name!r}")
    if name == "corpus":
        res = corpus(cfg, other, root=root, progress=progress, train=train)
    elif name == "plateau":
        res = plateau(cfg, root=root, progress=progress, recipes=recipes, train=train)
    elif name in ("verdicts", "memorisation"):
        res = EXPERIMENTS[name](cfg, root=root, progress=progress)  # trains nothing either way
    else:
        res = EXPERIMENTS[name](cfg, root=root, progress=progress, train=train)
    return res.paths["md"]
