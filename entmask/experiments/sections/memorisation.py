"""Beyond the paper: each finished student on the masks it trained with, seen vs held-out rows (do static masks get
memorised?); trains nothing.

What it is: the experiment's record (its own runner). What it is not: the measurement (memorisation_report)."""
from __future__ import annotations

from entmask.experiments.memorisation_report import memorisation
from entmask.experiments.record import Experiment, register

EXPERIMENT = register(Experiment(
    name="memorisation", title="Memorisation: the trained masks on seen vs held-out rows", section="beyond the paper",
    doc="each finished student on the masks it trained with, seen vs held-out rows", runner=memorisation,
    trains=False))

__all__ = ["memorisation", "EXPERIMENT"]
