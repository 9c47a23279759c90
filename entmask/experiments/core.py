"""Shared names of the experiments: errors and results, the task layout, the paper's published rows, cell formatting.

What it is: constants and small helpers every experiment module uses (no training, no I/O).
What it is not: any experiment's logic."""
from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field

from entmask import paper


class ExperimentError(RuntimeError):
    """An experiment that cannot run as asked; the message is one line saying why and what to do."""


@dataclass
class ExperimentResult:
    name: str
    table: object  # pandas DataFrame: the written table (display strings), our rows + majority + paper rows
    paths: dict = field(default_factory=dict)  # 'csv', 'md', 'json', 'png', 'svg', 'curves_png', ... -> Path
    runs: dict = field(default_factory=dict)  # label -> pretraining run folder
    extra: dict = field(default_factory=dict)  # further DataFrames: 'scores' (numeric), 'finetune', 'curves', ...


TASK_ORDER = ("cola", "mrpc", "qnli", "qqp", "rte", "sst2", "mnli")  # the paper's column order
TASK_LABEL = {"cola": "CoLA", "mrpc": "MRPC", "qnli": "QNLI", "qqp": "QQP", "rte": "RTE", "sst2": "SST-2",
              "mnli": "MNLI"}
COLLAPSE_MARK = "†"  # finetune.COLLAPSE_SHARE: a classifier putting >= 95% of its predictions on one class
ABSENT = "absent"  # the task's data cannot be had here (QQP, MNLI offline): never filled in
NOT_RUN = "not run"  # the task is not in finetune.tasks
PAPER_NA = "n/a"  # a paper value not available offline


# Carried as data in entmask.paper (Tables 1-2 as printed, prose-only figures); shaped here for the tables.
PAPER_SOURCE = paper.SOURCE
PAPER_NAMES = {"baseline": "random", "teacher-high": "max", "teacher-low": "min", "teacher-mid": "mid",
               "teacher-marginal": "marg", "teacher-alternating": "alt", "self-high-cold": "max,cold",
               "self-high-init": "max,init"}


def _paper_row(cells, total=None, recomputed=None) -> dict:
    return {"cells": tuple(cells), "total": total, "recomputed": recomputed}


_ORDER = ("baseline", "teacher-high", "teacher-low", "teacher-mid", "teacher-marginal", "teacher-alternating",
          "self-high-cold", "self-high-init")
PAPER: dict = {
    "majority": _paper_row(paper.MAJORITY),
    **{f"table{n}": {(r["model"], r["label"]): _paper_row(r["cells"], r["total"], r["recomputed"])
                     for r in sorted(paper.table(n), key=lambda r: (r["model"] != "BERTlet", _ORDER.index(r["label"])))}
       for n in (1, 2)},
}
PAPER_TOTALS = 16  # Totals printed in Tables 1 and 2
PAPER_TOTALS_NOT_ROW_MEAN = len(paper.totals_not_row_mean())  # 4: BERTlet marg, alt, mid and max,cold


def model_label(preset: str) -> str:
    """The paper's way of writing a preset: bert-tiny -> BERT-tiny, bertlet -> BERTlet, bert -> BERT."""
    return "BERT" + preset[4:] if preset.lower().startswith("bert") else preset


def _num(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt_cell(mean, sd=None, collapsed: bool = False) -> str:
    """'62.50 ± 1.20' (sd only when it is a number, i.e. >= 2 seeds), with the collapse mark when flagged."""
    if not _num(mean):
        return PAPER_NA
    s = f"{mean:.2f}" + (f" ± {sd:.2f}" if _num(sd) else "")
    return s + (COLLAPSE_MARK if collapsed else "")


def parse_cell(cell: str) -> float | None:
    """The mean in a formatted cell, or None for absent / not run / n/a (notebooks and tests)."""
    try:
        return float(str(cell).split("±")[0].replace(COLLAPSE_MARK, "").strip())
    except ValueError:
        return None


_MARKUP = re.compile(r"<[A-Za-z/!?][^>]*>")  # a tag, comment or autolink: what markdown passes on as HTML


def md_cell(v) -> str:
    """One markdown table cell: '' for None/NaN, '|' escaped, and HTML-escaped (<, >, &) where the text could hold
    markup, so text from a run's files shows as text wherever the .md is rendered. Plain comparisons such as
    'cold<random' hold no tag and stay as written (reports rebuilt from records stay byte-identical)."""
    s = "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
    return (html.escape(s, quote=False) if _MARKUP.search(s) else s).replace("|", "\\|")


def md_text(v) -> str:
    """Text from a run's files for a markdown paragraph or list item: HTML-escaped where it could hold markup (as
    md_cell, without the table's '|' escape)."""
    s = str(v)
    return html.escape(s, quote=False) if _MARKUP.search(s) else s


def md_table(df) -> str:
    """A GitHub-markdown table (pandas' to_markdown needs tabulate, which is not a dependency); cells via md_cell."""
    cols = [md_cell(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(md_cell(v) for v in row) + " |")
    return "\n".join(lines)


def _pct(x) -> str:
    return f"{100 * x:.1f}%" if _num(x) else ""
