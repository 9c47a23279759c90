"""The primary verdict's model: one pooled mixed model over every row of the results files (entmask.stats), and the
columns it gives a claim.

What it is: the units of the finished tables (and their rows' finished runs the report-only tables left out), one fit, a
claim's contrast, power.
What it is not: the statistics (entmask.stats) or the conservative rule (verdicts)."""
from __future__ import annotations

from entmask import runs
from entmask.config import PretrainConfig
from entmask.experiments.claims import _fmt_ci, judge, unit_key
from entmask.experiments.core import _num
from entmask.experiments.specs import RUN_SPECS, at_seed, matrix


def _pooled_units(name: str, d: dict, cfg: PretrainConfig, root) -> tuple[list[dict], list[str], list[str]]:
    """(records, rows, notes): the fine-tuning records results file `name` gives the pooled model, the rows looked
    at, and what was said. The file's own records, plus every finished unit of its matrix's rows at its pretraining
    and fine-tuning seeds that it left out: a --report-only table drops a row unfinished at any seed whole, but the
    units of it that finished are data. Read only (finished metrics.json; no lock, nothing trained). Only where the
    profile's row hashes are those the file recorded (a file without them, e.g. from an older version: its own
    records only)."""
    from entmask.finetune import finetune_task
    from entmask.pretrain import run_folder

    recs = [f for f in d.get("extra", {}).get("finetune", []) if f.get("status") == "ok"]
    rows = list(d.get("runs", {}))
    hashes = d.get("config_hashes") or {}
    if not hashes:
        return recs, rows, []
    pseeds, fseeds = d.get("pretrain_seeds") or [0], d.get("seeds") or [0]
    try:
        specs = matrix(name, cfg)
    except Exception as e:  # noqa: BLE001 - the file's records are still there
        return recs, rows, [f"the rows of `{name}` could not be listed ({str(e)[:100]}): its records only"]
    if any(h not in {at_seed(c, s).short_hash() for s in pseeds} for label, c in specs
           for h in [hashes.get(label)] if h is not None):
        return recs, rows, [f"`{name}` was written under another configuration than this profile's (row hashes "
                            f"differ): only its own records are pooled"]
    have = {(f["label"], f["task"]) + unit_key(f) for f in recs}
    absent, added = set(), 0
    for label, c in specs:
        rows += [label] if label not in rows else []
        for ps in pseeds:
            run_dir = run_folder(at_seed(c, ps), "pretrain", root)
            if runs.finished_metrics(run_dir) is None:
                continue
            for task in d.get("tasks", []):
                for fs in fseeds:
                    if task in absent or (label, task, ps, fs) in have:
                        continue
                    f = finetune_task(run_dir / "model", task, c.finetune, fs, profile=c.profile, name=run_dir.name,
                                      data_dir=c.data.data_dir, root=root, frozen=name == "frozen", progress=False,
                                      train=False)
                    if f.get("status") == "absent":
                        absent.add(task)
                    elif _num(f.get("paper_score")):
                        recs.append({**f, "label": label, "task": task, "pretrain_seed": ps, "seed": fs,
                                     "status": "ok"})
                        added += 1
    return recs, rows, ([f"{added} finished fine-tuning run(s) `{name}` left out were read from the run folders"]
                        if added else [])


def _pooled_fit(files: dict, cfg: PretrainConfig, root) -> dict:
    """One pooled model over every row of the results files `files` ({name: loaded json}): {"fit": stats.Pooled
    or None, "units": DataFrame, "files": the names pooled, "text": a paragraph for the report (structure chosen
    and why, units missing)}. A row in several files (random and high are in table1, table2 and static) is the same
    run, so its units count once; a file whose row hashes differ from another's for the same row (written under
    another configuration) is left out, with a note. Never raises: a failure is said in "text", and the claims get
    no pooled verdict."""
    from entmask import stats

    notes: list[str] = []
    fit, units, pooled_files = None, None, []
    try:
        recs, rows, want, hashes = [], [], {}, {}
        for name, d in sorted(files.items()):
            own = d.get("config_hashes") or {}
            clash = sorted(label for label, h in own.items() if hashes.get(label, h) != h)
            if clash:
                notes.append(f"`{name}` left out: its {', '.join(clash)} hash differs from another file's")
                continue
            hashes.update(own)
            r, labels, said = _pooled_units(name, d, cfg, root)
            recs += r
            notes += said
            pooled_files.append(name)
            for label in labels:
                rows += [label] if label not in rows else []
                seeds = want.setdefault(label, {})
                for ps in d.get("pretrain_seeds") or [0]:
                    seeds.setdefault(ps, set()).update(d.get("seeds") or [0])
        units, dropped = stats.unit_totals(recs)
        notes += dropped
        for label in rows:  # every unit some file's seeds ask for that did not finish
            u = units[units["row"] == label]
            if not len(u):
                notes.append(f"{RUN_SPECS[label][1]}: no finished unit")
                continue
            for ps, fseeds in sorted(want[label].items()):
                left = sorted(fseeds - set(u[u["pseed"] == ps]["fseed"]))
                if left:
                    notes.append(f"{RUN_SPECS[label][1]} at pretraining seed {ps}: fine-tuning seed(s) "
                                 f"{', '.join(map(str, left))} not finished")
        if units["row"].nunique() >= 2:
            fit = stats.fit(units)
    except Exception as e:  # noqa: BLE001 - the conservative verdicts stand without it
        notes.append(f"the pooled fit failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})")
    names = ", ".join(f"`{n}`" for n in pooled_files) or "no file"
    text = f"{names}: " + (stats.describe(fit) if fit is not None else "no pooled fit (fewer than two rows "
                                                                        "with a finished unit).")
    if notes:
        text += " Units: " + "; ".join(notes) + "."
    elif fit is not None:
        text += " Every unit at its seeds finished."
    return {"fit": fit, "units": units, "text": text, "files": pooled_files}


def judged_contrast(fit, model: str, ref: str, sign: int, plateau: bool, *, no_fit: str,
                    no_row: str) -> tuple[dict | None, str, str]:
    """(contrast, verdict, why) of one claim from a pooled fit (stats.Pooled): Δ = β_model − β_ref with its t
    interval, judged by judge's rules (sign, plateau, at least two pretraining seeds in common); contrast None and
    'unresolved' with `no_fit` when there is no fit, or `no_row` + the rows' names when a row has no unit in it."""
    if fit is None:
        return None, "unresolved", no_fit
    gone = [RUN_SPECS[x][1] for x in (model, ref) if x not in fit.beta.index]
    if gone:
        return None, "unresolved", f"{no_row} {', '.join(gone)}"
    c = fit.contrast(model, ref, sign)
    verdict, why = judge(c["delta"], c["lo"], c["hi"], sign, plateau, len(c["common_seeds"]))
    if len(c["common_seeds"]) < 2:  # the interval leaves out pretraining-seed noise (BLiMP's is then 0 wide):
        c = {**c, "excludes": ""}  # it excludes nothing a reader could rely on
    return c, verdict, why


def _pooled_claim(pf: dict | None, model: str, ref: str, sign: int, plateau: bool) -> dict:
    """The pooled columns of one claim (judged_contrast), with what the interval excludes."""
    c, verdict, why = judged_contrast((pf or {}).get("fit"), model, ref, sign, plateau,
                                      no_fit="no pooled fit of this table", no_row="no finished unit of")
    if c is None:
        return {"pooled verdict": verdict, "pooled why": why}
    return {"pooled Δ": round(c["delta"], 2), "pooled 95% CI": _fmt_ci((c["lo"], c["hi"])), "pooled verdict": verdict,
            "excludes": c["excludes"], "pooled why": f"{why}; SE {c['se']:.2f}, t {c['t']:.2f} on {c['df']:.3g} df",
            "pooled df": c["df"]}


def _power_table(pooled: dict):
    """Power to see a 2-point Δ (the paper's 'high > random' is 2-3 points) at 2-8 pretraining seeds, with the
    SD of one seed's Δ each pooled fit estimates: the conservative rule vs the pooled model (stats.power)."""
    import pandas as pd

    from entmask import stats

    out, seen = [], set()
    for name, pf in sorted(pooled.items()):
        if id(pf) in seen:  # one shared fit: one row
            continue
        seen.add(id(pf))
        name = " + ".join(pf.get("files") or [name])
        fit, units = pf.get("fit"), pf.get("units")
        if fit is None or fit.structure not in (stats.HOMO, stats.HETERO):
            continue
        n_ft = max(1, int(units.groupby(["row", "pseed"]).size().median()))
        sd = fit.sd_seed_delta(n_ft)
        row = {"table": name, "SD of one seed's Δ": round(sd, 2), "fine-tuning seeds": n_ft}
        for n in (2, 3, 4, 8):
            p = stats.power(sd, 2.0, n, n_rows=len(fit.beta))
            row[f"{n} seeds"] = f"{p['conservative']:.2f} / {p['pooled']:.2f}"
        out.append(row)
    return pd.DataFrame(out)
