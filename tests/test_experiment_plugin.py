"""Issue 32: a new experiment is one module (one `register(Experiment(...))` with its rows and hooks) plus this test.
Registered at runtime, it is listed with the others, derives the old name-keyed tables, and runs end to end through
`entmask experiment NAME --profile smoke`, sharing its random row's run with table1 by config hash."""
import json
from pathlib import Path

import pytest

from entmask import config
from entmask import experiments as ex
from entmask.cli import main
from entmask.experiments import Experiment, ExperimentError, Report, register, unregister

NAME = "high-rate-30"
FAST = {"finetune.tasks": ["cola"], "finetune.max_train": 48, "finetune.max_eval": 32, "finetune.epochs": 1,
        "train.max_steps": 4, "train.batch_size": 8, "train.logging_steps": 2, "data.max_articles": 3,
        "data.seq_len": 32, "reference.steps": 10}
HEADER = "A toy experiment registered by tests/test_experiment_plugin.py."


@pytest.fixture
def experiment():
    """What a new module under entmask/experiments/sections/ would hold: one new row, one reused, one hook."""

    def report(r: Report) -> None:
        r.header.append(HEADER)
        r.sections.append(("Rows", f"{len(r.rs)} rows, held-out accuracy recorded for "
                                   f"{sum(x.metrics.get('heldout_accuracy') is not None for x in r.rs)}"))

    exp = register(Experiment(
        name=NAME, title="High-entropy teacher-masking at 30%", section="beyond the paper",
        doc="high teacher-masking at twice the paper's rate, against random",
        rows=("baseline", "teacher-high-r30"),
        specs={"teacher-high-r30": ({"masking.strategy": "high", **ex.specs._PLAIN, "masking.ratio": 0.3},
                                    "high (teacher), 30%")},
        poolable=True, report=report))
    yield exp
    unregister(NAME)


def test_a_registered_experiment_is_listed_and_derives_the_old_tables(experiment, capsys):
    with pytest.raises(SystemExit) as e:
        main(["experiment", "--help"])
    assert e.value.code == 0
    assert "high-rate-30  beyond the paper: high teacher-masking at twice the paper's rate, against random [poolable]" \
        in capsys.readouterr().out
    assert NAME in ex.EXPERIMENTS and NAME in ex.POOLABLE and NAME not in ex.ENTROPY_PLOTS
    assert ex.EXPERIMENT_RUNS[NAME] == ("baseline", "teacher-high-r30")
    assert ex.TITLES[NAME] == "High-entropy teacher-masking at 30%"
    assert ex.RUN_SPECS["teacher-high-r30"][1] == "high (teacher), 30%"
    assert ex.reference_row(NAME, "teacher-high-r30") == "baseline"
    cfg = config.resolve("smoke")
    rows = dict(ex.matrix(NAME, cfg))
    assert rows["teacher-high-r30"].masking.ratio == 0.3 and rows["teacher-high-r30"].name == "high-teacher-r30"
    # the random row is table1's very run: same config, same hash, same folder
    assert rows["baseline"].short_hash() == dict(ex.matrix("table1", cfg))["baseline"].short_hash()


def test_registering_refuses_a_taken_name_an_unknown_row_and_a_relabelled_row(experiment):
    with pytest.raises(ExperimentError, match="registered already"):
        register(Experiment(name=NAME, title="t", section="s", rows=("baseline",)))
    with pytest.raises(ExperimentError, match="unknown row"):
        register(Experiment(name="other", title="t", section="s", rows=("no-such-row",)))
    with pytest.raises(ExperimentError, match="already name other rows"):
        register(Experiment(name="other", title="t", section="s", rows=("baseline",),
                            specs={"baseline": ({"masking.strategy": "low"}, "not random")}))
    with pytest.raises(ExperimentError, match="neither rows nor a runner"):
        register(Experiment(name="other", title="t", section="s"))
    assert "other" not in ex.EXPERIMENTS and ex.RUN_SPECS["baseline"][1] == "random"


def test_unregistering_removes_the_experiment_and_its_own_rows():
    register(Experiment(name="gone", title="t", section="s", rows=("baseline", "gone-row"),
                        specs={"gone-row": ({"masking.strategy": "low"}, "low")}))
    unregister("gone")
    assert "gone" not in ex.EXPERIMENTS and "gone-row" not in ex.RUN_SPECS and "baseline" in ex.RUN_SPECS


@pytest.mark.slow
def test_a_registered_experiment_runs_through_the_cli(experiment, session_runs, capsys):
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={json.dumps(v)}")]
    code = main(["experiment", NAME, "--profile", "smoke", "--quiet", *sets])
    out = capsys.readouterr().out
    assert code == 0, out
    results = session_runs / "smoke" / "results"
    md = (results / f"{NAME}.md").read_text()
    assert md.startswith("# High-entropy teacher-masking at 30%")
    assert HEADER in md and "## Rows" in md and "2 rows, held-out accuracy recorded for 2" in md
    rec = json.loads((results / f"{NAME}.json").read_text())
    assert rec["experiment"] == NAME and set(rec["config_hashes"]) == {"baseline", "teacher-high-r30"}
    shown = {r["strategy"] for r in rec["records"] if r["source"] == "ours"}
    assert {"random", "high (teacher), 30%"} <= shown
    for label, run in rec["runs"].items():
        m = json.loads((Path(run["dir"]) / "metrics.json").read_text())
        assert m["steps"] == 4
        assert m["masked_per_row_mean"] == pytest.approx((0.3 if label != "baseline" else 0.15)
                                                         * m["candidates_per_row_mean"], abs=0.6)
    # an option the experiment does not take is refused in one line, exit 2
    assert main(["experiment", NAME, "--profile", "smoke", "--recipes", "seq32"]) == 2


def test_the_corpus_experiment_keeps_one_table_per_corpus():
    """Two corpora compared (paper §3.5 offline: gutenberg vs wikipedia-good) must not overwrite each other's table."""
    exp = ex.get("corpus")
    assert exp.result_name() == "corpus" and exp.result_name(corpus="gutenberg") == "corpus-gutenberg"
    assert exp.result_name(corpus="wikipedia-good:default:train") == "corpus-wikipedia-good"
    rows = dict(ex.matrix("corpus", config.resolve("cpu-wiki", {"data.max_words": 2_000_000}), corpus="gutenberg"))
    assert {c.data.corpus for c in rows.values()} == {"gutenberg"}
    assert {c.data.max_words for c in rows.values()} == {2_000_000}
