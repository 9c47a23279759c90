"""One experiment end to end: run (or read) its rows, build its table, draw its figures, write .md/.csv/.json and the
figures under runs/<profile>/results/.

What it is: `_experiment` (what every table-making experiment calls) and `_write`.
What it is not: which rows an experiment has (specs) or how a table is laid out (table)."""
from __future__ import annotations

import math
import time

from entmask import runs
from entmask.config import PretrainConfig, set_args
from entmask.experiments.collect import _seed_mean_metrics
from entmask.experiments.core import (
    PAPER_SOURCE,
    TASK_LABEL,
    TASK_ORDER,
    ExperimentError,
    ExperimentResult,
    _num,
    md_table,
    model_label,
)
from entmask.experiments.plots import (
    WEIGHTS_NOTE,
    curves_frame,
    entropy_frame,
    layer_component_view,
    movement_vs_size,
    plot_compute,
    plot_curves,
    plot_entropy,
    plot_totals,
    plot_weights,
    weight_movement,
)
from entmask.experiments.running import _pretrain_and_finetune, _report_finished, _Run, _say
from entmask.experiments.specs import (
    COMPUTE_PLOTS,
    DELTA_BASE,
    ENTROPY_PLOTS,
    RUN_SPECS,
    TITLES,
    matrix,
    pretrain_seeds,
)
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
           report_only: bool = False) -> dict:
    out_dir = runs.results_dir(cfg.profile, root)
    stem = out_dir / name
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


def _experiment(name: str, cfg: PretrainConfig, *, root=None, progress: bool = True, corpus_name: str | None = None,
                train: bool = True) -> ExperimentResult:
    t0 = time.perf_counter()
    specs = matrix(name, cfg, corpus=corpus_name)
    frozen = name == "frozen"
    header, sections = [], []
    if train:
        rs = _pretrain_and_finetune(name, specs, root, progress, frozen=frozen, tolerate_data_errors=name == "corpus")
    else:
        rs = _report_finished(specs, root, frozen)
        seeds = pretrain_seeds(cfg)
        done, left = [r for r in rs if not r.unfinished], [r for r in rs if r.unfinished]
        # the rows others are compared with (the baseline; mask-rate: each strategy at 15%) must all be there
        refs = {b for lab, _ in specs for b in (DELTA_BASE.get(name, {}).get(lab), "baseline") if b} & {
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
    paper_key = name if name in ("table1", "table2") else None
    table, scores, boots, notes, cov = _build(name, cfg, rs, paper_key=paper_key)
    extra = {"scores": scores, "bootstrap": boots, "finetune": _finetune_frame(rs)}
    per_seed = per_seed_frame(name, rs, cov)
    if per_seed["pretraining seed"].nunique() > 1:  # with one seed it repeats the main table
        extra["per_seed"] = per_seed
        sections.append(("Per pretraining seed (do the seeds agree?)", per_seed.drop(columns="label")))
    stem = runs.results_dir(cfg.profile, root) / name
    figures: dict = {}

    if name == "corpus":
        bad = [r for r in rs if r.error]
        if bad:
            header.append(f"**The corpus {rs[0].cfg.data.corpus}/{rs[0].cfg.data.corpus_config} "
                          f"{rs[0].cfg.data.splits} is unavailable here**, so nothing was trained on it: "
                          f"{bad[0].error}")
        else:
            header.append(f"Pretraining corpus: {rs[0].cfg.data.corpus}/{rs[0].cfg.data.corpus_config} "
                          f"{rs[0].cfg.data.splits} instead of {cfg.data.corpus}/{cfg.data.corpus_config}.")
    if name == "beyond":
        header.append("Beyond the paper: none of these rows is in the paper. Scores: masked-view entropy (each token "
                      "scored while masked, 1/ratio passes), excess loss = student − teacher masked loss (Rho-1); "
                      "`sampled` draws k with probability ∝ softmax(entropy / T); 80/10/10 = BERT's replacement "
                      "policy for the self-masked student. PFLOPs and the compute figure put each row beside random "
                      "masking trained for 1x and 2x the steps.")
    if frozen:
        table = _with_frozen_delta(table, scores)
        header.append("Frozen probe: the encoder (embeddings, layers, pooler) stays bitwise at its pretrained values; "
                      f"only the classifier trains, for finetune.frozen_epochs={cfg.finetune.frozen_epochs} epoch(s). "
                      "The last row is the per-task difference high − baseline.")

    maj_row = scores[scores["source"] == "majority"]
    maj_total = float(maj_row["Total"].iloc[0]) if len(maj_row) else math.nan
    figures.update({k: v for k, v in plot_totals(name, rs, cov, maj_total, stem).items()})
    if name in COMPUTE_PLOTS:
        figures.update({f"compute_{k}": v for k, v in plot_compute(name, rs, cov, stem.with_name(f"{name}-compute")
                                                                   ).items()})
    curves = curves_frame(rs)
    extra["curves"] = curves
    figures.update({f"curves_{k}": v for k, v in plot_curves(curves, stem.with_name(f"{name}-curves")).items()})
    if name in ENTROPY_PLOTS and not train:
        # prepare_corpus / resolve_teacher / teacher_entropies lock their caches (and would build a missing one):
        # a report beside a running matrix must neither wait for them nor compete.
        header.append("Report only: the section on the teacher entropy of masked tokens is left out (it reads the "
                      "corpus and entropy caches under their locks); the full run writes it.")
    elif name in ENTROPY_PLOTS:
        ent, values = entropy_frame(cfg, rs, root, progress)
        extra["entropy"] = ent
        figures.update({f"entropy_{k}": v for k, v in plot_entropy(values, stem.with_name(f"{name}-entropy")).items()})
        if not ent.empty:
            sections.append(("Teacher entropy of masked vs maskable tokens", ent[[
                "label", "strategy", "source", "ratio", "num_tokens", "n_masked", "n_maskable", "masked_mean",
                "maskable_mean"]].round(3)))
    if name == "weights":
        deltas, moves = weight_movement(rs)
        extra["deltas"], extra["movement"] = deltas, moves
        figures.update({f"heatmap_{k}": v for k, v in plot_weights(deltas, stem.with_name("weights-heatmap")).items()})
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
            sections.append(("Most-moved component per task and training-set size", body))
        view = layer_component_view(deltas)
        if not view.empty:
            extra["layer_component"] = view
            sections.append(("Layer x component, the paper's view (§3.7)", md_table(view) + "\n\n" + WEIGHTS_NOTE))
    seconds = time.perf_counter() - t0
    paths = _write(name, cfg, root, rs, table, scores, notes, header, sections, extra, seconds, figures,
                   report_only=not train)
    _say(progress, f"{name}: wrote {paths['md']}")
    return ExperimentResult(name=name, table=table, paths=paths,
                            runs={r.label: r.run_dir for r in rs}, extra=extra)


def _finetune_frame(rs: list[_Run]):
    import pandas as pd

    keys = ("task", "pretrain_seed", "seed", "status", "frozen", "paper_score", "glue_score", "collapsed",
            "majority_paper_score", "n_train", "n_eval", "epochs_run", "eval_note", "run_dir")
    return pd.DataFrame([{"label": r.label, **{k: f.get(k) for k in keys}} for r in rs for f in r.ft],
                        columns=["label", *keys])


def _with_frozen_delta(table, scores):
    """Append the per-task difference high − baseline of the frozen probe."""
    import pandas as pd

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
