"""`entmask experiment verdicts`: each of the paper's claims judged on the finished tables, by the pooled model
(primary), the conservative per-claim rule, on the tasks above the majority class and on BLiMP; a forest plot.

What it is: the report and its figure; it trains nothing.
What it is not: the claims (claims), the models (pooled, blimp_claims, entmask.stats)."""
from __future__ import annotations

import time
from pathlib import Path

from entmask import runs
from entmask.config import PretrainConfig
from entmask.experiments.claims import (
    CLAIMS,
    CONTROLS,
    VERDICT_COLOR,
    _ci,
    _fmt_ci,
    judge,
    tasks_above_majority,
    unit_key,
)
from entmask.experiments.core import TASK_LABEL, TASK_ORDER, ExperimentError, ExperimentResult, _num, _pct, md_table
from entmask.experiments.plots import _figure, _save
from entmask.experiments.pooled import _pooled_claim, _pooled_fit, _power_table
from entmask.experiments.running import _say
from entmask.experiments.specs import RUN_SPECS


def plot_verdicts(table, stem: Path) -> dict:
    """Forest plot of the claims: the pooled model's Δ and 95% CI (filled circle, thick; the primary verdict),
    the conservative per-claim interval on the Total (hollow circle, thin) and on the tasks above majority (hollow
    square, thin), each coloured by its verdict; the arrow at the left says which way the paper claims. Claims
    with no Δ (not run, not finished) are listed with their reason instead of a point."""
    if table is None or not len(table):
        return {}
    n = len(table)
    fig = _figure(8.6, 0.5 * n + 1.3)
    ax = fig.add_subplot(111)
    labels = []
    for i, row in enumerate(table.to_dict("records")):
        y = n - 1 - i
        sign = next(c[6] for c in CLAIMS if c[0] == row["claim"])
        control = row["claim"] in CONTROLS
        labels.append(f"{'control: ' if control else ''}{row['compares']}  ({'↑' if sign > 0 else '↓'} "
                      f"{'expected' if control else 'claimed'})")
        drawn = False
        for off, (dcol, cicol, vcol, marker), primary in (
                ((0.2, ("pooled Δ", "pooled 95% CI", "pooled verdict", "o"), True),
                 (0.0, ("Δ Total", "95% CI", "verdict", "o"), False),
                 (-0.2, ("Δ (tasks above majority)", "95% CI (tasks above majority)",
                         "verdict (tasks above majority)", "s"), False))):
            ci, d = _ci(row.get(cicol)), row.get(dcol)
            if ci is None or not _num(d):
                continue
            color = VERDICT_COLOR.get(row.get(vcol), "#8C8C8C")
            ax.errorbar([d], [y + off], xerr=[[d - ci[0]], [ci[1] - d]], fmt=marker, color=color,
                        ms=6 if primary else 4, capsize=3 if primary else 2, lw=2.2 if primary else 0.8,
                        mfc=color if primary else "white")
            drawn = True
        if not drawn:
            ax.text(0, y, str(row.get("why", "")), ha="center", va="center", fontsize=7, color="#555555",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("Δ GLUE Total (model row − reference row), points; bars: 95% intervals (pooled mixed model; "
                  "conservative: the wider of the two-level bootstrap and the seed t-interval)", fontsize=8)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", ls="-", lw=2.2, color="black", label="pooled model (primary)"),
               Line2D([], [], marker="o", ls="-", lw=0.8, color="black", mfc="white", label="conservative, Total"),
               Line2D([], [], marker="s", ls="-", lw=0.8, color="black", mfc="white",
                      label="conservative, tasks above majority")]
    handles += [Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLOR.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 0.9 / (n + 3)),
              ncol=3, frameon=False)
    ax.set_title("The paper's claims at this profile: Δ and 95% intervals, coloured by verdict", fontsize=9)
    return _save(fig, stem)


def verdicts(cfg: PretrainConfig, *, root=None, progress: bool = True) -> ExperimentResult:
    """Each of the paper's §3.1-3.2 claims marked supported, contradicted or unresolved from the finished Table 1
    and Table 2 results of this profile (GLUE Totals). Primary ("pooled ..." columns): a linear mixed model fitted
    once over all the rows of every results file (entmask.stats; _pooled_fit), the claim a contrast of two rows.
    Conservative ("verdict", "95% CI", ...): the wider of a two-level bootstrap over seeds and examples and a
    t-interval over pretraining seeds, between the two rows a claim compares. Trains nothing: run
    `entmask experiment table1` / `table2` first."""
    import pandas as pd

    from entmask.analysis import bootstrap_total_delta, predictions_of

    out_dir = runs.results_dir(cfg.profile, root)
    loaded = {}
    for name in sorted({c[3] for c in CLAIMS}):
        f = out_dir / f"{name}.json"
        if f.exists():
            loaded[name] = runs.read_json(f)
    if not loaded:
        raise ExperimentError(f"no table1, table2 or static results in {out_dir}; run `entmask experiment table1 "
                              f"--profile {cfg.profile}` (and table2, static) first")
    inputs = [f"`{n}` (pretraining seeds {d.get('pretrain_seeds', '?')}, written {d.get('created', '?')}"
              + (", **report only**: rows not finished were left out" if d.get("report_only") else "") + ")"
              for n, d in sorted(loaded.items())]
    shared = _pooled_fit(loaded, cfg, root)  # one model over every row of every file
    pooled = {name: shared for name in shared["files"]}
    from entmask.blimp_claims import blimp_claim, blimp_fit

    bfit = blimp_fit(loaded, cfg, root)  # the second endpoint: one unit per scored student
    rows = []
    for cid, words, sec, table, model, ref, sign in CLAIMS:
        row = {"claim": cid, "paper (§)": f"{words} (§{sec})" if cid not in CONTROLS else words,
               "compares": f"{RUN_SPECS[model][1]} vs {RUN_SPECS[ref][1]}"}
        d = loaded.get(table)
        if d is None:
            rows.append({**row, "pooled verdict": "unresolved", "pooled why": f"{table} has not been run",
                         "verdict": "unresolved", "why": f"{table} has not been run",
                         "verdict (tasks above majority)": "unresolved",
                         "why (tasks above majority)": f"{table} has not been run"})
            continue
        ft = pd.DataFrame(d["extra"].get("finetune", []))
        tasks = [t for t in TASK_ORDER if t in d["tasks"]]
        units = {}
        for label in (model, ref):
            g = ft[(ft["label"] == label) & (ft["status"] == "ok")] if len(ft) else ft
            by = {}
            for f in g.to_dict("records"):
                by.setdefault(unit_key(f), {})[f["task"]] = f["run_dir"]
            units[label] = by
        info = d["runs"]
        # The recipe is judged by the random-masked baseline (a strategy-masked row's held-out accuracy is under
        # masks it never trained on: random_masked); tables written before that field judge both rows.
        base = [x for x in ("baseline",) if x in info and info[x].get("random_masked", True)]
        plateau = any(info.get(x, {}).get("left_plateau") is False for x in (base or (model, ref)))
        row.update(_pooled_claim(pooled.get(table), model, ref, sign, plateau))
        row.update(blimp_claim(bfit, model, ref, sign, plateau))
        common = sorted(set(units[model]) & set(units[ref]))
        cov = [t for t in tasks if common and all(t in units[model][k] and t in units[ref][k] for k in common)]
        if not common or not cov:
            empty = [RUN_SPECS[x][1] for x in (model, ref) if not units[x]]
            why = f"not finished: {', '.join(empty)}" if empty else "the rows have no finished fine-tuning in common"
            if empty and d.get("report_only"):  # the row may have finished at some seeds: say which report left it out
                why = (f"not finished at every pretraining seed {d.get('pretrain_seeds')}: {', '.join(empty)} (left "
                       f"out of the report-only {table})")
            rows.append({**row, "verdict": "unresolved", "why": why, "verdict (tasks above majority)": "unresolved",
                         "why (tasks above majority)": why})
            continue
        pm = [{t: predictions_of(units[model][k][t]) for t in cov} for k in common]
        pb = [{t: predictions_of(units[ref][k][t]) for t in cov} for k in common]
        b = bootstrap_total_delta(pm, pb, metric="paper", n=cfg.finetune.bootstrap or 1000, seed=0,
                                  groups=[k[0] for k in common])
        n_pre = len({k[0] for k in common})  # pretraining seeds: the units a claim about pretraining needs
        verdict, why = judge(b["delta"], *b["judged"], sign, plateau, n_pre)
        row.update({"Δ Total": round(b["delta"], 2), "95% CI": _fmt_ci(b["judged"]),
                    "bootstrap CI": _fmt_ci((b["lo"], b["hi"])), "seed t-interval": _fmt_ci(b["t_interval"]),
                    "per-seed Δ": ", ".join(f"{x:+.2f}" for x in b["seed_deltas"]), "pretraining seeds": n_pre,
                    "tasks": ", ".join(TASK_LABEL[t] for t in cov), "verdict": verdict, "why": why})
        # The same claim on the tasks where the two rows together beat the majority class: a Total over tasks where
        # every classifier collapsed measures who collapses most profitably, not the pretraining.
        inf = tasks_above_majority(d["extra"].get("finetune", []), (model, ref), cov, common)
        if not inf:
            row.update({"tasks above majority": "none", "verdict (tasks above majority)": "unresolved",
                        "why (tasks above majority)": "on no task do the two rows' mean scores beat the majority "
                                                      "class (not both collapsed) at every seed"})
        else:
            bi = b if inf == cov else bootstrap_total_delta(
                [{t: p[t] for t in inf} for p in pm], [{t: p[t] for t in inf} for p in pb], metric="paper",
                n=cfg.finetune.bootstrap or 1000, seed=0, groups=[k[0] for k in common])
            vi, wi = judge(bi["delta"], *bi["judged"], sign, plateau, n_pre)
            row.update({"tasks above majority": ", ".join(TASK_LABEL[t] for t in inf),
                        "Δ (tasks above majority)": round(bi["delta"], 2),
                        "95% CI (tasks above majority)": _fmt_ci(bi["judged"]),
                        "verdict (tasks above majority)": vi, "why (tasks above majority)": wi})
        rows.append(row)
    table = pd.DataFrame(rows)
    if "pretraining seeds" in table:
        # a count, also where a claim has none (NA, not 1.0)
        table["pretraining seeds"] = table["pretraining seeds"].astype("Int64")
    shown = table.copy()  # signed, two decimals, as the other tables print a Δ (the numeric table stays numeric)
    for col in ("pooled Δ", "Δ Total", "Δ (tasks above majority)", "BLiMP Δ"):
        if col in shown:
            shown[col] = [f"{v:+.2f}" if _num(v) else "" for v in shown[col]]
    power = _power_table(pooled)
    lines = [f"# The paper's claims at profile `{cfg.profile}`", "",
             "Judged by GLUE Totals (the paper's metric x 100, mean over the tasks), twice.", "",
             "Read from: " + "; ".join(inputs) + ".", "",
             "## Primary: one pooled mixed model over every row", "",
             "Every finished unit (row, pretraining seed, fine-tuning seed) of the results files, all their rows at "
             "once (a row that is in several files, such as random, is one run and counts once), "
             "is one GLUE Total in a linear mixed model (REML, statsmodels MixedLM; `entmask.stats`): a fixed "
             "effect per row, a random effect per pretraining seed (shared by every row at that seed), one per "
             "student (row x pretraining seed, shared by its fine-tuning seeds), and the fine-tuning noise as the "
             "residual. A claim is the contrast of two rows' effects, with a t interval whose degrees of freedom "
             "count students, not fine-tunings (students − rows − (seeds − 1)): pooling lends every row's seeds to "
             "the estimate of the student noise, which the per-claim rule below, with two seeds, estimates from one "
             "degree of freedom. It assumes that noise is common to the rows; the variant that gives self-masking "
             "rows their own is fitted where the table has them and chosen only if its REML AIC is lower. "
             "Supported / contradicted: the interval excludes 0 in / against the claimed direction; unresolved "
             "otherwise, or with one pretraining seed or a row on the unigram plateau, as below. `excludes`: the "
             "effects outside the 95% interval, in the claim's direction (a gain for a claimed improvement, a drop "
             "for a claimed deterioration), thresholds rounded outward to 0.1 point.", ""]
    lines += [f"- {t}" for t in dict.fromkeys(pf["text"] for _, pf in sorted(pooled.items()))]
    lines += [f"- {note}" for note in ([] if pooled else [shared["text"]])] + [""]
    lines += [md_table(shown.reindex(columns=["claim", "compares", "pooled Δ", "pooled 95% CI", "pooled verdict",
                                              "excludes", "pooled why"]).astype(object).fillna("")), ""]
    lines += ["## BLiMP: zero-shot minimal pairs, no fine-tuning", "",
              "The same claims on each student's BLiMP accuracy (pseudo-log-likelihood of the grammatical vs the "
              "ungrammatical sentence; `entmask.blimp`, scored after pretraining): one pooled mixed model of the "
              "scored students (a fixed effect per row, a random effect per pretraining seed, the student as the "
              "residual: no fine-tuning noise), judged by the same rule; `pairs CI`: a paired bootstrap over the "
              "minimal pairs of the seeds both rows were scored at (the noise of a fixed subsample of pairs, not "
              "the seed noise).", "", f"- {bfit['text']}", ""]
    if bfit.get("fit") is not None:
        lines += [md_table(shown.reindex(columns=["claim", "compares", "BLiMP Δ", "BLiMP 95% CI", "BLiMP verdict",
                                                  "BLiMP excludes", "BLiMP pairs CI", "BLiMP why"])
                           .astype(object).fillna("")), ""]
    if len(power):
        lines += ["Power to see a true Δ of 2 points (the paper's 'high > random' is 2-3): the probability that "
                  "the 95% interval excludes 0 in its direction, conservative rule / pooled model, with the SD of "
                  "one pretraining seed's Δ each fit estimates (`stats.power`, noncentral t; the conservative "
                  "figure is the seed t-interval's, an upper bound for the rule).", "", md_table(power), ""]
    lines += ["## Conservative: per claim, the wider of a two-level bootstrap and a seed t-interval", "",
             "Judged by GLUE Totals (the paper's metric x 100, mean over the tasks both rows finished), with a "
             "95% interval that is the wider of two: a two-level paired bootstrap over seeds and validation "
             "examples (`bootstrap CI`), and a t-interval over the pretraining seeds (`seed t-interval`; with 2 "
             "seeds it has 1 degree of freedom, t = 12.71). The bootstrap alone is too narrow with few seeds: two "
             "seeds drawn with replacement give three outcomes, so it excludes 0 whenever both seeds' Δ share a "
             "sign, however far apart. Supported / contradicted: the 95% CI "
             "of Δ excludes 0 in / against the claimed direction (only the sign is tested; a claimed size is for "
             "the reader to compare with Δ); unresolved: it contains 0, only one pretraining seed has finished, a "
             "row is on the unigram plateau, or a row has not finished. Held-out MLM loss is not used: a "
             "strategy-masked student is tested on random masks it never trained on (and a static teacher-masked one "
             "can memorise its training rows: `exploration.mask_fit`), so the plateau is judged on the random-masked "
             "baseline. This rule judges each claim twice: on the Total of every task both rows finished (the paper's "
             "measure), and, as a sensitivity analysis, on the tasks where the mean score of the two rows beats the "
             "majority class, and not both collapsed, at every seed (`tasks_above_majority`): where every classifier "
             "collapses, a "
             "Total rewards the most profitable collapse. The rule is symmetric in the two rows, so it does not bias "
             "Δ; it was added after seeing the first seed, and the two judgments are not corrected for being two. "
             "The controls at the end are not claims of the paper.", "",
             "### On the Total of every task both rows finished (the paper's measure)", "",
             md_table(shown.reindex(columns=["claim", "paper (§)", "compares", "Δ Total", "95% CI", "bootstrap CI",
                                             "seed t-interval", "per-seed Δ", "pretraining seeds", "tasks", "verdict",
                                             "why"]).astype(object).fillna("")), "",
             "## Sensitivity: on the tasks where the two rows beat the majority class", "",
             md_table(shown.reindex(columns=["claim", "compares", "tasks above majority", "Δ (tasks above majority)",
                                             "95% CI (tasks above majority)", "verdict (tasks above majority)",
                                             "why (tasks above majority)"]).astype(object).fillna("")), "",
             "Teacher-masking rows train on static masks (§2.2); on a corpus small enough to memorise, a difference "
             "from random masking can come from the staticness rather than the entropy: `entmask experiment static` "
             "trains random masks kept every epoch as the control.", ""]
    teacher = next((d.get("teacher") for d in loaded.values() if d.get("teacher")), None)
    if teacher and teacher.get("ratio"):
        lines += [f"Teacher: held-out accuracy {_pct(teacher['teacher_heldout_accuracy'])} vs random student "
                  f"{_pct(teacher['student_heldout_accuracy'])} ({teacher['ratio']:.2f}x).", ""]
    stem = out_dir / "verdicts"
    paths = {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json"), "csv": stem.with_suffix(".csv")}
    paths.update(plot_verdicts(table, stem))
    if "png" in paths:
        lines += ["![The claims: Δ and 95% CI per claim, coloured by verdict](verdicts.png)", ""]
    runs.atomic_write_text(paths["md"], "\n".join(lines))
    runs.atomic_write_text(paths["csv"], table.to_csv(index=False))
    pf = shared  # one fit, keyed by the files it pooled
    fit = {} if pf["fit"] is None else {
        "structure": pf["fit"].structure, "variances": pf["fit"].components, "aic": pf["fit"].aic,
        "df": pf["fit"].df, "notes": pf["fit"].notes, "n_units": pf["fit"].n_units,
        "row_effects": {k: float(x) for k, x in pf["fit"].beta.items()}}
    fits = {" + ".join(pf["files"]) or "none": {"text": pf["text"], "files": pf["files"], **fit}}
    runs.write_json(paths["json"], {"profile": cfg.profile, "claims": rows, "teacher": teacher, "pooled": fits,
                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": runs.git_commit()})
    _say(progress, f"verdicts: wrote {paths['md']}")
    return ExperimentResult(name="verdicts", table=table, paths=paths)
