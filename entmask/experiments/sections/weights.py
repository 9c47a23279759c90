"""§3.7: how far fine-tuning moves the weights of random, teacher-high and self high init (the paper analyses
max,init): heatmaps per task, the most-moved component per task against training-set size, the paper's layer x
component view.

What it is: the experiment's record, its report hook and entry function. What it is not: the movement arithmetic
and the figures (plots)."""
from __future__ import annotations

from entmask.config import PretrainConfig
from entmask.experiments.core import ExperimentResult, md_table
from entmask.experiments.experiment import _experiment
from entmask.experiments.plots import (
    WEIGHTS_NOTE,
    layer_component_view,
    movement_vs_size,
    plot_weights,
    weight_movement,
)
from entmask.experiments.record import Experiment, Report, register
from entmask.experiments.specs import RUN_SPECS


def _report(r: Report) -> None:
    deltas, moves = weight_movement(r.rs)
    r.extra["deltas"], r.extra["movement"] = deltas, moves
    r.figures.update({f"heatmap_{k}": v for k, v in plot_weights(deltas, r.stem.with_name("weights-heatmap")).items()})
    if not moves.empty:
        rho = movement_vs_size(moves)
        shown = moves.assign(strategy=[RUN_SPECS[k][1] for k in moves["label"]])
        shown = shown[["strategy", "task", "n_train", "seeds", "most_moved", "most_moved_rel_change",
                       "encoder_rel_change"]]
        body = md_table(shown.round(4)) + "\n\n" + "\n".join(
            f"- {RUN_SPECS[k][1]}: Spearman ρ(training-set size, encoder movement) = "
            + (f"{v:+.2f}" if v is not None else "n/a (fewer than 3 distinct training-set sizes)")
            for k, v in rho.items())
        body += ("\n\nMovement = ||W_finetuned − W_pretrained|| / ||W_pretrained||, pooled over seeds; "
                 "most_moved pools each component over all layers (pretrained tensors only: the classifier and "
                 "pooler start random and are left out of the heatmaps). n_train is the size of the training "
                 "set each task was fine-tuned on.")
        r.sections.append(("Most-moved component per task and training-set size", body))
    view = layer_component_view(deltas)
    if not view.empty:
        r.extra["layer_component"] = view
        r.sections.append(("Layer x component, the paper's view (§3.7)", md_table(view) + "\n\n" + WEIGHTS_NOTE))


EXPERIMENT = register(Experiment(
    name="weights", title="How far fine-tuning moves the weights", section="§3.7",
    doc="fine-tuned vs pretrained weights of random, teacher-high and self high init: heatmaps, most-moved "
        "component per task",
    rows=("baseline", "teacher-high", "self-high-init"), paper_prose=False, poolable=True, report=_report))


def weights(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """Fine-tuned vs pretrained weights of baseline and teacher-high: heatmaps, most-moved component per task."""
    return _experiment("weights", cfg, root=root, progress=progress, train=train)
