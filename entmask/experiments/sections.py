"""The experiments of the paper's sections, one entry point each: table1 (§3.1), table2 (§3.2), frozen (§3.3), mask_rate
(§3.4), corpus (§3.5), kd (§3.6), weights (§3.7), and beyond the paper: static and beyond.

What it is: thin calls of experiment._experiment with each one's options.
What it is not: their rows (specs) or their tables (table)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment


def table1(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Teacher-masking: random baseline vs high, low, mid, marginal, alternating (the paper's Table 1)."""
    return _experiment("table1", cfg, root=root, progress=progress, train=train)


def static(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Beyond the paper: random masks kept every epoch (masking.static) beside random, high and low teacher-masking,
    which are static too: separates what the static masks do (memorised on a small corpus) from the entropy."""
    return _experiment("static", cfg, root=root, progress=progress, train=train)


def beyond(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Beyond the paper: masked-view entropy and sampled selection from the teacher, 80/10/10 and excess-loss
    self-masking, against random masking at 1x and 2x steps (the compute figure)."""
    return _experiment("beyond", cfg, root=root, progress=progress, train=train)


def table2(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Self-masking: baseline, teacher-high, self high cold, self high init (the paper's Table 2)."""
    return _experiment("table2", cfg, root=root, progress=progress, train=train)


def kd(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
       ) -> ExperimentResult:
    """KD: baseline, self high init without KD, KD-only (random + KD), complete, after-init."""
    return _experiment("kd", cfg, root=root, progress=progress, train=train)


def mask_rate(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
              ) -> ExperimentResult:
    """High and low teacher-masking at 15%, 40% and one token per row."""
    return _experiment("mask-rate", cfg, root=root, progress=progress, train=train)


def frozen(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Frozen-encoder probe of baseline and teacher-high, with the per-task delta high − baseline."""
    return _experiment("frozen", cfg, root=root, progress=progress, train=train)


def weights(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
            ) -> ExperimentResult:
    """Fine-tuned vs pretrained weights of baseline and teacher-high: heatmaps, most-moved component per task."""
    return _experiment("weights", cfg, root=root, progress=progress, train=train)


def corpus(cfg: PretrainConfig, corpus_name: str | None = None, *, root=None, progress: bool = True,
           train: bool = True) -> ExperimentResult:
    """High self-init vs baseline pretrained on another corpus ('NAME[:CONFIG[:SPLITS]]'); an unavailable corpus
    gives a table that says so instead of an error."""
    return _experiment("corpus", cfg, root=root, progress=progress, corpus_name=corpus_name, train=train)
