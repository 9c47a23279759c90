"""Beyond the paper: the recipe search for leaving the unigram plateau on a CPU (docs/small-scale.md).

What it is: the experiment's record (its own runner). What it is not: the recipes and the search (plateau_search)."""
from __future__ import annotations

from entmask.experiments.plateau_search import plateau
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="plateau", title="Leaving the unigram plateau: the recipe search", section="beyond the paper",
    doc="the recipe search: which recipes let a from-scratch student leave the unigram plateau (--recipes a,b)",
    options=("recipes",), runner=plateau))

__all__ = ["plateau", "EXPERIMENT"]
