"""The experiments, one module each: the paper's sections (table1 §3.1, table2 §3.2, frozen §3.3, mask_rate §3.4,
corpus §3.5, kd §3.6, weights §3.7) and what goes beyond the paper (beyond, static, plateau, verdicts,
memorisation, precision). Each module registers one `record.Experiment` and defines its entry function
(`table1(cfg, root=..., progress=..., train=...)` -> ExperimentResult).

Importing this package registers them all, in the order `entmask experiment --help` lists them. A new experiment is
one more module here, imported below, plus a test (tests/test_experiment_plugin.py registers one at runtime instead).

What it is not: the shared machinery (experiment, running, table, plots) or the rows (specs)."""
from __future__ import annotations

from entmask.experiments.sections.table1 import table1
from entmask.experiments.sections.table2 import table2
from entmask.experiments.sections.kd import kd
from entmask.experiments.sections.mask_rate import mask_rate
from entmask.experiments.sections.frozen import frozen
from entmask.experiments.sections.weights import weights
from entmask.experiments.sections.corpus import corpus
from entmask.experiments.sections.plateau import plateau
from entmask.experiments.sections.verdicts import verdicts
from entmask.experiments.sections.beyond import beyond
from entmask.experiments.sections.static import static
from entmask.experiments.sections.memorisation import memorisation
from entmask.experiments.sections.precision import precision

__all__ = ["table1", "table2", "kd", "mask_rate", "frozen", "weights", "corpus", "plateau", "verdicts", "beyond",
           "static", "memorisation", "precision"]
