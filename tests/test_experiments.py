"""Experiments end to end at a tiny smoke size: every experiment pretrains (or finds) its runs, fine-tunes them and
writes its table, records and figures; the values in the tables are checked against the runs they come from.

One session fixture runs all seven experiments once into a tmp runs root; the pretraining runs are shared between
experiments by config hash, so 15 tiny runs serve them all. Needs the offline mirror at ../shared/data (skips
without it); the matrix tests need no data.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from entmask import config, records
from entmask import experiments as ex
from entmask.experiments import ABSENT, NOT_RUN, ExperimentError, parse_cell

MIRROR = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# As small as the pipeline allows: 4 optimizer steps, 3 articles of 32-token rows, 48 training and 32 evaluated
# examples per task, one seed. cola and mrpc are in the mirror, qqp is not (it must come out "absent").
OVERRIDES = {"finetune.tasks": ["cola", "mrpc", "qqp"], "finetune.max_train": 48, "finetune.max_eval": 32,
             "finetune.epochs": 1, "train.max_steps": 4, "train.batch_size": 8, "train.logging_steps": 2,
             "data.max_articles": 3, "data.seq_len": 32, "reference.steps": 10}
AVAILABLE, MISSING = ("CoLA", "MRPC"), "QQP"


def smoke_cfg():
    return config.resolve("smoke", OVERRIDES)


@pytest.fixture(scope="session")
def exp_root(tmp_path_factory) -> Path:
    if not (MIRROR / "wikitext").is_dir() or not (MIRROR / "glue").is_dir():
        pytest.skip(f"offline mirror not found at {MIRROR}")
    os.environ["ENTMASK_DATA_DIR"] = str(MIRROR)
    return tmp_path_factory.mktemp("exp-runs")


@pytest.fixture(scope="session")
def results(exp_root) -> dict:
    """Every experiment once, in the order that makes later ones reuse earlier runs."""
    cfg = smoke_cfg()
    out = {}
    for name, fn in ex.EXPERIMENTS.items():
        # plateau: the recipe search trains for thousands of steps, tested below at toy sizes; beyond: executed by
        # notebook 06 in tests/test_notebooks.py (and its matrix in tests/test_beyond.py); static: its one new run
        # (random masks kept every epoch) is trained in tests/test_beyond.py; memorisation trains nothing (tested
        # on these runs below)
        if name not in ("plateau", "beyond", "static", "memorisation"):
            out[name] = fn(cfg, root=exp_root, progress=False)
    return out


def ours(res):
    return res.table[res.table["source"] == "ours"]


def scores(res, label):
    s = res.extra["scores"]
    return s[s["label"] == label].iloc[0]


def metrics(run_dir):
    return json.loads((Path(run_dir) / "metrics.json").read_text())


# ---- the matrix (no data needed) -----------------------------------------------------------------------------
def test_matrix_table1_strategies_and_names():
    from entmask.cli import default_name

    m = ex.matrix("table1", smoke_cfg())
    assert [label for label, _ in m] == ["baseline", "teacher-high", "teacher-low", "teacher-mid",
                                         "teacher-marginal", "teacher-alternating"]
    assert [c.masking.strategy for _, c in m] == ["random", "high", "low", "mid", "marginal", "alternating"]
    assert all(c.masking.source == "teacher" and c.kd.mode == "none" for _, c in m)
    assert [c.name for _, c in m] == [default_name(c) for _, c in m]
    assert m[1][1].name == "high-teacher" and m[0][1].name == "random"
    assert len({c.short_hash() for _, c in m}) == 6


def test_matrix_other_experiments_share_configs():
    cfg = smoke_cfg()
    t1, t2 = dict(ex.matrix("table1", cfg)), dict(ex.matrix("table2", cfg))
    kd, mr = dict(ex.matrix("kd", cfg)), dict(ex.matrix("mask-rate", cfg))
    assert t2["baseline"].short_hash() == t1["baseline"].short_hash()
    assert t2["teacher-high"].short_hash() == t1["teacher-high"].short_hash()
    assert (t2["self-high-cold"].masking.source, t2["self-high-cold"].masking.self_start) == ("self", "cold")
    assert (t2["self-high-init"].masking.source, t2["self-high-init"].masking.self_start) == ("self", "init")
    assert kd["self-high-init"].short_hash() == t2["self-high-init"].short_hash()
    assert [kd[k].kd.mode for k in ("baseline", "self-high-init", "kd-only", "kd-complete", "kd-after-init")] == [
        "none", "none", "kd-only", "complete", "after-init"]
    assert kd["kd-only"].masking.strategy == "random"
    assert kd["kd-complete"].masking.self_start == kd["kd-after-init"].masking.self_start == "init"
    assert len(mr) == 6
    assert {(c.masking.strategy, c.masking.ratio, c.masking.num_tokens) for c in mr.values()} == {
        ("high", 0.15, None), ("low", 0.15, None), ("high", 0.4, None), ("low", 0.4, None),
        ("high", 0.15, 1), ("low", 0.15, 1)}
    assert mr["high-r15"].short_hash() == t1["teacher-high"].short_hash()
    assert mr["high-r40"].name == "high-teacher-r40" and mr["low-n1"].name == "low-teacher-n1"
    assert [label for label, _ in ex.matrix("frozen", cfg)] == ["baseline", "teacher-high"]
    assert [label for label, _ in ex.matrix("weights", cfg)] == ["baseline", "teacher-high", "self-high-init"]
    co = dict(ex.matrix("corpus", cfg, corpus="someone/books:plain:train+validation"))
    assert co["baseline"].data.corpus == "someone/books" and co["baseline"].data.corpus_config == "plain"
    assert co["baseline"].data.splits == ["train", "validation"]
    assert co["self-high-init"].short_hash() != t2["self-high-init"].short_hash()


def test_static_control_shares_the_table1_runs():
    cfg = smoke_cfg()
    st, t1 = dict(ex.matrix("static", cfg)), dict(ex.matrix("table1", cfg))
    for label in ("baseline", "teacher-high", "teacher-low"):
        assert st[label].short_hash() == t1[label].short_hash()
    rs = st["random-static"]
    assert rs.masking.static and rs.masking.strategy == "random" and rs.name == "random-static"
    assert rs.short_hash() not in {c.short_hash() for c in t1.values()}


def test_unknown_experiment_is_a_one_line_error():
    with pytest.raises(ExperimentError, match="table1, table2, kd, mask-rate, frozen, weights, corpus"):
        ex.matrix("table9", smoke_cfg())
    with pytest.raises(ExperimentError, match="unknown experiment 'table9'"):
        ex.run("table9", smoke_cfg())
    with pytest.raises(ExperimentError, match="corpus experiment only"):
        ex.run("table1", smoke_cfg(), corpus="bookcorpus")
    with pytest.raises(ExperimentError, match="plateau experiment only"):
        ex.run("table1", smoke_cfg(), recipes=["profile"])


def test_per_seed_frame_shows_each_pretraining_seed_exactly():
    """Cells averaged over fine-tuning seeds within a pretraining seed, Total over the given tasks, Δ against the
    reference row at the same seed, the collapse mark kept; a seed missing a task gets no Total."""
    cfg = smoke_cfg()

    def ft(task, ps, seed, score, collapsed=False):
        return {"task": task, "pretrain_seed": ps, "seed": seed, "status": "ok", "paper_score": score,
                "collapsed": collapsed}

    base = ex._Run("baseline", cfg, ft=[ft("sst2", 0, 0, 70.0), ft("sst2", 0, 1, 72.0), ft("rte", 0, 0, 50.0),
                                        ft("rte", 0, 1, 50.0), ft("sst2", 1, 0, 76.0), ft("rte", 1, 0, 54.0)],
                   seed_runs=[{"pretrain_seed": 0, "metrics": {"heldout_accuracy": 0.2}},
                              {"pretrain_seed": 1, "metrics": {"heldout_accuracy": 0.25}}])
    high = ex._Run("teacher-high", cfg, ft=[ft("sst2", 0, 0, 75.0), ft("rte", 0, 0, 47.0, collapsed=True),
                                            ft("sst2", 1, 0, 73.0)],
                   seed_runs=[{"pretrain_seed": 0, "metrics": {}}, {"pretrain_seed": 1, "metrics": {}}])
    f = ex.per_seed_frame("table1", [base, high], ["rte", "sst2"])
    assert list(zip(f["label"], f["pretraining seed"])) == [("baseline", 0), ("baseline", 1), ("teacher-high", 0),
                                                          ("teacher-high", 1)]
    assert list(f["SST-2"]) == ["71.00", "76.00", "75.00", "73.00"]
    assert list(f["RTE"]) == ["50.00", "54.00", "47.00" + ex.COLLAPSE_MARK, NOT_RUN]
    assert list(f["Total"]) == ["60.50", "65.00", "61.00", "—"]  # seed 1 of high has no RTE: no Total
    assert list(f["Δ Total"]) == ["(reference)", "(reference)", "+0.50", ""]
    assert list(f["held-out acc"])[:2] == [ex._pct(0.2), ex._pct(0.25)]


def test_self_switch_sd_reads_the_switch_epoch():
    hist = {"epoch_entropy": [{"epoch": 0, "entropy_sd": 0.01}, {"epoch": 1, "entropy_sd": 0.3},
                              {"epoch": 2, "entropy_sd": 0.9}]}
    base = smoke_cfg()
    cold = config.apply_overrides(base, {"masking.strategy": "high", "masking.source": "self"})
    init = config.apply_overrides(cold, {"masking.self_start": "init"})
    after = config.apply_overrides(base, {"masking.strategy": "high", "kd.mode": "after-init"})
    assert ex.self_switch_sd(cold, hist) == (0.01, 0.9)
    assert ex.self_switch_sd(init, hist) == (0.3, 0.9)
    assert ex.self_switch_sd(after, hist) == (0.3, 0.9)
    assert ex.self_switch_sd(config.apply_overrides(base, {"masking.strategy": "high"}), hist) == (None, None)
    assert ex.self_switch_sd(cold, {}) == (None, None)


def test_first_exit_needs_both_criteria():
    pts = [{"step": 1, "heldout_accuracy": 0.0, "unigram_accuracy": 0.08, "entropy_sd": 0.0},
           {"step": 250, "heldout_accuracy": 0.17, "unigram_accuracy": 0.08, "entropy_sd": 0.4},  # sd too low
           {"step": 500, "heldout_accuracy": 0.15, "unigram_accuracy": 0.08, "entropy_sd": 1.2},  # acc too low
           {"step": 750, "heldout_accuracy": 0.16, "unigram_accuracy": 0.08, "entropy_sd": 0.5}]
    assert ex.first_exit(pts) == 750
    assert ex.first_exit(pts[:3]) is None


def test_plateau_search_writes_table_and_curves(exp_root, tmp_path, monkeypatch):
    """(Its own runs folder: the experiments' shared one is counted by test_runs_are_shared_across_experiments.)"""
    from entmask.experiments import plateau_search as ps  # the module whose globals plateau() reads

    monkeypatch.setattr(ps, "PLATEAU_COMMON", {**ps.PLATEAU_COMMON, "data.max_articles": 8, "train.eval_steps": 4})
    monkeypatch.setattr(ps, "RECIPES", {"short": ({"train.max_steps": 8}, "a short run"),
                                        "mask40": ({"train.max_steps": 8, "masking.ratio": 0.4}, "more targets")})
    res = ex.plateau(smoke_cfg(), root=tmp_path, progress=False)
    df = res.extra["scores"]
    assert list(df["recipe"]) == ["short", "mask40"] and list(df["steps"]) == [8, 8]
    assert list(df["mask_ratio"]) == [0.15, 0.4]
    data = json.loads(res.paths["json"].read_text())
    assert [p["step"] for p in data["curves"]["short"]] == [1, 4, 8]
    for row in data["rows"]:
        m = json.loads((Path(row["run"]) / "metrics.json").read_text())
        assert row["heldout_accuracy"] == m["heldout_accuracy"] and row["left_plateau"] == m["left_plateau"]
        assert row["first_exit_step"] == ex.first_exit(m["curve"])
    assert res.paths["curves_png"].stat().st_size > 5000
    assert "first_exit_step" in res.paths["md"].read_text()
    with pytest.raises(ExperimentError, match="unknown recipe"):
        ex.plateau_configs(smoke_cfg(), ["nope"])
    # report-only: a recipe never run is listed as such, nothing is trained
    monkeypatch.setitem(ps.RECIPES, "longer", ({"train.max_steps": 9}, "not run yet"))
    rep = ex.plateau(smoke_cfg(), root=tmp_path, progress=False, train=False).extra["scores"]
    assert list(rep["status"]) == ["finished", "finished", "not run"]
    assert rep["steps"].iloc[2] is None or rep["steps"].iloc[2] != rep["steps"].iloc[2]


@pytest.mark.parametrize("profile", ["tiny", "cpu-wiki"])
def test_every_plateau_recipe_is_a_different_run(mirror, monkeypatch, profile):
    # a recipe that changes nothing on a profile (cpu-wiki's wiki-own-1500 before it set short_positions=own,
    # once natural positions became the profile's) trains the same run as another under a second label
    monkeypatch.setenv("ENTMASK_DATA_DIR", str(mirror))
    hashes = {label: c.short_hash() for label, c in ex.plateau_configs(config.resolve(profile))}
    assert len(set(hashes.values())) == len(hashes), hashes


def test_plateau_note_only_when_a_student_is_on_it():
    left = {"label": "a", "left_plateau": True, "heldout_accuracy": 0.3, "unigram_accuracy": 0.05}
    on = {"label": "b", "left_plateau": False, "heldout_accuracy": 0.051, "unigram_accuracy": 0.05}
    assert ex.plateau_note([left]) is None
    note = ex.plateau_note([left, on])
    assert "on the unigram plateau" in note and "1 of 2" in note and "5.1%" in note and "5.0%" in note
    assert "NOT a test of the paper's claims" in note
    # A strategy-masked student scored on random masks it never trained on is not judged when a random-masked
    # row tests the recipe; a table without one (mask-rate) judges every row.
    strat = {**on, "label": "c", "random_masked": False}
    assert ex.plateau_note([{**left, "random_masked": True}, strat]) is None
    assert "1 of 1" in ex.plateau_note([{**on, "random_masked": True}, strat])
    assert "1 of 1" in ex.plateau_note([strat])
    # Which rows are random-masked: random dynamic masks only (static random masks are memorised like strategy ones)
    judged = {label: ex.random_masked(c) for label, c in ex.matrix("static", smoke_cfg())}
    assert judged == {"baseline": True, "random-static": False, "teacher-high": False, "teacher-low": False}


def test_precision_note_says_when_rows_ran_at_different_precisions():
    """`auto` resolves per machine (this AMD EPYC has no AVX512-BF16: fp32; the earlier Intel host: bf16), so a
    table whose rows were trained on both says so, row by row."""
    from types import SimpleNamespace

    from entmask.experiments.table_notes import precision_note

    def row(label, pre, ft):
        return SimpleNamespace(label=label, seed_runs=[{"metrics": {"precision": pre}}],
                               ft=[{"task": "rte", "precision": ft}, {"task": "sst2", "precision": ft}])

    same = precision_note([row("baseline", "bf16", "bf16"), row("teacher-high", "bf16", "bf16")])
    assert same == "Precision: every run recorded the same (fine-tuning bf16, pretraining bf16)."
    mixed = precision_note([row("baseline", "bf16", "bf16"), row("teacher-low", "fp32", "fp32")])
    assert mixed.startswith("**Precision differs between rows** (random: fine-tuning bf16, pretraining bf16; "
                            "low (teacher): fine-tuning fp32, pretraining fp32)")
    assert precision_note([SimpleNamespace(label="baseline", seed_runs=[{"metrics": {}}], ft=[{}])]) is None


def test_precision_report_names_the_device_of_each_run():
    """A run's metrics name its device (the CPU's model, cores, threads and vector capability), and the precision
    report shows it beside the seconds per step, which compare only on one device."""
    from types import SimpleNamespace

    import torch

    from entmask.experiments.sections.precision import _per_step
    from entmask.training_run import cpu_model, device_name

    if not torch.cuda.is_available():
        name = device_name()
        assert name.startswith(f"cpu {cpu_model()} (") and torch.backends.cpu.get_cpu_capability() in name
    runs_ = [SimpleNamespace(label="baseline", seed_runs=[{"pretrain_seed": 0, "metrics": {
                 "device": "cpu X (2 cores, 1 threads, AVX512)", "precision": "bf16", "steps": 100,
                 "train_seconds": 50.0, "heldout_accuracy": 0.2}}]),
             SimpleNamespace(label="baseline-fp32", seed_runs=[{"pretrain_seed": 0, "metrics": {
                 "device": "cpu Y (2 cores, 2 threads, AVX2)", "precision": "fp32", "steps": 100,
                 "train_seconds": 30.0, "train_seconds_total": 80.0}}])]  # resumed: the last segment was 30 s
    t = _per_step(SimpleNamespace(rs=runs_))
    assert list(t["device"]) == ["cpu X (2 cores, 1 threads, AVX512)", "cpu Y (2 cores, 2 threads, AVX2)"]
    assert list(t["seconds_per_step"]) == [0.5, 0.8] and list(t["precision"]) == ["bf16", "fp32"]


def test_stopping_note_counts_the_runs_that_kept_epoch_one():
    from types import SimpleNamespace

    from entmask.experiments.table_notes import stopping_note

    fc = SimpleNamespace(lr=1e-4, patience=5, epochs=20)
    ft = [{"task": "cola", "best_epoch": 1}, {"task": "cola", "best_epoch": 3}, {"task": "rte", "best_epoch": 1},
          {"task": "rte", "best_epoch": 2}, {"task": "sst2", "best_epoch": None}, {"task": "mrpc", "best_epoch": 9}]
    note = stopping_note([SimpleNamespace(ft=ft[:3]), SimpleNamespace(ft=ft[3:])], ["cola", "rte", "sst2"], fc)
    assert note == ("Early stopping (lr 0.0001, patience 5, at most 20 epochs) kept the epoch-1 checkpoint in 2 of 4 "
                    "fine-tuning runs (50%; per task CoLA 1/2, RTE 1/2); median kept epoch 1.5, latest 3.")
    assert stopping_note([SimpleNamespace(ft=[{"task": "cola", "best_epoch": None}])], ["cola"], fc) is None


def test_notes_name_absent_tasks_and_the_qnli_split():
    from entmask.finetune import QNLI_NOTE

    cfg = config.resolve("smoke", {"finetune.tasks": ["qnli", "qqp"]})
    r = ex._Run("baseline", cfg, ft=[{"task": "qnli", "seed": 0, "status": "ok", "paper_score": 50.0,
                                      "eval_note": QNLI_NOTE},
                                     {"task": "qqp", "seed": 0, "status": "absent"}])
    assert ex.covered_tasks([r], cfg.finetune.tasks) == ["qnli"]
    text = " ".join(ex._notes("table1", cfg, [r], ["qnli"], ["qnli", "qqp"], {"qnli": 50.0, "qqp": None}, "",
                              "table1"))
    assert QNLI_NOTE in text and "QNLI (1 of 7 tasks)" in text and "QQP absent" in text


def test_cell_format_round_trip():
    assert ex.fmt_cell(62.5) == "62.50" and ex.fmt_cell(62.5, math.nan) == "62.50"
    assert ex.fmt_cell(62.5, 1.234, collapsed=True) == "62.50 ± 1.23†"
    assert parse_cell("62.50 ± 1.23†") == 62.5 and parse_cell(ABSENT) is None and parse_cell("n/a") is None


# ---- end to end ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_experiment_writes_its_table(results):
    for name, res in results.items():
        if name == "verdicts":
            continue  # not a table of runs: tested in test_verdicts_from_finished_tables
        for key in ("csv", "md", "json"):
            assert res.paths[key].exists(), (name, key)
        assert res.paths["md"].name == f"{name}.md" and res.paths["md"].parent.name == "results"
        rows = ours(res)
        assert len(rows) == len(ex.matrix(name, smoke_cfg()))
        if name == "corpus":
            continue  # the other corpus is not in the mirror: checked below
        assert res.paths["png"].exists() and res.paths["svg"].exists()
        assert res.paths["curves_png"].exists()
        for _, row in rows.iterrows():
            for col in AVAILABLE:
                v = parse_cell(row[col])
                assert v is not None and 0 <= v <= 100, (name, row["strategy"], col, row[col])
            assert row[MISSING] == ABSENT and row["MNLI"] == NOT_RUN
            assert parse_cell(row["Total"]) is not None
            assert row["plateau"] in ("left", "ON PLATEAU", "n/a (strategy masks)")
        csv = res.paths["csv"].read_text()
        assert csv.splitlines()[0].startswith("model,strategy,source,CoLA,MRPC,QNLI,QQP,RTE,SST-2,MNLI,Total")
        assert ABSENT in csv


@pytest.mark.slow
def test_precision_trains_the_random_student_in_fp32_beside_the_profiles_precision(results):
    from entmask.entropy import _bf16_ok

    res = results["precision"]
    base, fp32 = (dict(ex.matrix("precision", smoke_cfg()))[k] for k in ("baseline", "baseline-fp32"))
    assert (fp32.train.precision, fp32.finetune.precision) == ("fp32", "fp32")
    assert base.short_hash() == results["table1"].runs["baseline"].name.rsplit("-", 1)[1]  # table1's run, reused
    per = res.extra["per_step"].set_index("row")
    auto = "bf16" if _bf16_ok(torch.device("cpu")) else "fp32"  # what `auto` runs at on this CPU
    assert per.loc["baseline", "precision"] == auto and per.loc["baseline-fp32", "precision"] == "fp32"
    assert (per["steps"] == 4).all() and (per["seconds_per_step"] > 0).all()
    fp32_run = res.runs["baseline-fp32"].name  # its fine-tuning runs are named after it, and ran in fp32 too
    fts = [json.loads((Path(r) / "metrics.json").read_text()) for r in res.extra["finetune"]["run_dir"].dropna()
           if Path(r).name.startswith(fp32_run + "-")]
    assert len(fts) == 2 and {m["precision"] for m in fts} == {"fp32"}  # cola and mrpc (qqp is absent)
    md = res.paths["md"].read_text()
    assert "bf16 vs fp32" in md and "Precision and time per pretraining step" in md


@pytest.mark.slow
def test_total_is_the_mean_of_the_available_tasks(results):
    res = results["table1"]
    for label in ("baseline", "teacher-high"):
        s = scores(res, label)
        assert s["Total"] == pytest.approx(np.mean([s[c] for c in AVAILABLE]), abs=1e-9)
        assert math.isnan(s[MISSING])
    # and the value equals what the fine-tuning runs scored
    ft = res.extra["finetune"]
    base = ft[(ft["label"] == "baseline") & (ft["status"] == "ok")]
    assert scores(res, "baseline")["Total"] == pytest.approx(base["paper_score"].mean())
    row = ours(res).iloc[0]
    assert parse_cell(row["Total"]) == pytest.approx(np.mean([parse_cell(row[c]) for c in AVAILABLE]), abs=0.011)
    md = res.paths["md"].read_text()
    assert "CoLA, MRPC (2 of 7 tasks)" in md and "QQP absent" in md


@pytest.mark.slow
def test_majority_row_scores_the_evaluated_examples(results):
    from entmask.finetune import majority_scores, task_data

    cfg = smoke_cfg()
    res = results["table1"]
    maj = res.table[res.table["source"] == "majority"].iloc[0]
    for task, col in (("cola", "CoLA"), ("mrpc", "MRPC")):
        td = task_data(task, cfg.finetune)
        expected = majority_scores(td.train["label"], td.eval["label"], task)["majority_paper_score"]
        assert parse_cell(maj[col]) == pytest.approx(expected, abs=0.005)
        assert 0 <= expected <= 100
    assert maj[MISSING] == ABSENT
    # ... and every fine-tuning run saw the same examples: its own majority score is the same number
    ft = res.extra["finetune"]
    cola = ft[(ft["task"] == "cola") & (ft["status"] == "ok")]
    assert cola["majority_paper_score"].nunique() == 1


@pytest.mark.slow
def test_paper_reference_rows(results):
    t1 = results["table1"].table
    paper = t1[t1["source"] == "paper"]
    maj = paper[paper["model"] == "majority class"].iloc[0]
    assert (maj["CoLA"], maj["MRPC"], maj["RTE"], maj["SST-2"], maj["MNLI"]) == (
        "69.13", "81.22", "52.71", "50.92", "35.22")
    base = paper[(paper["model"] == "BERTlet") & paper["strategy"].str.startswith("random")].iloc[0]
    assert base["Total"] == "70.93"
    marg = paper[(paper["model"] == "BERTlet") & paper["strategy"].str.contains(r"\[marg\]")].iloc[0]
    alt = paper[(paper["model"] == "BERTlet") & paper["strategy"].str.contains(r"\[alt\]")].iloc[0]
    assert marg["row mean (recomputed)"] == "71.77" and alt["row mean (recomputed)"] == "71.86"
    assert marg["CoLA"] == "69.03" and marg["Total"] == "64.17"  # printed Total, not the row mean
    assert maj["QNLI"] == "50.54" and maj["QQP"] == "63.18"  # implied by the collapsed BERT mid row
    assert len(paper) == 13  # majority + 2 models x 6 strategies
    assert not (paper[[c for c in paper.columns if c in ("CoLA", "MRPC", "QNLI", "QQP", "RTE", "SST-2", "MNLI",
                                                          "Total")]] == "n/a").any().any()
    t2 = results["table2"].table
    cold = t2[(t2["source"] == "paper") & (t2["model"] == "BERT") & t2["strategy"].str.contains("max,cold")].iloc[0]
    assert cold["QNLI"] == "49.46" and cold["Total"] == "57.41" and cold["row mean (recomputed)"] == "57.41"
    md = results["table1"].paths["md"].read_text()
    assert "not available offline" not in md and "arXiv:2605.28526" in md and "printed vs" in md
    kd = results["kd"].table
    kd_paper = kd[kd["source"] == "paper"]
    assert set(kd_paper["Total"]) == {"77.19", "76.04", "below both (no number given)"}
    assert "Paper §3.6" in results["kd"].paths["md"].read_text()


def test_paper_numbers_carried_as_data():
    """The published tables are in the package (not read from ../shared): 16 rows, 4 printed Totals that are not
    their row mean, and the prose-only figures every experiment shows."""
    from entmask import paper

    assert len(paper.table(1)) == 12 and len(paper.table(2)) == 4
    assert {(m, lab) for m, lab, _, _ in paper.totals_not_row_mean()} == {
        ("BERTlet", "teacher-marginal"), ("BERTlet", "teacher-alternating"), ("BERTlet", "teacher-mid"),
        ("BERTlet", "self-high-cold")}
    assert paper.row(2, "BERTlet", "self-high-init")["recomputed"] == 75.15
    assert [p["total"] for p in paper.PROSE["kd"]] == [77.19, 76.04, None]
    assert [p["total"] for p in paper.PROSE["corpus"]] == [77.09, 71.66]
    assert [p["total"] for p in paper.PROSE["weights"]] == [7077.23, 167.33]
    assert "3%" in paper.PROSE["frozen"][0]["text"]


@pytest.mark.slow
def test_plateau_header_follows_the_runs(results):
    for name, res in results.items():
        if name == "corpus":
            continue
        rows = [{"label": label, "random_masked": ex.random_masked(dict(ex.matrix(name, smoke_cfg()))[label]),
                 "left_plateau": metrics(d)["left_plateau"]} for label, d in res.runs.items()]
        on = [r["label"] for r in ex.plateau_judged(rows) if r["left_plateau"] is False]
        md = res.paths["md"].read_text()
        assert ("these students are on the unigram plateau" in md) == bool(on), name
        if on:
            m = metrics(res.runs[on[0]])
            assert f"{100 * m['heldout_accuracy']:.1f}%" in md and f"{100 * m['unigram_accuracy']:.1f}%" in md
            assert "ON PLATEAU" in set(ours(res)["plateau"])


@pytest.mark.slow
def test_runs_are_shared_across_experiments(results):
    r = {k: v.runs for k, v in results.items()}
    assert r["table2"]["baseline"] == r["table1"]["baseline"] == r["kd"]["baseline"] == r["frozen"]["baseline"]
    assert r["table2"]["teacher-high"] == r["table1"]["teacher-high"] == r["weights"]["teacher-high"]
    assert r["mask-rate"]["high-r15"] == r["table1"]["teacher-high"]
    assert r["kd"]["self-high-init"] == r["table2"]["self-high-init"]
    pre = Path(r["table1"]["baseline"]).parent
    assert r["precision"]["baseline"] == r["table1"]["baseline"]  # only its fp32 row is new
    assert len([p for p in pre.iterdir() if (p / "metrics.json").exists()]) == 16
    assert r["table1"]["teacher-high"].name.startswith("high-teacher-")


def test_each_run_keeps_its_own_tensorboard_log(results):
    """16 runs trained in one process: each writes one TensorBoard event file into its own logs/ (transformers 5
    reads the folder from a process-wide variable, which once sent every later run's curves to the first run)."""
    pre = Path(results["table1"].runs["baseline"]).parent
    done = [p for p in pre.iterdir() if (p / "metrics.json").exists()]
    counts = {p.name: len(list((p / "logs" / "tensorboard").glob("events.out.tfevents.*"))) for p in done}
    assert counts and set(counts.values()) == {1}, counts


def test_tables_carry_compute(results):
    """PFLOPs per row from each run's metrics.json, the teacher's cached pass counted for teacher-masking, and the
    Total/accuracy-vs-FLOPs figure."""
    res = results["table1"]
    sc = res.extra["scores"].set_index("label")
    m = metrics(res.runs["baseline"])
    assert sc.loc["baseline", "flops"] == pytest.approx(m["compute"]["total_flops"])
    assert m["compute"]["flops"]["teacher_scores"] == 0 and m["compute"]["wall_seconds"] > 0
    mh = metrics(res.runs["teacher-high"])
    assert mh["compute"]["flops"]["teacher_scores"] > 0
    assert sc.loc["teacher-high", "flops"] > sc.loc["baseline", "flops"]
    assert ours(res)["PFLOPs"].str.len().min() > 0
    assert res.paths["compute_png"].exists()


@pytest.mark.slow
def test_deltas_against_the_baseline(results):
    res = results["table1"]
    b = res.extra["bootstrap"].set_index("label")
    assert set(b.index) == {"teacher-high", "teacher-low", "teacher-mid", "teacher-marginal", "teacher-alternating"}
    for label in b.index:
        s, base = scores(res, label), scores(res, "baseline")
        assert b.loc[label, "delta"] == pytest.approx(s["Total"] - base["Total"], abs=1e-9)
        assert b.loc[label, "lo"] <= b.loc[label, "delta"] <= b.loc[label, "hi"]
    rows = ours(res).set_index("strategy")
    assert rows.loc["random", "Δ Total"] == "(reference)"
    assert rows.loc["high (teacher)", "95% CI (bootstrap)"].startswith("[")
    mr = results["mask-rate"].extra["bootstrap"].set_index("label")
    assert mr.loc["high-r40", "base"] == "high-r15" and mr.loc["low-n1", "base"] == "low-r15"


def test_blimp_beside_the_total(results):
    """Every finished student is scored on BLiMP (the smoke profile: 1 pair x 67 paradigms) and the table shows its
    accuracy and a paired Δ against the reference row, computed from the per-pair record in blimp.json."""
    from entmask import blimp

    res = results["table1"]
    base = scores(res, "baseline")
    doc = json.loads((Path(base["run"]) / blimp.RESULT_FILE).read_text())
    assert doc["scoring"]["per_paradigm"] == 1 and len(doc["correct"]) == doc["scoring"]["n"] == 67
    assert base["BLiMP"] == pytest.approx(100 * doc["accuracy"]) and base["BLiMP seeds"] == 1
    high = scores(res, "teacher-high")
    dh = json.loads((Path(high["run"]) / blimp.RESULT_FILE).read_text())
    want = 100 * (blimp.as_correct(dh["correct"]).mean() - blimp.as_correct(doc["correct"]).mean())
    assert high["blimp_delta"] == pytest.approx(want, abs=1e-9)
    assert high["blimp_delta_lo"] <= high["blimp_delta"] <= high["blimp_delta_hi"]
    shown = ours(res).set_index("strategy")
    assert shown.loc["high (teacher)", "Δ BLiMP"].startswith(f"{want:+.2f} [")
    assert any(n.startswith("BLiMP: zero-shot accuracy") for n in res.extra.get("notes", [])) or \
        "BLiMP: zero-shot accuracy" in Path(res.paths["md"]).read_text()


@pytest.mark.slow
def test_entropy_and_curves(results):
    ent = results["table1"].extra["entropy"].set_index("label")
    assert set(ent.index) == {"teacher-high", "teacher-low", "teacher-mid", "teacher-marginal",
                              "teacher-alternating"}
    assert ent.loc["teacher-high", "masked_mean"] > ent.loc["teacher-high", "maskable_mean"]
    assert ent.loc["teacher-low", "masked_mean"] < ent.loc["teacher-low", "maskable_mean"]
    assert results["table1"].paths["entropy_png"].exists()
    mr = results["mask-rate"].extra["entropy"].set_index("label")
    assert (mr.loc["high-n1", "n_masked"] == mr.loc["high-n1", "n_rows"]) and \
        mr.loc["high-r40", "n_masked"] > mr.loc["high-r15", "n_masked"]
    curves = results["table1"].extra["curves"]
    assert set(curves["label"]) == set(results["table1"].runs)
    assert curves.groupby("label")["step"].max().eq(4).all()


@pytest.mark.slow
def test_frozen_probe_and_its_delta_row(results):
    res = results["frozen"]
    ft = res.extra["finetune"]
    assert ft["frozen"].all()
    delta = res.table[res.table["source"] == "delta"].iloc[0]
    for col in AVAILABLE:
        expected = scores(res, "teacher-high")[col] - scores(res, "baseline")[col]
        assert float(delta[col]) == pytest.approx(expected, abs=0.006)
    assert delta[MISSING] == ABSENT


@pytest.mark.slow
def test_weight_movement(results):
    from entmask.analysis import COMPONENTS

    res = results["weights"]
    mv = res.extra["movement"]
    assert set(zip(mv["label"], mv["task"])) == {(lb, t) for lb in ("baseline", "teacher-high", "self-high-init")
                                                 for t in ("cola", "mrpc")}
    assert mv["most_moved"].isin(COMPONENTS).all() and (mv["encoder_rel_change"] > 0).all()
    assert (mv["n_train"] == 43).all()  # 48 subsampled, 10% carved off for early stopping
    assert res.paths["heatmap_png"].exists() and res.paths["heatmap_svg"].exists()
    md = res.paths["md"].read_text()
    assert "Most-moved component" in md and "n/a (fewer than 3 distinct training-set sizes)" in md
    assert set(res.extra["deltas"]["component"]) <= set(COMPONENTS) - {"classifier", "pooler"}
    # the paper's view: the final layer's FFN is one cell per run and task, with both measures
    view = res.extra["layer_component"]
    final = view[(view["component"] == "final FFN") & (view["strategy"] == "high (self, init)")]
    assert len(final) == 1 and final["layer"].iloc[0] == "1"  # bert-micro has layers 0 and 1
    for col in ("CoLA rel %", "CoLA elem %", "MRPC rel %", "MRPC elem %"):
        assert final[col].iloc[0] > 0
    d = res.extra["deltas"]
    ffn = d[(d["label"] == "self-high-init") & (d["task"] == "cola") & (d["layer"] == 1)
            & d["component"].isin(["ffn_in", "ffn_out"])]
    expect = 100 * math.sqrt((ffn["delta_norm"] ** 2).sum() / (ffn["ref_norm"] ** 2).sum())
    assert final["CoLA rel %"].iloc[0] == pytest.approx(expect, abs=1e-3)
    assert "Trust `rel`" in md and "7077.23" in md


@pytest.mark.slow
def test_corpus_unavailable_offline_is_reported_not_raised(results):
    res = results["corpus"]
    assert all(v is None for v in res.runs.values())
    rows = ours(res)
    assert (rows["CoLA"] == "unavailable").all()
    md = res.paths["md"].read_text()
    assert "is unavailable here" in md and "bookcorpus" in md


@pytest.mark.slow
def test_json_records(results):
    res = results["table2"]
    d = json.loads(res.paths["json"].read_text())
    assert d["profile"] == "smoke" and d["experiment"] == "table2" and d["seconds"] > 0
    assert len(d["records"]) == len(res.table)
    assert d["config_hashes"]["baseline"] == Path(res.runs["baseline"]).name.rsplit("-", 1)[1]
    assert d["runs"]["baseline"]["left_plateau"] in (True, False)
    # one pretraining seed: no per-seed section (it would repeat the main table)
    assert "per_seed" not in d["extra"] and "Per pretraining seed" not in res.paths["md"].read_text()


@pytest.mark.slow
def test_cli_experiment_reuses_the_runs(results, exp_root, capsys, monkeypatch):
    from entmask import cli

    monkeypatch.setenv("ENTMASK_RUNS_DIR", str(exp_root))  # the CLI sets it from --runs-dir; restored afterwards

    sets = [f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in OVERRIDES.items()]
    argv = ["experiment", "weights", "--profile", "smoke", "--runs-dir", str(exp_root), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert cli.main(argv) == 0
    assert f"wrote {results['weights'].paths['md']}" in capsys.readouterr().out
    assert cli.main(["experiment", "nope", "--profile", "smoke", "--runs-dir", str(exp_root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown experiment 'nope'" in err


def test_rows_held_by_another_process_are_skipped_then_reused(tmp_path, monkeypatch):
    """Two processes share one table: a row another process is training is skipped and come back to once free,
    and the row's seeds come out in seed order although its seed 1 finished first."""
    from filelock import FileLock

    from entmask import finetune, pretrain

    cfg = config.resolve("smoke", {**OVERRIDES, "experiment.pretrain_seeds": [0, 1]})
    specs = ex.matrix("table2", cfg)
    busy = FileLock(str(pretrain.run_folder(_seeded(specs[1][1], 0), "pretrain", tmp_path)) + ".row.lock")
    busy.acquire()  # "another process" trains teacher-high at seed 0
    order = []

    def fake_pretrain(c, root=None, progress=True):
        order.append((c.name, c.train.seed))
        if len(order) == 5:
            busy.release()  # the other process finishes while this one works
        d = tmp_path / f"{c.name}-{c.train.seed}"
        (d / "model").mkdir(parents=True, exist_ok=True)
        (d / "metrics.json").write_text(json.dumps({"heldout_accuracy": 0.1 + c.train.seed}))
        return d

    monkeypatch.setattr(pretrain, "pretrain", fake_pretrain)
    monkeypatch.setattr(finetune, "finetune_all", lambda *a, **k: [{"task": "mrpc", "seed": 0}])
    rs = ex._pretrain_and_finetune("table2", specs, tmp_path, progress=False)
    b, h, c, i = [c.name for _, c in specs]
    # Within a seed the self-masking rows (costliest) come first; teacher-high seed 0 is busy until the 5th row:
    # skipped, then taken as soon as it is free (before later rows)
    assert order == [(c, 0), (i, 0), (b, 0), (c, 1), (i, 1), (h, 0), (b, 1), (h, 1)]
    for r in rs:
        assert [sr["pretrain_seed"] for sr in r.seed_runs] == [0, 1]
        assert [f["pretrain_seed"] for f in r.ft] == [0, 1]
        assert r.cfg.train.seed == 0 and r.metrics["heldout_accuracy"] == 0.1
        assert r.run_dir == tmp_path / f"{r.cfg.name}-0"


def test_report_says_how_far_an_unfinished_row_got(tmp_path):
    """--report-only on rows never run, one started without a checkpoint, one stopped at a complete checkpoint and
    one whose newest checkpoint was cut off (no trainer_state.json): each says how far it got. No data needed."""
    from entmask.pretrain import run_folder

    specs = ex.matrix("table2", config.resolve("smoke", {**OVERRIDES, "experiment.pretrain_seeds": [3]}))
    folder = {label: run_folder(_seeded(c, 3), "pretrain", tmp_path) for label, c in specs}
    folder["teacher-high"].mkdir(parents=True)
    for label, steps in (("self-high-cold", (2,)), ("self-high-init", (2, 4))):
        for st in steps:
            ck = folder[label] / "checkpoints" / f"checkpoint-{st}"
            ck.mkdir(parents=True)
            (ck / "model.safetensors").write_bytes(b"x")
            (ck / "optimizer.pt").write_bytes(b"x")
            if st == 2:  # checkpoint-4 of self-high-init was cut off before its trainer_state.json
                (ck / "trainer_state.json").write_text(json.dumps({"global_step": st, "max_steps": 6}))
    got = {r.label: r.unfinished for r in ex._report_finished(specs, tmp_path, frozen=False)}
    assert got == {"baseline": {3: "not started"}, "teacher-high": {3: "pretraining, no checkpoint yet"},
                   "self-high-cold": {3: "pretraining, checkpoint at step 2 of 6"},
                   "self-high-init": {3: "pretraining, checkpoint at step 2 of 6"}}


def test_costliest_rows_are_claimed_first():
    cfg = smoke_cfg()
    costs = {label: ex.row_cost(c) for label, c in ex.matrix("kd", cfg)}
    assert costs["self-high-init"] == pytest.approx(2.7 * costs["baseline"])
    assert costs["kd-complete"] == pytest.approx(1.5 * costs["self-high-init"])
    assert costs["kd-only"] == pytest.approx(1.5 * costs["baseline"])
    two_x = dict(ex.matrix("beyond", cfg))["baseline-2x"]
    assert ex.row_cost(two_x) == pytest.approx(2 * costs["baseline"])


def _seeded(c, seed):
    import copy

    c = copy.deepcopy(c)
    c.train.seed = seed
    return c


def test_pooled_experiments_share_rows_and_refuse_what_cannot_pool(capsys, tmp_path, monkeypatch):
    from entmask import cli

    cfg = smoke_cfg()
    specs = ex._pooled_specs(["table1", "table2"], cfg)
    assert [lab for lab, _ in specs] == list(ex.EXPERIMENT_RUNS["table1"]) + ["self-high-cold", "self-high-init"]
    assert len({c.short_hash() for _, c in specs}) == len(specs) == 8
    assert ex.parse_names(" table1 , table2 ") == ["table1", "table2"]
    for bad, msg in [("table1,nope", "unknown experiment 'nope'"), ("table1,table1", "twice"), (",", "names nothing")]:
        with pytest.raises(ExperimentError, match=msg):
            ex.parse_names(bad)
    with pytest.raises(ExperimentError, match="frozen cannot be pooled"):
        ex.run_many(["table1", "frozen"], cfg)
    with pytest.raises(ExperimentError, match="--workers 0"):
        ex.run_many(["table1"], cfg, workers=0)
    import torch

    with pytest.raises(ExperimentError, match="needs a core of its own"):
        ex.run_many(["table1"], cfg, workers=torch.get_num_threads() + 1)
    with pytest.raises(ExperimentError, match="--records exports after each row of a pooled matrix; frozen is not"):
        ex.run_many(["frozen"], cfg, records=tmp_path / "rec")
    # one experiment that cannot pool splits its own rows: --workers becomes experiment.workers
    from entmask.experiments import workers as W

    seen = []
    monkeypatch.setattr(W, "run", lambda name, c, **kw: seen.append((name, c.experiment.workers)) or Path(name))
    assert ex.run_many(["frozen"], cfg, workers=2) == [Path("frozen")] and seen == [("frozen", 2)]
    for name in ("verdicts", "plateau", "memorisation"):  # no rows of their own to split: refused, not ignored
        with pytest.raises(ExperimentError, match=f"{name} has no rows to split between workers"):
            ex.run_many([name], cfg, workers=2)
    # every seed's rows go to the workers at once, seed-major (no barrier between seeds that idles a core for a
    # whole row); the tables are written once, at the end
    from entmask.experiments.specs import pretrain_seeds

    calls, tables = [], []
    monkeypatch.setattr(W, "train_rows", lambda tag, specs, root, progress, **kw: calls.append(
        (tag, [(lab, pretrain_seeds(c)) for lab, c in specs], kw["workers"])))
    monkeypatch.setattr(W, "run", lambda name, c, **kw: tables.append((name, pretrain_seeds(c))) or Path(name))
    two = config.apply_overrides(cfg, {"experiment.pretrain_seeds": [0, 1]})
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))  # two workers need two threads to share (one under pytest-xdist)
    try:
        assert ex.run_many(["table1", "table2"], two, workers=2) == [Path("table1"), Path("table2")]
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 1 and calls[0][0] == "table1+table2" and calls[0][2] == 2
    assert [lab for lab, _ in calls[0][1]] == [lab for lab, _ in specs]
    assert {tuple(s) for _, s in calls[0][1]} == {(0, 1)}
    assert tables == [("table1", [0, 1]), ("table2", [0, 1])]
    (tmp_path / "tiny-rec").mkdir()
    (tmp_path / "tiny-rec" / "records.json").write_text(json.dumps({"profile": "tiny", "config_version": 0}))
    from entmask.runs import RunError
    with pytest.raises(RunError, match="holds records of profile 'tiny'"):  # before anything trains
        ex.run_many(["table1"], cfg, records=tmp_path / "tiny-rec")
    for argv, msg in [(["table1,frozen", "--workers", "2"], "frozen cannot be pooled"),
                      (["table1", "--workers", "2", "--recipes", "seq32"], "apply to one experiment"),
                      (["table1", "--report-only", "--records", str(tmp_path)], "nothing new to record")]:
        assert cli.main(["experiment", *argv, "--profile", "smoke"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err


def test_workers_spawn_log_and_rewrite_the_tables(results, exp_root, capsys, tmp_path):
    """`--workers 2` on finished runs: a spawned worker process starts with its share of the threads, finds its
    rows by hash, logs to results/workers/, and both tables are written again with the same cells. (How rows are
    split is tested above without processes.) With --records each row that trained something, in either process,
    exports the records of every finished run; a process that only reused rows exports once at its end."""
    import torch

    cfg = smoke_cfg()
    before = [results[n].paths["csv"].read_text() for n in ("table1", "table2")]
    rec = tmp_path / "rec"
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))  # two workers need two threads to share (one under pytest-xdist)
    try:
        paths = ex.run_many(["table1", "table2"], cfg, workers=2, root=exp_root, progress=True, records=rec)
        assert f"{max(1, torch.get_num_threads() // 2)} torch thread(s)" in (
            exp_root / "smoke" / "results" / "workers" / "table1+table2-worker-2.log").read_text()
    finally:
        torch.set_num_threads(threads)
    assert paths == [results["table1"].paths["md"], results["table2"].paths["md"]]
    out = capsys.readouterr().out
    assert "worker 2/2" in out and "8 rows x 1 pretraining seed(s), seed-major, split between 2 workers" in out
    log = exp_root / "smoke" / "results" / "workers" / "table1+table2-worker-2.log"
    text = log.read_text()
    assert "no rows left" in text
    assert "finished run(s) recorded in" in out and "finished run(s) recorded in" in text  # both processes
    # every row was reused, so each process exports once at its end, not after each row (queueing on the lock)
    assert text.count("finished run(s) recorded in") == 1
    recorded = set(json.loads((rec / "records.json").read_text())["runs"])
    assert {f"pretrain/{d.name}" for n in ("table1", "table2") for d in results[n].runs.values()} <= recorded
    assert any(r.startswith("finetune/cola/") for r in recorded)
    assert [results[n].paths["csv"].read_text() for n in ("table1", "table2")] == before


def test_experiment_workers_split_its_rows_between_processes(tmp_path, capsys, monkeypatch):
    """experiment.workers=2 (what the notebooks set on a 2-core CPU): an experiment with two unfinished rows
    spawns a worker; both processes run one thread and visit every row; the table has both rows and this process
    its threads back. A finished experiment spawns nothing (no rows left to split)."""
    import torch

    if not (MIRROR / "wikitext").is_dir():
        pytest.skip(f"offline mirror not found at {MIRROR}")
    monkeypatch.setenv("ENTMASK_DATA_DIR", str(MIRROR))
    cfg = config.resolve("smoke", {**OVERRIDES, "finetune.tasks": ["rte"], "experiment.blimp_per_paradigm": 0,
                                   "experiment.workers": 2})
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))  # two workers need two threads to share (one under pytest-xdist)
    try:
        res = ex.EXPERIMENTS["precision"](cfg, root=tmp_path, progress=True)
        assert torch.get_num_threads() == max(2, threads)  # restored after the rows
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out
    assert "precision: worker 2/2" in out and "1 thread(s)" in out
    log = (tmp_path / "smoke" / "results" / "workers" / "precision-worker-2.log").read_text()
    assert "1 torch thread(s)" in log and "no rows left" in log
    # the worker visited both rows (at smoke sizes this process may finish both before it starts: which process
    # trains a row is decided by the row locks, tested without processes above)
    assert log.count("precision worker 2: pretraining ") == 2 and log.count("finetune rte ") == 2
    assert set(ours(res)["strategy"]) == {"random", "random, fp32"}
    assert len(list((tmp_path / "smoke" / "pretrain").glob("*/metrics.json"))) == 2
    ex.EXPERIMENTS["precision"](cfg, root=tmp_path, progress=True)
    assert "worker 2/2" not in capsys.readouterr().out  # nothing left to train: no process started
    from entmask.experiments.experiment import _workers

    specs = ex.matrix("precision", cfg)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _workers(cfg, specs, tmp_path) == 1  # both rows pretrained
    assert _workers(cfg, specs, tmp_path, frozen=True) == 2  # a frozen probe's rows are fine-tuning: they count
    big = config.resolve("smoke", {"experiment.workers": 4})
    assert _workers(big, specs, tmp_path / "empty", frozen=False) == 2  # capped at the two rows left
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _workers(big, specs, tmp_path / "empty") == 1  # one GPU, one process


@pytest.mark.slow
def test_pretraining_seeds_seed_major_and_two_level_ci(exp_root, capsys):
    """experiment.pretrain_seeds=[0, 1]: every row at seed 0 before any row at seed 1 (a finished seed is a whole
    table), seed 0 reused from the one-seed results, each row's cells averaged over both pretraining seeds, and one
    per-seed delta per (pretraining, fine-tuning) seed pair."""
    cfg = config.resolve("smoke", {**OVERRIDES, "finetune.tasks": ["mrpc"], "experiment.pretrain_seeds": [0, 1]})
    res = ex.frozen(cfg, root=exp_root, progress=True)
    said = [ln for ln in capsys.readouterr().out.splitlines() if ": pretraining " in ln]
    order = [(ln.split("pretraining ")[1].split(" seed ")[0], ln.split(" seed ")[1].split(" ")[0]) for ln in said]
    assert order == [("baseline", "0"), ("teacher-high", "0"), ("baseline", "1"), ("teacher-high", "1")]
    assert set(res.extra["finetune"]["pretrain_seed"]) == {0, 1}
    hi = ours(res)[ours(res)["strategy"] == "high (teacher)"].iloc[0]
    assert len(hi["per-seed Δ"].split(", ")) == 2
    runs_dirs = {p.name for p in (exp_root / "smoke" / "pretrain").iterdir() if p.is_dir()}
    c1 = dict(ex.matrix("frozen", cfg))["baseline"]
    c1.train.seed = 1
    assert any(d.endswith(c1.short_hash()) for d in runs_dirs)  # the seed-1 run exists under its own hash
    md = res.paths["md"].read_text()
    assert "pretraining seed(s) [0, 1]" in md and "two-level" in md
    # The per-seed section: each row at each pretraining seed; the seeds' Totals average to the main table's Total,
    # and each seed's Δ is the bootstrap's per-seed Δ (both are differences of that seed's Totals).
    ps = res.extra["per_seed"]
    assert list(zip(ps["label"], ps["pretraining seed"])) == [("baseline", 0), ("baseline", 1),
                                                            ("teacher-high", 0), ("teacher-high", 1)]
    assert "## Per pretraining seed (do the seeds agree?)" in md
    for label, text in (("baseline", "random"), ("teacher-high", "high (teacher)")):
        main = ex.parse_cell(ours(res)[ours(res)["strategy"] == text].iloc[0]["Total"])
        seeds = [ex.parse_cell(c) for c in ps[ps["label"] == label]["Total"]]
        assert np.mean(seeds) == pytest.approx(main, abs=0.01)
    assert list(ps[ps["label"] == "baseline"]["Δ Total"]) == ["(reference)"] * 2
    got = [float(x) for x in ps[ps["label"] == "teacher-high"]["Δ Total"]]
    assert got == pytest.approx([float(x) for x in hi["per-seed Δ"].split(", ")], abs=0.011)


@pytest.mark.parametrize("delta,lo,hi,expected,plateau,n,verdict", [
    (2.0, 0.5, 3.5, +1, False, 2, "supported"),
    (2.0, 0.5, 3.5, -1, False, 2, "contradicted"),
    (-2.0, -3.5, -0.5, -1, False, 2, "supported"),
    (0.3, -1.0, 1.6, +1, False, 4, "unresolved"),
    (2.0, 0.5, 3.5, +1, True, 2, "unresolved"),  # a plateau student tests nothing
    (2.0, 0.5, 3.5, +1, False, 1, "unresolved"),  # one pretraining seed: no pretraining noise in the CI
])
def test_judge_a_claim(delta, lo, hi, expected, plateau, n, verdict):
    assert ex.judge(delta, lo, hi, expected, plateau, n)[0] == verdict


@pytest.mark.slow
def test_verdicts_from_finished_tables(results, exp_root):
    res = ex.verdicts(smoke_cfg(), root=exp_root, progress=False)
    t = res.table
    assert list(t["claim"]) == [c[0] for c in ex.CLAIMS]
    assert set(t["verdict"]) <= {"supported", "contradicted", "unresolved"}
    # smoke students are on the plateau and have one seed: nothing can be judged
    assert (t["verdict"] == "unresolved").all()
    hi = t[t["claim"] == "high>random"].iloc[0]
    assert hi["tasks"] == "CoLA, MRPC" and hi["pretraining seeds"] >= 1
    assert t[t["claim"] == "high>static"].iloc[0]["why"] == "static has not been run"  # the control's table
    assert res.paths["md"].exists() and "two-level paired bootstrap" in res.paths["md"].read_text()


def _ft(label, task, ps, score, maj, collapsed=False, run_dir=None, status="ok"):
    return {"label": label, "task": task, "pretrain_seed": ps, "seed": 0, "status": status, "paper_score": score,
            "majority_paper_score": maj, "collapsed": collapsed, "run_dir": run_dir}


def test_tasks_above_majority_are_chosen_by_both_rows_together():
    units = [(0, 0), (1, 0)]
    rows = ("teacher-high", "baseline")
    ft = [_ft("baseline", "sst2", 0, 76.7, 50.9), _ft("teacher-high", "sst2", 0, 51.0, 50.9),  # mean 63.9 > 50.9
          _ft("baseline", "sst2", 1, 75.0, 50.9), _ft("teacher-high", "sst2", 1, 50.9, 50.9, True),
          # MRPC: the tested row collapses onto the majority (81.2), the baseline is below it: mean 80.2 < 81.2
          _ft("baseline", "mrpc", 0, 79.2, 81.2), _ft("teacher-high", "mrpc", 0, 81.2, 81.2, True),
          _ft("baseline", "mrpc", 1, 83.0, 81.2), _ft("teacher-high", "mrpc", 1, 81.2, 81.2, True),
          # CoLA: both collapsed onto the majority: not above it
          _ft("baseline", "cola", 0, 69.1, 69.1, True), _ft("teacher-high", "cola", 0, 69.1, 69.1, True),
          _ft("baseline", "cola", 1, 69.1, 69.1, True), _ft("teacher-high", "cola", 1, 69.1, 69.1, True),
          # RTE: above at seed 0, seed 1 of the tested row missing
          _ft("baseline", "rte", 0, 55.0, 52.7), _ft("teacher-high", "rte", 0, 56.0, 52.7),
          _ft("baseline", "rte", 1, 55.0, 52.7),
          # QNLI: a third row does not count; the pretraining seed may be missing (seed 0) or NaN
          _ft("baseline", "qnli", None, 60.0, 48.5), _ft("teacher-high", "qnli", float("nan"), 58.0, 48.5),
          _ft("baseline", "qnli", 1, 61.0, 48.5), _ft("teacher-high", "qnli", 1, 59.0, 48.5),
          _ft("teacher-low", "qnli", 1, 0.0, 48.5)]
    tasks = ["cola", "mrpc", "qnli", "rte", "sst2"]
    assert ex.tasks_above_majority(ft, rows, tasks, units) == ["qnli", "sst2"]
    assert ex.tasks_above_majority(ft, rows, ["rte", "mrpc", "cola"], [(0, 0)]) == ["rte"]
    assert ex.tasks_above_majority(ft, rows, ["mrpc"], [(1, 0)]) == ["mrpc"]  # 82.1 > 81.2
    assert ex.tasks_above_majority(ft, rows, tasks, []) == []
    # symmetric: which row is tested and which is the reference does not matter
    assert ex.tasks_above_majority(ft, rows[::-1], tasks, units) == ["qnli", "sst2"]
    assert ex.unit_key({"pretrain_seed": float("nan"), "seed": 2}) == (0, 2) == ex.unit_key({"seed": 2.0})


def _write_table1(tmp_path, golds: dict, preds: dict, majority: dict) -> Path:
    """A table1.json whose fine-tuning runs are predictions.json files: preds {(label, task, pretrain seed,
    fine-tuning seed): y_pred}, golds {task: y_true}; scored by the paper's metric (MRPC F1, else accuracy)."""
    from entmask.finetune import _metric

    ft = []
    for (label, task, ps, fs), yp in preds.items():
        d = tmp_path / f"{label}-{task}-{ps}-{fs}"
        d.mkdir(parents=True)
        (d / "predictions.json").write_text(json.dumps({"y_true": golds[task].tolist(), "y_pred": yp.tolist()}))
        score = 100 * _metric("f1" if task == "mrpc" else "accuracy", golds[task], yp)
        ft.append({**_ft(label, task, ps, score, majority[task], collapsed=bool((yp == yp[0]).all()),
                         run_dir=str(d)), "seed": fs})
    out = tmp_path / "smoke" / "results"
    out.mkdir(parents=True)
    info = {"baseline": {"random_masked": True, "left_plateau": True}, "teacher-high": {"random_masked": False}}
    (out / "table1.json").write_text(json.dumps({"tasks": sorted(golds), "runs": info, "extra": {"finetune": ft}}))
    return out


def _flip(rng, y, share):
    out = y.copy()
    idx = rng.choice(len(y), int(share * len(y)), replace=False)
    out[idx] = 1 - out[idx]
    return out


def test_verdicts_judge_collapse_apart_from_the_tasks_above_majority(tmp_path):
    """Two pretraining seeds, MRPC and SST-2. The tested row collapses onto MRPC's positive class (F1 0.81 against
    the baseline's ~0.6) and is 10 points worse on SST-2: its Total is higher, so the paper's measure 'supports' the
    claim, while on the one task where the baseline beats the majority class (SST-2) the claim is contradicted.
    Both seeds predict alike, so the seed t-interval is narrow and the verdicts come from the examples."""
    rng = np.random.default_rng(0)
    n = 400
    y_mrpc = (rng.random(n) < 0.68).astype(int)
    y_sst = (rng.random(n) < 0.5).astype(int)
    majority = {"mrpc": 100 * 2 * y_mrpc.mean() / (1 + y_mrpc.mean()),
                "sst2": 100 * max(y_sst.mean(), 1 - y_sst.mean())}
    same = {("baseline", "mrpc"): _flip(rng, y_mrpc, 0.5), ("baseline", "sst2"): _flip(rng, y_sst, 0.2),
            ("teacher-high", "mrpc"): np.ones(n, int), ("teacher-high", "sst2"): _flip(rng, y_sst, 0.3)}
    out = _write_table1(tmp_path, {"mrpc": y_mrpc, "sst2": y_sst},
                        {(label, task, ps, 0): yp for ps in (0, 1) for (label, task), yp in same.items()}, majority)
    t = ex.verdicts(smoke_cfg(), root=tmp_path, progress=False).table.set_index("claim")
    hi = t.loc["high>random"]
    assert hi["pretraining seeds"] == 2 and hi["tasks"] == "MRPC, SST-2"
    assert hi["verdict"] == "supported" and hi["Δ Total"] > 2
    assert hi["seed t-interval"] == f"[{hi['Δ Total']:+.2f}, {hi['Δ Total']:+.2f}]"  # identical seeds: no width
    assert hi["95% CI"] == hi["bootstrap CI"]
    assert hi["tasks above majority"] == "SST-2"
    assert hi["verdict (tasks above majority)"] == "contradicted" and hi["Δ (tasks above majority)"] < -5
    assert t.loc["low>random", "why"] == "not finished: low (teacher)"
    assert t.loc["cold<random", "why"] == "table2 has not been run"
    d = json.loads((out / "table1.json").read_text())  # a --report-only table leaves out rows unfinished at a seed
    (out / "table1.json").write_text(json.dumps({**d, "report_only": True, "pretrain_seeds": [0, 1]}))
    t2 = ex.verdicts(smoke_cfg(), root=tmp_path, progress=False).table.set_index("claim")
    assert t2.loc["low>random", "why"] == ("not finished at every pretraining seed [0, 1]: low (teacher) (left out "
                                           "of the report-only table1)")
    assert t2.loc["high>random", "verdict"] == "supported"  # the rows it has are judged as before
    (out / "table1.json").write_text(json.dumps(d))
    assert t.loc["high>static", "verdict (tasks above majority)"] == "unresolved"
    md = (out / "verdicts.md").read_text()
    assert "## Sensitivity: on the tasks where the two rows beat the majority class" in md
    assert f"| {hi['Δ Total']:+.2f} | {hi['95% CI']} |" in md  # signed, two decimals, beside its CI
    assert "](verdicts.png)" in md and (out / "verdicts.png").stat().st_size > 10_000  # the forest plot
    assert ex._ci("[-0.79, +2.46]") == (-0.79, 2.46) and ex._ci("[+2.27, +9.56]") == (2.27, 9.56)
    assert ex._ci("") is None and ex._ci(float("nan")) is None and ex._ci("[1, 2, 3]") is None


def test_verdicts_need_pretraining_seeds_that_agree(tmp_path):
    """The bootstrap alone is too narrow at two seeds: Δ +1 and +9 share a sign, so its CI excludes 0, yet two
    seeds that far apart say little about the recipe; the verdict's interval (with the seed t-interval) contains 0.
    The same seeds 0.4 apart are supported. One pretraining seed fine-tuned twice is never judged."""
    rng = np.random.default_rng(1)
    n = 1000
    y = (rng.random(n) < 0.5).astype(int)
    base = _flip(rng, y, 0.3)
    wrong = np.flatnonzero(base != y)

    def better(points):  # base with `points` x n / 100 more right answers
        q = base.copy()
        q[wrong[:int(points * n / 100)]] = y[wrong[:int(points * n / 100)]]
        return q

    def verdict(preds, root):
        out = _write_table1(root, {"sst2": y}, preds, {"sst2": 50.0})
        t = ex.verdicts(smoke_cfg(), root=root, progress=False).table.set_index("claim")
        return t.loc["high>random"], (out / "verdicts.md").read_text()

    far, md = verdict({("baseline", "sst2", ps, 0): base for ps in (0, 1)}
                      | {("teacher-high", "sst2", 0, 0): better(1), ("teacher-high", "sst2", 1, 0): better(9)},
                      tmp_path / "far")
    assert far["per-seed Δ"] == "+1.00, +9.00" and far["Δ Total"] == 5.0
    assert ex._ci(far["bootstrap CI"])[0] > 0  # the percentile bootstrap alone would call it supported
    assert ex._ci(far["seed t-interval"]) == pytest.approx((5 - 12.706 * 4, 5 + 12.706 * 4), abs=0.01)
    assert far["95% CI"] == far["seed t-interval"] and far["verdict"] == "unresolved"
    assert "t = 12.71" in md and "| seed t-interval |" in md
    close, _ = verdict({("baseline", "sst2", ps, 0): base for ps in (0, 1)}
                       | {("teacher-high", "sst2", 0, 0): better(4.8), ("teacher-high", "sst2", 1, 0): better(5.2)},
                       tmp_path / "close")
    assert close["verdict"] == "supported" and ex._ci(close["95% CI"])[0] > 0
    one, _ = verdict({("baseline", "sst2", 0, fs): base for fs in (0, 1)}
                     | {("teacher-high", "sst2", 0, 0): better(5), ("teacher-high", "sst2", 0, 1): better(5.4)},
                     tmp_path / "one")
    assert one["pretraining seeds"] == 1 and one["verdict"] == "unresolved" and "one pretraining seed" in one["why"]


def test_a_row_left_the_plateau_only_if_every_pretraining_seed_did(tmp_path):
    """What the table's JSON gives the verdicts (and the header warning) is over all pretraining seeds: seed 0 left
    the plateau, seed 1 did not, so the row did not, and its claims are unresolved."""
    import pandas as pd

    cfg = smoke_cfg()
    ms = [{"left_plateau": True, "heldout_accuracy": 0.20, "unigram_accuracy": 0.08},
          {"left_plateau": False, "heldout_accuracy": 0.06, "unigram_accuracy": 0.08}]
    rs = [ex._Run("baseline", cfg, run_dir=tmp_path / "r", metrics=ms[0],
                  seed_runs=[{"pretrain_seed": i, "run_dir": tmp_path / "r", "metrics": m} for i, m in enumerate(ms)])]
    ex._write("table1", cfg, tmp_path, rs, pd.DataFrame({"row": ["random"]}), pd.DataFrame(), [], [], [], {}, 1.0, {})
    out = tmp_path / "smoke" / "results"
    d = json.loads((out / "table1.json").read_text())
    assert d["runs"]["baseline"]["left_plateau"] is False
    assert d["runs"]["baseline"]["heldout_accuracy"] == pytest.approx(0.13)  # the seeds' mean, as in the table
    assert "on the unigram plateau" in d["plateau_warning"]
    # the verdicts read that field: with fine-tunings that would otherwise be supported, the claim is unresolved
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.5).astype(int)
    preds = {(label, "sst2", ps, 0): (y if label == "teacher-high" else _flip(rng, y, 0.3))
             for ps in (0, 1) for label in ("baseline", "teacher-high")}
    other = _write_table1(tmp_path / "ft", {"sst2": y}, preds, {"sst2": 50.0})
    written = json.loads((other / "table1.json").read_text())
    assert ex.verdicts(cfg, root=tmp_path / "ft", progress=False).table.set_index("claim").loc[
        "high>random", "verdict"] == "supported"
    (out / "table1.json").write_text(json.dumps({**written, "runs": {**written["runs"], **d["runs"]}}))
    hi = ex.verdicts(cfg, root=tmp_path, progress=False).table.set_index("claim").loc["high>random"]
    assert hi["verdict"] == "unresolved" and "plateau" in hi["why"]


@pytest.mark.slow
def test_report_only_writes_tables_from_what_finished(results, exp_root, capsys, monkeypatch):
    """train=False (`--report-only`) rebuilds a table from the finished runs, training nothing and taking no lock
    (any lock taken fails the test); a row with an unfinished fine-tuning is left out and named; a reference row not
    finished at the asked seeds is a one-line error that names the seeds that did finish."""
    import filelock

    from entmask import cli, runs

    def no_lock(*a, **k):
        raise AssertionError("a report took a lock")

    cfg = smoke_cfg()
    before = results["table2"].paths["csv"].read_text()
    def folders():
        return sorted(str(p) for p in exp_root.rglob("*") if p.is_dir())

    had = folders()
    ft = results["table2"].extra["finetune"]
    hidden = Path(ft[(ft["label"] == "self-high-cold") & (ft["status"] == "ok")]["run_dir"].iloc[0]) / "metrics.json"
    with monkeypatch.context() as m:
        for target, attr in ((runs, "locked"), (runs, "claim_first"), (filelock.FileLock, "acquire"),
                             (filelock.SoftFileLock, "acquire")):
            m.setattr(target, attr, no_lock)
        res = ex.table2(cfg, root=exp_root, progress=False, train=False)
        assert res.paths["csv"].read_text() == before and folders() == had
        hidden.rename(hidden.with_suffix(".away"))
        try:
            res = ex.table2(cfg, root=exp_root, progress=False, train=False)
            assert list(ours(res)["strategy"]) == ["random", "high (teacher)", "high (self, init)"]
            md = res.paths["md"].read_text()
            assert "Report only: rows not finished at every pretraining seed [0] are left out**: high (self, cold) " \
                   "(seed 0: pretrained; 1 of 2 fine-tuning runs finished)" in md
            assert "high (self, cold): seed 0: pretrained; 1 of 2" in capsys.readouterr().out  # even when quiet
            assert folders() == had
        finally:
            hidden.with_suffix(".away").rename(hidden)
        later = config.resolve("smoke", {**OVERRIDES, "experiment.pretrain_seeds": [0, 5]})
        with pytest.raises(ExperimentError, match=r"table1 at pretraining seed\(s\) \[0, 5\]: reference row random "
                                                  r"has not finished \(seed 5: not started\); report the seed\(s\) "
                                                  r"that did with --set .experiment.pretrain_seeds=\[0\]."):
            ex.table1(later, root=exp_root, progress=False, train=False)
    ex.table2(cfg, root=exp_root, progress=False)  # the full table again, as the other tests expect it
    assert cli.main(["experiment", "table1", "--profile", "smoke", "--runs-dir", str(exp_root), "--report-only",
                     "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--report-only trains nothing" in err


def test_report_only_names_each_experiment_that_failed(tmp_path, capsys):
    """Several experiments --report-only: each one that cannot report says so on its own line, named; exit 2."""
    from entmask import cli

    code = cli.main(["experiment", "table1,verdicts", "--profile", "smoke", "--runs-dir", str(tmp_path),
                     "--report-only", "--quiet"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 2, lines
    assert lines[0].startswith("entmask: error: table1: --report-only: table1 at pretraining seed(s) [0]: reference "
                               "row random has not finished")
    assert lines[1].startswith("entmask: error: verdicts: no table1, table2 or static results in ")


# ---- run records: a matrix outlives its machine (records.export_records / import_records) ---------------------------
@pytest.mark.slow
def test_records_carry_finished_runs_to_an_empty_runs_root(results, exp_root, tmp_path, capsys):
    """The records of finished runs (configs, metrics, logs, predictions; no weights) exported, then imported into
    an empty runs root: the table comes back the same, the training path reuses every run instead of training, and
    whatever needs the missing weights says so in one line."""
    import pandas as pd

    from entmask import cli, exploration, runs
    from entmask.finetune import finetune_task
    from entmask.models import ModelError

    cfg = smoke_cfg()
    rec = tmp_path / "records"
    out = records.export_records("smoke", rec, root=exp_root)
    files = sorted(p for p in rec.rglob("*") if p.is_file())
    scores = [p for p in files if p.relative_to(rec).parts[::2][:2] == ("reference", "scores")]
    assert scores and all(p.name.startswith("entropy-train-") for p in scores)  # the teacher's, not weights
    assert out["exported"] and not [p for p in files if p not in scores and (
        p.suffix in runs.WEIGHT_SUFFIXES or "checkpoints" in p.parts)]
    assert not [p for p in files if "model" in p.relative_to(rec).parts and p.name != "config.json"]
    hi = results["table1"].runs["teacher-high"]
    assert f"pretrain/{hi.name}" in out["exported"] and any(r.startswith("reference/") for r in out["exported"])
    assert runs.read_json(rec / "pretrain" / hi.name / "weights.json")["model_key"] == runs.weights_key(hi / "model")
    snap = {p: p.read_bytes() for p in files}
    records.export_records("smoke", rec, root=exp_root)  # again: byte for byte the same (no timestamps to commit)
    assert {p: p.read_bytes() for p in sorted(q for q in rec.rglob("*") if q.is_file())} == snap

    fresh = tmp_path / "fresh"
    assert cli.main(["runs", "import", str(rec), "--runs-dir", str(fresh)]) == 0
    said = capsys.readouterr().out
    n = len(out["exported"])
    assert f"imported {n} run(s) of profile smoke" in said  # the teacher too: its record holds its scores
    assert f"; {len(scores)} teacher score file(s) put beside their corpus" in said and "not imported" not in said
    ref = next(r for r in out["exported"] if r.startswith("reference/"))
    assert runs.weightless_teacher(fresh / "smoke" / ref / "model")
    assert not (fresh / "smoke" / ref / "scores.json").exists()  # the scores live beside the corpus, once

    res = ex.table1(cfg, root=fresh, progress=False, train=False)
    pd.testing.assert_frame_equal(ours(res).reset_index(drop=True), ours(results["table1"]).reset_index(drop=True))
    had = sorted(p for p in fresh.rglob("*") if not p.name.endswith(".lock"))
    rs = ex._pretrain_and_finetune("table1", ex.matrix("table1", cfg), fresh, progress=False)
    assert sorted(p for p in fresh.rglob("*") if not p.name.endswith(".lock")) == had  # nothing trained or written
    assert {r.label: r.run_dir.name for r in rs} == {k: v.name for k, v in results["table1"].runs.items()}
    assert all(f["reused"] for r in rs for f in r.ft if f.get("status") != "absent")

    # a fine-tuning with no record cannot be trained without the weights: one line, nothing written
    hi2 = fresh / "smoke" / "pretrain" / hi.name
    cola = next(f for f in next(r for r in rs if r.label == "teacher-high").ft if f["task"] == "cola")
    __import__("shutil").rmtree(cola["run_dir"])
    with pytest.raises(ModelError, match=rf"{hi.name} was imported from run records without its weights, and its "
                                         r"cola seed 0 fine-tuning has no record"):
        finetune_task(hi2 / "model", "cola", cfg.finetune, 0, profile="smoke", name=hi.name, root=fresh,
                      progress=False)
    assert not Path(cola["run_dir"]).exists()
    with pytest.raises(ValueError, match="imported from run records, which leave weights out"):
        exploration.student_model_dir(hi2)

    assert cli.main(["runs", "import", str(rec), "--runs-dir", str(fresh)]) == 0  # again: nothing overwritten
    said = capsys.readouterr().out
    assert "imported 1 run(s)" in said and f"kept {n - 1} already here" in said  # the cola run came back
    assert cli.main(["runs", "export", str(tmp_path / "x")]) == 2
    assert cli.main(["runs", "import", str(tmp_path)]) == 2
    assert cli.main(["runs", "export", str(rec), "--profile", "tiny", "--runs-dir", str(exp_root)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and "needs --profile" in err[0] and "not a records folder" in err[1], err
    assert "does not exist: nothing of profile 'tiny' has run here" in err[2], err


# ---- learned or memorised? (experiments.memorisation) ------------------------------------------------------------
def test_own_masks_name_what_each_row_trained_on():
    from entmask.exploration import own_masks

    def m(**kw):
        return config.resolve("smoke", {f"masking.{k}": v for k, v in kw.items()}).masking

    assert own_masks(m(strategy="max")) == "high"  # aliases resolve
    assert own_masks(m(strategy="random")) == "random" == own_masks(m(strategy="random", source="self"))
    assert own_masks(m(strategy="high", source="self")) == "self-high"
    assert own_masks(m(strategy="random", static=True)) == "random-static"
    assert own_masks(m(strategy="sampled")) is None  # stochastic: mask_fit cannot redraw it
    assert own_masks(m(strategy="high", source="self", scorer="masked_entropy")) is None
    assert own_masks(m(strategy="high", whole_word="max")) is None


def test_memorisation_refuses_bad_arguments_and_never_trains_a_teacher(tmp_path):
    """Bad tables / max_rows: one line each; with no reference teacher built it says how to build one and trains
    nothing (a report must not start a teacher run); the command it names keeps the user's --set overrides."""
    cfg = smoke_cfg()
    with pytest.raises(ex.ExperimentError, match="not 'bogus'"):
        ex.memorisation(cfg, root=tmp_path, progress=False, tables="table1,bogus")
    with pytest.raises(ex.ExperimentError, match="not an empty list"):
        ex.memorisation(cfg, root=tmp_path, progress=False, tables=[])
    with pytest.raises(ex.ExperimentError, match="max_rows=0"):
        ex.memorisation(cfg, root=tmp_path, progress=False, max_rows=0)
    seeded = config.resolve("smoke", {"experiment.pretrain_seeds": [2], "masking.ratio": 0.3})
    with pytest.raises(ex.ExperimentError, match=re.escape("`entmask experiment table1 --profile smoke --set "
                                                           "masking.ratio=0.3 --set 'experiment.pretrain_seeds=[2]'`")):
        ex.memorisation(seeded, root=tmp_path, progress=False, tables="table1")
    with pytest.raises(ex.ExperimentError, match=re.escape("build it with `entmask reference --profile smoke "
                                                           "--set masking.ratio=0.3`")):
        ex._built_teacher(config.resolve("smoke", {"masking.ratio": 0.3}), root=tmp_path)
    assert not list(tmp_path.rglob("reference-*"))


def test_set_args_round_trips_through_the_cli_parser():
    import shlex

    from entmask.config import apply_overrides, overrides_of, parse_set_args, set_args

    cfg = config.resolve("smoke", {"experiment.pretrain_seeds": [0, 1], "masking.strategy": "high",
                                   "train.lr": 3e-4, "finetune.tasks": ["rte", "sst2"], "data.max_articles": 8})
    assert set(overrides_of(cfg)) == {"experiment.pretrain_seeds", "masking.strategy", "train.lr", "finetune.tasks",
                                      "data.max_articles"}  # data.fingerprint (computed) is not one
    words = shlex.split(set_args(cfg))  # as a shell would pass them
    assert words[::2] == ["--set"] * 5
    items = words[1::2]
    again = apply_overrides(config.resolve("smoke"), parse_set_args(items))
    assert again.short_hash() == cfg.short_hash() and set_args(config.resolve("smoke")) == ""


def test_memorisation_table_from_scores():
    import pandas as pd

    def rec(row, masks, own, split, acc, loss):
        return {"row": row, "pretrain_seed": 0, "masks": masks, "own": own, "split": split, "accuracy": acc,
                "loss": loss, "masked_tokens": 10, "heldout_accuracy": 0.25, "run": row}

    scores = pd.DataFrame([rec("random", "random", True, "train", 0.30, 4.0),
                           rec("random", "random", True, "test", 0.25, 5.0),
                           rec("high (teacher)", "high", True, "train", 0.913, 0.84),
                           rec("high (teacher)", "random", False, "train", 0.055, 9.0),
                           rec("high (teacher)", "high", True, "test", 0.002, 14.79),
                           rec("high (teacher)", "random", False, "test", 0.001, 9.5)])
    t = ex.memorisation_table(scores).set_index("row")
    assert list(t.index) == ["random", "high (teacher)"]
    hi = t.loc["high (teacher)"]
    assert (hi["own masks"], hi["own, training rows"], hi["own, held-out rows"], hi["gap (points)"]) == \
           ("high", 91.3, 0.2, 91.1)
    assert hi["own loss, training / held-out"] == "0.84 / 14.79"
    assert hi["random masks, training / held-out"] == "5.5 / 0.1"
    assert t.loc["random", "random masks, training / held-out"] == "30.0 / 25.0"  # random's own masks are random


@pytest.mark.slow
def test_memorisation_scores_each_finished_run_on_its_own_masks(results, exp_root):
    """At smoke size (after the fixture): every Table 1-2 row on its own masks, the untrained static control named
    as not scored, and each own-mask count exactly k per sampled row."""
    from entmask.exploration import teacher_view
    from entmask.masking import num_to_mask

    res = ex.memorisation(smoke_cfg(), root=exp_root, progress=False)
    t = res.table.set_index("row")
    assert dict(t["own masks"]) == {"random": "random", "high (teacher)": "high", "low (teacher)": "low",
                                    "mid (teacher)": "mid", "marginal (teacher)": "marginal",
                                    "alternating (teacher)": "alternating", "high (self, cold)": "self-high",
                                    "high (self, init)": "self-high"}
    assert ((t["own, training rows"] - t["own, held-out rows"] - t["gap (points)"]).abs() <= 0.1 + 1e-9).all()
    md = res.paths["md"].read_text()
    assert "Not scored (pretraining not finished): random (static masks), seed 0." in md
    # a finished run whose model/ was moved away is listed as not scored, and the others are still scored
    low = exp_root / "smoke" / "pretrain" / t.loc["low (teacher)", "run"]
    full = {p: p.read_bytes() for p in res.paths["md"].parent.glob("memorisation*")}  # the full table's files
    (low / "model").rename(low / "model.moved")
    try:
        again = ex.memorisation(smoke_cfg(), root=exp_root, progress=False, tables="table1", max_rows=16)
        shown = again.paths["md"].read_text()
    finally:
        (low / "model.moved").rename(low / "model")
        for p, data in full.items():  # the full table back for what follows (scoring it again took ~10 s)
            p.write_bytes(data)
    assert "low (teacher)" not in set(again.table["row"]) and "high (teacher)" in set(again.table["row"])
    assert f"finished, not scorable here: {low} holds no model" in shown
    scores = __import__("pandas").read_csv(res.paths["csv"])
    cfg = smoke_cfg()
    for split in ("train", "test"):
        v = teacher_view(cfg, split=split, max_rows=512, root=exp_root, progress=False)
        k = int(num_to_mask(v.candidates, cfg.masking.ratio, cfg.masking.num_tokens).sum())
        assert (scores[scores["split"] == split]["masked_tokens"] == k).all(), split
