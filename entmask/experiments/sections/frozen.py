"""§3.3: the frozen-encoder probe of random and teacher-high: only the classifier trains; the table ends with the
per-task difference high − random.

What it is: the experiment's record, its report hook and entry function. What it is not: the frozen fine-tuning
itself (finetune)."""
from __future__ import annotations

import pandas as pd

from entmask.config import PretrainConfig
from entmask.experiments.core import TASK_LABEL, TASK_ORDER, ExperimentResult, _num
from entmask.experiments.experiment import _experiment
from entmask.experiments.record import Experiment, Report, register
from entmask.experiments.specs import RUN_SPECS


def _with_frozen_delta(table, scores):
    """Append the per-task difference high − baseline of the frozen probe."""
    ours = scores[scores["source"] == "ours"].set_index("label")
    if not {"baseline", "teacher-high"} <= set(ours.index):
        return table
    row = {c: "" for c in table.columns}
    row.update(model=ours.loc["baseline", "model"], strategy="Δ high − baseline", source="delta")
    base_disp = table[(table["source"] == "ours") & (table["strategy"] == RUN_SPECS["baseline"][1])].iloc[0]
    for col in [TASK_LABEL[t] for t in TASK_ORDER] + ["Total"]:
        a, b = ours.loc["teacher-high"].get(col), ours.loc["baseline"].get(col)
        # A task without scores keeps its reason (absent / not run) instead of a number.
        row[col] = f"{a - b:+.2f}" if _num(a) and _num(b) else base_disp[col]
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def _report(r: Report) -> None:
    r.table = _with_frozen_delta(r.table, r.scores)
    r.header.append("Frozen probe: the encoder (embeddings, layers, pooler) stays bitwise at its pretrained values; "
                    f"only the classifier trains, for finetune.frozen_epochs={r.cfg.finetune.frozen_epochs} "
                    "epoch(s). The last row is the per-task difference high − baseline.")


EXPERIMENT = register(Experiment(
    name="frozen", title="Frozen-encoder probe (classifier only)", section="§3.3",
    doc="frozen-encoder probe of random and teacher-high, with the per-task delta high − random",
    rows=("baseline", "teacher-high"), frozen=True, report=_report))


def frozen(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True) -> ExperimentResult:
    """Frozen-encoder probe of baseline and teacher-high, with the per-task delta high − baseline."""
    return _experiment("frozen", cfg, root=root, progress=progress, train=train)
