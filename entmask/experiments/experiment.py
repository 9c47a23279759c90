"""One experiment end to end: run (or read) its rows, build its table, draw its figures, write .md/.csv/.json and the
figures under runs/<profile>/results/.

What it is: `_experiment` (what every table-making experiment calls) and `_write`.
What it is not: which rows an experiment has (specs) or how a table is laid out (table)."""
from __future__ import annotations

import math
import time

import pandas as pd

from entmask import runs
from entmask.config import PretrainConfig, set_args
from entmask.experiments.collect import _seed_mean_metrics
from entmask.experiments.core import (
    PAPER_SOURCE,
    ExperimentError,
    ExperimentResult,
    md_table,
    model_label,
)
from entmask.experiments.plots import (
    curves_frame,
    entropy_frame,
    plot_compute,
    plot_curves,
    plot_entropy,
    plot_totals,
)
from entmask.experiments.record import Report, get
from entmask.experiments.running import _report_finished, _Run, _say, train_rows
from entmask.experiments.specs import RUN_SPECS, TITLES, at_seed, matrix, pretrain_seeds
from entmask.experiments.table import (
    _build,
    per_seed_frame,
    plateau_note,
    random_masked,
    teacher_line,
    teacher_strength_of,
)


def _write(name: str, cfg: PretrainConfig, root, rs, table, scores, notes, header_extra: list[str],
           sections: list[tuple[str, object]], extra: dict, seconds: float, figures: dict,
           report_only: bool = False, file_name: str | None = None) -> dict:
    out_dir = runs.results_dir(cfg.profile, root)
    stem = out_dir / (file_name or name)
    paths = {"csv": stem.with_suffix(".csv"), "md": stem.with_suffix(".md"), "json": stem.with_suffix(".json")}
    runs.atomic_write_text(paths["csv"], table.to_csv(index=False))
    # Over every pretraining seed (a row left the plateau only if each seed did), as the table's plateau column.
    sm = {r.label: _seed_mean_metrics(r) for r in rs}
    plateau = plateau_note([{"label": RUN_SPECS[r.label][1], **sm[r.label], "random_masked": random_masked(r.cfg)}
                            for r in rs if r.error is None])
    lines = [f"# {TITLES[name]}", "",
             f"Experiment `{name}`, profile `{cfg.profile}`, students {model_label(cfg.model.preset)}, "
             f"{len(rs)} pretraining run(s), written by entmask.experiments in {seconds:.0f} s.", ""]
    if plateau:
        lines += ["> " + plateau, ""]
    strength = teacher_line(rs)
    if strength:
        lines += ["> " + strength, ""]
    for h in header_extra:
        lines += ["> " + h, ""]
    lines += [md_table(table), ""]
    lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    for title, body in sections:
        lines += [f"## {title}", "", body if isinstance(body, str) else md_table(body), ""]
    fig_lines = [f"- {k}: `{p.name}`" for k, p in figures.items() if p.suffix == ".png"]
    if fig_lines:
        lines += ["## Figures (PNG and SVG beside this file)", ""] + fig_lines + [""]
    lines += ["## Runs", ""] + [
        f"- {RUN_SPECS[r.label][1]}: `{r.run_dir}` (config hash {r.cfg.short_hash()})" if r.run_dir else
        f"- {RUN_SPECS[r.label][1]}: not available ({r.error})" for r in rs] + [""]
    runs.atomic_write_text(paths["md"], "\n".join(lines))
    runs.write_json(paths["json"], {
        "experiment": name, "title": TITLES[name], "profile": cfg.profile, "model": cfg.model.preset,
        "seconds": seconds, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": runs.git_commit(),
        "tasks": list(cfg.finetune.tasks), "seeds": list(cfg.finetune.seeds), "pretrain_seeds": pretrain_seeds(cfg),
        "report_only": report_only,  # written by --report-only: unfinished rows are left out (see "header")
        "teacher": teacher_strength_of(rs),
        "runs": {r.label: {"name": r.cfg.name, "hash": r.cfg.short_hash(), "dir": r.run_dir, "error": r.error,
                           "left_plateau": sm[r.label].get("left_plateau"), "random_masked": random_masked(r.cfg),
                           "heldout_accuracy": sm[r.label].get("heldout_accuracy"),
                           "unigram_accuracy": sm[r.label].get("unigram_accuracy")} for r in rs},
        "config_hashes": {r.label: r.cfg.short_hash() for r in rs},
        "plateau_warning": plateau, "notes": notes, "header": header_extra,
        "records": table.to_dict("records"), "scores": scores.to_dict("records"),
        "extra": {k: v.to_dict("records") for k, v in extra.items() if hasattr(v, "to_dict")},
        "paper_source": PAPER_SOURCE,
    })
    for k, p in figures.items():
        paths[k] = p
    return paths


def _workers(cfg: PretrainConfig, specs, root, frozen: bool = False) -> int:
    """experiment.workers, capped at the (row, seed) units left to pretrain (a finished row costs a worker only its
    start-up; a frozen probe's rows are all fine-tuning, so each counts) and at the torch threads here; 1 under
    torchrun or on a GPU (one device, one process)."""
    import torch

    from entmask.pretrain import run_folder

    want = cfg.experiment.workers
    if want <= 1 or runs.world_size() > 1 or torch.cuda.is_available():
        return 1
    left = sum(frozen or not runs.is_finished(run_folder(at_seed(c, s), "pretrain", root))
               for _, c in specs for s in pretrain_seeds(cfg))
    return max(1, min(want, left, torch.get_num_threads()))


def _experiment(name: str, cfg: PretrainConfig, *, root=None, progress: bool = True, corpus_name: str | None = None,
                train: bool = True) -> ExperimentResult:
    t0 = time.perf_counter()
    exp = get(name)
    specs = matrix(name, cfg, corpus=corpus_name)
    frozen = exp.frozen
    header, sections = [], []
    if train:
        rs = train_rows(name, specs, root, progress, workers=_workers(cfg, specs, root, frozen),
                        logs=runs.results_dir(cfg.profile, root) / "workers", frozen=frozen,
                        tolerate_data_errors=exp.tolerate_data_errors)
    else:
        rs = _report_finished(specs, root, frozen)
        seeds = pretrain_seeds(cfg)
        done, left = [r for r in rs if not r.unfinished], [r for r in rs if r.unfinished]
        # the rows others are compared with (the baseline; mask-rate: each strategy at 15%) must all be there
        refs = {b for lab, _ in specs for b in ((exp.delta_base or {}).get(lab), "baseline") if b} & {
            lab for lab, _ in specs}
        missing = [r for r in rs if r.label in refs and r.unfinished]
        if missing or not done:
            # The seeds a report could show: those at which every reference row and at least one other finished.
            ok = [s for s in seeds if all(s not in r.unfinished for r in rs if r.label in refs)
                  and any(s not in r.unfinished for r in rs if r.label not in refs)]
            what = ("; ".join(f"reference row {RUN_SPECS[r.label][1]} has not finished ({r.how_far()})"
                              for r in missing)
                    if missing else "no row has finished")
            hint = (f"report the seed(s) that did with --set 'experiment.pretrain_seeds=[{','.join(map(str, ok))}]'"
                    if ok else f"no pretraining seed has finished yet; run `entmask experiment {name} --profile "
                    f"{cfg.profile}{set_args(cfg)}` first")
            raise ExperimentError(f"--report-only: {name} at pretraining seed(s) {seeds}: {what}; {hint}")
        rs = done
        if left:
            header.append(f"**Report only: rows not finished at every pretraining seed {seeds} are left out**: "
                          + "; ".join(f"{RUN_SPECS[r.label][1]} ({r.how_far()})" for r in left)
                          + ". Nothing was trained; the rows shown are whole.")
            for r in left:  # said even with --quiet: it is what a report is asked for
                _say(True, f"{name}: not finished: {RUN_SPECS[r.label][1]}: {r.how_far('; ')}")
    paper_key = name if exp.paper_table else None
    table, scores, boots, notes, cov = _build(name, cfg, rs, paper_key=paper_key)
    extra = {"scores": scores, "bootstrap": boots, "finetune": _finetune_frame(rs)}
    per_seed = per_seed_frame(name, rs, cov)
    if per_seed["pretraining seed"].nunique() > 1:  # with one seed it repeats the main table
        extra["per_seed"] = per_seed
        sections.append(("Per pretraining seed (do the seeds agree?)", per_seed.drop(columns="label")))
    out = exp.result_name(corpus=corpus_name) if exp.result_name else name  # the files' name (corpus-gutenberg)
    stem = runs.results_dir(cfg.profile, root) / out
    figures: dict = {}

    maj_row = scores[scores["source"] == "majority"]
    maj_total = float(maj_row["Total"].iloc[0]) if len(maj_row) else math.nan
    figures.update({k: v for k, v in plot_totals(name, rs, cov, maj_total, stem).items()})
    if exp.compute_plot:
        figures.update({f"compute_{k}": v for k, v in plot_compute(name, rs, cov, stem.with_name(f"{out}-compute")
                                                                   ).items()})
    curves = curves_frame(rs)
    extra["curves"] = curves
    figures.update({f"curves_{k}": v for k, v in plot_curves(curves, stem.with_name(f"{out}-curves")).items()})
    if exp.entropy_plot and not train:
        # prepare_corpus / resolve_teacher / teacher_entropies lock their caches (and would build a missing one):
        # a report beside a running matrix must neither wait for them nor compete.
        header.append("Report only: the section on the teacher entropy of masked tokens is left out (it reads the "
                      "corpus and entropy caches under their locks); the full run writes it.")
    elif exp.entropy_plot:
        ent, values = entropy_frame(cfg, rs, root, progress)
        extra["entropy"] = ent
        figures.update({f"entropy_{k}": v for k, v in plot_entropy(values, stem.with_name(f"{out}-entropy")).items()})
        if not ent.empty:
            sections.append(("Teacher entropy of masked vs maskable tokens", ent[[
                "label", "strategy", "source", "ratio", "num_tokens", "n_masked", "n_maskable", "masked_mean",
                "maskable_mean"]].round(3)))
    if exp.report:  # what only this experiment does: a header line, a table transform, more sections
        rep = Report(name=name, cfg=cfg, rs=rs, table=table, scores=scores, header=header, sections=sections,
                     extra=extra, figures=figures, stem=stem, train=train, progress=progress, root=root)
        exp.report(rep)
        table = rep.table
    seconds = time.perf_counter() - t0
    paths = _write(name, cfg, root, rs, table, scores, notes, header, sections, extra, seconds, figures,
                   report_only=not train, file_name=out)
    _say(progress, f"{name}: wrote {paths['md']}")
    return ExperimentResult(name=name, table=table, paths=paths,
                            runs={r.label: r.run_dir for r in rs}, extra=extra)


def _finetune_frame(rs: list[_Run]):
    keys = ("task", "pretrain_seed", "seed", "status", "frozen", "paper_score", "glue_score", "collapsed",
            "majority_paper_score", "n_train", "n_eval", "epochs_run", "eval_note", "run_dir")
    return pd.DataFrame([{"label": r.label, **{k: f.get(k) for k in keys}} for r in rs for f in r.ft],
                        columns=["label", *keys])
