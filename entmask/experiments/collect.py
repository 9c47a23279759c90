"""Reading a row's results: BLiMP scores and Δs, seed-mean metrics, compute, per-task fine-tuning records, Totals,
predictions, the majority class.

What it is: read-only helpers over finished runs (`_Run`).
What it is not: training or table layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from entmask import runs
from entmask.config import PretrainConfig
from entmask.experiments.claims import unit_key
from entmask.experiments.core import TASK_ORDER
from entmask.experiments.running import _Run


def blimp_of(r: _Run) -> dict:
    """{pretraining seed: blimp.json} of the row's finished seeds that have BLiMP scores (read, never computed)."""
    from entmask import blimp

    out = {}
    for sr in r.seed_runs:
        f = Path(sr["run_dir"]) / blimp.RESULT_FILE
        if f.is_file():
            try:
                d = runs.read_json(f)
            except runs.RunError:
                continue
            if (isinstance(d, dict) and isinstance(d.get("accuracy"), (int, float))
                    and isinstance(d.get("correct"), str)):
                out[sr["pretrain_seed"]] = d
    return out


def blimp_delta(r: _Run, base: _Run, n: int = 1000) -> dict | None:
    """Δ BLiMP accuracy (points) of row r against base over the pretraining seeds both were scored at alike: a paired
    bootstrap over pairs (each seed's pairs, pooled) and the per-seed Δs. None where they share no such seed."""
    from entmask import blimp

    a, b = blimp_of(r), blimp_of(base)
    common = [k for k in sorted(set(a) & set(b)) if a[k].get("scoring", {}).get("per_paradigm") ==
              b[k].get("scoring", {}).get("per_paradigm") and len(a[k]["correct"]) == len(b[k]["correct"])]
    if not common:
        return None
    bt = blimp.paired_bootstrap_delta("".join(a[k]["correct"] for k in common),
                                      "".join(b[k]["correct"] for k in common), n=n, seed=0)
    per_seed = [100 * (a[k]["accuracy"] - b[k]["accuracy"]) for k in common]
    return {"delta": 100 * bt["delta"], "lo": 100 * bt["lo"], "hi": 100 * bt["hi"], "seeds": common,
            "seed_deltas": per_seed, "n_pairs": bt["n_pairs"]}


def _seed_mean_metrics(r: _Run) -> dict:
    """The row's pretraining metrics averaged over its pretraining seeds (left_plateau: all of them left)."""
    ms = [sr["metrics"] for sr in r.seed_runs] or [r.metrics]
    out = dict(ms[0])
    for k in ("heldout_accuracy", "unigram_accuracy", "heldout_loss", "train_seconds"):
        vals = [x.get(k) for x in ms if isinstance(x.get(k), (int, float))]
        out[k] = float(np.mean(vals)) if vals else None
    lps = [x.get("left_plateau") for x in ms]
    out["left_plateau"] = None if any(v is None for v in lps) else all(lps)
    return out


def wall_minutes(metrics: dict | None) -> float | None:
    from entmask.pretrain import wall_seconds

    secs = wall_seconds(metrics) if metrics else None
    return secs / 60 if secs is not None else None


def run_compute(cfg: PretrainConfig, run_dir: Path | None, metrics: dict) -> dict | None:
    """A finished run's compute record (`pretrain.run_flops`): from its metrics.json, or, for runs finished before
    entmask recorded compute, estimated from its config, model and teacher folders and logged masking figures."""
    if metrics.get("compute"):
        return metrics["compute"]
    if run_dir is None or not (Path(run_dir) / "model" / "config.json").exists() or not metrics.get("steps"):
        return None
    from transformers import BertConfig

    from entmask.pretrain import run_flops, wall_seconds

    teacher = metrics.get("teacher")
    tcfg = BertConfig.from_pretrained(teacher) if teacher and (Path(teacher) / "config.json").exists() else None
    corpus = metrics.get("corpus") or {}
    rows = corpus.get("sequences_train") or corpus.get("train_rows") or 0
    out = run_flops(cfg, BertConfig.from_pretrained(Path(run_dir) / "model"), tcfg, int(metrics["steps"]),
                    int(metrics.get("steps_per_epoch") or 1), int(rows))
    return {**out, "wall_seconds": wall_seconds(metrics), "estimated_after_the_run": True}


def _row_flops(r: _Run) -> float | None:
    """Mean pretraining FLOPs over the row's pretraining seeds (None when unknown)."""
    vals = []
    for sr in r.seed_runs or [{"run_dir": r.run_dir, "metrics": r.metrics}]:
        c = run_compute(r.cfg, sr.get("run_dir"), sr.get("metrics") or {})
        if c:
            vals.append(c["total_flops"])
    return float(np.mean(vals)) if vals else None


def _unit(f: dict) -> tuple:
    """The unit of seed statistics: (pretraining seed, fine-tuning seed)."""
    return unit_key(f)


def _task_rows(r: _Run, task: str) -> list[dict]:
    return [f for f in r.ft if f.get("task") == task]


def covered_tasks(rs: list[_Run], tasks) -> list[str]:
    """Tasks (in the paper's order) with a score for every seed of every run: the ones Total averages."""
    out = []
    for t in TASK_ORDER:
        if t not in tasks:
            continue
        have = [r for r in rs if r.error is None]
        if have and all(_task_rows(r, t) and all(f.get("status") == "ok" for f in _task_rows(r, t)) for r in have):
            out.append(t)
    return out


def _seed_totals(r: _Run, tasks: list[str]) -> list[float]:
    """Total (mean over `tasks` of the paper metric) for each seed."""
    if not tasks:
        return []
    by_seed: dict = {}
    for f in r.ft:
        if f.get("task") in tasks and f.get("status") == "ok":
            by_seed.setdefault(_unit(f), {})[f["task"]] = f["paper_score"]
    return [float(np.mean([d[t] for t in tasks])) for s, d in sorted(by_seed.items()) if len(d) == len(tasks)]


def _preds(r: _Run, tasks: list[str]) -> tuple[list[dict], list]:
    """([{task: (y_true, y_pred)}] per (pretraining, fine-tuning) seed unit, from each fine-tuning run's
    predictions.json; the pretraining seed of each unit, the bootstrap's groups)."""
    from entmask.analysis import predictions_of

    by_seed: dict = {}
    for f in r.ft:
        if f.get("task") in tasks and f.get("status") == "ok":
            by_seed.setdefault(_unit(f), {})[f["task"]] = predictions_of(f["run_dir"])
    keys = sorted(by_seed)
    return [by_seed[k] for k in keys], [k[0] for k in keys]


def _majority(cfg: PretrainConfig) -> tuple[dict, str]:
    """{task: score or None (absent)} of the majority-class row, and a note on which examples it scores.

    With the full validation split (finetune.max_eval unset) this is finetune.majority_row, the paper's row; with a
    subsampled split it is the majority class scored on the examples every model was evaluated on.
    """
    from entmask.finetune import TaskAbsent, majority_row, majority_scores, task_data

    fc = cfg.finetune
    out = {}
    if fc.max_eval is None:
        for t in fc.tasks:
            m = majority_row(t, cfg.data.data_dir)
            out[t] = m.get("paper_score") if m.get("status") == "ok" else None
        note = ("Majority row: the most frequent training label scored on the whole reported split "
                "(finetune.majority_row), as the paper's row.")
    else:
        for t in fc.tasks:
            try:
                td = task_data(t, fc, cfg.data.data_dir)  # the very examples every model is trained and scored on
            except TaskAbsent:
                out[t] = None
                continue
            out[t] = majority_scores(td.train["label"], td.eval["label"], t)["majority_paper_score"]
        note = (f"Majority row: the most frequent label of the (subsampled, max_train={fc.max_train}) training set "
                f"scored on the same {fc.max_eval} evaluated examples as every model (finetune.max_eval is set, so "
                f"it differs from the paper's full-split row).")
    return out, note
