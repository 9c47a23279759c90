"""The small-scale recipe search (issue 5): which recipes let a from-scratch student leave the unigram plateau on a CPU
(docs/small-scale.md).

What it is: `RECIPES` (overrides on a profile and why each was tried), `plateau_configs`, `plateau` (train or read each,
table and curves), `first_exit`.
What it is not: the plateau criterion itself (pretrain.heldout_eval)."""
from __future__ import annotations

from pathlib import Path

from entmask import runs
from entmask.config import PretrainConfig, apply_overrides, validate
from entmask.experiments.collect import wall_minutes
from entmask.experiments.core import ExperimentError, ExperimentResult, _pct, md_table
from entmask.experiments.plots import _figure, _save
from entmask.experiments.running import _say

_NO_DROPOUT = {"model.overrides.hidden_dropout_prob": 0, "model.overrides.attention_probs_dropout_prob": 0}
# Every recipe: random masking on the whole offline corpus, a held-out curve point every 250 steps.
PLATEAU_COMMON = {"data.max_articles": None, "masking.strategy": "random", "train.eval_steps": 250,
                  "train.save_steps": 500, "train.logging_steps": 50}
# label -> (overrides on the profile, why it was tried). Order = the order they were measured.
RECIPES: dict[str, tuple[dict, str]] = {
    "profile": ({"train.max_steps": 300}, "the profile's own recipe (tiny: lr 1e-3, beta2 0.98, dropout 0.1)"),
    "no-dropout-2k": ({**_NO_DROPOUT, "train.max_steps": 2000}, "dropout off: a 2x128 model has nothing to regularise"),
    "no-dropout-mask40": ({**_NO_DROPOUT, "masking.ratio": 0.4, "train.max_steps": 2000},
                          "and 40% masking: 2.7x the targets per step (Wettig et al. 2023)"),
    "no-dropout-4k": ({**_NO_DROPOUT, "train.max_steps": 4000}, "dropout off, a 4,000-step schedule"),
    "seq32": ({**_NO_DROPOUT, "data.seq_len": 32, "train.batch_size": 128, "train.max_steps": 3000},
              "32-token rows, batch 128 (same tokens per step): the neighbours are 1/32 of a row, not 1/128"),
    "glue-text": ({**_NO_DROPOUT, "data.extra_text": ["glue-train"], "train.max_steps": 4000},
                  "GLUE training sentences added: 3.6x the text, fewer epochs over it"),
    "seq64": ({**_NO_DROPOUT, "data.seq_len": 64, "train.batch_size": 64, "train.max_steps": 3000},
              "64-token rows, batch 64: between the two"),
    # On cpu-wiki (all of WikiText-2, its 5 x 32 short phase): its own batch (32 rows = 160 short rows) stayed on
    # the plateau to step 2,500 of 5,230, where cpu-long's 128 rows of 32 left it at ~1,000-1,750 (having seen each
    # row 8-15 times; cpu-wiki's 5x larger corpus had been seen 4 times). Adam moves the weights by about lr per
    # update whatever the batch, so smaller batches give more updates for the same compute:
    "wiki-b16": ({"train.batch_size": 16, "train.max_steps": 3000},
                 "cpu-wiki, 16 rows (80 short rows of 32) per step: 2x the updates per epoch"),
    "wiki-b8": ({"train.batch_size": 8, "train.max_steps": 3000},
                "cpu-wiki, 8 rows (40 short rows of 32) per step: 4x the updates per epoch"),
    # Neither left it by step 1,500 / 1,250. Is it the repetition? cpu-long's corpus is the size of 122 articles:
    "wiki-small": ({"data.max_articles": 122, "train.max_steps": 3000},
                   "cpu-wiki on 122 articles (cpu-long's corpus size, ~6x fewer rows): each row seen ~6x as often"),
    "wiki-lr3e-3": ({"train.lr": 3e-3, "train.max_steps": 3000}, "cpu-wiki at 3x the learning rate"),
    # the machinery apart from the corpus: cpu-wiki's two-phase rows on cpu-long's very text (validation + test)
    "wiki-vt": ({"data.splits": ["validation", "test"], "train.max_steps": 3000},
                "cpu-wiki's recipe on cpu-long's text (WikiText-2 validation + test)"),
    # It left the plateau (12.1% vs 8.07% at step 1,250) where the same recipe on train-split text did not: the
    # neighbours' share of a short row is the lever that worked before (128 -> 32), so shorter short rows still:
    "wiki-r17": ({"data.seq_len": 152, "train.short_rows": 10, "train.max_steps": 3000},
                 "cpu-wiki with its short phase at 10 rows of 17 (15 body tokens) per row: 320 short rows per step"),
    "wiki-r12": ({"data.seq_len": 152, "train.short_rows": 15, "train.max_steps": 3000},
                 "cpu-wiki with its short phase at 15 rows of 12 (10 body tokens) per row: 480 short rows per step"),
    # The first cpu-wiki students (5,230 steps) reached 24% on rows of 12 and ended at 8% on whole rows of 152:
    # positions 12-151 first trained in the last 10%. The same recipe in 1,500 steps, short rows at positions
    # 0-11 (BERT's) vs at the positions their tokens hold in the long row (phases.py); a curve point every 150
    # steps gives whole-row accuracy during the short phase and at the switch (step 1,350).
    "wiki-own-1500": ({"train.max_steps": 1500, "train.eval_steps": 150, "train.short_positions": "own",
                       "train.short_fraction": 0.9},
                      "cpu-wiki's recipe in 1,500 steps, short rows at positions 0-11 (as BERT): the control"),
    "wiki-natural-1500": ({"train.max_steps": 1500, "train.eval_steps": 150, "train.short_positions": "natural",
                           "train.short_fraction": 0.9},
                          "cpu-wiki's recipe in 1,500 steps, each short row at its tokens' positions in the long row"),
}


def plateau_configs(cfg: PretrainConfig, labels=None) -> list[tuple[str, PretrainConfig]]:
    """(label, config) of each recipe of the search, derived from the resolved profile config `cfg`."""
    labels = list(RECIPES) if labels is None else list(labels)
    bad = [x for x in labels if x not in RECIPES]
    if bad:
        raise ExperimentError(f"unknown recipe(s) {', '.join(bad)}; choose from {', '.join(RECIPES)}")
    out = []
    for label in labels:
        over = {**PLATEAU_COMMON, **RECIPES[label][0]}
        if "data.seq_len" in over:  # a recipe's own row length is trained whole (a profile's short phase may
            over.setdefault("train.short_rows", 1)  # not divide it); 1 is the default, so no hash moves
        c = validate(apply_overrides(cfg, over))
        c.name = f"plateau-{label}"
        out.append((label, c))
    return out


def first_exit(curve: list[dict]) -> int | None:
    """The first curve step that meets the plateau-exit criterion (twice the unigram rate, entropy s.d. >= 0.5)."""
    for p in curve:
        if p["heldout_accuracy"] >= 2 * p["unigram_accuracy"] and p["entropy_sd"] >= 0.5:
            return int(p["step"])
    return None


def plateau(cfg: PretrainConfig, *, root=None, progress: bool = True, recipes=None,
            train: bool = True) -> ExperimentResult:
    """Pretrain (or find) every recipe of the search with random masking and held-out learning curves; write
    plateau.md/.json (steps, wall time, final held-out accuracy vs unigram, entropy spread, the first step that
    left the plateau) and plateau-curves.png. No fine-tuning: the question is whether the student learns context.

    train=False trains nothing: it reports what exists, including runs still going or stopped early (from their
    logs/curve.json, status 'stopped at step N'), so a search running in the background can be looked at."""
    import pandas as pd

    from entmask.pretrain import pretrain, run_folder

    rows, curves = [], {}
    specs = plateau_configs(cfg, recipes)
    for i, (label, c) in enumerate(specs, 1):
        if train:
            _say(progress, f"plateau: {label} ({i}/{len(specs)}, {c.name}-{c.short_hash()})")
            run = pretrain(c, root=root, progress=progress)
        else:
            run = run_folder(c, "pretrain", root)
        m = runs.read_json(run / "metrics.json") if (run / "metrics.json").exists() else None
        partial = run / "logs" / "curve.json"
        curve = m.get("curve", []) if m else (runs.read_json(partial) if partial.exists() else [])
        curves[label] = curve
        last = m or (curve[-1] if curve else {})
        status = "finished" if m else (f"unfinished, at step {curve[-1]['step']}" if curve else "not run")
        rows.append({"recipe": label, "why": RECIPES[label][1], "status": status, "model": c.model.preset,
                     "lr": c.train.lr, "batch": c.train.batch_size * c.train.grad_accum, "seq_len": c.data.seq_len,
                     "mask_ratio": c.masking.ratio, "steps": m["steps"] if m else last.get("step"),
                     "train_minutes": wall_minutes(m),
                     "heldout_accuracy": last.get("heldout_accuracy"), "unigram_accuracy": last.get("unigram_accuracy"),
                     "entropy_sd": last.get("entropy_sd"), "left_plateau": last.get("left_plateau"),
                     "first_exit_step": first_exit(curve), "run": str(run), "hash": c.short_hash()})
    df = pd.DataFrame(rows)
    out = runs.results_dir(cfg.profile, root) / "plateau"
    shown = df.drop(columns=["run", "hash"]).copy()
    for k in ("heldout_accuracy", "unigram_accuracy"):
        shown[k] = shown[k].map(_pct)
    shown["entropy_sd"] = shown["entropy_sd"].map(lambda x: "" if x is None or x != x else f"{x:.2f}")
    shown["train_minutes"] = shown["train_minutes"].map(lambda x: "" if x is None or x != x else f"{x:.1f}")
    for k in ("steps", "first_exit_step"):
        shown[k] = shown[k].map(lambda x: "" if x is None or x != x else str(int(x)))
    head = (f"# Plateau search ({cfg.profile} profile + recipe overrides)\n\nLeft the plateau = held-out masked "
            f"accuracy >= 2x the unigram rate and per-position entropy s.d. >= 0.5 nats (issue 5). "
            f"`first_exit_step`: first curve point (every {PLATEAU_COMMON['train.eval_steps']} steps, on "
            f"{cfg.train.eval_rows} test rows) meeting it. An unfinished run (still going, or stopped) shows its "
            f"last curve point.\n\n")
    runs.atomic_write_text(out.with_suffix(".md"), head + md_table(shown) + "\n")
    runs.write_json(out.with_suffix(".json"), {"rows": rows, "curves": curves, "common": PLATEAU_COMMON})
    paths = {"md": out.with_suffix(".md"), "json": out.with_suffix(".json")}
    paths.update({f"curves_{k}": v for k, v in plot_plateau(curves, out.with_name("plateau-curves")).items()})
    return ExperimentResult("plateau", shown, paths, {}, {"scores": df})


def plot_plateau(curves: dict, stem: Path) -> dict:
    """Held-out masked accuracy as a multiple of each run's own unigram rate (left; recipes with other row lengths
    have other rates) and entropy s.d. (right) against step, one line per recipe: a student has left the plateau
    once it is above both dashed lines."""
    if not any(curves.values()):
        return {}
    fig = _figure(10, 3.6)
    ax_acc, ax_sd = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, pts in curves.items():
        if not pts:
            continue
        steps = [p["step"] for p in pts]
        ratio = [p["heldout_accuracy"] / p["unigram_accuracy"] if p["unigram_accuracy"] else float("nan")
                 for p in pts]
        ax_acc.plot(steps, ratio, marker=".", lw=1.2, label=label)
        ax_sd.plot(steps, [p["entropy_sd"] for p in pts], marker=".", lw=1.2, label=label)
    ax_acc.axhline(1, color="grey", ls=":", lw=1, label="unigram rate")
    ax_acc.axhline(2, color="black", ls="--", lw=1, label="2 x unigram (criterion)")
    ax_sd.axhline(0.5, color="black", ls="--", lw=1, label="0.5 nats (criterion)")
    ax_acc.set(xlabel="optimizer step", ylabel="held-out masked accuracy / unigram rate", title="context learned?")
    ax_sd.set(xlabel="optimizer step", ylabel="entropy s.d. over positions (nats)", title="entropies vary?")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)
