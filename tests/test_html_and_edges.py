"""Issue 31, records are input: text from run files never becomes live HTML in a notebook's export, executed
notebooks show their static view without widget state, and the edges (empty GLUE split, a task with no data,
`reproduce --only ""`, Ctrl-C during reproduce) end in one line or an unfinished summary, never a traceback or a
stale "ok".

Hostile records are built inside the tests. The HTML checks parse the export (html.parser) rather than grep it.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from entmask import notebook_run as NR
from entmask import notebooks as NB
from entmask import widgets as W
from entmask.cli import main

HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script>"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VOCAB = SHARED / "models" / "bert-base-uncased-vocab"


# ---- parsing an export -------------------------------------------------------------------------------------------
class _Live(HTMLParser):
    """Every <script> body, every on* attribute and every <img>, plus the page's visible text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[str] = []
        self.handlers: list[tuple[str, str, str]] = []
        self.imgs: list[dict] = []
        self.text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.handlers += [(tag, k, v or "") for k, v in attrs if k.lower().startswith("on")]
        if tag == "img":
            self.imgs.append(dict(attrs))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def assert_no_live_record_text(page: str) -> _Live:
    """No script, event handler or image from the hostile text is live in `page`; the text itself shows."""
    p = _Live()
    p.feed(page)
    p.close()
    assert not [s for s in p.scripts if "alert(" in s], "a script from the record text is live"
    assert not [h for h in p.handlers if "alert(" in h[2] or h[1] == "onerror"], p.handlers
    assert not [i for i in p.imgs if i.get("src") == "x"], "an <img> from the record text is live"
    assert HOSTILE in "".join(p.text), "the record text should be shown, as text"
    return p


def _notebook(*sources: str, params: str | None = None):
    cells = [new_code_cell(s) for s in ((params,) if params else ()) + sources]
    if params:
        cells[0].metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


PARAMS = 'profile = "tiny"\ndata_dir = None\nruns_dir = None\noverrides = []\nprogress = True'


def _use_fake_notebooks(monkeypatch, src: Path, names: list[str]) -> None:
    monkeypatch.setattr(NR, "NOTEBOOKS", names)
    monkeypatch.setattr(NR, "NOTEBOOK_DIR", src)
    monkeypatch.delenv("JUPYTER_PATH", raising=False)


# ---- 1. text from records reaches HTML escaped ---------------------------------------------------------------------
def test_markdown_html_renders_reports_without_raw_html():
    md = (f"# Report\n\n{HOSTILE}\n\n| task | note |\n|---|---|\n| rte | {HOSTILE} |\n\n- Offline data: {HOSTILE}\n\n"
          f"[a link](javascript:alert(3)) <javascript:alert(4)>\n\n| cold<random | x &lt;b&gt; |\n|---|---|\n")
    page = NB.markdown_html(md)
    p = assert_no_live_record_text(page)
    assert not [h for h in p.handlers], p.handlers
    assert "javascript:" not in "".join(f"{k}={v}" for k, v in _attrs(page))  # no javascript: href survives
    assert "<table>" in page and "<h1>Report</h1>" in page  # still a rendered report
    assert "cold&lt;random" in page and "x &lt;b&gt;" in page  # an entity escaped at production reads as '<b>'


def test_a_real_report_still_renders_as_tables_and_lists():
    """The golden Table 1 report through markdown_html: its tables, headings and notes render as before."""
    md = (Path(__file__).parent / "golden" / "cpu-long" / "table1.md").read_text()
    page = NB.markdown_html(md)
    assert page.count("<table>") == md.count("\n|---") and "<h2>" in page and "<li>" in page
    assert "<td>cold" not in page and "&lt;table" not in page and "<script" not in page


def test_md_table_escapes_markup_in_cells_and_leaves_comparisons():
    """Escaped where produced: a cell that could hold markup is HTML-escaped in the .md itself (so GitHub or any
    renderer shows it as text); 'cold<random', 'high>random' and 'a & b' stay byte-identical."""
    from entmask.experiments import md_table

    df = pd.DataFrame({"claim": ["cold<random", "high>random", HOSTILE, "<!-- x -->", "a & b"],
                       "note": ["<javascript:alert(3)>", "x|y", None, float("nan"), "<b>bold</b> & co"]})
    lines = md_table(df).splitlines()
    assert lines[2] == "| cold<random | &lt;javascript:alert(3)&gt; |"
    assert lines[3] == "| high>random | x\\|y |"
    assert lines[4] == ("| &lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt; |  |")
    assert lines[5] == "| &lt;!-- x --&gt; |  |" and lines[6] == "| a & b | &lt;b&gt;bold&lt;/b&gt; &amp; co |"
    assert_no_live_record_text(NB.markdown_html(md_table(df)))  # and the rendered table shows the text
    assert NB.to_markdown(df, index=False).splitlines()[4] == lines[4]


def _attrs(page: str) -> list[tuple[str, str]]:
    out: list = []

    class A(HTMLParser):
        def handle_starttag(self, tag, attrs):
            out.extend((k, v or "") for k, v in attrs)

    A().feed(page)
    return out


def test_widget_fallbacks_escape_hostile_sentence_and_source(tmp_path):
    """What `display(explorer)` emits (the live view, its text/html and text/plain fallbacks), saved as
    `reproduce` saves it and exported by `export_html`: the hostile sentence and source name show as text."""
    if not (VOCAB / "vocab.txt").exists():
        pytest.skip(f"offline BERT vocabulary not found at {VOCAB}")
    import torch
    from IPython.core.formatters import DisplayFormatter
    from transformers import BertConfig, BertForMaskedLM

    from entmask.data import load_tokenizer

    tok = load_tokenizer(str(VOCAB))
    torch.manual_seed(0)
    model = BertForMaskedLM(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, intermediate_size=64)).eval()
    ex = W.StrategyComparison({HOSTILE: model}, tok, sentence=f"a record says {HOSTILE}")
    data, _ = DisplayFormatter().format(ex)
    assert W.WIDGET_MIME in data and "text/html" in data
    nb = _notebook("explorer")
    nb.cells[0].outputs = [new_output("display_data", data=data)]
    path = tmp_path / "w.ipynb"
    nbformat.write(W.drop_widget_state(nb), path)
    page = NB.export_html(path).read_text()
    p = _Live()
    p.feed(page)
    assert not [s for s in p.scripts if "alert(" in s] and not [h for h in p.handlers if "alert(" in h[2]]
    assert not [i for i in p.imgs if i.get("src") == "x"]
    assert HOSTILE in "".join(p.text)  # the source name, in the caption


def test_executed_report_export_has_no_live_element_from_a_finetuning_record(tmp_path, monkeypatch):
    """A fine-tuning metrics.json whose eval_note and a table cell carry script: the notebook's report cell
    (`notebooks.show_report`, as notebooks 01-05 call it) executed by `reproduce`, then its HTML export parsed."""
    record = tmp_path / "ft" / "metrics.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"task": "rte", "status": "ok", "paper_score": 55.0, "eval_note": HOSTILE}))
    src = tmp_path / "nbs"
    src.mkdir()
    # The report as a report writer builds it: the note copied verbatim from the record, the table through
    # to_markdown, and (the worst case) the text alone on a line, where markdown would start a raw HTML block.
    report = (
        "import json, types\nfrom pathlib import Path\nimport pandas as pd\nfrom entmask import notebooks\n"
        f"rec = json.loads(Path({str(record)!r}).read_text())\n"
        "frame = pd.DataFrame({'task': [rec['task']], 'note': [rec['eval_note']]})\n"
        "table = notebooks.to_markdown(frame, index=False)\n"
        "note = rec['eval_note']\n"
        "md = '# Table\\n\\n' + table + '\\nNotes:\\n\\n- Offline data: ' + note + '\\n\\n' + note\n"
        f"Path({str(tmp_path / 'report.md')!r}).write_text(md)\n"
        f"notebooks.show_report(types.SimpleNamespace(paths={{'md': {str(tmp_path / 'report.md')!r}}}))")
    record_cell = ("from entmask import config, notebooks\ncfg = config.resolve(profile)\n"
                   "notebooks.record('00_report', {'x': 1.0}, cfg, root=runs_dir)")
    nbformat.write(_notebook(report, "import ipywidgets\nipywidgets.IntSlider(3)", record_cell, params=PARAMS),
                   src / "00_report.ipynb")
    _use_fake_notebooks(monkeypatch, src, ["00_report"])
    assert NB.reproduce("smoke", runs_dir=tmp_path / "runs", progress=False) is True
    out = tmp_path / "runs" / "smoke" / "notebooks"
    p = assert_no_live_record_text((out / "00_report.html").read_text())
    assert len([t for t in p.text if HOSTILE in t]) >= 3  # the cell, the note and the lone line, all as text
    # 2. the saved notebook has no widget state and no dead widget view: the slider shows its text/plain
    nb = nbformat.read(out / "00_report.ipynb", as_version=4)
    assert "widgets" not in nb.metadata
    datas = [o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [d for d in datas if W.WIDGET_MIME in d]
    assert any(d.get("text/plain", "").startswith("IntSlider(value=3") for d in datas)
    report_out = next(d for d in datas if "text/html" in d and "Offline data" in d["text/html"])
    assert "text/markdown" not in report_out  # no raw-markdown rendering for a frontend to pass HTML through


# ---- 2. widget fallback ---------------------------------------------------------------------------------------
def test_drop_widget_state_keeps_any_static_rendering():
    """A plain ipywidget's output (view + text/plain) loses the dead view; the masks' text/html stays; an output
    with nothing else to show is left as it is."""
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    nb = _notebook("w")
    nb.cells[0].outputs = [
        new_output("execute_result", data={W.WIDGET_MIME: view, "text/plain": "IntSlider(value=3)"}, execution_count=1),
        new_output("display_data", data={W.WIDGET_MIME: view, "text/html": "<b>masks</b>", "text/plain": "x"}),
        new_output("display_data", data={W.WIDGET_MIME: view}),
    ]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    W.drop_widget_state(nb)
    a, b, c = (o["data"] for o in nb.cells[0].outputs)
    assert a == {"text/plain": "IntSlider(value=3)"}
    assert b == {"text/html": "<b>masks</b>", "text/plain": "x"}
    assert c == {W.WIDGET_MIME: view} and "widgets" not in nb.metadata


# ---- 3a. an empty GLUE split ------------------------------------------------------------------------------------
@pytest.fixture
def mirror_with_empty_rte(tmp_path) -> Path:
    """A copy of the mirror (links) whose RTE validation split is an empty parquet file of the right columns."""
    real = SHARED / "data"
    if not (real / "glue" / "rte" / "train.parquet").is_file() or not VOCAB.is_dir():
        pytest.skip(f"offline mirror not found at {SHARED}")
    root = tmp_path / "shared"
    data = root / "data"
    (data / "glue" / "rte").mkdir(parents=True)
    (root / "models").symlink_to(SHARED / "models")
    for p in real.iterdir():
        if p.name != "glue":
            (data / p.name).symlink_to(p)
    for p in (real / "glue").iterdir():
        if p.name != "rte":
            (data / "glue" / p.name).symlink_to(p)
    (data / "glue" / "rte" / "train.parquet").symlink_to(real / "glue" / "rte" / "train.parquet")
    val = pd.read_parquet(real / "glue" / "rte" / "validation.parquet")
    val.iloc[:0].to_parquet(data / "glue" / "rte" / "validation.parquet")
    return data


def _one_line(capsys, *args) -> str:
    code = main(list(args))
    _, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("entmask: error: "), (code, lines)
    return lines[0]


def test_empty_validation_split_is_refused_before_training(mirror_with_empty_rte, tiny_mlm, tmp_path, capsys):
    from entmask.config import FinetuneConfig
    from entmask.data import DataError
    from entmask.finetune import finetune_task

    cfg = FinetuneConfig(epochs=1, max_train=32, max_eval=16, max_len=32, precision="fp32", seeds=[0], tasks=["rte"])
    with pytest.raises(DataError) as e:
        finetune_task(tiny_mlm, "rte", cfg, 0, profile="t", name="m", data_dir=str(mirror_with_empty_rte),
                      root=tmp_path / "runs", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "rte split 'validation' holds no examples" in msg
    assert str(mirror_with_empty_rte / "glue" / "rte" / "validation.parquet") in msg and "MANIFEST.md" in msg
    assert not (tmp_path / "runs" / "t" / "finetune" / "rte").exists() or not any(
        (tmp_path / "runs" / "t" / "finetune" / "rte").iterdir())  # nothing trained, no run folder
    line = _one_line(capsys, "finetune", str(tiny_mlm), "--profile", "smoke", "--tasks", "rte", "--quiet",
                     "--data-dir", str(mirror_with_empty_rte), "--runs-dir", str(tmp_path / "runs"))
    assert "rte split 'validation' holds no examples" in line and "drop rte from" in line


# ---- 3b. a task with no data --------------------------------------------------------------------------------------
def test_finetune_of_a_task_without_data_exits_2_naming_the_mirror(tiny_mlm, tmp_path, capsys):
    from entmask.finetune import absent_reason, majority_row

    mirror = SHARED / "data"
    if (mirror / "glue" / "qqp").exists() or not (mirror / "glue").is_dir():
        pytest.skip("needs the offline mirror without QQP")
    line = _one_line(capsys, "finetune", str(tiny_mlm), "--profile", "smoke", "--tasks", "rte,qqp", "--quiet",
                     "--data-dir", str(mirror), "--runs-dir", str(tmp_path / "runs"))
    assert line == (f"entmask: error: --tasks names qqp, which has no data in the mirror {mirror} (see its "
                    f"MANIFEST.md); drop qqp from --tasks or point --data-dir at a mirror that has it")
    assert not (tmp_path / "runs" / "smoke" / "finetune").exists()  # refused before RTE trained
    # experiments and a profile's own task list still skip it quietly, as 'absent'
    assert absent_reason("qqp", str(mirror)) and absent_reason("rte", str(mirror)) is None
    assert majority_row("qqp", str(mirror))["status"] == "absent"


# ---- 3c. --only parsed strictly --------------------------------------------------------------------------------------
@pytest.mark.parametrize("only", ["", ",", "01,", " , 03"])
def test_reproduce_only_with_an_empty_name_is_refused(only, tmp_path, capsys):
    out = tmp_path / "smoke" / "notebooks"
    out.mkdir(parents=True)
    before = json.dumps({"ok": True, "notebooks": [{"notebook": "01_teacher_masking", "status": "ok"}]})
    (out / "reproduce.json").write_text(before)
    line = _one_line(capsys, "reproduce", "--profile", "smoke", "--only", only, "--runs-dir", str(tmp_path))
    assert line == (f"entmask: error: --only {only!r} has an empty notebook name; give comma-separated numbers or "
                    f"names, e.g. --only 01,03 (or leave --only out to run all)")
    assert (out / "reproduce.json").read_text() == before  # untouched
    with pytest.raises(NB.NotebookError, match="empty notebook name"):
        NB.select([])
    assert NB.select(" 1 , 03") == ["01_teacher_masking", "03_knowledge_distillation"]


# ---- 3d. Ctrl-C during reproduce ----------------------------------------------------------------------------------
def _stale_previous_run(out: Path, names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for n in names:
        (out / f"{n}.html").write_text("<html>the previous run's export</html>")
    (out / "reproduce.json").write_text(json.dumps({"ok": True, "finished": True, "notebooks": []}))


def test_ctrl_c_marks_the_summary_unfinished_and_removes_the_stale_export(tmp_path, monkeypatch, capsys):
    """papermill interrupted mid-notebook (a partial notebook written, with a widget view): the summary says
    interrupted, the notebook being run has no HTML export left from before, the CLI exits 130."""
    import papermill

    src = tmp_path / "nbs"
    src.mkdir()
    for n in ("00_a", "01_b", "02_c"):
        nbformat.write(_notebook("x = 1", params=PARAMS), src / f"{n}.ipynb")
    _use_fake_notebooks(monkeypatch, src, ["00_a", "01_b", "02_c"])
    out = tmp_path / "runs" / "smoke" / "notebooks"
    _stale_previous_run(out, ["00_a", "01_b", "02_c"])

    def fake_execute(inp, target, **kw):
        partial = _notebook("x = 1")
        partial.cells[0].outputs = [new_output("display_data", data={
            W.WIDGET_MIME: {"model_id": "m", "version_major": 2, "version_minor": 0}, "text/plain": "IntSlider()"})]
        nbformat.write(partial, target)
        if "01_b" in inp:
            raise KeyboardInterrupt
        (out / f"{Path(inp).stem}.metrics.json").write_text(json.dumps({"headline": [{"name": "x", "value": 1}]}))

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    assert main(["reproduce", "--profile", "smoke", "--runs-dir", str(tmp_path / "runs"), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"interrupted in 01_b; {out / 'reproduce.json'} marks this run unfinished" in err
    s = json.loads((out / "reproduce.json").read_text())
    assert (s["ok"], s["finished"], s["state"]) == (False, False, "interrupted")
    assert [(r["notebook"], r["status"]) for r in s["notebooks"]] == [("00_a", "ok"), ("01_b", "interrupted"),
                                                                       ("02_c", "not run")]
    assert (out / "00_a.html").read_text() != "<html>the previous run's export</html>"  # this run's export
    assert not (out / "01_b.html").exists()  # the previous export is gone, none made of the partial notebook
    partial = nbformat.read(out / "01_b.ipynb", as_version=4)
    assert partial.cells[0].outputs[0]["data"] == {"text/plain": "IntSlider()"}  # no dead widget view


def test_ctrl_c_in_a_real_kernel_leaves_an_unfinished_summary(tmp_path, monkeypatch):
    """The same with papermill and a kernel: SIGINT (as Ctrl-C) while a cell sleeps."""
    import _thread
    import signal

    src = tmp_path / "nbs"
    src.mkdir()
    nbformat.write(_notebook("import time\ntime.sleep(60)", params=PARAMS), src / "00_sleeps.ipynb")
    _use_fake_notebooks(monkeypatch, src, ["00_sleeps"])
    out = tmp_path / "runs" / "smoke" / "notebooks"
    _stale_previous_run(out, ["00_sleeps"])
    target = out / "00_sleeps.ipynb"

    sent = []  # when the watcher interrupted, for the failure message

    def sleep_cell_running() -> bool:
        try:  # papermill rewrites the file as each cell starts: a read may catch it half-written or replaced
            cells = json.loads(target.read_text())["cells"]
        except (OSError, ValueError, KeyError):
            return False
        return any("time.sleep" in "".join(c["source"]) and c.get("metadata", {}).get("papermill", {}).get("status")
                   == "running" for c in cells)

    def interrupt_when_running():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # papermill saves the notebook as each cell starts
            if sleep_cell_running():
                time.sleep(1.0)
                sent.append(time.monotonic())
                _thread.interrupt_main()
                return
            time.sleep(0.2)

    # A terminal's Ctrl-C meets Python's default SIGINT handler; an earlier test in the same xdist worker may have
    # left another (interrupt_main does nothing under SIG_IGN or SIG_DFL: CI saw the cell sleep out its 60 s)
    before = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    t = threading.Thread(target=interrupt_when_running, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        NB.reproduce("smoke", runs_dir=tmp_path / "runs", progress=False)
    except KeyboardInterrupt:
        pass
    else:
        pytest.fail("reproduce ran to the end: " + (f"the interrupt sent {sent[0] - t0:.1f} s in was not raised"
                                                    if sent else "the watcher never saw the sleeping cell running")
                    + f" (SIGINT handler before this test: {before!r})")
    finally:
        signal.signal(signal.SIGINT, before)
    assert time.monotonic() - t0 < 60  # it stopped, rather than sleeping the cell out
    s = json.loads((out / "reproduce.json").read_text())
    assert (s["ok"], s["finished"], s["state"]) == (False, False, "interrupted")
    assert s["notebooks"][0]["status"] == "interrupted"
    assert not (out / "00_sleeps.html").exists() and target.exists()
    shutil.rmtree(out)


def test_a_note_from_a_record_is_escaped_in_the_markdown():
    """The notes a table copies from run files (eval_note) go into the .md escaped, as table cells do."""
    from entmask.experiments.core import md_text

    assert md_text("<script>alert(1)</script> QNLI") == "&lt;script&gt;alert(1)&lt;/script&gt; QNLI"
    assert md_text("cold<random") == "cold<random"  # no tag: as written
