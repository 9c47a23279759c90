"""Tests for the notebooks (jupytext pairs in sync, committed clean, one skeleton, no logic of their own),
entmask.notebooks (setup, reproduce, record, kernel, export) and entmask.exploration (exact small cases).

The end-to-end test executes every notebook with papermill at the smoke profile, shrunk further by overrides, and
is marked slow. The failure-path test runs two throwaway notebooks through the same `reproduce`.
"""
from __future__ import annotations

import ast
import json
import math
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import torch

from entmask import exploration as X
from entmask import notebook_run as NR
from entmask import notebooks as NB
from entmask.masking import STRATEGIES, select_mask

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ("select_mask(", ".backward(", "Trainer(", "torch.optim", "f1_score", "accuracy_score",
             "model_entropy(", "apply_mask(", "finetune_task(", "pretrain.pretrain(")
# On top of the smoke profile: 6 optimizer steps of batch 8 on 8 articles, a 4-step reference teacher, and one
# fine-tuning epoch on 32 examples of CoLA and MRPC (QQP is absent offline and costs nothing). About 6 minutes on 2
# busy cores, 3-4 on idle ones: runs are shared by hash, so notebooks 02-05 reuse most of 01's.
SMOKE_OVERRIDES = ["finetune.tasks=cola,mrpc,qqp", "finetune.max_train=32", "finetune.max_eval=32",
                   "finetune.epochs=1", "train.max_steps=6", "train.batch_size=8", "data.max_articles=8",
                   "reference.steps=4"]


def _nb(name: str):
    return nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)


def _cells(nb) -> list[tuple[str, str, dict]]:
    """What a pair must agree on, cell by cell: type, source and metadata (tags), not ids, outputs or counts."""
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]


# The parameters every notebook has, which its setup cell passes on as `name=name` (profile first, positionally).
COMMON_PARAMETERS = ("profile", "data_dir", "runs_dir", "seeds", "device", "overrides", "progress")


# ---- the committed notebooks: jupytext pairs ----------------------------------------------------------------------
def test_every_notebook_is_a_jupytext_pair():
    """notebooks/ holds NN_name.py + NN_name.ipynb for each of NOTEBOOKS and nothing else numbered, paired by
    notebooks/jupytext.toml (JupyterLab and `make notebooks` read it)."""
    d = REPO / "notebooks"
    for ext in ("py", "ipynb"):
        assert sorted(p.stem for p in d.glob(f"[0-9][0-9]_*.{ext}")) == NB.NOTEBOOKS, f"the .{ext} files"
    assert not (d / "_build.py").exists()
    from jupytext.config import find_jupytext_configuration_file, load_jupytext_configuration_file

    found = find_jupytext_configuration_file(str(d))
    assert found and Path(found).resolve() == (d / "jupytext.toml").resolve()
    assert load_jupytext_configuration_file(found).formats in ("ipynb,py:percent", ["ipynb,py:percent"])


@pytest.mark.parametrize("name", NB.NOTEBOOKS)
def test_py_and_ipynb_are_in_sync(name):
    """The .ipynb is what `jupytext --to ipynb` makes of the .py, cell by cell (outputs and execution counts aside),
    with the same kernel: edit either file, then `make notebooks` (jupytext --sync) before committing."""
    d = REPO / "notebooks"
    text = jupytext.read(d / f"{name}.py", fmt="py:percent")
    committed = _nb(name)
    hint = f"{name}.py and {name}.ipynb differ: run `make notebooks` (jupytext --sync) and commit both"
    assert len(text.cells) == len(committed.cells), f"{hint} ({len(text.cells)} vs {len(committed.cells)} cells)"
    for i, (a, b) in enumerate(zip(_cells(text), _cells(committed))):
        assert a == b, f"{hint}: cell {i} ({a[0]}, starting {a[1][:60]!r})"
    assert text.metadata["kernelspec"] == committed.metadata["kernelspec"], hint
    # and the .py is exactly what jupytext writes for that notebook (no hand formatting that a sync would undo)
    assert jupytext.writes(committed, fmt="py:percent") == (d / f"{name}.py").read_text(), hint


@pytest.mark.parametrize("name", NB.NOTEBOOKS)
def test_committed_notebook_is_clean_and_follows_the_skeleton(name):
    nb = _nb(name)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "entmask"  # the kernel `make lab` installs
    assert "widgets" not in nb.metadata
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        assert c.outputs == [] and c.execution_count is None, f"{name}: a code cell carries outputs"
    params = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{name}: {len(params)} cells tagged parameters"
    p = nb.cells[params[0]]
    assert p.cell_type == "code"
    for var in COMMON_PARAMETERS:
        assert re.search(rf"^{var} = ", p.source, re.M), f"{name}: parameter {var} missing"
    assert re.search(r'^profile = "tiny"', p.source, re.M)
    # every parameter line is a flat literal: name = literal
    names = []
    for line in p.source.splitlines():
        if line.strip() and not line.startswith("#"):
            lhs, rhs = line.split("#")[0].split("=", 1)
            ast.literal_eval(rhs.strip())
            names.append(lhs.strip())
    # skeleton: title, imports only, parameters, notebooks.setup(...), numbered sections, record last
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    assert "You will learn" in nb.cells[0].source or "will learn" in nb.cells[0].source
    for c in nb.cells[:params[0]]:
        if c.cell_type == "code":
            body = ast.parse(c.source).body
            assert all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in body), f"{name}: code before parameters"
    after = [c for c in nb.cells[params[0] + 1:] if c.cell_type == "code"]
    call = after[0].source
    assert call.startswith("cfg, dev, root = notebooks.setup(profile, "), f"{name}: no setup cell after parameters"
    rest = "\n".join(c.source for c in after)
    for var in names:  # every parameter reaches the code (papermill can override each one)
        if var in COMMON_PARAMETERS[1:] or var == "tasks":
            assert f"{var}={var}" in call, f"{name}: setup(...) does not pass {var}"
        else:
            assert re.search(rf"\b{var}\b", rest), f"{name}: parameter {var} is never used"
    assert "notebooks.record(" in code[-1].source and f'"{name}"' in code[-1].source
    for c in code:
        for bad in FORBIDDEN:
            assert bad not in c.source, f"{name}: a code cell contains {bad!r} (logic belongs in entmask)"


# ---- setup: what each notebook's settings cell does ----------------------------------------------------------------
def test_setup_resolves_the_parameters_as_dotted_config_keys(tmp_path, monkeypatch, capsys):
    import torch as _torch

    from entmask import config, notebook_setup, runs

    monkeypatch.setenv(runs.ENV_RUNS, "unused")  # setup exports both; monkeypatch restores them afterwards
    monkeypatch.setenv("ENTMASK_DATA_DIR", "unused")
    seen = []
    monkeypatch.setattr(notebook_setup, "set_progress", seen.append)  # the real one switches bars off process-wide
    data = tmp_path / "data"
    data.mkdir()
    s = NB.setup("smoke", data_dir=str(data), runs_dir=tmp_path / "runs", seeds=[0, 1], tasks=["cola"],
                 device="cpu", overrides=["train.max_steps=3", "finetune.seeds=[2]"], progress=False)
    cfg, dev, root = s  # unpacks as the notebooks do
    # what the settings cells did: the parameters as dotted keys (None ones left out), then overrides on top
    want = config.resolve("smoke", {"data.data_dir": str(data), "finetune.seeds": "[2]", "finetune.tasks": ["cola"],
                                    "train.max_steps": "3", "experiment.workers": NB.pick_workers(None)})
    assert cfg.to_dict() == want.to_dict() and cfg.short_hash() == want.short_hash()
    assert cfg.finetune.seeds == [2] and cfg.finetune.tasks == ["cola"] and cfg.train.max_steps == 3
    assert dev == "cpu" and seen == [False]
    assert root == (tmp_path / "runs").resolve() and __import__("os").environ[runs.ENV_RUNS] == str(root)
    assert __import__("os").environ["ENTMASK_DATA_DIR"] == str(data.resolve())
    out = capsys.readouterr().out
    assert f"torch {_torch.__version__}" in out and "transformers " in out and "entmask " in out
    assert "device: " in out and f"config hash {cfg.short_hash()}" in out and f"runs in {root}" in out
    # no parameters: the profile as it is; quiet prints nothing
    bare = NB.setup("smoke", runs_dir=tmp_path, quiet=True)
    assert bare.cfg.short_hash() == config.resolve("smoke").short_hash() and bare.root == tmp_path.resolve()
    assert bare.device == NB.pick_device(None) and capsys.readouterr().out == ""
    with pytest.raises(config.ConfigError):
        NB.setup("smoke", runs_dir=tmp_path, overrides=["train.nope=1"], quiet=True)
    # workers: one per core on a CPU (at most 4), 1 on a GPU; the parameter and then an override win; not hashed
    monkeypatch.setattr(_torch, "get_num_threads", lambda: 2)
    assert NB.pick_workers(None) == (1 if _torch.cuda.is_available() else 2) and NB.pick_workers(3) == 3
    monkeypatch.setattr(_torch, "get_num_threads", lambda: 16)
    assert NB.pick_workers(None) == (1 if _torch.cuda.is_available() else 4)
    one = NB.setup("smoke", runs_dir=tmp_path, quiet=True, workers=1)
    over = NB.setup("smoke", runs_dir=tmp_path, quiet=True, workers=1, overrides=["experiment.workers=3"])
    assert one.cfg.experiment.workers == 1 and over.cfg.experiment.workers == 3
    assert one.cfg.short_hash() == over.cfg.short_hash() == bare.cfg.short_hash()
    with pytest.raises(config.ConfigError, match="experiment.workers"):
        NB.setup("smoke", runs_dir=tmp_path, quiet=True, workers=0)


def test_select():
    assert NB.select(None) == NB.NOTEBOOKS
    assert NB.select(["03", "01"]) == ["01_teacher_masking", "03_knowledge_distillation"]
    assert NB.select("1,5") == ["01_teacher_masking", "05_ablations"]
    assert NB.select(["02_self_masking.ipynb"]) == ["02_self_masking"]
    with pytest.raises(NB.NotebookError, match="unknown notebook"):
        NB.select(["09"])


def test_kernel_spec_runs_this_interpreter(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    data = NB.ensure_kernel(base=tmp_path)
    spec = json.loads((data / "kernels" / NB.KERNEL_NAME / "kernel.json").read_text())
    assert spec["argv"][0] == sys.executable and "ipykernel_launcher" in spec["argv"]
    assert NB.ensure_kernel(base=tmp_path) == data  # idempotent
    monkeypatch.setenv("JUPYTER_PATH", str(data))
    found = KernelSpecManager().get_kernel_spec(NB.KERNEL_NAME)
    assert found.argv[0] == sys.executable


def test_record_writes_config_version_commit(tmp_path):
    from entmask import __version__, config

    cfg = config.resolve("smoke")
    p = NB.record("99_test", {"a": 1.5, "nested": {"b": 2, "nan": float("nan")}, "flag": True}, cfg,
                  headline=["nested.b", "nested.nan"], root=tmp_path)
    assert p == tmp_path / "smoke" / "notebooks" / "99_test.metrics.json"
    d = json.loads(p.read_text())
    assert d["metrics"]["a"] == 1.5 and d["metrics"]["nested"]["nan"] is None
    assert d["headline"] == [{"name": "nested.b", "value": 2}, {"name": "nested.nan", "value": None}]
    assert d["config"]["profile"] == "smoke" and d["config_hash"] == cfg.short_hash()
    assert d["entmask_version"] == __version__ and "git_commit" in d
    default = json.loads(NB.record("98_test", {"x": 3, "y": "text"}, cfg, root=tmp_path).read_text())
    assert default["headline"] == [{"name": "x", "value": 3}]
    with pytest.raises(ValueError, match="no finite number"):
        NB.record("97_test", {"x": float("nan"), "y": "s"}, cfg, root=tmp_path)
    with pytest.raises(ValueError, match="not in metrics"):
        NB.record("96_test", {"x": 1}, cfg, headline=["z"], root=tmp_path)


def test_summary_table_names_the_failing_cell():
    text = NB.summary_table([
        {"notebook": "00_a", "status": "ok", "seconds": 1.25, "headline": {"x": 0.123456}},
        {"notebook": "01_b", "status": "failed", "seconds": 2.0, "cell": 7, "error": "ValueError: boom"},
        {"notebook": "02_c", "status": "skipped", "seconds": None, "headline": {}}])
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["notebook", "status", "time"]
    assert "x=0.1235" in lines[1] and "1.2" in lines[1]
    assert "cell 7: ValueError: boom" in lines[2]
    assert lines[3].split()[:2] == ["02_c", "skipped"]


def test_to_markdown():
    import pandas as pd

    md = NB.to_markdown(pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x|y", "z"]}), index=False)
    assert md.splitlines() == ["| a | b |", "|---|---|", "| 1.235 | x\\|y |", "|  | z |"]


def _write_fake_notebooks(d: Path) -> None:
    from nbformat.v4 import new_code_cell, new_notebook

    def nb(*sources):
        cells = [new_code_cell(s) for s in sources]
        cells[0].metadata["tags"] = ["parameters"]
        out = new_notebook(cells=cells)
        out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        return out

    params = 'profile = "tiny"\ndata_dir = None\nruns_dir = None\noverrides = []\nprogress = True'
    nbformat.write(nb(params, "from entmask import config, notebooks\n"
                              "cfg = config.resolve(profile, config.parse_set_args(overrides))",
                      f"import os\nassert os.getcwd() == {str(d)!r}",
                      'notebooks.record("00_ok", {"answer": 42.0}, cfg, root=runs_dir)'), d / "00_ok.ipynb")
    nbformat.write(nb(params, "x = 1", "raise ValueError('deliberate failure ' + profile)", "y = 2"),
                   d / "01_fails.ipynb")
    nbformat.write(nb(params, "z = 3"), d / "02_never.ipynb")


@pytest.mark.parametrize("shared", [False, True], ids=["fresh-kernels", "shared-kernel"])
def test_reproduce_stops_at_the_failing_cell_and_keeps_the_partial_notebook(tmp_path, monkeypatch, capsys, shared):
    src = tmp_path / "nbs"
    src.mkdir()
    _write_fake_notebooks(src)
    monkeypatch.setattr(NR, "NOTEBOOKS", ["00_ok", "01_fails", "02_never"])
    monkeypatch.setattr(NR, "NOTEBOOK_DIR", src)
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    ok = NB.reproduce("smoke", runs_dir=tmp_path / "runs", overrides=["train.lr=0.001"], progress=False,
                      shared_kernel=shared)
    assert ok is False
    out = capsys.readouterr()
    # cell 3 of the executed notebook: parameters, injected parameters, x = 1, then the raise
    assert "01_fails FAILED in cell 3" in out.err and "deliberate failure smoke" in out.err
    assert "raise ValueError" in out.err  # the failing cell's source is named
    nbdir = tmp_path / "runs" / "smoke" / "notebooks"
    partial = nbformat.read(nbdir / "01_fails.ipynb", as_version=4)
    assert any(o.get("ename") == "ValueError" for c in partial.cells if c.cell_type == "code" for o in c.outputs)
    assert (nbdir / "01_fails.html").exists() and (nbdir / "00_ok.html").exists()
    assert not (nbdir / "02_never.ipynb").exists()
    summary = json.loads((nbdir / "reproduce.json").read_text())
    assert [r["status"] for r in summary["notebooks"]] == ["ok", "failed", "skipped"]
    assert summary["notebooks"][1]["cell"] == 3
    assert summary["notebooks"][0]["headline"] == {"answer": 42.0}
    assert "answer=42" in out.out
    assert "JUPYTER_PATH" not in __import__("os").environ  # the environment is restored


@pytest.mark.parametrize("shared", [False, True], ids=["fresh-kernels", "shared-kernel"])
def test_a_shared_kernel_starts_each_notebook_as_a_fresh_one_would(tmp_path, monkeypatch, shared):
    """`shared_kernel=True`: one kernel process runs every notebook, and each starts without the previous one's
    names or open figures, with execution counts from 1; its modules stay imported (the point of sharing)."""
    from nbformat.v4 import new_code_cell, new_notebook

    src, runs_dir = tmp_path / "nbs", tmp_path / "runs"
    src.mkdir()

    def write(name, *sources):
        record = f'from entmask import config, notebooks\nnotebooks.record("{name}", {{"x": 1.0}}, ' \
                 'config.resolve("smoke"), root=runs_dir)'
        cells = [new_code_cell('runs_dir = None'), *map(new_code_cell, sources), new_code_cell(record)]
        cells[0].metadata["tags"] = ["parameters"]
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, src / f"{name}.ipynb")

    pid = 'import os, pathlib, sys\npathlib.Path(runs_dir, "pid-{}").write_text(str(os.getpid()))'
    write("00_defines", pid.format("00"), "leak = 42\nimport matplotlib\nmatplotlib.use('agg')\n"
          "import matplotlib.pyplot as plt\nfig = plt.figure()\nsys.modules['entmask_marker'] = sys  # 'imported'",
          "__all__ = ['leak']\n'first out'", "'second out'")
    write("01_reads", pid.format("01"),
          "import matplotlib.pyplot as plt\nassert 'leak' not in globals() and 'fig' not in globals()\n"
          "assert '__all__' not in globals() and globals().get('__', '') == '', globals().get('__')\n"
          "assert plt.get_fignums() == [], plt.get_fignums()\n"
          f"assert ('entmask_marker' in sys.modules) == {shared}",
          # experiments split rows between spawned processes, which read __main__.__spec__: a reset that dropped
          # it failed make reproduce's 01 (session 30)
          "import multiprocessing\np = multiprocessing.get_context('spawn').Process(target=abs, args=(1,))\n"
          "p.start()\np.join()\nassert p.exitcode == 0, p.exitcode")
    monkeypatch.setattr(NR, "NOTEBOOKS", ["00_defines", "01_reads"])
    monkeypatch.setattr(NR, "NOTEBOOK_DIR", src)
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    assert NB.reproduce("smoke", runs_dir=runs_dir, progress=False, shared_kernel=shared)
    pids = [(runs_dir / f"pid-{n}").read_text() for n in ("00", "01")]
    assert (pids[0] == pids[1]) == shared, pids
    executed = nbformat.read(runs_dir / "smoke" / "notebooks" / "01_reads.ipynb", as_version=4)
    counts = [c.execution_count for c in executed.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1)), counts


def test_a_shared_kernel_that_dies_fails_the_run_instead_of_hanging(tmp_path, monkeypatch, capsys):
    """A kernel killed mid-notebook (here it exits itself) is a failed notebook in the summary within seconds, and
    the notebooks after it are skipped: the shared kernel's clients are asynchronous, so nbclient notices."""
    import threading

    from nbformat.v4 import new_code_cell, new_notebook

    src = tmp_path / "nbs"
    src.mkdir()
    for name, code in (("00_dies", "import os\nos._exit(3)"), ("01_after", "x = 1")):
        cells = [new_code_cell("runs_dir = None"), new_code_cell(code)]
        cells[0].metadata["tags"] = ["parameters"]
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, src / f"{name}.ipynb")
    monkeypatch.setattr(NR, "NOTEBOOKS", ["00_dies", "01_after"])
    monkeypatch.setattr(NR, "NOTEBOOK_DIR", src)
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    got = []
    t = threading.Thread(target=lambda: got.append(NB.reproduce("smoke", runs_dir=tmp_path / "runs", progress=False,
                                                                shared_kernel=True)), daemon=True)
    t.start()
    t.join(180)
    assert not t.is_alive(), "reproduce hangs on a dead shared kernel"
    assert got == [False]
    summary = json.loads((tmp_path / "runs" / "smoke" / "notebooks" / "reproduce.json").read_text())
    assert [r["status"] for r in summary["notebooks"]] == ["failed", "skipped"]
    assert "DeadKernelError" in summary["notebooks"][0]["error"], summary["notebooks"][0]


def test_reproduce_rejects_bad_overrides_before_starting_a_kernel(tmp_path):
    from entmask.config import ConfigError

    with pytest.raises(ConfigError, match="unknown config key"):
        NB.reproduce("smoke", runs_dir=tmp_path, overrides=["train.nope=1"], progress=False)
    with pytest.raises(NB.NotebookError):
        NB.reproduce("smoke", runs_dir=tmp_path, only=["42"], progress=False)


# ---- what training shows on the screen: bars or nothing, then one line per run ----------------------------------
# A Trainer log dict as its PrinterCallback or ProgressCallback prints it ({'loss': '10.33', ...}).
TRAINER_DICT = re.compile(r"\{'(loss|train_runtime|train_loss|eval_loss|grad_norm|learning_rate|epoch|mlm_loss)': ")


def test_quiet_pretraining_prints_one_line_and_no_log_dict(tmp_path, mirror, capfd):
    from entmask import cli

    argv = ["pretrain", "--profile", "smoke", "--quiet", "--set", "train.max_steps=4", "--runs-dir", str(tmp_path)]
    assert cli.main(argv) == 0
    out = capfd.readouterr()
    assert not TRAINER_DICT.search(out.out + out.err), (out.out + out.err)[:600]
    lines = [ln for ln in out.out.splitlines() if ln.startswith("entmask: pretrain ")]
    assert len(lines) == 1 and " trained: 4 steps, " in lines[0] and "held-out masked acc" in lines[0], out.out
    run = next(p for p in (tmp_path / "smoke" / "pretrain").iterdir() if p.is_dir())
    hist = json.loads((run / "logs" / "log_history.json").read_text())  # the logs still reach the run folder
    assert [h["step"] for h in hist if "loss" in h] == [1] and "train_runtime" in hist[-1]
    pytest.importorskip("tensorboard")
    assert list((run / "logs" / "tensorboard").glob("events.out.tfevents.*"))
    assert cli.main(argv) == 0  # found by its hash: one line that says so
    again = capfd.readouterr()
    assert f"entmask: pretrain {run.name} reused: 4 steps, " in again.out and not TRAINER_DICT.search(again.out)


def test_the_trainer_prints_bars_or_nothing():
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from entmask.run_log import BarsOnly, screen_callbacks

    class T:  # the part of a Trainer screen_callbacks touches
        def __init__(self, cbs):
            from transformers.trainer_callback import CallbackHandler

            self.callback_handler = CallbackHandler(cbs, None, None, None, None)

        def add_callback(self, cb):
            self.callback_handler.add_callback(cb)

    for default, progress, want in ((PrinterCallback, False, []), (ProgressCallback, True, [BarsOnly]),
                                    (ProgressCallback, False, [])):
        t = T([default])
        screen_callbacks(t, progress)
        assert [type(c) for c in t.callback_handler.callbacks if isinstance(c, (PrinterCallback,
                                                                                  ProgressCallback))] == want


# ---- what the committed records say: the opening of notebooks 01-05 --------------------------------------------
def test_committed_results_show_the_claims_tables_and_figure_without_training(reproduced, tmp_path, capsys):
    """Built once from docs/records/cpu-long into runs/cache/committed/ (the records imported into a temporary
    folder that goes), then read: the claims of a section with the sizes they exclude, the table beside the paper's,
    the figure; a section without records in one line. Nothing lands in the runs folder but the cache.

    The builds are the ones notebook 01 made when `reproduced` executed it (both committed profiles, ~35 s on the
    AVX2 CPU): this reads them from a copy of that cache, and a stale or missing one would be rebuilt here."""
    import shutil
    import time

    built = reproduced[1] / "cache" / "committed"
    assert {p.name.rsplit("-", 1)[0] for p in built.iterdir() if p.is_dir()} >= {"cpu-long", "cpu-wiki"}
    shutil.copytree(built, tmp_path / "cache" / "committed")
    c1 = NB.committed_results("01", profile="cpu-long", root=tmp_path, show=False)
    assert c1.profile == "cpu-long" and c1.figure is not None and c1.figure.is_file()
    assert "| high (teacher) vs random" not in c1.markdown  # lines, not the verdicts report's table
    assert "high-entropy teacher masking improves over random masking (2-3 points) (§3.1): Δ Total -1.58 " \
           "[-3.32, +0.17], **unresolved**; the data exclude a gain of ≥ 0.2 and a loss of ≥ 3.4 points." in c1.markdown
    t1 = c1.tables["table1"]
    assert {"ours", "majority", "paper"} <= set(t1["source"]) and "QQP" not in t1.columns
    assert "BLiMP" not in t1.columns  # no cpu-long student was BLiMP-scored: an empty column is left out
    assert "marginal (teacher)" in c1.markdown  # left out of the table at every seed, and said so
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    t0 = time.perf_counter()
    c2 = NB.committed_results("02_self_masking", profile="cpu-long", root=tmp_path, show=False)
    assert time.perf_counter() - t0 < 5  # read from the cache
    assert "**supported**" in c2.markdown and "**contradicted**" in c2.markdown
    for sec in ("03", "04", "05"):
        c = NB.committed_results(sec, profile="cpu-long", root=tmp_path, show=False)
        assert c.markdown.startswith("No committed records for ") and "\n" not in c.markdown and c.figure is None
    none = NB.committed_results("01", profile="no-such-profile", root=tmp_path, show=False)
    assert none.markdown.startswith("No committed records") and none.profile == "no-such-profile"
    auto = NB.committed_results("table2", root=tmp_path, show=False)  # the newest decisive profile with records
    assert auto.profile in NB.DECISIVE_PROFILES
    with pytest.raises(ValueError, match="no paper section"):
        NB.section_of("07")


def test_a_newer_profile_with_some_rows_keeps_the_older_verdicts_in_view(tmp_path, monkeypatch):
    """cpu-wiki's first students (random and high) put it first in notebook 02, whose self-masking claims only
    cpu-long has judged: those verdicts stay under it, labelled with their profile."""
    import json

    from entmask import committed_results as C

    def fake_build(verdicts: str):
        d = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        (d / "build.json").write_text(json.dumps({
            "experiments": {"table2": {"rows": ["teacher-high"]}}, "pretrain_seeds": [0], "finetune_seeds": [0, 1, 2],
            "pretrain_runs": 2, "finetune_runs": 30, "records": "docs/records/x"}))
        (d / "verdicts.csv").write_text("claim,paper (§),pooled Δ,pooled 95% CI,pooled verdict,excludes\n" + verdicts)
        return d

    new = fake_build("init>high,self init beats teacher high,-1.00,\"[-13.00, +11.00]\",unresolved,\n"
                     "cold<random,self cold is worse,,,unresolved,\n")
    old = fake_build("cold<random,self cold is worse,-3.54,\"[-6.63, -0.46]\",supported,excludes any rise\n"
                     "high>random,high beats random,-1.58,\"[-3.32, +0.17]\",unresolved,\n")
    monkeypatch.setattr(C, "DECISIVE_PROFILES", ("cpu-wiki", "cpu-long"))
    monkeypatch.setattr(C, "_has_students", lambda rec: True)
    monkeypatch.setattr(C, "build", lambda p, root=None, rebuild=False: {"cpu-wiki": new, "cpu-long": old}[p])
    c = C.committed_results("02", root=tmp_path, show=False)
    assert c.profile == "cpu-wiki" and "- self init beats teacher high: Δ Total -1.00 [-13.00, +11.00]" in c.markdown
    tail = c.markdown.split("**Also committed: `cpu-long`** (pretraining seeds [0] x fine-tuning seeds [0, 1, 2]")[1]
    assert "- self cold is worse: Δ Total -3.54 [-6.63, -0.46], **supported**; the data exclude any rise." in tail
    assert "high beats random" not in tail  # a Table 1 claim: not this section's
    assert c.figure is None  # neither build drew one
    (old / "verdicts-02.png").write_bytes(b"png")  # cpu-wiki has no estimate for 02's claims: cpu-long's figure
    c = C.committed_results("02", root=tmp_path, show=False)
    assert c.figure == old / "verdicts-02.png" and c.markdown.endswith(
        "The figure is `cpu-long`'s: none of this section's claims has an estimate at `cpu-wiki` yet.")
    # the older profile is the only one with rows: shown alone, no "also"
    json_new = json.loads((new / "build.json").read_text())
    (new / "build.json").write_text(json.dumps({**json_new, "experiments": {"table2": {"rows": []}}}))
    c = C.committed_results("02", root=tmp_path, show=False)
    assert c.profile == "cpu-long" and "Also committed" not in c.markdown
    # a profile named: that one alone
    c = C.committed_results("02", profile="cpu-wiki", root=tmp_path, show=False)
    assert c.profile == "cpu-wiki" and "Also committed" not in c.markdown


def test_the_committed_header_names_the_runs_no_table_reads(tmp_path):
    """cpu-wiki's records keep two students of its first (90/10) recipe: the header counts them apart, by hash."""
    import json

    from entmask import committed_runs as R
    from entmask import config, runs
    from entmask.experiments.specs import expected_hashes
    from entmask.experiments.specs import matrix as ex_matrix

    cfg = config.resolve("cpu-wiki", {"experiment.pretrain_seeds": [0, 1]})
    want = expected_hashes(["table1", "static", "weights"], cfg, [0, 1])
    assert {"6153c71417", "b6d46dffd7"} <= want and "cb305246ff" not in want and "c9a7dc43d2" not in want
    assert len(want) == 2 * 8  # table1 (6 rows), static (+ random-static), weights (+ self init), at two seeds
    (tmp_path / runs.RECORDS_MANIFEST).write_text(json.dumps({"runs": [
        "pretrain/random-6153c71417", "pretrain/random-cb305246ff", "finetune/rte/random-cb305246ff-04d9f849df",
        "finetune/rte/random-6153c71417-09ca82ca94", "finetune/sst2/random-cb305246ff-aa", "reference/r-1"]}))
    off = R.off_table(tmp_path, want, cfg, [0, 1])
    assert off == {"pretrain": ["random-cb305246ff"], "finetune_runs": 2, "elsewhere": {}}
    assert R.off_note(off) == (" 1 of those pretraining runs (`random-cb305246ff`) and their 2 fine-tuning runs are "
                               "in no table below: it is of another recipe or corpus, kept for the record.")
    assert R.off_note({"pretrain": [], "finetune_runs": 0}) == "" and R.off_note(None) == ""
    # a run another experiment reads (precision's fp32 student) is named as its
    fp32 = dict(ex_matrix("precision", cfg))["baseline-fp32"]
    from entmask.experiments.specs import at_seed

    name = f"random-{at_seed(fp32, 0).short_hash()}"
    man = json.loads((tmp_path / runs.RECORDS_MANIFEST).read_text())
    (tmp_path / runs.RECORDS_MANIFEST).write_text(json.dumps({"runs": man["runs"] + [f"pretrain/{name}"]}))
    off = R.off_table(tmp_path, want, cfg, [0, 1])
    assert off["elsewhere"] == {name: "precision"}
    assert R.off_note(off).endswith(f"in no table below: `{name}` is `entmask experiment precision`'s; the others "
                                    f"are of another recipe or corpus, kept for the record.")


def test_brief_report_keeps_the_table_and_names_the_full_one():
    md = ("# T\n\n> a warning\n\n| a |\n|---|\n| 1 |\n\nNotes:\n\n- Cells: one thing (x; y). Then more. And more.\n"
          "- Short.\n\n## Per pretraining seed\n\n| b |\n")
    out = NB.brief_report(md, "/r/t.md")
    assert "> a warning" in out and "| 1 |" in out and "Per pretraining seed" not in out
    assert "- Cells: one thing (x; y) ..." in out and "- Short." in out and out.rstrip().endswith("`/r/t.md`")


# ---- exploration: exact small cases ----------------------------------------------------------------------------
def test_jaccard_exact():
    a = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)
    b = torch.tensor([[0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert X.jaccard(a, b) == pytest.approx(1 / 3)
    assert X.jaccard(a, a) == 1.0
    assert X.jaccard(torch.zeros(2, 3, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool)) == 1.0
    assert X.jaccard_rows(a, b).tolist() == pytest.approx([1 / 3, 1.0])
    m = X.jaccard_matrix({"a": a, "b": b, "c": ~a})
    assert list(m.index) == ["a", "b", "c"] and (m.values == m.values.T).all()
    assert m.loc["a", "a"] == 1.0 and m.loc["a", "b"] == pytest.approx(1 / 3) and m.loc["a", "c"] == 0.0
    assert X.jaccard_matrix({"a": a, "b": b}, per_row=True).loc["a", "b"] == pytest.approx((1 / 3 + 1) / 2)
    with pytest.raises(ValueError):
        X.jaccard(a, b[:, :3])


def test_chance_jaccard():
    cand = torch.ones(2, 20, dtype=torch.bool)  # k = floor(0.15*20 + 0.5) = 3 per row: 3 / (40 - 3)
    assert X.chance_jaccard(cand, 0.15) == pytest.approx(3 / 37)
    # simulated random masks agree with it
    gen = torch.Generator().manual_seed(0)
    big = torch.ones(4000, 20, dtype=torch.bool)
    r1 = select_mask(torch.zeros(big.shape), big, "random", 0.15, generator=gen)
    r2 = select_mask(torch.zeros(big.shape), big, "random", 0.15, generator=gen)
    assert X.jaccard(r1, r2) == pytest.approx(3 / 37, abs=0.01)


def test_frequency_bins_and_entropy_by_frequency():
    assert X.frequency_bins([0, 1, 9, 10, 99, 100, 999, 1000, 10**6]).tolist() == [-1, 0, 0, 1, 1, 2, 2, 3, 6]
    assert X.frequency_bins([1, 3, 4, 15, 16], base=4).tolist() == [0, 0, 1, 1, 2]
    import pandas as pd

    t = pd.DataFrame({"token_id": [1, 1, 2, 3, 4], "count": [5, 5, 50, 60, 0], "entropy": [1.0, 3.0, 4.0, 6.0, 9.0],
                      "pos": [1, 2, 3, 4, 5], "piece": ["word"] * 5})
    f = X.entropy_by_frequency(t)
    assert f["freq_bin"].tolist() == [-1, 0, 1] and f["label"].tolist() == ["unseen", "1-9", "10-99"]
    assert f["tokens"].tolist() == [1, 2, 2] and f["types"].tolist() == [1, 1, 2]
    assert f["entropy_mean"].tolist() == pytest.approx([9.0, 2.0, 5.0])
    # Spearman: ranks of count [2.5, 2.5, 4, 5, 1] against [1, 2, 3, 4, 5] -> -0.5 / sqrt(9.5 * 10)
    assert X.frequency_correlation(t) == pytest.approx(-0.5 / math.sqrt(95))
    p = X.entropy_by_position(t, width=2)
    assert p["pos_bin"].tolist() == [0, 2, 4] and p["entropy_mean"].tolist() == pytest.approx([1.0, 3.5, 7.5])


def test_piece_kinds_and_entropy_by_piece():
    toks = ["[CLS]", "em", "##bed", "##ding", "is", "fun", "[SEP]"]
    assert X.piece_kinds(toks) == ["word", "first", "continuation", "continuation", "word", "word", "word"]
    import pandas as pd

    t = pd.DataFrame({"piece": ["first", "continuation", "continuation", "word", "word"],
                      "entropy": [5.0, 1.0, 2.0, 3.0, 4.0]})
    b = X.entropy_by_piece(t)
    assert b["piece"].tolist() == ["word", "first", "continuation"]
    assert b["entropy_mean"].tolist() == pytest.approx([3.5, 5.0, 1.5])
    assert b["share"].tolist() == pytest.approx([0.4, 0.2, 0.4])
    assert X.detokenize(["em", "##bed", "##ding", "is", "fun"]) == "embedding is fun"


def test_strategy_masks_are_select_masks():
    g = torch.Generator().manual_seed(1)
    ent = torch.rand(6, 30, generator=g)
    cand = torch.rand(6, 30, generator=g) > 0.2
    masks = X.strategy_masks(ent, cand, ratio=0.2, seed=3)
    assert list(masks) == list(STRATEGIES)
    for s in ("high", "low", "mid", "marginal"):
        assert torch.equal(masks[s], select_mask(ent, cand, s, 0.2))
    assert not (masks["high"] & masks["low"]).any()
    k = masks["random"].sum(1)
    assert torch.equal(masks["high"].sum(1), k) and torch.equal(masks["alternating"].sum(1), k)
    for r in range(6):  # a coin per row: each alternating row is that row's high or low mask
        row = masks["alternating"][r]
        assert torch.equal(row, masks["high"][r]) or torch.equal(row, masks["low"][r])
    again = X.strategy_masks(ent, cand, ratio=0.2, seed=3)
    assert all(torch.equal(masks[s], again[s]) for s in masks)


def test_in_context_and_extreme_tokens(tokenizer):
    import pandas as pd

    ids = tokenizer("the cat sat on the embedding mat", return_tensors="pt")["input_ids"]  # [1, T]
    toks = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    i = toks.index("cat")
    assert X.in_context(ids[0], i, tokenizer, window=2) == "the [[cat]] sat on…"
    j = next(p for p, t in enumerate(toks) if t.startswith("##"))
    assert f"[[{toks[j][2:]}]]" in X.in_context(ids[0], j, tokenizer, window=1)
    ent = torch.arange(ids.shape[1], dtype=torch.float32)[None]
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[0, 0] = cand[0, -1] = False
    t = X.token_table(ids, ent, cand, tokenizer, counts=torch.ones(len(tokenizer), dtype=torch.long))
    assert len(t) == ids.shape[1] - 2 and t["pos"].tolist() == list(range(1, ids.shape[1] - 1))
    assert t.loc[t["pos"] == i, "token"].item() == "cat"
    hi = X.extreme_tokens(t, ids, tokenizer, n=2, highest=True)
    assert hi["token"].tolist() == [toks[-2], toks[-3]]
    lo = X.extreme_tokens(t, ids, tokenizer, n=2, highest=False, unique=True)
    assert lo["token"].tolist() == ["the", "cat"]  # the second "the" is dropped (one occurrence per token)
    assert isinstance(lo, pd.DataFrame) and lo["context"].str.contains(r"\[\[the\]\]").iloc[0]


def _tiny_mlm(tokenizer, seed=0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    return BertForMaskedLM(cfg).eval()


def test_self_mask_overlap_and_epoch_frame(tmp_path, tokenizer):
    from entmask.entropy import model_entropy
    from entmask.masking import candidate_mask

    run = tmp_path / "run"
    same, other = _tiny_mlm(tokenizer, 0), _tiny_mlm(tokenizer, 1)
    same.save_pretrained(run / "epochs" / "epoch-1")
    other.save_pretrained(run / "epochs" / "epoch-2")
    (run / "config.json").write_text(json.dumps({"masking": {"strategy": "high", "ratio": 0.25}}))
    (run / "metrics.json").write_text(json.dumps({"epoch_entropy": [
        {"epoch": 1, "step": 4, "source": "teacher", "entropy_mean": 10.0, "entropy_sd": 0.1},
        {"epoch": 2, "step": 8, "source": "self", "entropy_mean": 9.0, "entropy_sd": 0.5}]}))
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (8, 24), generator=g)
    ids[:, 0], ids[:, -1] = tokenizer.cls_token_id, tokenizer.sep_token_id
    cand = candidate_mask(ids, tokenizer.all_special_ids, tokenizer.unk_token_id)
    teacher_ent = model_entropy(same, ids, torch.ones_like(ids))  # the "teacher" is the epoch-1 model itself
    view = X.EntropyView(ids=ids, entropy=teacher_ent, candidates=cand, rows=torch.arange(8),
                         counts=torch.ones(len(tokenizer), dtype=torch.long), tokenizer=tokenizer,
                         teacher_dir=run, split="test", corpus=None)
    df = X.self_mask_overlap(run, view, rows=8, device="cpu")
    assert df["epoch"].tolist() == [1, 2] and df["source"].tolist() == ["teacher", "self"]
    assert df["jaccard"].iloc[0] == 1.0 and df["spearman"].iloc[0] == pytest.approx(1.0)
    assert df["jaccard"].iloc[1] < 1.0
    assert df["chance"].iloc[0] == pytest.approx(X.chance_jaccard(cand, 0.25))
    assert (df["strategy"] == "high").all()
    both = X.self_mask_overlaps({"a": run}, view, rows=8, device="cpu")
    assert both["label"].tolist() == ["a", "a"]
    assert X.runs_with_epochs({"a": run, "b": tmp_path / "none"}) == {"a": run}
    fr = X.epoch_entropy_frame({"a": run})
    assert fr[["epoch", "source", "entropy_sd"]].values.tolist() == [[1, "teacher", 0.1], [2, "self", 0.5]]


# ---- every notebook, executed at the smoke profile ---------------------------------------------------------------
@pytest.fixture(scope="module")
def reproduced(tmp_path_factory, mirror):
    root = tmp_path_factory.mktemp("nbruns")
    # One kernel for the seven notebooks (reset between them): 75 s less than a kernel each on the AVX2 CPU. The
    # default, a fresh kernel per notebook, runs above on throwaway notebooks and in test_faults on notebook 00.
    ok = NB.reproduce("smoke", runs_dir=root, data_dir=str(mirror), overrides=SMOKE_OVERRIDES, progress=False,
                      shared_kernel=True)
    return ok, root


def _output_text(o) -> str:
    """Everything a cell output shows as text: a stream, or the text/plain and text/html of a display."""
    if o.get("output_type") == "stream":
        return o.get("text", "")
    data = o.get("data", {})
    return "\n".join(str(data.get(k, "")) for k in ("text/plain", "text/html")) + o.get("evalue", "")


def _numbers(d) -> list[float]:
    out = []
    if isinstance(d, dict):
        for v in d.values():
            out += _numbers(v)
    elif isinstance(d, (int, float)) and not isinstance(d, bool) and math.isfinite(d):
        out.append(float(d))
    return out


EXPECTED_RESULTS = [
    "00_entropy_histogram.png", "00_entropy_vs_frequency.png", "00_entropy_by_position.png", "00_mask_overlap.png",
    "00_mask_overlap.csv", "00_mask_overlap.md", "00_entropy_by_frequency.csv", "00_masks_teacher.html",
    "table1.csv", "table1.md", "table1.png", "table1-curves.png", "table1-entropy.png", "01_table1_tasks.png",
    "table2.csv", "table2.md", "table2.png", "02_self_entropy_drift.csv", "02_self_teacher_overlap.csv",
    "kd.csv", "kd.md", "kd.png", "03_kd_losses.png",
    "weights.csv", "weights.md", "weights-heatmap.png",
    "mask-rate.csv", "mask-rate.md", "mask-rate.png", "frozen.csv", "frozen.md", "frozen.png",
    "beyond.csv", "beyond.md", "beyond-compute.png", "06_masked_vs_unmasked_view.csv", "06_compute.csv",
    "table1-compute.png", "memorisation.csv", "memorisation.png", "verdicts.md", "verdicts.png",
]


@pytest.mark.slow
def test_every_notebook_executes_at_smoke(reproduced):
    ok, root = reproduced
    out = root / "smoke" / "notebooks"
    summary = json.loads((out / "reproduce.json").read_text())
    assert ok, f"reproduce failed: {[(r['notebook'], r.get('cell'), r.get('error')) for r in summary['notebooks']]}"
    assert [r["notebook"] for r in summary["notebooks"]] == NB.NOTEBOOKS
    for name in NB.NOTEBOOKS:
        nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
        assert "widgets" not in nb.metadata  # executed without stored widget state
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1 and 'profile = "smoke"' in injected[0].source
        assert not any(o.get("output_type") == "error" for c in nb.cells if c.cell_type == "code"
                       for o in c.outputs)
        assert (out / f"{name}.html").stat().st_size > 0
        texts = [_output_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        dicts = [t[:200] for t in texts if TRAINER_DICT.search(t) or "{'loss':" in t]
        assert not dicts, f"{name}: a cell prints a Trainer log dict: {dicts[:2]}"
        if name[:2] in NB.SECTIONS:  # opens with what the committed records say, before any live run
            code = [c for c in nb.cells if c.cell_type == "code"]
            i = next(i for i, c in enumerate(code) if "notebooks.committed_results(" in c.source)
            assert i == next(i for i, c in enumerate(code) if "notebooks.setup(" in c.source) + 1, name
            shown = "".join(_output_text(o) for o in code[i].outputs)
            assert "What the committed results say" in shown or "No committed records" in shown, name
        rec = json.loads((out / f"{name}.metrics.json").read_text())
        assert rec["notebook"] == name and rec["profile"] == "smoke"
        assert rec["config"]["profile"] == "smoke" and rec["config"]["train"]["max_steps"] == 6
        assert rec["entmask_version"] and "git_commit" in rec and rec["config_hash"]
        assert _numbers(rec["metrics"]), f"{name}: no numbers in its metrics"
        assert any(h["value"] is not None and math.isfinite(h["value"]) for h in rec["headline"]), name
    results = root / "smoke" / "results"
    missing = [f for f in EXPECTED_RESULTS if not (results / f).exists()]
    assert not missing, f"missing results: {missing}"
    import pandas as pd

    t1 = pd.read_csv(results / "table1.csv")
    assert {"random", "high (teacher)"} <= set(t1["strategy"].dropna())
    assert pd.to_numeric(t1["CoLA"].astype(str).str.split("±").str[0].str.rstrip("†"), errors="coerce").notna().any()
    fit = pd.read_csv(results / "memorisation.csv")  # notebook 01 section 4: every Table 1 student, own + random
    own = fit[fit["own"]]
    assert sorted(zip(own["row"], own["split"], own["masks"])) == sorted(
        (row, split, s) for row, s in [("random", "random")] + [(f"{x} (teacher)", x) for x in STRATEGIES[:5]]
        for split in ("train", "test"))
    assert fit["accuracy"].between(0, 1).all() and (fit["masked_tokens"] > 0).all()
    r01 = json.loads((out / "01_teacher_masking.metrics.json").read_text())["metrics"]["memorisation"]
    assert r01["high (teacher)"]["own_masks"] == "high" and 0 <= r01["high (teacher)"]["training_rows"] <= 100
    ov = pd.read_csv(results / "00_mask_overlap.csv").set_index("strategy")
    assert list(ov.index) == list(STRATEGIES) and ov.loc["high", "low"] == 0.0 and ov.loc["mid", "mid"] == 1.0
    r00 = json.loads((out / "00_entropy_exploration.metrics.json").read_text())["metrics"]
    assert r00["jaccard"]["high_low"] == 0.0 and 0 < r00["entropy_mean"] < math.log(30522) + 1e-3
    r05 = json.loads((out / "05_ablations.metrics.json").read_text())["metrics"]
    assert r05["corpus"] == "skipped"  # a CPU profile: the corpus ablation is skipped with a note
    r06 = json.loads((out / "06_beyond_the_paper.metrics.json").read_text())["metrics"]
    assert set(r06["views"]) == {"teacher", "high (self, cold)", "high (self, cold), 80/10/10"}
    assert all(-1 <= v["spearman_entropy_vs_masked_loss"] <= 1 for v in r06["views"].values())
    comp = pd.read_csv(results / "06_compute.csv").set_index("strategy")
    assert comp.loc["random", "x random FLOPs"] == 1.0
    assert comp.loc["random, 2x steps", "x random FLOPs"] == pytest.approx(2.0, rel=0.05)
    assert comp.loc["high excess loss (self − teacher)", "x random FLOPs"] > comp.loc["high (self, cold)",
                                                                                        "x random FLOPs"]


@pytest.mark.slow
def test_html_export_shows_the_static_masks(reproduced):
    _, root = reproduced
    html = (root / "smoke" / "notebooks" / "00_entropy_exploration.html").read_text()
    spans = re.findall(r'<span\b[^>]*class="em-tok"[^>]*>', html)
    assert spans, "no static token spans in the HTML export"
    assert any('data-masked="1"' in s for s in spans)
    assert 'class="em-explorer"' in html and 'class="em-comparison"' in html
    assert "application/vnd.jupyter.widget-state+json" not in html
    html02 = (root / "smoke" / "notebooks" / "02_self_masking.html").read_text()
    assert 'class="em-tok"' in html02
