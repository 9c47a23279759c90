"""Running the numbered notebooks: `reproduce` (what `entmask reproduce` / `make reproduce` call) executes them with
papermill, exports each as HTML and prints a summary.

What it is:
    NOTEBOOKS        the notebooks, in the order they run (later ones reuse the runs of earlier ones by hash)
    select           which of them `--only 01,03` means
    reproduce        execute them into runs/<profile>/notebooks/<name>.ipynb, each with an HTML export beside it,
                     and print a summary (status, seconds, headline numbers); reproduce.json records it
    export_html      nbconvert HTML of an executed notebook, without saved widget state, so the mask widgets'
                     static HTML shows offline (see `entmask.widgets.drop_widget_state`)
    ensure_kernel    a Jupyter kernel spec for *this* interpreter (from entmask.notebook_kernel, which also starts
                     the one kernel of `reproduce(shared_kernel=True)` and resets it between notebooks)
    output_dir / read_record    where executed notebooks and their metrics.json go, and reading one back

What it is not: nothing a notebook calls while it runs (entmask.notebook_results, entmask.committed_results,
entmask.notebook_setup), and no training. Tests that swap the notebook list patch NOTEBOOKS / NOTEBOOK_DIR here,
where `select` and `notebook_path` read them (entmask.notebooks only re-exports them).

Running one notebook by hand with papermill's own CLI (from the repository root, venv active):

    papermill notebooks/01_teacher_masking.ipynb out.ipynb -p profile tiny -k python3 \
        -p runs_dir $PWD/runs -p data_dir /path/to/shared/data

where the kernel must run this venv's Python. With the venv activated, the venv's own `python3` spec does (it
starts `python` from PATH: `-k python3`); `make kernel` installs one named `entmask` for your user (`-k entmask`);
and `entmask-python`, the one `reproduce` uses, points at this interpreter by absolute path once written
(`python -c "import entmask.notebooks as n; print(n.ensure_kernel())"`, then `export JUPYTER_PATH=<printed dir>`).
Extra config overrides go in as a list: `-y '{overrides: [train.max_steps=50]}'`. Executed this way the notebook
keeps its widget state, so export it with `export_html` (which drops it) rather than plain nbconvert.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from entmask import __version__, runs
from entmask.notebook_kernel import KERNEL_NAME, ensure_kernel, one_kernel, reset_kernel

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = [
    "00_entropy_exploration",
    "01_teacher_masking",
    "02_self_masking",
    "03_knowledge_distillation",
    "04_weight_analysis",
    "05_ablations",
    "06_beyond_the_paper",
]
GPU_PROFILES = ("bertlet", "bert")  # profiles meant for a GPU (the corpus ablation runs only there)


class NotebookError(RuntimeError):
    """A notebook problem (unknown name, missing file); the message is one line."""


# ---- which notebooks --------------------------------------------------------------------------------------------
def select(only: Sequence[str] | str | None = None) -> list[str]:
    """The notebooks to run, in NOTEBOOKS order: all (None), or those named by number ('01', '1'), prefix or full
    name; an empty name or an empty list is a NotebookError."""
    if only is None:
        return list(NOTEBOOKS)
    items = only.split(",") if isinstance(only, str) else [str(i) for i in only]
    shown = repr(only if isinstance(only, str) else ",".join(items))
    # Strict: an empty name ("", ",", "01,") is a typo, not "all" or "none" (which would overwrite reproduce.json).
    if not items or any(not i.strip() for i in items):
        raise NotebookError(f"--only {shown} has an empty notebook name; give comma-separated numbers or names, "
                            f"e.g. --only 01,03 (or leave --only out to run all)")
    picked = set()
    for item in items:
        key = item.strip().removesuffix(".ipynb")
        if key.isdigit():
            key = key.zfill(2)
        hits = [n for n in NOTEBOOKS if n == key or n.split("_", 1)[0] == key or n.startswith(key + "_")
                or (len(key) > 2 and n.startswith(key))]
        if not hits:
            raise NotebookError(f"unknown notebook {item!r}; choose from {', '.join(NOTEBOOKS)} (or their numbers)")
        picked.update(hits)
    return [n for n in NOTEBOOKS if n in picked]


def notebook_path(name: str) -> Path:
    p = NOTEBOOK_DIR / f"{name}.ipynb"
    if not p.exists():
        raise NotebookError(f"{p} does not exist; each notebook is a pair NN_name.py + NN_name.ipynb: "
                            f"`make notebooks` (jupytext --sync) writes the .ipynb of a .py")
    return p


def output_dir(profile: str, root: str | Path | None = None) -> Path:
    """runs/<profile>/notebooks/ (executed notebooks, their HTML exports and metrics.json files)."""
    d = runs.profile_dir(profile, root) / "notebooks"
    d.mkdir(parents=True, exist_ok=True)
    return d



def read_record(profile: str, name: str, root: str | Path | None = None) -> dict | None:
    p = runs.profile_dir(profile, root) / "notebooks" / f"{name}.metrics.json"
    return runs.read_json(p) if p.exists() else None



@contextlib.contextmanager
def _environ(**values: str | None) -> Iterator[None]:
    """Set (or, with None, leave alone) environment variables for the duration; restore them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is not None:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---- export -------------------------------------------------------------------------------------------------------
def export_html(executed_nb: str | Path, out_html: str | Path | None = None) -> Path:
    """nbconvert HTML of an executed notebook after dropping its saved widget state, so widget outputs fall back
    to their static text/html (the masks) instead of a JavaScript view that is blank offline. Returns the path."""
    import nbformat
    from nbconvert import HTMLExporter

    from entmask.widgets import drop_widget_state

    executed_nb = Path(executed_nb)
    out_html = Path(out_html) if out_html else executed_nb.with_suffix(".html")
    nb = drop_widget_state(nbformat.read(executed_nb, as_version=4))
    body, _ = HTMLExporter().from_notebook_node(nb)
    runs.atomic_write_text(out_html, body)
    return out_html


def _finish_output(path: Path, source: Path) -> None:
    """Drop any saved widget state from an executed notebook, note the kernel it ran on (metadata.papermill), and
    keep the source's kernel spec (python3), which any Jupyter has, rather than `entmask-python`."""
    import nbformat

    from entmask.widgets import drop_widget_state

    nb = nbformat.read(path, as_version=4)
    kernelspec = nbformat.read(source, as_version=4).metadata.get("kernelspec")
    if kernelspec is not None:
        nb.metadata["kernelspec"] = kernelspec
    nb.metadata.setdefault("papermill", {})["kernel_name"] = KERNEL_NAME
    nbformat.write(drop_widget_state(nb), path)


# ---- reproduce -----------------------------------------------------------------------------------------------------
def _as_override_list(overrides) -> list[str]:
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        return [f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in overrides.items()]
    return [str(o) for o in overrides]


def _first_line(src: str) -> str:
    for line in (src or "").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:100]
    return ""


def reproduce(profile: str = "tiny", only: Sequence[str] | str | None = None, data_dir: str | Path | None = None,
              overrides: Sequence[str] | Mapping | None = None, progress: bool = True,
              runs_dir: str | Path | None = None, timeout: int | None = None, shared_kernel: bool = False) -> bool:
    """Execute the notebooks in order with papermill into runs/<profile>/notebooks/<name>.ipynb (+ .html).

    Parameters injected into each notebook: profile, data_dir, runs_dir (absolute), overrides (["key=value", ...]
    config overrides as dotted keys, as `entmask reproduce --set`), progress=False. Notebooks run with notebooks/
    as their working directory, under a kernel spec for this interpreter (`ensure_kernel`), without saved widget
    state (so the HTML exports show the static masks). On the first failure it stops, names the notebook and the
    cell, keeps (and exports) the partial notebook; the rest are reported as skipped. Prints a summary table and
    writes runs/<profile>/notebooks/reproduce.json, first as `"finished": false` (state 'running'), then after
    every notebook; Ctrl-C leaves it `"state": "interrupted"`, keeps the partial notebook, removes that notebook's
    previous HTML export and re-raises. Returns True when every selected notebook succeeded.

    Each notebook gets a fresh kernel, as "Restart & Run All" in JupyterLab does. `shared_kernel=True` starts one
    kernel for all of them and resets it between notebooks (`reset_kernel`: every name a notebook defined is gone, the
    figures closed, execution counts from 1) but keeps the imported modules: what torch, transformers and entmask
    cost to import (5-10 s) and the kernel's start (~4 s) are paid once instead of per notebook, 75 of the 364 s of
    the smoke notebooks on the AVX2 CPU (the test suite runs them so). Module-level state survives, so a notebook
    that relied on another's would pass here and fail alone: the default keeps them apart.
    """
    from entmask import config

    names = select(only)
    override_list = _as_override_list(overrides)
    data_dir = data_dir or os.environ.get("ENTMASK_DATA_DIR") or None
    data_dir = str(Path(data_dir).expanduser().resolve()) if data_dir else None
    # Fail fast, in one line, on a bad profile or override (before starting any kernel).
    check = config.parse_set_args(override_list)
    if data_dir:
        check.setdefault("data.data_dir", data_dir)
    config.resolve(profile, check)
    root = runs.runs_root(runs_dir).expanduser().resolve()
    out = output_dir(profile, root)
    for n in names:
        notebook_path(n)
    jupyter_data = ensure_kernel()
    jp = os.pathsep.join([str(jupyter_data)] + ([os.environ["JUPYTER_PATH"]] if os.environ.get("JUPYTER_PATH")
                                                else []))
    params = {"profile": profile, "data_dir": data_dir, "runs_dir": str(root), "overrides": override_list,
              "progress": False}
    base = {"profile": profile, "overrides": override_list, "runs_dir": str(root), "data_dir": data_dir,
            "entmask_version": __version__, "git_commit": runs.git_commit()}
    summary = out / "reproduce.json"
    rows: list[dict] = []
    failed = False
    # Written now and after every notebook: a run cut short (Ctrl-C, a kill) leaves a summary that says it is
    # unfinished, never the previous run's "ok: true".
    _write_summary(summary, base, rows, names, "running")
    # TQDM_DISABLE: the kernels inherit it (tqdm reads it at import), so executed notebooks carry no progress-bar
    # widgets; papermill's own bar here was created from an already imported tqdm and is unaffected.
    with _environ(JUPYTER_PATH=jp, ENTMASK_RUNS_DIR=str(root), ENTMASK_DATA_DIR=data_dir,
                  PYDEVD_DISABLE_FILE_VALIDATION="1", TQDM_DISABLE="1"), \
            one_kernel(shared_kernel, cwd=NOTEBOOK_DIR) as km:
        for i, name in enumerate(names, 1):
            target = out / f"{name}.ipynb"
            # A notebook that fails or is skipped must not show an older run's numbers.
            (out / f"{name}.metrics.json").unlink(missing_ok=True)
            if failed:
                rows.append({"notebook": name, "status": "skipped", "seconds": None, "headline": {}})
                continue
            # Nor may the previous run's export sit beside this run's (partial) notebook as if it were current.
            target.with_suffix(".html").unlink(missing_ok=True)
            if progress:
                print(f"entmask reproduce [{i}/{len(names)}] {name} ({profile}) -> {target}", flush=True)
            try:
                row = _execute(name, target, params, progress, timeout, km)
            except KeyboardInterrupt:
                _interrupted(name, target, summary, base, rows, names)
                raise
            failed = row["status"] == "failed"
            if not failed:
                _read_headline(row, profile, name, root)
            rows.append(row)
            _write_summary(summary, base, rows, names, "running")
    ok = _write_summary(summary, base, rows, names, "finished")
    print(summary_table(rows))
    return ok


def _execute(name: str, target: Path, params: dict, progress: bool, timeout: int | None, km=None) -> dict:
    """Run one notebook with papermill into `target` (in kernel `km`, reset first, when one is shared), finish it
    (no widget views) and export its HTML; the row for reproduce.json, status 'ok' or 'failed' (which names the
    cell). KeyboardInterrupt passes through."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    t0 = time.perf_counter()
    row = {"notebook": name, "status": "ok", "seconds": None, "headline": {}, "output": str(target)}
    try:
        shared = {}
        if km is not None:
            reset_kernel(km)
            shared = {"km": km}
        try:
            pm.execute_notebook(str(notebook_path(name)), str(target), parameters=params,
                                kernel_name=KERNEL_NAME, cwd=str(NOTEBOOK_DIR), progress_bar=progress,
                                store_widget_state=False, execution_timeout=timeout, **shared)
        finally:
            if km is not None:
                km.close_clients()  # the client papermill opened on the shared kernel for this notebook
    except PapermillExecutionError as e:
        row.update(status="failed", cell=e.cell_index, error=f"{e.ename}: {e.evalue}".strip())
        print(f"entmask reproduce: {name} FAILED in cell {e.cell_index} (execution count {e.exec_count}: "
              f"`{_first_line(e.source)}`): {e.ename}: {str(e.evalue).strip()[:300]}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - a dead kernel, a timeout: report, keep the partial notebook
        row.update(status="failed", cell=None, error=f"{type(e).__name__}: {str(e).strip()[:300]}")
        print(f"entmask reproduce: {name} FAILED: {type(e).__name__}: {str(e).strip()[:300]}", file=sys.stderr)
    row["seconds"] = round(time.perf_counter() - t0, 1)
    if target.exists():
        try:
            _finish_output(target, notebook_path(name))
            row["html"] = str(export_html(target))
        except Exception as e:  # noqa: BLE001 - an export problem must not hide the run's result
            print(f"entmask reproduce: HTML export of {target.name} failed: {type(e).__name__}: {e}",
                  file=sys.stderr)
    if row["status"] == "failed":
        print(f"entmask reproduce: the partial notebook is kept at {target}", file=sys.stderr)
    return row


def _read_headline(row: dict, profile: str, name: str, root: Path) -> None:
    """Fill a finished notebook's row with the headline numbers of its record (status 'no-record' without one)."""
    rec = read_record(profile, name, root)
    if rec is None:
        row["status"] = "no-record"
        print(f"entmask reproduce: {name} ran but wrote no {name}.metrics.json (its Record results "
              f"cell must call entmask.notebooks.record)", file=sys.stderr)
    else:
        row["headline"] = {h["name"]: h["value"] for h in rec.get("headline", [])}


def _interrupted(name: str, target: Path, summary: Path, base: dict, rows: list[dict],
                 names: Sequence[str]) -> None:
    """Ctrl-C during `name`: mark the summary interrupted, keep the partial notebook without its dead widget views
    (shown as static output when opened) and export no HTML for it, so nothing partial passes as current."""
    rows.append({"notebook": name, "status": "interrupted", "seconds": None, "headline": {},
                 "output": str(target) if target.exists() else None})
    _write_summary(summary, base, rows, names, "interrupted")
    target.with_suffix(".html").unlink(missing_ok=True)  # Ctrl-C during the export: none of a partial run
    if target.exists():
        with contextlib.suppress(Exception):  # a half-written notebook: keep it as it is
            _finish_output(target, notebook_path(name))
    print(f"entmask reproduce: interrupted in {name}; {summary} marks this run unfinished"
          + (f", the partial notebook is kept at {target} (no HTML export)" if target.exists() else ""),
          file=sys.stderr)


def _write_summary(path: Path, base: dict, rows: Sequence[dict], names: Sequence[str], state: str) -> bool:
    """reproduce.json for `state` 'running', 'interrupted' or 'finished': the rows so far, then every selected
    notebook not reached yet as 'not run'. Only a finished run whose notebooks all succeeded is ok; returns ok."""
    done = {r["notebook"] for r in rows}
    pending = [{"notebook": n, "status": "not run", "seconds": None, "headline": {}} for n in names if n not in done]
    ok = state == "finished" and all(r["status"] == "ok" for r in rows)
    runs.write_json(path, {**base, "ok": ok, "finished": state == "finished", "state": state,
                           "notebooks": list(rows) + pending})
    return ok


def _fmt_num(v) -> str:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return str(v)
    return f"{v:.4g}"


def summary_table(rows: Sequence[dict]) -> str:
    """The reproduce summary: notebook, status, duration (s) and headline numbers, as aligned text."""
    head = ("notebook", "status", "time s", "headline")
    body = []
    for r in rows:
        secs = "" if r.get("seconds") is None else f"{r['seconds']:.1f}"
        hl = ", ".join(f"{k}={_fmt_num(v)}" for k, v in (r.get("headline") or {}).items())
        if r.get("status") == "failed":
            where = f"cell {r['cell']}: " if r.get("cell") is not None else ""
            hl = where + (r.get("error") or "")[:90]
        body.append((r["notebook"], r["status"], secs, hl))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(3)]
    lines = ["  ".join([head[0].ljust(widths[0]), head[1].ljust(widths[1]), head[2].rjust(widths[2]), head[3]])]
    for b in body:
        lines.append("  ".join([b[0].ljust(widths[0]), b[1].ljust(widths[1]), b[2].rjust(widths[2]), b[3]]))
    return "\n".join(lines)


__all__ = ["NOTEBOOKS", "NOTEBOOK_DIR", "KERNEL_NAME", "GPU_PROFILES", "NotebookError", "select", "notebook_path",
           "output_dir", "read_record", "ensure_kernel", "export_html", "reproduce", "summary_table"]
