"""entmask.stats: the pooled mixed model of the verdicts, on simulated Totals with known effects and variances."""
import math

import numpy as np
import pandas as pd
import pytest

from entmask import stats

EFFECTS = {"baseline": 0.0, "teacher-high": 1.5, "teacher-low": 0.5, "teacher-mid": -1.0, "teacher-marginal": 0.0}


def simulate(rng, effects=EFFECTS, n_seeds=4, n_ft=3, sd_seed=0.5, sd_student=0.8, sd_ft=0.6, self_scale=1.0):
    """Totals of (row, pretraining seed, fine-tuning seed): 60 + row effect + seed + student + fine-tuning noise;
    rows starting with 'self-' have self_scale x the student and fine-tuning SDs."""
    seed_eff = rng.normal(0, sd_seed, n_seeds)
    out = []
    for row, b in effects.items():
        k = self_scale if row.startswith("self-") else 1.0
        for p in range(n_seeds):
            st = rng.normal(0, sd_student * k)
            out += [(row, p, f, 60 + b + seed_eff[p] + st + rng.normal(0, sd_ft * k)) for f in range(n_ft)]
    return pd.DataFrame(out, columns=["row", "pseed", "fseed", "total"])


def test_pooled_delta_recovers_the_truth_and_its_interval_covers_it():
    """60 seeded tables (5 rows, 4 pretraining seeds, 3 fine-tunings): Δ(high − baseline) = 1.5 on average, and the
    95% interval covers it in at least 85% of them (binomial: 57/60 expected at 95%)."""
    deltas, covered = [], 0
    for i in range(60):
        c = stats.fit(simulate(np.random.default_rng(i))).contrast("teacher-high", "baseline", +1)
        deltas.append(c["delta"])
        covered += c["lo"] <= 1.5 <= c["hi"]
        assert c["df"] == 5 * 4 - 5 - 3  # students − rows − (seeds − 1)
    # SD of one Δ: sqrt(2 (0.8² + 0.6²/3) / 4) = 0.62; of the mean of 60: 0.08
    assert np.mean(deltas) == pytest.approx(1.5, abs=0.25)
    assert np.std(deltas) == pytest.approx(0.62, rel=0.3)
    assert covered >= 51


def test_variance_components_are_recovered_on_a_large_table():
    p = stats.fit(simulate(np.random.default_rng(7), n_seeds=12, n_ft=4, sd_seed=1.0))
    c = {k: math.sqrt(v) for k, v in p.components.items()}
    assert c["fine-tuning"] == pytest.approx(0.6, rel=0.2)
    assert c["student"] == pytest.approx(0.8, rel=0.3)
    assert c["seed"] == pytest.approx(1.0, rel=0.5)  # 12 seeds: one SD, loosely
    assert p.structure == stats.HOMO and not p.aic  # no self-masking rows: nothing to choose


def test_no_effect_is_unresolved_and_a_large_one_is_judged_by_its_sign():
    rng = np.random.default_rng(3)
    zero = stats.fit(simulate(rng, {"baseline": 0.0, "teacher-high": 0.0, "teacher-low": 0.0}))
    c = zero.contrast("teacher-high", "baseline", +1)
    assert c["lo"] < 0 < c["hi"] and c["verdict"] == "unresolved" and "contains 0" in c["why"]
    big = stats.fit(simulate(rng, {"baseline": 0.0, "teacher-high": 5.0, "teacher-mid": -5.0}))
    assert big.contrast("teacher-high", "baseline", +1)["verdict"] == "supported"
    assert big.contrast("teacher-high", "baseline", -1)["verdict"] == "contradicted"
    assert big.contrast("teacher-mid", "baseline", -1)["verdict"] == "supported"
    assert big.contrast("teacher-mid", "baseline", +1)["verdict"] == "contradicted"
    c = big.contrast("teacher-high", "baseline", +1)
    assert c["excludes"].startswith("excludes any loss, a gain under")


@pytest.mark.parametrize("delta,lo,hi,sign,text", [
    (-1.2, -3.21, 0.76, +1, "excludes a gain of ≥ 0.8 and a loss of ≥ 3.3 points"),  # outward: 3.21 -> 3.3
    (-1.2, -3.2, 0.8, +1, "excludes a gain of ≥ 0.8 and a loss of ≥ 3.2 points"),  # exact tenths stay
    (2.0, 0.54, 3.46, +1, "excludes any loss, a gain under 0.5 and a gain of ≥ 3.5 points"),
    (-2.5, -4.05, -0.95, +1, "excludes any gain, a loss under 0.9 and a loss of ≥ 4.1 points"),
    # a claimed deterioration (-1): a drop is Δ < 0, said first
    (-1.56, -3.42, 0.29, -1, "excludes a drop of ≥ 3.5 and a rise of ≥ 0.3 points"),
    (-3.5, -5.3, -1.7, -1, "excludes any rise, a drop under 1.7 and a drop of ≥ 5.3 points"),
    (3.0, 1.0, 5.0, -1, "excludes any drop, a rise under 1.0 and a rise of ≥ 5.0 points"),
])
def test_excluded_effects_in_the_claims_words(delta, lo, hi, sign, text):
    assert stats.excluded(delta, lo, hi, sign) == text


def test_singular_fits_do_not_crash():
    """No seed variance at all (every seed alike): the seed component sits at 0, is said, and the fit goes on; a
    noise-free table, a one-seed table and one with a single unit per student all give a Pooled."""
    d = simulate(np.random.default_rng(5), sd_seed=0.0, n_seeds=3)
    d["total"] -= d.groupby("pseed")["total"].transform("mean") - d["total"].mean()  # seeds' means exactly equal
    p = stats.fit(d)
    assert p.components["seed"] < 1e-3 and any("seed variance estimated at 0" in n for n in p.notes)
    assert "seed" in stats.describe(p) and math.isfinite(p.contrast("teacher-high", "baseline")["se"])
    flat = simulate(np.random.default_rng(5), sd_seed=0, sd_student=0, sd_ft=0)
    c = stats.fit(flat).contrast("teacher-high", "baseline")
    assert c["delta"] == pytest.approx(1.5) and c["hi"] - c["lo"] < 1e-6
    one = stats.fit(simulate(np.random.default_rng(6), n_seeds=1))
    assert "one pretraining seed: no seed component" in one.notes
    assert math.isfinite(one.contrast("teacher-low", "baseline")["delta"])
    single = stats.fit(simulate(np.random.default_rng(6), n_seeds=2, n_ft=1))
    assert any("one unit per student" in n for n in single.notes) and "student" not in single.components
    assert single.contrast("teacher-high", "baseline")["df"] == 5 * 2 - 5 - 1  # the residual is the student


def test_self_rows_get_their_own_noise_only_where_the_data_say_so():
    """Two self-masking rows among five, 4 pretraining seeds: with 3x the student and fine-tuning SD of the others
    the variant with their own variances wins on REML AIC in (nearly) every seeded table; with equal noise in
    (nearly) none (12 of 12 and 0 of 12 when this was written)."""
    rows = {"baseline": 0.0, "teacher-high": 1.5, "teacher-low": 0.3, "self-high-cold": 0.5, "self-high-init": -1.0}

    def chosen(scale):
        return sum(stats.fit(simulate(np.random.default_rng(200 + i), rows, n_seeds=4, self_scale=scale)).structure
                   == stats.HETERO for i in range(5))

    assert chosen(3.0) >= 4
    assert chosen(1.0) <= 1
    p = stats.fit(simulate(np.random.default_rng(200), rows, n_seeds=4, self_scale=3.0))
    assert set(p.aic) == {stats.HOMO, stats.HETERO} and p.aic[stats.HETERO] < p.aic[stats.HOMO]
    assert "the lower is chosen" in stats.describe(p)
    # a contrast across the groups takes the smaller count: self students − self rows = 8 − 2; others 12 − 3 − 3
    assert p.df["student (self)"] == 6 and p.df["student"] == 6
    assert p.contrast("self-high-init", "baseline")["df"] == 6


def test_balanced_mixed_model_delta_is_the_ols_and_row_mean_delta():
    """In a balanced table the GLS estimate of Δ does not depend on the variances: it is the difference of the two
    rows' means, which OLS with the same fixed effects (one per row) also gives; and its SE is the closed form
    sqrt(2 (σ²_student + σ²_ft / n_ft) / n_seeds)."""
    import statsmodels.formula.api as smf

    d = simulate(np.random.default_rng(11))
    p = stats.fit(d)
    ols = smf.ols("total ~ 0 + C(row)", d).fit().params
    means = d.groupby("row")["total"].mean()
    for model in ("teacher-high", "teacher-mid", "teacher-marginal"):
        got = p.contrast(model, "baseline")["delta"]
        assert got == pytest.approx(means[model] - means["baseline"], abs=1e-8)
        assert got == pytest.approx(ols[f"C(row)[{model}]"] - ols["C(row)[baseline]"], abs=1e-8)
    se = math.sqrt(2 * (p.components["student"] + p.components["fine-tuning"] / 3) / 4)
    assert p.contrast("teacher-high", "baseline")["se"] == pytest.approx(se, rel=1e-6)


def test_unit_totals_leave_out_units_missing_a_task():
    recs = [{"label": "baseline", "task": t, "pretrain_seed": ps, "seed": 0, "status": "ok", "paper_score": s}
            for t, s in (("cola", 60.0), ("sst2", 80.0)) for ps in (0, 1)]
    recs += [{"label": "teacher-high", "task": "cola", "pretrain_seed": float("nan"), "seed": 0, "status": "ok",
              "paper_score": 50.0},
             {"label": "teacher-high", "task": "sst2", "pretrain_seed": None, "seed": 0, "status": "ok",
              "paper_score": 90.0},
             {"label": "teacher-high", "task": "cola", "pretrain_seed": 1, "seed": 0, "status": "ok",
              "paper_score": 55.0},
             {"label": "teacher-high", "task": "sst2", "pretrain_seed": 1, "seed": 0, "status": "not finished"}]
    units, notes = stats.unit_totals(recs)
    assert units.to_dict("records") == [{"row": "baseline", "pseed": 0, "fseed": 0, "total": 70.0},
                                        {"row": "baseline", "pseed": 1, "fseed": 0, "total": 70.0},
                                        {"row": "teacher-high", "pseed": 0, "fseed": 0, "total": 70.0}]
    assert notes == ["teacher-high pretraining seed 1 fine-tuning seed 0: left out, no sst2"]


def test_power_of_the_two_rules():
    """Closed form: at 2 seeds the seed t-interval (1 df) almost never sees 2 points with SD 1 per seed's Δ; the
    pooled model over 6 rows (5 df) often does; with many seeds both do."""
    p2 = stats.power(1.0, 2.0, 2, n_rows=6)
    assert p2["conservative"] < 0.2 < 0.5 < p2["pooled"]
    assert stats.power(1.0, 2.0, 8, n_rows=6)["conservative"] > 0.95
    assert stats.power(1.0, 0.0, 4, n_rows=6)["pooled"] == pytest.approx(0.025, abs=0.005)  # one tail of 5%
    # the same by simulation of the t statistic, for the pooled df (5) at 2 seeds
    rng = np.random.default_rng(0)
    from scipy.stats import t as student_t
    est = rng.normal(2.0, 1.0 / math.sqrt(2), 20000)
    s = np.sqrt(rng.chisquare(5, 20000) / 5) / math.sqrt(2)
    assert np.mean(est / s > student_t.ppf(0.975, 5)) == pytest.approx(p2["pooled"], abs=0.02)


def test_a_teacher_contrast_keeps_its_df_when_units_are_unbalanced():
    """A row missing fine-tuning seeds gives every unit a sliver of GLS weight through the shared seed effect; the
    self rows' student component (few students, few df) must not set the df of a contrast between other rows."""
    rows = {"baseline": 0.0, "teacher-high": 1.5, "teacher-low": 0.3, "teacher-mid": -0.5, "self-high-cold": 0.5}
    units = simulate(np.random.default_rng(4), rows, n_seeds=3, self_scale=2.0)
    units = units[~((units["row"] == "teacher-low") & (units["pseed"] == 2) & (units["fseed"] > 0))]
    p = stats.fit(units, hetero=True)
    assert p.structure == stats.HETERO and p.df["student (self)"] < p.df["student"]
    w = (p.weights.loc["teacher-low"] - p.weights.loc["baseline"]).to_numpy()
    sliver = float(w @ p.kernels["student (self)"] @ w)
    assert 1e-12 < sliver < 0.01 * float(w @ p.kernels["student"] @ w)  # a sliver, not nothing
    assert p.contrast("teacher-low", "baseline")["df"] == p.df["student"]
    assert p.contrast("self-high-cold", "baseline")["df"] == p.df["student (self)"]


def test_one_common_seed_excludes_nothing():
    """With one pretraining seed in common the interval leaves out seed noise (and with one unit per student, as
    BLiMP has, it is 0 wide): the claim is unresolved and no effect size is said to be excluded."""
    from entmask.experiments.pooled import judged_contrast

    one = stats.fit(simulate(np.random.default_rng(6), n_seeds=1, n_ft=1))
    raw = one.contrast("teacher-high", "baseline", +1)
    assert raw["excludes"]  # the bare interval would claim exclusions
    c, verdict, why = judged_contrast(one, "teacher-high", "baseline", +1, False, no_fit="-", no_row="-")
    assert verdict == "unresolved" and "one pretraining seed only" in why and c["excludes"] == ""
    two = stats.fit(simulate(np.random.default_rng(6), n_seeds=2))
    assert judged_contrast(two, "teacher-high", "baseline", +1, False, no_fit="-", no_row="-")[0]["excludes"]
