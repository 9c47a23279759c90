"""The paper's published numbers, carried as data: Tables 1 and 2 as printed, and the figures given only in prose.

Srinivasagan, Hartung & Georges, "Entropy-aware Masking for Masked Language Modeling", *SEM 2026
(arXiv:2605.28526). Cells are GLUE validation scores x 100 in the paper's column order (CoLA, MRPC, QNLI, QQP, RTE,
SST-2, MNLI: accuracy, F1 for MRPC); `total` is the paper's own printed Total, which in 4 of 16 rows is not the
mean of the row (`recomputed` is that mean). Copied once from the paper's text; never read from ../shared at
run time.

What it is not: no computation beyond the row means, and no claims about our own runs (see entmask.experiments).
"""
from __future__ import annotations

SOURCE = ("Srinivasagan, Hartung & Georges, Entropy-aware Masking for Masked Language Modeling, *SEM 2026 "
          "(arXiv:2605.28526)")
TASKS = ("cola", "mrpc", "qnli", "qqp", "rte", "sst2", "mnli")  # the paper's column order

# (table, model, our run label) -> (cells in TASKS order, printed Total). Our labels: see experiments.RUN_SPECS.
_TABLES: dict[tuple[int, str, str], tuple[tuple[float, ...], float]] = {
    (1, "BERT", "baseline"): ((69.42, 81.80, 74.98, 83.75, 52.35, 82.34, 68.25), 73.27),
    (1, "BERTlet", "baseline"): ((69.32, 81.79, 65.20, 82.24, 53.07, 79.36, 65.51), 70.93),
    (1, "BERT", "teacher-high"): ((67.98, 78.05, 80.72, 86.15, 52.71, 85.78, 73.76), 75.02),
    (1, "BERTlet", "teacher-high"): ((68.74, 81.01, 76.04, 84.67, 56.32, 81.54, 70.19), 74.07),
    (1, "BERT", "teacher-low"): ((69.42, 81.03, 79.68, 85.01, 54.51, 81.31, 72.65), 74.80),
    (1, "BERTlet", "teacher-low"): ((69.03, 79.68, 65.62, 82.60, 51.62, 80.62, 69.91), 71.30),
    (1, "BERT", "teacher-marginal"): ((69.51, 79.53, 82.13, 86.38, 54.51, 83.14, 72.58), 75.40),
    (1, "BERTlet", "teacher-marginal"): ((69.03, 79.94, 66.14, 82.42, 54.51, 80.39, 69.93), 64.17),
    (1, "BERT", "teacher-alternating"): ((68.74, 81.07, 82.92, 86.71, 53.07, 86.58, 73.99), 76.15),
    (1, "BERTlet", "teacher-alternating"): ((68.84, 81.37, 65.95, 82.20, 53.43, 80.96, 70.26), 62.79),
    (1, "BERT", "teacher-mid"): ((69.13, 81.22, 50.54, 63.18, 52.71, 50.92, 35.22), 57.56),
    (1, "BERTlet", "teacher-mid"): ((69.13, 81.22, 60.66, 80.74, 52.71, 79.82, 59.85), 62.23),
    (2, "BERT", "self-high-cold"): ((69.13, 81.22, 49.46, 63.18, 52.71, 50.92, 35.22), 57.41),
    (2, "BERTlet", "self-high-cold"): ((69.13, 80.30, 60.77, 81.02, 54.51, 77.87, 62.00), 61.37),
    (2, "BERT", "self-high-init"): ((69.42, 81.22, 84.81, 89.04, 52.35, 86.81, 71.62), 76.47),
    (2, "BERTlet", "self-high-init"): ((68.84, 80.39, 78.82, 85.80, 55.96, 83.72, 72.54), 75.15),
}

# The majority class on each validation split, as the paper's numbers imply it: BERT mid (Table 1) is a collapsed
# classifier on every task, and its cells are exactly the majority rates (CoLA 69.13 = 721/1043, MNLI 35.22 =
# validation_mismatched). The paper prints no majority row itself.
MAJORITY = (69.13, 81.22, 50.54, 63.18, 52.71, 50.92, 35.22)
MAJORITY_NOTE = "implied by the paper's collapsed BERT mid row (Table 1); the paper prints no majority row"

# Figures the paper gives only in its text: experiment -> rows of (model, what, Total or None, the paper's words).
PROSE: dict[str, list[dict]] = {
    "frozen": [{"model": "BERTlet", "what": "max (teacher), encoder frozen, classifier 1 epoch", "total": None,
                "text": "an improvement of 3% over the baseline", "section": "3.3"}],
    "mask-rate": [
        {"model": "BERT", "what": "max / min at 40% masking", "total": None,
         "text": "no significant improvement over the default 15%", "section": "3.4"},
        {"model": "BERT", "what": "one masked token per sequence", "total": None,
         "text": "a drop of around 1% in GLUE score", "section": "3.4"}],
    "corpus": [
        {"model": "BERTlet", "what": "max,init on bookcorpus", "total": 77.09, "text": "Total 77.09",
         "section": "3.5"},
        {"model": "BERTlet", "what": "random on bookcorpus", "total": 71.66, "text": "Total 71.66", "section": "3.5"}],
    "kd": [
        {"model": "BERTlet", "what": "max,init + KD, transfer after initialization", "total": 77.19,
         "text": "Total 77.19", "section": "3.6", "label": "kd-after-init"},
        {"model": "BERTlet", "what": "max,init + KD, complete transfer", "total": 76.04, "text": "Total 76.04",
         "section": "3.6", "label": "kd-complete"},
        {"model": "BERTlet", "what": "KD alone", "total": None, "text": "below both (no number given)",
         "section": "3.6", "label": "kd-only"}],
    "weights": [
        {"model": "BERTlet", "what": "max,init: largest weight deviation (final-layer FFN, MNLI)", "total": 7077.23,
         "text": "7077.23%", "section": "3.7", "task": "mnli"},
        {"model": "BERTlet", "what": "max,init: smallest weight deviation (CoLA)", "total": 167.33,
         "text": "167.33%", "section": "3.7", "task": "cola"}],
}

SIZES = {"BERT": "12 layers, 768 dim, 12 heads, 109M parameters",
         "BERTlet": "4 layers, 512 dim, 8 heads, 28.8M parameters"}  # §2.4


def row_mean(cells) -> float:
    return round(sum(cells) / len(cells), 2)


def table(n: int) -> list[dict]:
    """Table `n` (1 or 2) as printed: one dict per row with model, label, cells, total and recomputed mean."""
    return [{"model": m, "label": lab, "cells": cells, "total": total, "recomputed": row_mean(cells)}
            for (t, m, lab), (cells, total) in _TABLES.items() if t == n]


def row(n: int, model: str, label: str) -> dict:
    cells, total = _TABLES[(n, model, label)]
    return {"model": model, "label": label, "cells": cells, "total": total, "recomputed": row_mean(cells)}


def totals_not_row_mean() -> list[tuple[str, str, float, float]]:
    """The printed Totals that are not the mean of their row (more than 0.01 apart after rounding)."""
    return [(m, lab, total, row_mean(cells)) for (t, m, lab), (cells, total) in _TABLES.items()
            if abs(row_mean(cells) - total) > 0.011]
