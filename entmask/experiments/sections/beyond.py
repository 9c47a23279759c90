"""Beyond the paper (issue 14; notebook 06): masked-view entropy and sampled selection from the teacher, 80/10/10 and
excess-loss self-masking, against random masking at 1x and 2x the steps (the compute figure).

What it is: the experiment's record and entry function. What it is not: the scorers and selectors (entropy,
masking)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, Report, register

HEADER = ("Beyond the paper: none of these rows is in the paper. Scores: masked-view entropy (each token scored while "
          "masked, 1/ratio passes), excess loss = student − teacher masked loss (Rho-1; each row's masked groups "
          "fixed, so the teacher's half is scored once and cached, as Rho-1 scores its reference once); `sampled` "
          "draws k with "
          "probability ∝ softmax(entropy / T); 80/10/10 = BERT's replacement policy for the self-masked student. "
          "PFLOPs and the compute figure put each row beside random masking trained for 1x and 2x the steps.")


def _report(r: Report) -> None:
    r.header.append(HEADER)


EXPERIMENT = register(Experiment(
    name="beyond", title="Beyond the paper: other scores, soft selection, 80/10/10 self-masking, equal compute",
    section="beyond the paper",
    doc="masked-view entropy, sampled selection, 80/10/10 and excess-loss self-masking vs random at 1x and 2x steps",
    rows=("baseline", "baseline-2x", "teacher-high", "teacher-high-masked", "teacher-sampled", "self-high-cold",
          "self-high-cold-bert", "self-excess-cold"),
    compute_plot=True, report=_report))


def beyond(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """Beyond the paper: masked-view entropy and sampled selection from the teacher, 80/10/10 and excess-loss
    self-masking, against random masking at 1x and 2x steps (the compute figure)."""
    return _experiment("beyond", cfg, root=root, progress=progress, train=train)
