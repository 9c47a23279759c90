"""Paired bootstrap statistics over fine-tuning results: the CI of a difference of means, and of the difference of
the GLUE "Total" between two models over examples and seeds, with the t-interval over seeds that verdicts widen it to.

What it is: `bootstrap_total_delta` (two-level paired bootstrap of Total(model) - Total(base), its t-interval over
seeds or pretraining-seed groups, and `judged`, the wider of the two), `paired_bootstrap_delta`, `mean_sd`,
`predictions_of` (a fine-tuning run's (y_true, y_pred)), and the vectorised confusion-matrix metrics
(`_confusion_metric`, checked against scikit-learn on the observed data at every call).

What it is not: no plotting, no training, and no verdicts (`entmask.experiments.claims` judges with `judged`); how
often these intervals exclude 0 is simulated in `entmask.analysis.calibration`.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from entmask import runs
from entmask.data import TASKS
from entmask.finetune import _metric


def mean_sd(values) -> tuple[float, float]:
    """(mean, sample sd with ddof=1); sd is NaN for one value, both NaN for none."""
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def paired_bootstrap_delta(correct_a, correct_b, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean(a) - mean(b), 2.5th and 97.5th percentiles) over n resamples of the examples, the same for a and b.

    a, b: per-example scores of two models on the same examples in the same order (e.g. 0/1 correctness); the
    delta is in their units (a fraction for 0/1).
    """
    a = np.asarray(correct_a, dtype=float)
    b = np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"paired bootstrap needs two equal-length 1-d score arrays, got {a.shape} and {b.shape}")
    diff = a - b  # [N]; pairing: one resample of examples serves both models
    rng = np.random.default_rng(seed)
    deltas = np.empty(n)
    for start in range(0, n, 256):  # chunks bound memory at 256 x N indices
        k = min(256, n - start)
        idx = rng.integers(0, diff.size, size=(k, diff.size))  # [k, N]
        deltas[start:start + k] = diff[idx].mean(axis=1)
    lo, hi = np.percentile(deltas, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)


def _confusion_metric(name: str, cm: np.ndarray) -> np.ndarray:
    """A metric (fraction) from confusion matrices [R, K, K] (rows true, columns predicted), vectorised over R.

    The formulas are scikit-learn's (accuracy_score, f1_score binary pos_label=1 with zero_division=0,
    matthews_corrcoef's multiclass form); bootstrap_total_delta checks them against sklearn on the observed data.
    """
    cm = cm.astype(float)
    total = cm.sum(axis=(1, 2))  # [R]
    diag = np.trace(cm, axis1=1, axis2=2)  # [R]
    if name == "accuracy":
        return diag / total
    if name == "f1":
        if cm.shape[1] != 2:
            raise ValueError("the bootstrap's f1 is binary (positive class 1); use accuracy or mcc for more classes")
        tp, fp, fn = cm[:, 1, 1], cm[:, 0, 1], cm[:, 1, 0]
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.where(den > 0, den, 1), 0.0)
    if name == "mcc":
        t = cm.sum(axis=2)  # [R, K] true counts
        p = cm.sum(axis=1)  # [R, K] predicted counts
        cov_ytyp = diag * total - (t * p).sum(axis=1)
        cov_ypyp = total ** 2 - (p * p).sum(axis=1)
        cov_ytyt = total ** 2 - (t * t).sum(axis=1)
        den = cov_ytyt * cov_ypyp
        return np.where(den > 0, cov_ytyp / np.sqrt(np.where(den > 0, den, 1)), 0.0)
    raise ValueError(f"unknown metric {name!r}; choose accuracy, f1 or mcc")


def _task_metrics(metric, tasks) -> dict:
    if isinstance(metric, dict):
        missing = [t for t in tasks if t not in metric]
        if missing:
            raise ValueError(f"metric has no entry for task(s) {missing}; give one per task")
        return {t: metric[t] for t in tasks}
    if metric in ("paper", "glue"):
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown} for metric={metric!r}; pass a dict task -> metric")
        return {t: TASKS[t][f"{metric}_metric"] for t in tasks}
    return {t: metric for t in tasks}  # one metric name or callable for all tasks


def _as_seed_list(preds) -> list[dict]:
    return list(preds) if isinstance(preds, (list, tuple)) else [preds]


def bootstrap_total_delta(preds_model, preds_base, metric="paper", n: int = 1000, seed: int = 0,
                          groups: list | None = None, resample_seeds: bool = True) -> dict:
    """Two-level paired bootstrap CI of Total(model) - Total(base), Total = mean over tasks of metric x 100.

    preds_model, preds_base: {task: (y_true, y_pred)} for one seed, or a list of such dicts, one per seed (the base
    may be a single dict shared by all seeds). Each task must hold the same examples in the same order in every
    dict. metric: "paper" (TASKS[task]["paper_metric"]), "glue", a dict task -> "accuracy" | "f1" | "mcc" or a
    callable(y_true, y_pred) -> fraction, or one of those names for all tasks.

    Each resample draws examples with replacement within each task (the same draw for both models and all seeds)
    and recomputes each task's metric and the Total per seed; then (resample_seeds, the default) it draws the seeds
    with replacement too, and averages the paired Total deltas over the drawn seeds. Seeds are the units that
    were run more than once (pretraining x fine-tuning seeds); `groups` (one label per seed, e.g. the pretraining
    seed) makes the seed draw hierarchical: groups with replacement, then seeds within each drawn group. So a CI
    that excludes 0 says more than "the validation set was sampled": when seeds disagree (+10 and -10) it is wide.
    With resample_seeds=False only examples are resampled (the old, seed-blind CI). Returns a dict: delta, lo, hi (95%
    percentile CI), total_model, total_base, per_task {task: {model, base, delta}}, seed_deltas (one Total delta
    per seed), unit_deltas (one per pretraining seed when `groups` is given, else = seed_deltas), t_interval ([lo,
    hi] of a t-interval over unit_deltas, with >= 2 units, else None), t_interval_note, judged (the interval a
    verdict uses: the wider of the bootstrap CI and the t-interval, see below), n_resamples, tasks.
    """
    from scipy import stats  # here, not at the top: scipy.stats takes a second to import, for this function only

    models = _as_seed_list(preds_model)
    bases = _as_seed_list(preds_base)
    if len(bases) == 1 and len(models) > 1:
        bases = bases * len(models)
    if len(bases) != len(models) or not models:
        raise ValueError(f"{len(models)} model seed(s) but {len(bases)} base seed(s); give one base or one per seed")
    tasks = sorted(models[0])
    for d in models + bases:
        if sorted(d) != tasks:
            raise ValueError(f"every predictions dict must cover the same tasks; got {sorted(d)} and {tasks}")
    metrics = _task_metrics(metric, tasks)

    rng = np.random.default_rng(seed)
    S = len(models)
    boot_model = np.zeros((n, S))  # [n, S] Total per resample and seed, summed over tasks then divided
    boot_base = np.zeros((n, S))
    obs_model = np.zeros(S)
    obs_base = np.zeros(S)
    per_task = {}
    for task in tasks:
        m_name = metrics[task]
        y_true = np.asarray(models[0][task][0], dtype=np.int64)
        N = y_true.size
        if N == 0:
            raise ValueError(f"task {task} has no examples")
        preds = []
        for d in models + bases:
            yt, yp = (np.asarray(x, dtype=np.int64) for x in d[task])
            if yt.shape != y_true.shape or not np.array_equal(yt, y_true) or yp.shape != y_true.shape:
                raise ValueError(f"task {task}: predictions are not paired (different gold labels, order or length); "
                                 f"use the same reported examples for both models")
            preds.append(yp)
        obs, codes, Ks = [], [], []
        for yp in preds:
            if isinstance(m_name, str):
                o = _metric(m_name, y_true, yp)  # scikit-learn: the reported number
                K = max(2, int(max(y_true.max(), yp.max())) + 1)
                code = y_true * K + yp  # [N] cell of each example in the K x K confusion matrix
                check = float(_confusion_metric(m_name, np.bincount(code, minlength=K * K).reshape(1, K, K))[0])
                if not math.isclose(check, o, rel_tol=1e-9, abs_tol=1e-12):
                    raise RuntimeError(f"{task}: vectorised {m_name} {check} differs from sklearn's {o}")
                codes.append(code)
                Ks.append(K)
            else:
                o = float(m_name(y_true, yp))
            obs.append(o)
        res = np.empty((len(preds), n))  # [models + bases, n]
        for c in range(0, n, 256):  # chunks of resamples bound memory at 256 x N indices
            k = min(256, n - c)
            idx = rng.integers(0, N, size=(k, N))  # [k, N]: one draw shared by every model and seed (the pairing)
            for j, yp in enumerate(preds):
                if isinstance(m_name, str):
                    K = Ks[j]
                    cells = codes[j][idx] + (np.arange(k) * K * K)[:, None]  # [k, N] cell, offset per resample
                    cms = np.bincount(cells.ravel(), minlength=k * K * K).reshape(k, K, K)  # [k, K, K]
                    res[j, c:c + k] = _confusion_metric(m_name, cms)
                else:
                    res[j, c:c + k] = [float(m_name(y_true[r], yp[r])) for r in idx]
        scores = list(zip(obs, res))
        per_task[task] = {"model": 100 * float(np.mean([s[0] for s in scores[:S]])),
                          "base": 100 * float(np.mean([s[0] for s in scores[S:]]))}
        per_task[task]["delta"] = per_task[task]["model"] - per_task[task]["base"]
        for s in range(S):
            obs_model[s] += 100 * scores[s][0]
            obs_base[s] += 100 * scores[S + s][0]
            boot_model[:, s] += 100 * scores[s][1]
            boot_base[:, s] += 100 * scores[S + s][1]
    T = len(tasks)
    per_seed = (boot_model - boot_base) / T  # [n, S] Total delta of each seed in each example resample
    if resample_seeds and S > 1:
        draws = _seed_draws(rng, n, S, groups)  # n arrays of seed indices drawn with replacement
        boot_delta = np.array([per_seed[b, d].mean() for b, d in enumerate(draws)])  # [n]
    else:
        boot_delta = per_seed.mean(axis=1)  # [n] Total delta averaged over seeds
    seed_deltas = (obs_model - obs_base) / T  # [S]
    lo, hi = np.percentile(boot_delta, [2.5, 97.5])
    # The units of the t-interval are the independent ones: pretraining seeds (groups) when given, each averaged
    # over its fine-tuning seeds; else every seed.
    labels = list(groups) if groups is not None else list(range(S))
    keys = list(dict.fromkeys(labels))
    unit_deltas = np.array([seed_deltas[[i for i, g in enumerate(labels) if g == k]].mean() for k in keys])  # [G]
    G = len(keys)
    if G >= 2:
        mu, sd = mean_sd(unit_deltas)
        half = float(stats.t.ppf(0.975, G - 1)) * sd / math.sqrt(G)
        t_interval = [mu - half, mu + half]
        note = (f"{G} seeds: 1 degree of freedom (t = 12.71), so it excludes 0 only when the seeds agree closely"
                if G == 2 else None)
    else:
        t_interval, note = None, "1 seed: no spread across seeds; use the bootstrap CI"
    # What a verdict may use. With few seeds the percentile bootstrap is too narrow: two seeds drawn with
    # replacement give three outcomes ({a,a}, {b,b}, mean), so its CI is about [min, max] of the seed deltas and
    # excludes 0 whenever they share a sign, however far apart (simulated: ~30% false verdicts when seeds differ by
    # 4 points s.d. and nothing else). The seed t-interval has the right width for 2-3 seeds but ignores example
    # noise when the seeds agree by chance; the wider of the two keeps both (simulated <= 5% false verdicts at 2
    # and 3 seeds, any seed noise).
    judged = [float(min(lo, t_interval[0])), float(max(hi, t_interval[1]))] if t_interval else [float(lo), float(hi)]
    return {"delta": float(seed_deltas.mean()), "lo": float(lo), "hi": float(hi),
            "total_model": float(obs_model.mean() / T), "total_base": float(obs_base.mean() / T),
            "per_task": per_task, "seed_deltas": seed_deltas.tolist(), "unit_deltas": unit_deltas.tolist(),
            "t_interval": t_interval, "t_interval_note": note, "judged": judged, "n_resamples": int(n),
            "tasks": tasks, "ci_kind": "seeds and examples" if resample_seeds and S > 1 else "examples", "metrics": {
                t: (m if isinstance(m, str) else getattr(m, "__name__", "callable")) for t, m in metrics.items()}}


def _seed_draws(rng, n: int, S: int, groups: list | None) -> list[np.ndarray]:
    """n arrays of seed indices drawn with replacement: S of them flat, or (with `groups`) the groups first and
    then, within each drawn group, as many of its members as it has."""
    if groups is not None and len(groups) != S:
        raise ValueError(f"groups has {len(groups)} labels for {S} seeds")
    if groups is None or len(set(groups)) in (1, S):
        return list(rng.integers(0, S, size=(n, S)))
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    keys = list(members)
    out = []
    for _ in range(n):
        drawn = []
        for g in rng.integers(0, len(keys), size=len(keys)):
            m = members[keys[g]]
            drawn.extend(m[j] for j in rng.integers(0, len(m), size=len(m)))
        out.append(np.asarray(drawn))
    return out


def predictions_of(run_dir) -> tuple[list[int], list[int]]:
    """(y_true, y_pred) of a fine-tuning run folder, from its predictions.json."""
    d = runs.read_json(Path(run_dir) / "predictions.json")
    return d["y_true"], d["y_pred"]
