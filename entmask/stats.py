"""A pooled linear mixed model over every row of a results table: the primary verdict of `experiment verdicts`.

What it is: one REML fit (statsmodels MixedLM) per results file of the GLUE Total of each finished unit (row,
pretraining seed, fine-tuning seed), with a fixed effect per row and random effects for the pretraining seed
(shared by every row at that seed), the student (row x pretraining seed: its fine-tuning seeds share it) and the
fine-tuning noise (residual). Claims are contrasts of two rows' fixed effects. Pooling lends every row's seeds to
the estimate of the student noise, so two pretraining seeds give an interval with more than one degree of freedom.

What it is not: a per-task model (the unit is the Total, the paper's measure), a bootstrap over validation
examples, a correction for judging many claims, or a test of a claimed size (only the sign is judged). It assumes
the noise is common to the rows; the one departure it tests (HETERO, chosen by REML AIC) is self-masking rows with
their own student variance and extra fine-tuning variance (MixedLM has one residual variance: the extra is a
unit-level component of the self-masking units). Its intervals use counted degrees of freedom (Pooled.contrast).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

SELF = "self-"  # labels of self-masking rows: they may get their own noise (HETERO)
HOMO, HETERO = "one student variance", "self-masking rows' own student and extra fine-tuning variance"
METHODS = ("powell", "nm", "lbfgs")  # MixedLM optimizers, tried in turn until two agree on a fit (see _mixedlm)
ENTERS = 0.01  # a student component sets a contrast's df if its weight in Δ is >= this share of the largest's
TINY = 1e-6  # a variance below TINY x the Totals' variance is at the boundary (0)


def unit_totals(records, tasks=None) -> tuple[pd.DataFrame, list[str]]:
    """(units, notes): one row per (label, pretraining seed, fine-tuning seed) that finished every task of `tasks`
    (default: every task some unit finished), with `total` = mean paper_score x 1 over those tasks; notes name the
    units left out for a missing task. records: fine-tuning records (label, task, pretrain_seed, seed, status,
    paper_score); a missing/NaN pretraining seed is seed 0 (experiments.unit_key)."""
    rows = []
    for f in records:
        if f.get("status") != "ok" or f.get("paper_score") is None:
            continue
        ps = f.get("pretrain_seed")
        ps = 0 if ps is None or (isinstance(ps, float) and math.isnan(ps)) else int(ps)
        rows.append((f["label"], ps, int(f["seed"]), f["task"], float(f["paper_score"])))
    cols = ["row", "pseed", "fseed", "total"]
    if not rows:
        return pd.DataFrame(columns=cols), []
    long = pd.DataFrame(rows, columns=["row", "pseed", "fseed", "task", "score"])
    long = long.drop_duplicates(["row", "pseed", "fseed", "task"])
    tasks = sorted(set(tasks or long["task"]) & set(long["task"]))
    wide = long[long["task"].isin(tasks)].pivot_table(index=["row", "pseed", "fseed"], columns="task",
                                                      values="score")
    missing = wide.isna().any(axis=1)
    notes = [f"{r} pretraining seed {p} fine-tuning seed {s}: left out, no "
             f"{', '.join(t for t in tasks if math.isnan(wide.loc[(r, p, s), t]))}"
             for r, p, s in wide.index[missing]]
    out = wide[~missing].mean(axis=1).rename("total").reset_index()
    return out[cols], notes


@dataclass
class Pooled:
    """A fitted pooled model: β (one per row), their covariance, the variance components, and how it got there."""
    beta: pd.Series
    cov: pd.DataFrame
    components: dict  # name -> variance (points²): "seed", "student", "fine-tuning" [, the HETERO ones]
    structure: str  # HOMO or HETERO (or "OLS fallback")
    notes: list = field(default_factory=list)  # what was fitted, at the boundary, failed, warned
    df: dict = field(default_factory=dict)  # component -> its counted degrees of freedom (see _kernels)
    seeds: dict = field(default_factory=dict)  # row -> sorted pretraining seeds it has units at
    n_units: int = 0
    aic: dict = field(default_factory=dict)  # structure -> REML AIC, where both were fitted
    kernels: dict = field(default_factory=dict, repr=False)  # component -> units x units 0/1 matrix: V = Σ σ²_k K_k
    weights: pd.DataFrame | None = field(default=None, repr=False)  # rows x units: β = W y (GLS)

    def sd_seed_delta(self, n_ft: int = 1, own: bool = False) -> float:
        """SD of one pretraining seed's Δ between two rows (the seed effect cancels), each the mean of n_ft
        fine-tunings; own: two self-masking rows under HETERO. What power() needs."""
        c = self.components
        s = c.get("student (self)" if own else "student", 0.0)
        e = c.get("fine-tuning", 0.0) + (c.get("fine-tuning (self, extra)", 0.0) if own else 0.0)
        return math.sqrt(2 * s + 2 * e / max(n_ft, 1))

    def contrast(self, model: str, ref: str, expected: int = +1, level: float = 0.95,
                 df_rule: str = "count") -> dict:
        """Δ = β_model − β_ref, its SE from the fixed-effect covariance, and a t interval. Its degrees of freedom
        (df_rule "count", the default): the smallest counted df (_kernels) of the student components that enter
        Var(Δ) (both, for a self vs other contrast under HETERO; fine-tuning's where there is no student
        component): students − rows − (seeds − 1), e.g. 6 rows x 2 seeds -> 5 (t 2.57, not the seed
        t-interval's 12.71). Not the normal (Wald) quantile: with 2-4 seeds the variances rest on few students.
        "satterthwaite": df = (Σ c_k)² / Σ c_k²/df_k with c_k = σ²_k w'K_k w (Var(Δ) = Σ c_k exactly, w the GLS
        weights of Δ over the units). Not the default: it trusts a student variance estimated at 0, and in 150
        simulations per case at 2 seeds (4-6 rows, student SD 0.6-1.0, fine-tuning 0.6) its 95% intervals
        covered 91-93%, the counted rule's 93-97%."""
        from scipy.stats import t as student_t

        delta = float(self.beta[model] - self.beta[ref])
        var = float(self.cov.loc[model, model] + self.cov.loc[ref, ref] - 2 * self.cov.loc[model, ref])
        se = math.sqrt(max(var, 0.0))
        df = float(min(self.df.values())) if self.df else 1.0
        if self.kernels and self.weights is not None:
            w = (self.weights.loc[model] - self.weights.loc[ref]).to_numpy()
            shape = {k: float(w @ K @ w) for k, K in self.kernels.items()}
            if df_rule == "satterthwaite":
                c = {k: self.components.get(k, 0.0) * x for k, x in shape.items()}
                if sum(c.values()) > 0:
                    df = sum(c.values()) ** 2 / sum(v ** 2 / self.df[k] for k, v in c.items() if v > 0)
            else:
                # A component enters when it carries weight in Δ: unbalanced units (a row missing some fine-tuning
                # seeds) give every unit a sliver of GLS weight through the shared seed effect, and a self-masking
                # student component entering at 1e-4 of the main one must not set a teacher contrast's df.
                stud = {k: x for k, x in shape.items() if k.startswith("student")}
                top = max(stud.values(), default=0.0)
                enter = [k for k, x in stud.items() if x > 1e-12 and x >= ENTERS * top]
                df = float(min(self.df[k] for k in enter)) if enter else float(self.df["fine-tuning"])
        df = max(1.0, df)
        q = float(student_t.ppf(0.5 + level / 2, df))
        lo, hi = delta - q * se, delta + q * se
        common = sorted(set(self.seeds.get(model, ())) & set(self.seeds.get(ref, ())))
        v, why = sign_verdict(delta, lo, hi, expected)
        return {"delta": delta, "se": se, "df": df, "t": q, "lo": lo, "hi": hi, "verdict": v, "why": why,
                "excludes": excluded(delta, lo, hi, expected), "common_seeds": common}


def sign_verdict(delta: float, lo: float, hi: float, expected: int) -> tuple[str, str]:
    """The sign rule of experiments.judge (without its plateau / one-seed checks, which the caller applies)."""
    if lo > 0 or hi < 0:
        ok = (1 if lo > 0 else -1) == expected
        return ("supported" if ok else "contradicted"), (
            f"Δ {delta:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}] excludes 0 "
            f"{'in the claimed direction' if ok else 'in the other direction'}")
    return "unresolved", f"Δ {delta:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}] contains 0"


def _up(x: float) -> float:
    """Round a threshold outward to 0.1 (3.21 -> 3.3), so that 'excludes ≥ x' stays true after rounding."""
    return math.ceil(round(x * 10, 6)) / 10


def excluded(delta: float, lo: float, hi: float, expected_sign: int) -> str:
    """What the 95% interval [lo, hi] of Δ rules out, in the claim's words: for a claimed rise (+1) a 'gain' is
    Δ > 0 and a 'loss' Δ < 0; for a claimed fall (-1) a 'drop' is Δ < 0 and a 'rise' Δ > 0 (the claimed direction
    first). Thresholds are rounded outward to 0.1 point, so each statement stays true."""
    yes, no = ("gain", "loss") if expected_sign > 0 else ("drop", "rise")
    g_lo, g_hi = sorted((expected_sign * lo, expected_sign * hi))  # the interval in the claimed direction
    if not (math.isfinite(g_lo) and math.isfinite(g_hi)):
        return "nothing (no interval)"
    if g_lo > 0:  # supported
        return f"excludes any {no}, a {yes} under {math.floor(round(g_lo * 10, 6)) / 10:.1f} and a {yes} of ≥ " \
               f"{_up(g_hi):.1f} points"
    if g_hi < 0:  # contradicted
        return f"excludes any {yes}, a {no} under {math.floor(round(-g_hi * 10, 6)) / 10:.1f} and a {no} of ≥ " \
               f"{_up(-g_lo):.1f} points"
    return f"excludes a {yes} of ≥ {_up(g_hi):.1f} and a {no} of ≥ {_up(-g_lo):.1f} points"


# ---- fitting ------------------------------------------------------------------------------------------------------
def _kernels(d: pd.DataFrame, comps: dict, hetero: bool) -> tuple[dict, dict]:
    """({component: K}, {component: counted df}): V = Σ σ²_k K_k over the units, and how many degrees of freedom
    each variance estimate rests on, counted conservatively from the design (at least 1): seed, seeds − 1; student,
    students − rows − (seeds − 1) (the error df of the row x seed layout of student means); fine-tuning, units −
    students (replicates within students; where there is no student component, units − rows − (seeds − 1)); the
    HETERO ones the same counts over the self-masking rows."""
    own = (d["row"].str.startswith(SELF) & hetero).to_numpy()
    stud = (d["row"] + "@" + d["pseed"].astype(str)).to_numpy()
    same_stud, same_seed = stud[:, None] == stud[None, :], d["pseed"].to_numpy()[:, None] == d["pseed"].to_numpy()
    n_seed, n_stud, n_rows = d["pseed"].nunique(), len(set(stud)), d["row"].nunique()
    n_stud_own, n_rows_own = len(set(stud[own])), d[own]["row"].nunique()
    K, df = {"fine-tuning": np.eye(len(d))}, {}
    df["fine-tuning"] = len(d) - n_stud if "student" in comps else len(d) - n_rows - (n_seed - 1)
    if "seed" in comps:
        K["seed"], df["seed"] = same_seed.astype(float), n_seed - 1
    if "student" in comps:
        K["student"] = (same_stud & ~own[:, None] & ~own[None, :]).astype(float)
        df["student"] = (n_stud - n_stud_own) - (n_rows - n_rows_own) - (n_seed - 1)
    if "student (self)" in comps:
        K["student (self)"] = (same_stud & own[:, None] & own[None, :]).astype(float)
        df["student (self)"] = n_stud_own - n_rows_own
    if "fine-tuning (self, extra)" in comps:
        K["fine-tuning (self, extra)"] = np.diag(own.astype(float))
        df["fine-tuning (self, extra)"] = int(own.sum()) - n_stud_own
    return K, {k: max(1, int(v)) for k, v in df.items()}


def _gls(d: pd.DataFrame, comps: dict, K: dict) -> tuple[pd.Series, pd.DataFrame, pd.DataFrame]:
    """β, Cov(β) = (X'V⁻¹X)⁻¹ and the weights W = Cov(β) X'V⁻¹ (β = W y) at the fitted variances, V = Σ σ²_k K_k.
    Done here rather than read from MixedLM's Hessian, which is singular when a component sits at 0."""
    rows = sorted(d["row"].unique())
    X = (d["row"].to_numpy()[:, None] == np.array(rows)[None, :]).astype(float)  # cell means: β_r = row r's level
    V = sum(comps.get(k, 0.0) * M for k, M in K.items())
    y = d["total"].to_numpy()
    try:  # V is positive definite unless the fine-tuning variance is 0 (noise-free data): then a pseudo-inverse
        if comps.get("fine-tuning", 0.0) <= TINY * max(float(np.var(y)), 1e-12):
            raise np.linalg.LinAlgError("no fine-tuning variance")
        ViX = np.linalg.solve(V, X)
        cov = np.linalg.inv(X.T @ ViX)
    except np.linalg.LinAlgError:
        ViX = np.linalg.pinv(V) @ X
        cov = np.linalg.pinv(X.T @ ViX)
    W = cov @ ViX.T  # V symmetric: (V⁻¹X)' = X'V⁻¹
    return (pd.Series(W @ y, index=rows), pd.DataFrame(cov, index=rows, columns=rows),
            pd.DataFrame(W, index=rows))


def _mixedlm(d: pd.DataFrame, seed: bool, student: bool, hetero: bool) -> tuple[dict, float, int, list[str]]:
    """One REML fit: (variance components, log-likelihood, number of variance parameters, warnings). Groups are
    the pretraining seeds (random intercept = seed effect); students are variance components nested in them, one
    0/1 indicator column per student of the group (HETERO: self-masking students in a component of their own;
    built by hand, since formula interactions leave all-zero columns that make the fit singular)."""
    from statsmodels.regression.mixed_linear_model import MixedLM, VCSpec

    rows = sorted(d["row"].unique())
    X = (d["row"].to_numpy()[:, None] == np.array(rows)[None, :]).astype(float)
    groups = d["pseed"].to_numpy()
    exog_re = np.ones((len(d), 1)) if seed else None
    vc = None
    if student:
        kinds = {"student": lambda r: not (hetero and r.startswith(SELF))}
        if hetero:
            kinds["student_self"] = lambda r: r.startswith(SELF)
        names, colnames, mats = [], [], []
        if hetero:  # self-masking units' own extra fine-tuning noise: one column per unit (a unit-level effect)
            names.append("ft_self")
            colnames.append([[f"u{i}" for i in np.flatnonzero((groups == g) & d["row"].str.startswith(SELF))]
                             for g in sorted(set(groups))])
            mats.append([np.eye(int((groups == g).sum()))[:, d[groups == g]["row"].str.startswith(SELF).to_numpy()]
                         for g in sorted(set(groups))])
        for name, keep in kinds.items():
            cn, mt = [], []
            for g in sorted(set(groups)):
                sub = d[groups == g]
                studs = [r for r in sorted(sub["row"].unique()) if keep(r)]
                cn.append(studs)
                mt.append((sub["row"].to_numpy()[:, None] == np.array(studs, dtype=object)[None, :]).astype(float)
                          if studs else np.zeros((len(sub), 0)))
            names.append(name)
            colnames.append(cn)
            mats.append(mt)
        vc = VCSpec(names, colnames, mats)
    # Gradient optimizers stall near a variance of 0 (L-BFGS "converged" 6 log-likelihood units below the optimum
    # on the cpu-long table2; derivative-free Powell and Nelder-Mead found it, and are faster on fits this small),
    # so methods are tried until two have converged, and the higher likelihood kept.
    best, failed, done = None, [], 0
    for method in METHODS:
        if done >= 2:
            break
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                m = MixedLM(d["total"].to_numpy(), X, groups, exog_re=exog_re, exog_vc=vc)
                r = m.fit(reml=True, method=method)
                ok = bool(r.converged and np.isfinite(r.llf))  # llf is lazy: read here, under the catch
            except Exception as e:  # noqa: BLE001 - a method that fails is one fewer candidate
                failed.append(f"{method}: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
                continue
        # A boundary is reported from the estimates, and Cov(β) comes from _gls, not from the Hessian.
        said = sorted({str(w.message).splitlines()[0][:100] for w in caught
                       if "boundary" not in str(w.message) and "Hessian" not in str(w.message)})
        done += ok
        if ok and (best is None or r.llf > best[1].llf + 1e-9):
            best = (m, r, [f"{method}: {w}" for w in said])
        elif not r.converged:
            failed.append(f"{method}: did not converge")
    if best is None:
        raise RuntimeError("no optimizer converged (" + "; ".join(failed)[:300] + ")")
    m, r, said = best
    comps = {"fine-tuning": float(r.scale)}
    if seed:
        comps["seed"] = float(np.asarray(r.cov_re)[0, 0])
    names = list(m.exog_vc.names) if student else []
    for n, v in zip(names, np.asarray(r.vcomp)):
        comps[{"student_self": "student (self)", "ft_self": "fine-tuning (self, extra)"}.get(n, "student")] = float(v)
    return comps, float(r.llf), len(comps), said


def fit(units: pd.DataFrame, *, hetero: bool | None = None) -> Pooled:
    """The pooled model of `units` (unit_totals). Never raises on a hard fit: a component estimated at 0 (a
    singular fit, on the boundary) is kept and said; a fit that fails is refitted without the seed component; if
    that fails too, OLS on the student means with row and seed fixed effects (the classical block analysis).
    Every step is in .notes.

    Structure: HOMO and, where the table has self-masking rows (≥ 2 students of each kind), HETERO; the lower REML
    AIC is chosen (both have the same fixed effects, so REML likelihoods compare; 2 extra parameters). hetero:
    force one (tests). The degrees of freedom of the intervals: Pooled.contrast."""
    d = units.reset_index(drop=True).copy()
    d["pseed"] = d["pseed"].astype(int)
    seeds = sorted(d["pseed"].unique())
    studs = d.groupby(["row", "pseed"]).size()
    notes: list[str] = []
    total_var = float(d["total"].var()) if len(d) > 1 else 0.0
    student = bool((studs > 1).any())
    if not student:
        notes.append("one unit per student: the student and fine-tuning noise are one component (the residual)")
    with_seed = len(seeds) > 1
    if not with_seed:
        notes.append("one pretraining seed: no seed component")
    is_self = pd.Series({r: r.startswith(SELF) for r in d["row"].unique()})
    n_self = int(studs[[r.startswith(SELF) for r, _ in studs.index]].shape[0])
    can_hetero = student and n_self >= 2 and len(studs) - n_self >= 2 and is_self.any() and not is_self.all()

    def attempt(het: bool):
        """(components, REML log-likelihood, number of variance parameters, notes) or (None, notes)."""
        seed_on, stud_on, said = with_seed, student, []
        tag = HETERO if het else HOMO
        while seed_on or stud_on:
            try:
                comps, llf, k, warned = _mixedlm(d, seed_on, stud_on, het)
            except Exception as e:  # noqa: BLE001 - any failure of a fit is a note and a simpler fit
                if not seed_on:  # without the student component replicates would pass for independent students
                    return None, said + [f"{tag}: the fit failed ({str(e)[:160]})"]
                said.append(f"{tag}: the fit with a seed component failed ({str(e)[:160]}): refitted without it")
                seed_on = False
                continue
            # A variance at 0 is a boundary (singular) fit, still the REML estimate with the right likelihood:
            # kept, and said. (Cov(β) comes from _gls, which needs no Hessian.)
            said += [f"{tag}: {n} variance estimated at 0 (a singular fit, on the boundary)" for n, v in comps.items()
                     if n != "fine-tuning" and v <= TINY * max(total_var, 1e-12)]
            said += [f"{tag}: statsmodels warned: {w}" for w in warned]
            return (comps, llf, k), said
        return None, said

    (homo, said_homo), (het, said_het) = attempt(False), (attempt(True) if can_hetero else (None, []))
    if hetero and het is None:
        said_het.append(f"{HETERO}: not fitted (needs ≥ 2 students with replicates of each kind)")
    aic = {}
    if homo and het:
        aic = {HOMO: 2 * homo[2] - 2 * homo[1], HETERO: 2 * het[2] - 2 * het[1]}
    if hetero is None:
        use_het = bool(aic) and aic[HETERO] < aic[HOMO]
    else:
        use_het = bool(hetero) and het is not None
    notes += (said_het + [f"{HOMO}: {n.split(': ', 1)[1]}" for n in said_homo if "failed" in n]) if use_het else \
        (said_homo + [n for n in said_het if "failed" in n or "not fitted" in n])
    chosen = het if use_het else homo
    if chosen is None:  # every MixedLM failed (or nothing to fit): the classical block analysis
        return _ols(d, notes + ["every mixed-model fit failed: OLS on student means, row + seed fixed effects"])
    comps = chosen[0]
    K, df = _kernels(d, comps, use_het)
    beta, cov, W = _gls(d, comps, K)
    return Pooled(beta, cov, comps, HETERO if use_het else HOMO, notes, df,
                  {r: sorted(g["pseed"].unique()) for r, g in d.groupby("row")}, len(d), aic, K, W)


def _ols(d: pd.DataFrame, notes: list) -> Pooled:
    m = d.groupby(["row", "pseed"], as_index=False)["total"].mean()
    rows, seeds = sorted(m["row"].unique()), sorted(m["pseed"].unique())
    X = np.column_stack([(m["row"] == r).to_numpy(float) for r in rows]
                        + [(m["pseed"] == s).to_numpy(float) - (m["pseed"] == seeds[0]).to_numpy(float)
                           for s in seeds[1:]])  # seed effects as differences from the first seed
    XtXi = np.linalg.pinv(X.T @ X)
    b = XtXi @ X.T @ m["total"].to_numpy()
    df = max(1, len(m) - np.linalg.matrix_rank(X))
    s2 = float(np.sum((m["total"].to_numpy() - X @ b) ** 2) / df)
    k = len(rows)
    return Pooled(pd.Series(b[:k], index=rows), pd.DataFrame(s2 * XtXi[:k, :k], index=rows, columns=rows),
                  {"student": s2}, "OLS fallback", notes, {"student": df},
                  {r: sorted(g["pseed"].unique()) for r, g in d.groupby("row")}, len(d))


def describe(p: Pooled) -> str:
    """One paragraph for a report: the structure chosen, why, the components and every note."""
    comps = ", ".join(f"{k} {math.sqrt(max(v, 0)):.2f}" for k, v in p.components.items())
    s = f"{p.n_units} units, {len(p.beta)} rows; structure: {p.structure}"
    if p.aic:
        s += " (REML AIC " + " vs ".join(f"{k} {v:.1f}" for k, v in p.aic.items()) + ": the lower is chosen)"
    elif p.structure == HOMO:
        s += " (no self-masking rows to give their own variance, or too few students)"
    s += f"; SDs (points): {comps}; counted df: " + ", ".join(f"{k} {v}" for k, v in p.df.items())
    return s + "." + ("".join(f" {n}." for n in p.notes) if p.notes else "")


def power(sd_delta: float, effect: float, n_seeds: int, n_rows: int = 2, alpha: float = 0.05) -> dict:
    """Probability that the 95% interval excludes 0 in the direction of a true Δ of `effect` points, with
    `n_seeds` pretraining seeds and one seed's Δ having SD `sd_delta` (Pooled.sd_seed_delta). Closed form: Δ̂/SE is
    noncentral t with ncp = effect √n / sd_delta. conservative: the seed t-interval (df n − 1; the rule takes the
    wider of it and a bootstrap, so this is an upper bound). pooled: the same SE with df (n_rows − 1)(n − 1), the
    pooled model's on a balanced table of n_rows rows with common student noise."""
    from scipy.stats import nct
    from scipy.stats import t as student_t

    ncp = abs(effect) * math.sqrt(n_seeds) / sd_delta if sd_delta > 0 else math.inf
    out = {}
    for name, df in (("conservative", n_seeds - 1), ("pooled", (n_rows - 1) * (n_seeds - 1))):
        if df < 1:
            out[name] = 0.0
            continue
        out[name] = 1.0 if math.isinf(ncp) else float(nct.sf(student_t.ppf(1 - alpha / 2, df), df, ncp))
    return out
