"""The paper's claims as data, and the rule that judges one from the interval of its Δ.

What it is: `CLAIMS` (claim id, the paper's words, section, table, the two rows, the claimed sign), `judge`,
`tasks_above_majority`, `unit_key`.
What it is not: the statistics that make an interval (entmask.stats, entmask.analysis)."""
from __future__ import annotations

import math

import numpy as np

from entmask.experiments.core import _num

# (id, the paper's words, section, results file, model row, reference row, expected sign of Total(model) − Total(ref))
CLAIMS: tuple = (
    ("high>random", "high-entropy teacher masking improves over random masking (2-3 points)", "3.1", "table1",
     "teacher-high", "baseline", +1),
    ("low>random", "low-entropy masking also improves over random", "3.1", "table1", "teacher-low", "baseline", +1),
    ("high>low", "... but not as much as high-entropy masking", "3.1", "table1", "teacher-high", "teacher-low", +1),
    ("marg<random", "marginal masking hurts the smaller model (BERTlet)", "3.1", "table1", "teacher-marginal",
     "baseline", -1),
    ("alt<random", "alternating masking hurts the smaller model (BERTlet)", "3.1", "table1", "teacher-alternating",
     "baseline", -1),
    ("mid<random", "mid-entropy masking deteriorates strongly", "3.1", "table1", "teacher-mid", "baseline", -1),
    ("cold<random", "self-masking from a cold start deteriorates", "3.2", "table2", "self-high-cold", "baseline", -1),
    ("init>random", "self-masking after a teacher epoch improves over the baseline (BERTlet +4)", "3.2", "table2",
     "self-high-init", "baseline", +1),
    ("init>high", "... and by about 1 point over teacher-masked high entropy", "3.2", "table2", "self-high-init",
     "teacher-high", +1),
    # Controls, not claims of the paper: teacher masks are static (§2.2), so "high beats random" mixes the entropy
    # with the staticness; against random masks that are static too, only the entropy differs.
    ("high>static", "control (not in the paper): high-entropy masks beat random masks that are static too", "3.1",
     "static", "teacher-high", "random-static", +1),
    ("low>static", "control (not in the paper): low-entropy masks beat random masks that are static too", "3.1",
     "static", "teacher-low", "random-static", +1),
)


def unit_key(f) -> tuple[int, int]:
    """(pretraining seed, fine-tuning seed) of a fine-tuning record (dict or pandas row); a missing or NaN
    pretraining seed (results written before pretraining seeds were recorded) is seed 0."""
    ps = f.get("pretrain_seed")
    return (0 if ps is None or (isinstance(ps, float) and math.isnan(ps)) else int(ps), int(f["seed"]))


CONTROLS = ("high>static", "low>static")  # rows of CLAIMS that are not claims of the paper


def tasks_above_majority(finetune: list[dict], rows: tuple[str, str], tasks: list[str], units: list[tuple]
                         ) -> list[str]:
    """The tasks of `tasks` on which, in every unit (pretraining seed, fine-tuning seed) of `units`, the mean score
    of the two compared `rows` beats the majority class on the same examples and not both classifiers collapsed.

    Where both classifiers are majority guessers a task tests no pretraining, and a collapsed row can outscore a
    working one (MRPC's F1 rewards always saying "paraphrase"). The rule is symmetric in the two rows, so when they
    do not differ (exchangeable rows) Δ stays symmetric about 0 among the chosen tasks: the choice cannot make a
    difference appear. Choosing by one row's own score would: a reference row that was lucky on a borderline task
    gets it in, which pulls Δ = model − reference down. A sensitivity analysis beside the Total, not the paper's
    measure. finetune: the records of a results file's extra["finetune"] (label, task, pretrain_seed, seed,
    status, paper_score, majority_paper_score, collapsed)."""
    score: dict = {}
    for f in finetune:
        if f.get("label") in rows and f.get("status") == "ok" and f.get("task") in tasks:
            score[(f["label"], f["task"], unit_key(f))] = (f.get("paper_score"), f.get("majority_paper_score"),
                                                           bool(f.get("collapsed")))

    def above(t, k):
        got = [score.get((r, t, k)) for r in rows]
        if any(g is None or not (_num(g[0]) and _num(g[1])) for g in got) or all(g[2] for g in got):
            return False
        return float(np.mean([g[0] for g in got])) > got[0][1]

    return [t for t in tasks if units and all(above(t, k) for k in units)]


def judge(delta: float, lo: float, hi: float, expected: int, plateau: bool = False, n_units: int = 2) -> tuple:
    """(verdict, why) of one claim from the 95% interval of Δ = Total(model) − Total(reference) that
    `bootstrap_total_delta` returns as `judged` (the wider of the two-level bootstrap CI and the t-interval over
    pretraining seeds). n_units: the number of pretraining seeds both rows finished; fine-tuning seeds of one
    pretrained model do not count, as they hold no pretraining noise. Only the sign is tested: a claimed size
    ("2-3 points") is for the reader to compare with Δ."""
    if plateau:
        return "unresolved", "a student on the unigram plateau: its GLUE scores test nothing"
    if n_units < 2:
        return "unresolved", "one pretraining seed only: the CI cannot include pretraining-seed noise"
    if lo > 0 or hi < 0:
        sign = 1 if lo > 0 else -1
        ok = sign == expected
        return ("supported" if ok else "contradicted"), (f"Δ {delta:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}] excludes 0 "
                                                         f"in the {'claimed' if ok else 'other'} direction")
    return "unresolved", f"Δ {delta:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}] contains 0"


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""


VERDICT_COLOR = {"supported": "#55A868", "contradicted": "#C44E52", "unresolved": "#8C8C8C"}


def _ci(text) -> tuple[float, float] | None:
    """'[-0.79, +2.46]' -> (-0.79, 2.46); anything else (no CI) -> None."""
    try:
        lo, hi = str(text).strip("[]").split(",")
        return float(lo), float(hi)
    except ValueError:
        return None
