"""How often the intervals of `bootstrap_total_delta` exclude 0, by simulation: false verdicts with no effect,
power with one, for a number of seeds and a seed-to-seed spread.

What it is: `interval_calibration`, which simulates one binary task (a validation set, seeds that disagree example
by example, each model seed shifted by the effect plus seed noise) and runs `bootstrap_total_delta` on each replicate.

What it is not: a model of any particular task; the scale of `seed_sd` is the question it answers ("how many seeds
do I need if seeds differ by this much?"). No plotting, no training.
"""
from __future__ import annotations

import numpy as np

from entmask.analysis.bootstrap import bootstrap_total_delta


def interval_calibration(n_seeds: int = 2, seed_sd: float = 2.0, effect: float = 0.0, n_examples: int = 872,
                         accuracy: float = 0.76, churn: float = 0.15, reps: int = 200, n_boot: int = 500,
                         seed: int = 0) -> dict:
    """How often each interval of `bootstrap_total_delta` excludes 0, by simulation on one binary task.

    Each replicate draws a validation set with a fixed set of right answers (`accuracy`); every seed of the
    reference and of the model re-draws `churn` of the examples (seeds disagree example by example, as trained
    models do), and each model seed is then shifted by effect + N(0, seed_sd) points (that many more examples made
    right, or wrong). With effect=0 the rates are false verdicts (a 95% interval should give <= 5%); with an
    effect, they are the power. Returns {"bootstrap": rate, "t_interval": rate (None below 2 seeds), "judged": rate,
    "reps"}. What it is not: a model of any particular task; the scale of `seed_sd` is the question it answers
    ("how many seeds do I need if seeds differ by this much?")."""
    rng = np.random.default_rng(seed)
    hits = {"bootstrap": 0, "t_interval": 0, "judged": 0}
    N = n_examples
    for rep in range(reps):
        y = rng.integers(0, 2, size=N)
        right = rng.random(N) < accuracy  # [N] which examples a typical model gets right

        def draw(shift_points: float = 0.0) -> np.ndarray:
            ok = right.copy()
            redo = rng.random(N) < churn
            ok[redo] = rng.random(int(redo.sum())) < accuracy  # this seed's own luck on `churn` of the examples
            k = int(round(abs(shift_points) * N / 100))
            pool = np.flatnonzero(~ok if shift_points > 0 else ok)
            ok[rng.choice(pool, size=min(k, pool.size), replace=False)] = shift_points > 0
            return np.where(ok, y, 1 - y)

        models = [{"sst2": (y, draw(effect + rng.normal(0, seed_sd)))} for _ in range(n_seeds)]
        bases = [{"sst2": (y, draw())} for _ in range(n_seeds)]
        b = bootstrap_total_delta(models, bases, metric="accuracy", n=n_boot, seed=rep)
        for key, iv in (("bootstrap", (b["lo"], b["hi"])), ("t_interval", b["t_interval"]), ("judged", b["judged"])):
            if iv is not None and (iv[0] > 0 or iv[1] < 0):
                hits[key] += 1
    return {"bootstrap": hits["bootstrap"] / reps, "judged": hits["judged"] / reps, "reps": reps,
            "t_interval": hits["t_interval"] / reps if n_seeds >= 2 else None}
