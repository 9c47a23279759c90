"""`entmask experiment memorisation`: each finished student scored on the masks it trained with, on its training rows
and on held-out rows (learned, or memorised?).

What it is: the table, the figure, and the teacher it needs.
What it is not: mask fitting itself (exploration.mask_fit)."""
from __future__ import annotations

import time
from pathlib import Path

from entmask import runs
from entmask.config import PretrainConfig, set_args
from entmask.experiments.core import ExperimentError, ExperimentResult, _pct, md_table
from entmask.experiments.plots import _figure, _save
from entmask.experiments.running import _say
from entmask.experiments.specs import POOLABLE, RUN_SPECS, _pooled_specs, at_seed, pretrain_seeds

MEMO_TABLES = ("table1", "table2", "static")  # the rows whose masks mask_fit can redraw (teacher, self, static)
MEMO_SPLITS = {"train": "training rows (seen)", "test": "held-out rows"}


def memorisation(cfg: PretrainConfig, *, root=None, progress: bool = True, tables=MEMO_TABLES,
                 max_rows: int | None = 512) -> ExperimentResult:
    """Each finished pretraining run of `tables`, at every pretraining seed, scored on the masks it trained with
    (`exploration.own_masks`: its teacher strategy, its own entropies for self-masking, its static random masks)
    and on random masks, over `max_rows` seeded training rows it saw and as many held-out rows it did not
    (`exploration.mask_fit`). Trains nothing and needs no GLUE: a run counts once its pretraining has finished.
    Writes runs/<profile>/results/memorisation.{md,csv,json,png,svg}."""
    import pandas as pd

    from entmask import exploration
    from entmask.models import ModelError
    from entmask.pretrain import run_folder

    t0 = time.perf_counter()
    tables = [t.strip() for t in tables.split(",")] if isinstance(tables, str) else list(tables or [])
    tables = [t for t in tables if t]
    bad = [t for t in tables if t not in POOLABLE]
    if bad or not tables:
        raise ExperimentError(f"memorisation scores the rows of {', '.join(POOLABLE)}, not "
                              f"{', '.join(map(repr, bad)) or 'an empty list'}")
    try:
        exploration.check_max_rows(max_rows)
    except ValueError as e:
        raise ExperimentError(f"memorisation: {e}") from None
    specs = _pooled_specs(list(tables), cfg)
    views = None
    rows, left = [], []
    for label, c in specs:
        own = exploration.own_masks(c.masking)
        text = RUN_SPECS[label.split(":")[-1]][1]  # _pooled_specs prefixes a label reused for another config
        for seed in pretrain_seeds(c):
            cs = at_seed(c, seed)
            run_dir = run_folder(cs, "pretrain", root)
            metrics = runs.finished_metrics(run_dir)
            if own is None or metrics is None:
                left.append((f"{text}, seed {seed}",
                             "masks mask_fit cannot redraw" if own is None else "pretraining not finished"))
                continue
            try:  # a finished run a user moved, damaged or wrote with another entmask: say so, score the rest
                runs.check_version(run_dir)
                model_dir = exploration.student_model_dir(run_dir)
            except (runs.RunError, ValueError) as e:
                left.append((f"{text}, seed {seed} ({run_dir.name})", f"finished, not scorable here: {e}"))
                continue
            if views is None:
                tdir = _built_teacher(cfg, root)
                views = {split: exploration.teacher_view(cfg, split=split, max_rows=max_rows, root=root,
                                                         progress=progress, teacher_dir=tdir) for split in MEMO_SPLITS}
            _say(progress, f"memorisation: {text} seed {seed} on {own} masks ({run_dir.name})")
            try:
                fit = exploration.mask_fit(cs, model_dir, strategies=list(dict.fromkeys([own, "random"])),
                                           root=root, progress=False, views=views)
            except (runs.RunError, ModelError, ValueError, OSError) as e:
                left.append((f"{text}, seed {seed} ({run_dir.name})",
                             f"finished but its model could not be scored: {str(e).splitlines()[0]}"))
                continue
            for f in fit.to_dict("records"):
                rows.append({"row": text, "pretrain_seed": seed, "masks": f["strategy"],
                             "own": f["strategy"] == own, "split": f["split"], "accuracy": f["accuracy"],
                             "loss": f["loss"], "masked_tokens": f["masked_tokens"],
                             "heldout_accuracy": metrics.get("heldout_accuracy"), "run": run_dir.name})
    if not rows:
        unreadable = [f"{r}: {w}" for r, w in left if w.startswith("finished but")]
        raise ExperimentError(f"no finished pretraining run of {', '.join(tables)} at profile {cfg.profile} could be "
                              f"scored" + (f" ({'; '.join(unreadable)})" if unreadable else "") + "; run `entmask "
                              f"experiment {','.join(tables)} --profile {cfg.profile}{set_args(cfg)}` first")
    scores = pd.DataFrame(rows)
    table = memorisation_table(scores)
    out_dir = runs.results_dir(cfg.profile, root)
    stem = out_dir / "memorisation"
    paths = {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json"), "csv": stem.with_suffix(".csv")}
    paths.update(plot_memorisation(scores, stem))
    n = {split: int(v.ids.shape[0]) for split, v in views.items()}
    lines = [f"# Learned or memorised? Each student on the masks it trained with (profile `{cfg.profile}`)", "",
             f"Each finished pretraining run scored on {n['train']:,} seeded training rows it saw and {n['test']:,} "
             "held-out rows it did not, every selected token replaced by [MASK] (`exploration.mask_fit`). **Own "
             "masks** are the ones it trained on: its strategy over the teacher's entropies (teacher-masking, static "
             "across epochs, paper §2.2), its strategy over its *own final* entropies (self-masking: its training "
             "masks moved as it learned, so these are its last ones), or its random masks drawn once per row "
             "(random-static). A student that learned scores alike on both splits; one that memorised its training "
             "rows' answers scores far higher on them. **Random masks** are a fresh random 15% draw (seed 0), not "
             "the held-out evaluation's fixed masks, so they differ from the tables' held-out accuracy by the draw "
             "(shown beside them).", "", md_table(table), ""]
    for why in dict.fromkeys(w for _, w in left):
        lines += [f"Not scored ({why}): " + "; ".join(r for r, w in left if w == why) + ".", ""]
    if "png" in paths:
        lines += ["![Own-mask accuracy on training vs held-out rows](memorisation.png)", ""]
    runs.atomic_write_text(paths["md"], "\n".join(lines))
    runs.atomic_write_text(paths["csv"], scores.to_csv(index=False))
    runs.write_json(paths["json"], {"profile": cfg.profile, "tables": list(tables), "rows": n,
                                    "not_scored": [{"run": r, "why": w} for r, w in left],
                                    "records": table.to_dict("records"), "scores": scores.to_dict("records"),
                                    "seconds": time.perf_counter() - t0,
                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": runs.git_commit()})
    _say(progress, f"memorisation: wrote {paths['md']}")
    return ExperimentResult(name="memorisation", table=table, paths=paths, extra={"scores": scores})


def _built_teacher(cfg: PretrainConfig, root=None) -> Path:
    """The teacher folder the runs trained with, never trained here: a report must not start a teacher run."""
    from entmask.pretrain import resolve_teacher, run_folder

    if cfg.teacher != "reference":
        return resolve_teacher(cfg, root, progress=False)
    ref = run_folder(cfg, "reference", root)
    if runs.finished_metrics(ref) is None or not (ref / "model" / "config.json").is_file():
        raise ExperimentError(f"memorisation reads the teacher's entropies, and the reference teacher {ref} is not "
                              f"built (or was moved): build it with `entmask reference --profile {cfg.profile}"
                              f"{set_args(cfg)}`")
    return ref / "model"


def memorisation_table(scores):
    """One line per (row, pretraining seed): accuracy (%) and loss on its own masks, training vs held-out rows,
    their gap, and its accuracy on random masks on both splits."""
    import pandas as pd

    out = []
    for (row, seed), g in scores.groupby(["row", "pretrain_seed"], sort=False):
        get = {(f["own"], f["split"]): f for f in g.to_dict("records")}
        own_tr, own_te = get[(True, "train")], get[(True, "test")]
        rnd_tr, rnd_te = get.get((False, "train"), own_tr), get.get((False, "test"), own_te)  # random's own = random
        out.append({"row": row, "pretrain seed": seed, "own masks": own_tr["masks"],
                    "own, training rows": round(100 * own_tr["accuracy"], 1),
                    "own, held-out rows": round(100 * own_te["accuracy"], 1),
                    "gap (points)": round(100 * (own_tr["accuracy"] - own_te["accuracy"]), 1),
                    "own loss, training / held-out": f"{own_tr['loss']:.2f} / {own_te['loss']:.2f}",
                    "random masks, training / held-out": f"{100 * rnd_tr['accuracy']:.1f} / "
                                                         f"{100 * rnd_te['accuracy']:.1f}",
                    "held-out eval (tables)": _pct(own_tr["heldout_accuracy"]), "run": own_tr["run"]})
    return pd.DataFrame(out)


def plot_memorisation(scores, stem: Path) -> dict:
    """Own-mask accuracy on training vs held-out rows, one bar pair per row, one panel per pretraining seed."""
    import seaborn as sns

    own = scores[scores["own"]].assign(accuracy=lambda d: 100 * d["accuracy"],
                                       split=lambda d: d["split"].map(MEMO_SPLITS),
                                       row=lambda d: d["row"].str.replace(" (", "\n(", regex=False))
    seeds = sorted(own["pretrain_seed"].unique())
    n_rows = own["row"].nunique()
    fig = _figure(max(6.0, 1.15 * n_rows + 1.5), 3.0 * len(seeds) + 0.4)
    for i, seed in enumerate(seeds):
        ax = fig.add_subplot(len(seeds), 1, i + 1)
        sns.barplot(data=own[own["pretrain_seed"] == seed], x="row", y="accuracy", hue="split",
                    hue_order=list(MEMO_SPLITS.values()), ax=ax)
        for cont in ax.containers:
            ax.bar_label(cont, fmt="%.1f", fontsize=7)
        # headroom above 100 holds the bar labels and a one-line legend, which otherwise hid the last 99.x label
        ax.set(xlabel="", ylabel="masked-token accuracy, %", ylim=(0, 125))
        ax.set_title(f"pretraining seed {seed}: each student on its own masks", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout(h_pad=1.5)  # the two-line row labels of one panel must not run into the next one's title
    return _save(fig, stem)
