"""One experiment's table: rows x tasks in the paper's layout, the paper's rows and a majority row beside ours, Δ Total,
the notes, the teacher line.

What it is: `_build` (the table, its numbers and its columns) and `per_seed_frame`; the sentences around it are in
table_notes (re-exported here).
What it is not: training, figures or writing files."""
from __future__ import annotations

import math

import numpy as np

from entmask import paper
from entmask.config import PretrainConfig
from entmask.experiments.collect import (
    _majority,
    _preds,
    _row_flops,
    _seed_mean_metrics,
    _seed_totals,
    _task_rows,
    _unit,
    blimp_delta,
    blimp_of,
    covered_tasks,
)
from entmask.experiments.core import (
    ABSENT,
    NOT_RUN,
    PAPER,
    PAPER_NAMES,
    TASK_LABEL,
    TASK_ORDER,
    _num,
    _pct,
    fmt_cell,
    model_label,
)
from entmask.experiments.running import _Run
from entmask.experiments.specs import RUN_SPECS, reference_row
from entmask.experiments.table_notes import (  # noqa: F401  (the notes' names, read from here as before)
    _local_teacher, _notes, _shown, blimp_note, plateau_judged, plateau_note, random_masked, self_switch_sd,
    teacher_line, teacher_strength_of, truncation_note,
)


def per_seed_frame(name: str, rs: list[_Run], tasks: list[str]):
    """Each row's cells at each pretraining seed (fine-tuning seeds averaged within it), its Total over `tasks` and
    its Δ Total against its reference row at the same pretraining seed: where the main table shows mean ± s.d.,
    this shows whether the seeds agree (a claim needs them to). Δ here is a plain difference of Totals; its
    interval is in the main table and the verdicts. Empty when no row has a finished fine-tuning."""
    import pandas as pd

    totals: dict = {}  # (label, pretraining seed) -> Total
    out = []
    for r in rs:
        if r.error is not None:
            continue
        held = {sr["pretrain_seed"]: sr["metrics"].get("heldout_accuracy") for sr in r.seed_runs}
        for ps in sorted({_unit(f)[0] for f in r.ft if f.get("status") == "ok"}):
            d = {"label": r.label, "strategy": RUN_SPECS[r.label][1], "pretraining seed": ps,
                 "held-out acc": _pct(held.get(ps))}
            cells = {}
            for t in tasks:
                ok = [f for f in _task_rows(r, t) if f.get("status") == "ok" and _unit(f)[0] == ps]
                if ok:
                    cells[t] = float(np.mean([f["paper_score"] for f in ok]))
                    d[TASK_LABEL[t]] = fmt_cell(cells[t], None, any(f.get("collapsed") for f in ok))
                else:
                    d[TASK_LABEL[t]] = NOT_RUN
            tot = float(np.mean([cells[t] for t in tasks])) if tasks and len(cells) == len(tasks) else math.nan
            totals[(r.label, ps)] = tot
            d["Total"] = fmt_cell(tot) if _num(tot) else "—"  # a task missing at this seed: nothing to average
            out.append(d)
    for d in out:
        base = reference_row(name, d["label"])
        here, there = totals[(d["label"], d["pretraining seed"])], totals.get((base, d["pretraining seed"]))
        d["Δ Total"] = ("(reference)" if base is None else f"{here - there:+.2f}" if _num(here) and _num(there)
                        else "")
    cols = ["strategy", "pretraining seed", "held-out acc"] + [TASK_LABEL[t] for t in tasks] + ["Total", "Δ Total"]
    return pd.DataFrame(out, columns=["label"] + cols)


def _build(name: str, cfg: PretrainConfig, rs: list[_Run], *, paper_key: str | None):
    """(display table, numeric scores, bootstrap details, notes, covered tasks) for the experiment's runs."""
    import pandas as pd

    from entmask.analysis import bootstrap_total_delta, mean_sd

    fc = cfg.finetune
    tasks_req = list(fc.tasks)
    cov = covered_tasks(rs, tasks_req)
    model = model_label(cfg.model.preset)
    texts = {label: RUN_SPECS[label][1] for label in RUN_SPECS}
    by_label = {r.label: r for r in rs}

    disp, nums, boots = [], [], []
    judged = {r["label"] for r in plateau_judged([{"label": r.label, "random_masked": random_masked(r.cfg)}
                                                   for r in rs if r.error is None])}
    for r in rs:
        row_model = model if name != "corpus" else f"{model} on {r.cfg.data.corpus}"
        d = {"model": row_model, "strategy": texts[r.label], "source": "ours"}
        n = {"label": r.label, "model": row_model, "strategy": texts[r.label], "source": "ours",
             "run": str(r.run_dir) if r.run_dir else None, "hash": r.cfg.short_hash()}
        for t in TASK_ORDER:
            col = TASK_LABEL[t]
            rows = _task_rows(r, t)
            ok = [f for f in rows if f.get("status") == "ok"]
            if r.error is not None:
                d[col], n[col] = "unavailable", math.nan
            elif t not in tasks_req or not rows:
                d[col], n[col] = NOT_RUN, math.nan
            elif not ok:
                d[col], n[col] = ABSENT, math.nan
            else:
                mu, sd = mean_sd([f["paper_score"] for f in ok])
                coll = any(f.get("collapsed") for f in ok)
                d[col] = fmt_cell(mu, sd, coll)
                n[col], n[f"{col} sd"], n[f"{col} collapsed"] = mu, sd, coll
                n[f"{col} glue"] = float(np.mean([f["glue_score"] for f in ok]))
        tot = _seed_totals(r, cov)
        mu, sd = mean_sd(tot)
        d["Total"] = fmt_cell(mu, sd) if tot else ("unavailable" if r.error else "—")  # "—": no task to average
        d["row mean (recomputed)"] = ""
        n["Total"], n["Total sd"], n["n_seeds"] = mu, sd, len(tot)
        base_label = reference_row(name, r.label)
        base = by_label.get(base_label) if base_label else None
        d["Δ Total"] = "(reference)" if base_label is None and r.error is None else ""
        d["95% CI (bootstrap)"], d["seed t-interval"], d["per-seed Δ"] = "", "", ""
        if base is not None and cov and r.error is None and base.error is None:
            (pm, groups), (pb, _) = _preds(r, cov), _preds(base, cov)
            b = bootstrap_total_delta(pm, pb, metric="paper", n=fc.bootstrap, seed=0, groups=groups)
            who = "" if base_label == "baseline" else f" vs {texts[base_label]}"
            d["Δ Total"] = f"{b['delta']:+.2f}{who}"
            d["95% CI (bootstrap)"] = f"[{b['lo']:+.2f}, {b['hi']:+.2f}]"
            d["per-seed Δ"] = ", ".join(f"{x:+.2f}" for x in b["seed_deltas"])
            d["seed t-interval"] = (f"[{b['t_interval'][0]:+.2f}, {b['t_interval'][1]:+.2f}]" if b["t_interval"]
                                    else "")
            n.update(delta_base=base_label, delta=b["delta"], delta_lo=b["lo"], delta_hi=b["hi"],
                     delta_t_interval=b["t_interval"])
            boots.append({"label": r.label, "base": base_label, **{k: b[k] for k in (
                "delta", "lo", "hi", "total_model", "total_base", "seed_deltas", "t_interval", "t_interval_note",
                "n_resamples")}, "per_task": b["per_task"]})
        bl = blimp_of(r) if r.error is None else {}
        accs = [100 * x["accuracy"] for x in bl.values()]
        d["BLiMP"] = fmt_cell(*mean_sd(accs)) if accs else ""
        n["BLiMP"], n["BLiMP seeds"] = (float(np.mean(accs)) if accs else math.nan), len(accs)
        d["Δ BLiMP"] = ""
        if base is not None and bl and base.error is None:
            bd = blimp_delta(r, base, n=fc.bootstrap or 1000)
            if bd is not None:
                d["Δ BLiMP"] = f"{bd['delta']:+.2f} [{bd['lo']:+.2f}, {bd['hi']:+.2f}]"
                n.update(blimp_delta=bd["delta"], blimp_delta_lo=bd["lo"], blimp_delta_hi=bd["hi"],
                         blimp_seed_deltas=bd["seed_deltas"])
        m = _seed_mean_metrics(r)
        lp = m.get("left_plateau")
        d["plateau"] = ("" if r.error else "left" if lp else "?" if lp is None else
                        "ON PLATEAU" if r.label in judged else
                        "n/a (static masks)" if r.cfg.masking.static else "n/a (strategy masks)")
        flops = _row_flops(r) if r.error is None else None
        d["PFLOPs"] = f"{flops / 1e15:.3g}" if flops else ""
        n["flops"] = flops
        d["held-out acc"] = _pct(m.get("heldout_accuracy"))
        d["unigram acc"] = _pct(m.get("unigram_accuracy"))
        sw, end = self_switch_sd(r.cfg, m)
        both = sw is not None and end is not None
        d["self entropy s.d. (switch → end)"] = f"{sw:.2f} → {end:.2f}" if both else ""
        d["run"] = r.run_dir.name if r.run_dir else "unavailable"  # the reason is in the header
        n.update(left_plateau=lp, heldout_accuracy=m.get("heldout_accuracy"),
                 unigram_accuracy=m.get("unigram_accuracy"), train_seconds=m.get("train_seconds"),
                 train_seconds_total=m.get("train_seconds_total"),
                 steps=m.get("steps"), error=r.error, self_sd_switch=sw, self_sd_end=end)
        disp.append(d)
        nums.append(n)

    # Majority-class row: ours (same examples as the models) and, where the paper printed one, the paper's.
    maj, maj_note = _majority(cfg)
    d = {"model": "majority class", "strategy": "", "source": "majority"}
    n = {"label": "majority", "model": "majority class", "strategy": "", "source": "majority"}
    for t in TASK_ORDER:
        col = TASK_LABEL[t]
        if t not in tasks_req:
            d[col], n[col] = NOT_RUN, math.nan
        elif maj.get(t) is None:
            d[col], n[col] = ABSENT, math.nan
        else:
            d[col], n[col] = fmt_cell(maj[t]), maj[t]
    mt = float(np.mean([maj[t] for t in cov])) if cov and all(maj.get(t) is not None for t in cov) else math.nan
    d["Total"], n["Total"] = fmt_cell(mt) if _num(mt) else "", mt
    disp.append(d)
    nums.append(n)

    paper_rows = []
    if paper_key:
        paper_rows.append(("majority class", "", PAPER["majority"]))
        entries = [(k, pr, "") for k, pr in PAPER[paper_key].items()]
        if paper_key == "table2":  # Table 2's own rows are self-masking; its baseline and teacher rows are Table 1's
            entries = [((m, lab), PAPER["table1"][(m, lab)], " (paper Table 1)") for m in ("BERTlet", "BERT")
                       for lab in ("baseline", "teacher-high")] + entries
        for (pmodel, label), pr, where in entries:
            paper_rows.append((pmodel, f"{texts[label]} [{PAPER_NAMES[label]}]{where}", pr))
    for pr in paper.PROSE.get(name, []) if name != "weights" else []:
        # Prose-only figures: the paper's words (and its Total where it gives one), beside our rows.
        txt = {"model": pr["model"], "strategy": f"{pr['what']} (§{pr['section']})", "source": "paper"}
        d = {**txt, **{TASK_LABEL[t]: "" for t in TASK_ORDER}, "Total": fmt_cell(pr["total"]) if pr["total"] else
             pr["text"]}
        disp.append(d)
        nums.append({**txt, "label": f"paper:{pr['model']}:{pr['what']}", "Total": pr["total"] or math.nan,
                     "paper_text": pr["text"]})
    for pmodel, strat, pr in paper_rows:
        d = {"model": pmodel, "strategy": strat, "source": "paper"}
        n = {"label": f"paper:{pmodel}:{strat}", "model": pmodel, "strategy": strat, "source": "paper"}
        for t, v in zip(TASK_ORDER, pr["cells"]):
            d[TASK_LABEL[t]] = fmt_cell(v)
            n[TASK_LABEL[t]] = v if v is not None else math.nan
        known = [v for v in pr["cells"] if v is not None]
        rec = float(np.mean(known)) if len(known) == 7 else pr["recomputed"]
        d["Total"] = fmt_cell(pr["total"]) if strat else ""
        d["row mean (recomputed)"] = fmt_cell(rec) if strat else ""
        n["Total"] = pr["total"] if pr["total"] is not None else math.nan
        n["row mean (recomputed)"] = rec if rec is not None else math.nan
        disp.append(d)
        nums.append(n)

    cols = (["model", "strategy", "source"] + [TASK_LABEL[t] for t in TASK_ORDER] +
            ["Total", "row mean (recomputed)", "Δ Total", "95% CI (bootstrap)", "per-seed Δ", "seed t-interval",
             "BLiMP", "Δ BLiMP", "plateau",
             "PFLOPs", "held-out acc", "unigram acc", "self entropy s.d. (switch → end)", "run"])
    table = pd.DataFrame(disp).reindex(columns=cols).fillna("")
    scores = pd.DataFrame(nums)

    notes = _notes(name, cfg, rs, cov, tasks_req, maj, maj_note, paper_key)
    return table, scores, pd.DataFrame(boots), notes, cov
