"""The paper's claims judged on BLiMP: the second endpoint of `entmask experiment verdicts` (issue 30).

What it is: each student's zero-shot BLiMP accuracy (entmask.blimp, `<run>/blimp.json`, scored after pretraining)
as one unit of a pooled mixed model (entmask.stats; a fixed effect per row, a random effect per pretraining seed,
the student as the residual: there is no fine-tuning, so no fine-tuning noise), a claim the contrast of two rows
with a t interval on units − rows − (seeds − 1) degrees of freedom, judged by the same rule as the GLUE Total; and
beside it a paired bootstrap over the minimal pairs of every seed both rows were scored at (the pair-sampling noise
of a fixed subsample, not the seed noise). Only students scored alike (the same pairs per paradigm) are compared.

What it is not: a per-paradigm or per-field analysis (the tables show fields), a correction for many claims, or a
test of a claimed size.
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import pandas as pd

from entmask import runs
from entmask.config import PretrainConfig


def blimp_doc(run_dir: Path) -> dict | None:
    """A student's blimp.json if it is well formed ({'accuracy': float, 'correct': '0101...'}), else None."""
    from entmask.blimp import RESULT_FILE

    f = Path(run_dir) / RESULT_FILE
    if not f.is_file():
        return None
    try:
        d = runs.read_json(f)
    except runs.RunError:
        return None
    ok = (isinstance(d, dict) and isinstance(d.get("accuracy"), (int, float)) and isinstance(d.get("correct"), str)
          and set(d["correct"]) <= {"0", "1"} and not math.isnan(d["accuracy"]))
    return d if ok else None


def _scoring(d: dict) -> tuple:
    sc = d.get("scoring") or {}
    return sc.get("per_paradigm"), sc.get("variant"), len(d["correct"])


def blimp_units(files: dict, cfg: PretrainConfig, root=None) -> tuple[pd.DataFrame, dict, list[str]]:
    """(units, docs, notes): one unit per scored student (row, pretraining seed) of the rows of results files
    `files` ({name: loaded json}) at their pretraining seeds, `total` = BLiMP accuracy x 100; docs {(row, seed):
    blimp.json}. Students scored differently from the most common scoring are left out, with a note."""
    from entmask.experiments.specs import RUN_SPECS, at_seed, matrix
    from entmask.pretrain import run_folder

    docs, notes, missing = {}, [], []
    for name, d in sorted(files.items()):
        try:
            specs = matrix(name, cfg)
        except Exception as e:  # noqa: BLE001 - the other files still count
            notes.append(f"the rows of `{name}` could not be listed ({str(e)[:100]})")
            continue
        for label, c in specs:
            for ps in d.get("pretrain_seeds") or [0]:
                if (label, ps) in docs:
                    continue
                doc = blimp_doc(run_folder(at_seed(c, ps), "pretrain", root))
                if doc is None:
                    missing.append(f"{RUN_SPECS[label][1]} seed {ps}")
                else:
                    docs[(label, ps)] = doc
    if docs:
        common = Counter(_scoring(d) for d in docs.values()).most_common(1)[0][0]
        odd = sorted(k for k, d in docs.items() if _scoring(d) != common)
        if odd:
            notes.append("scored with other pairs than the rest, left out: "
                         f"{', '.join(f'{a} seed {b}' for a, b in odd)}")
        docs = {k: d for k, d in docs.items() if _scoring(d) == common}
    if missing:
        notes.append(f"no BLiMP score: {', '.join(dict.fromkeys(missing))}")
    units = pd.DataFrame([(label, ps, 0, 100 * float(d["accuracy"])) for (label, ps), d in sorted(docs.items())],
                         columns=["row", "pseed", "fseed", "total"])
    return units, docs, notes


def blimp_fit(files: dict, cfg: PretrainConfig, root=None) -> dict:
    """{"fit": stats.Pooled or None, "docs": ..., "text": a paragraph for the report}. Never raises."""
    from entmask import stats

    fit, docs, notes = None, {}, []
    try:
        units, docs, notes = blimp_units(files, cfg, root)
        if units["row"].nunique() >= 2:
            fit = stats.fit(units)
    except Exception as e:  # noqa: BLE001 - the GLUE verdicts stand without it
        notes.append(f"the BLiMP fit failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})")
    if fit is None:
        text = "no pooled BLiMP fit (fewer than two rows with a scored student)."
    else:
        sc = next(iter(docs.values())).get("scoring") or {}
        text = (f"{len(docs)} scored students, {sc.get('per_paradigm') or 'all'} pairs per paradigm "
                f"({len(next(iter(docs.values()))['correct'])} pairs, PLL variant {sc.get('variant', '?')}); "
                + stats.describe(fit))
    if notes:
        text += " " + "; ".join(notes) + "."
    return {"fit": fit, "docs": docs, "text": text}


def blimp_claim(bf: dict, model: str, ref: str, sign: int, plateau: bool) -> dict:
    """The BLiMP columns of one claim: pooled Δ (points) with its t interval and verdict, what it excludes, and the
    paired bootstrap over the pairs of the seeds both rows were scored at."""
    from entmask.blimp import paired_bootstrap_delta
    from entmask.experiments.claims import _fmt_ci
    from entmask.experiments.pooled import judged_contrast

    c, verdict, why = judged_contrast(bf.get("fit"), model, ref, sign, plateau, no_fit="no BLiMP scores to compare",
                                      no_row="no BLiMP score of")
    if c is None:
        return {"BLiMP verdict": verdict, "BLiMP why": why}
    docs = bf["docs"]
    seeds = c["common_seeds"]
    bt = paired_bootstrap_delta("".join(docs[(model, s)]["correct"] for s in seeds),
                                "".join(docs[(ref, s)]["correct"] for s in seeds), n=1000, seed=0)
    return {"BLiMP Δ": round(c["delta"], 2), "BLiMP 95% CI": _fmt_ci((c["lo"], c["hi"])), "BLiMP verdict": verdict,
            "BLiMP excludes": c["excludes"], "BLiMP pairs CI": _fmt_ci((100 * bt["lo"], 100 * bt["hi"])),
            "BLiMP why": f"{why}; SE {c['se']:.2f}, t {c['t']:.2f} on {c['df']:.3g} df; "
                         f"seeds {', '.join(map(str, seeds))}"}
