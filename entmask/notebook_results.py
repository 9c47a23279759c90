"""What the notebooks call to keep and show their results: tables and figures written under
runs/<profile>/results/, the reports of experiments shown as escaped HTML, and each notebook's record.

What it is:
    record           a notebook's "Record results" cell: runs/<profile>/notebooks/<name>.metrics.json with the
                     metrics, the headline numbers `reproduce` prints, the resolved config, the entmask version and
                     the git commit
    experiment_metrics    the numbers of an ExperimentResult worth recording
    show_report / markdown_html    an experiment's markdown report (whole, or brief: table, warnings, first
                     sentences of its notes) as HTML in which no raw HTML survives
    show_figures     the PNG figures an experiment wrote
    live_label       the line before a paper notebook's live runs: evidence, or a demonstration on the plateau
    save_figure / save_table / to_markdown / results_path / tokenizer_of    small I/O helpers

What it is not: no training, masking or metric logic (the library modules the notebooks call do that), no
notebook execution (entmask.notebook_run) and no committed records (entmask.committed_results).
"""
from __future__ import annotations

import datetime as _dt
import math
import re
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

from entmask import __version__, runs
from entmask.notebook_run import output_dir

HEADLINE_MAX = 4  # numbers per notebook in the summary table when a notebook names none


def results_path(cfg, name: str, root: str | Path | None = None) -> Path:
    """runs/<profile>/results/<name> (the folder the experiments write their tables and figures to)."""
    return runs.results_dir(cfg.profile, root) / name


def save_figure(fig, name: str, cfg, root: str | Path | None = None, dpi: int = 120) -> Path:
    """Write a matplotlib figure as runs/<profile>/results/<name>.png and return the path."""
    path = results_path(cfg, f"{name}.png", root)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


def to_markdown(df, floatfmt: str = ".3f", index: bool = True) -> str:
    """A GitHub-flavoured markdown table of a DataFrame (no tabulate needed); text cells go through md_cell, so a
    name or note from a run's files that holds markup is HTML-escaped and shows as text."""
    from entmask.experiments.core import md_cell

    def cell(v) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else format(v, floatfmt)
        return md_cell(str(v))  # str first: None stays "None", as before

    cols = [md_cell(str(c)) for c in ([df.index.name or ""] if index else []) + list(df.columns)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for idx, row in df.iterrows():
        vals = ([cell(idx)] if index else []) + [cell(v) for v in row.tolist()]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def tokenizer_of(cfg):
    """The tokenizer the profile's runs use (cfg.data.tokenizer, offline mirror first), for widgets."""
    from entmask.data import load_tokenizer

    return load_tokenizer(cfg.data.tokenizer, cfg.data.data_dir, trust_remote_code=cfg.trust_remote_code)


def save_table(df, name: str, cfg, root: str | Path | None = None, index: bool = False) -> dict[str, Path]:
    """Write a DataFrame as runs/<profile>/results/<name>.csv and .md; returns {'csv': path, 'md': path}."""
    csv, md = results_path(cfg, f"{name}.csv", root), results_path(cfg, f"{name}.md", root)
    runs.atomic_write_text(csv, df.to_csv(index=index))
    runs.atomic_write_text(md, to_markdown(df, index=index))
    return {"csv": csv, "md": md}


def _leaves(d: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested dicts to dotted keys -> scalar leaves (numpy scalars unwrapped)."""
    out: dict[str, Any] = {}
    if isinstance(d, Mapping):
        for k, v in d.items():
            out.update(_leaves(v, f"{prefix}{k}."))
    else:
        if hasattr(d, "item") and not isinstance(d, (str, bytes)):
            try:
                d = d.item()
            except (ValueError, TypeError):
                pass
        out[prefix.rstrip(".")] = d
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def experiment_metrics(res, columns: Sequence[str] = ("Total", "Total sd", "delta", "delta_lo", "delta_hi",
                                                      "heldout_accuracy", "unigram_accuracy", "left_plateau"),
                       tasks: bool = True) -> dict:
    """The numbers of an ExperimentResult worth recording: {label: {column: value}} for its own rows (the numeric
    `scores` frame, source 'ours'), the task columns with a score, and 'majority' (the majority-class Total)."""
    from entmask.experiments import TASK_LABEL, TASK_ORDER

    sc = res.extra["scores"]
    task_cols = [TASK_LABEL[t] for t in TASK_ORDER if TASK_LABEL[t] in sc.columns] if tasks else []
    out: dict = {}
    for _, r in sc[sc["source"] == "ours"].iterrows():
        d = {}
        for c in list(columns) + task_cols:
            v = _leaves(r[c]).get("") if c in r.index else None
            if isinstance(v, bool) or _is_number(v):
                d[c] = v
            elif v is None or isinstance(v, float):
                d[c] = None  # not available: an absent task, one seed's sd, no delta for the reference row
        out[str(r["label"])] = d
    maj = sc[sc["source"] == "majority"]
    if len(maj):
        v = _leaves(maj["Total"].iloc[0]).get("")
        out["majority"] = {"Total": v if _is_number(v) else None}
    return out


def record(name: str, metrics: Mapping[str, Any], cfg, headline: Sequence[str] | None = None,
           root: str | Path | None = None) -> Path:
    """Write runs/<profile>/notebooks/<name>.metrics.json: the notebook's metrics (nested dicts allowed), the
    headline numbers for the reproduce summary (`headline`: dotted keys into metrics; default the first numbers;
    a headline that is NaN/None is kept as null), the resolved config and its hash, the entmask version and the git
    commit. Refuses metrics without a single finite number. Returns the path."""
    leaves = _leaves(dict(metrics))
    numbers = [k for k, v in leaves.items() if _is_number(v)]
    if not numbers:
        raise ValueError(f"record({name!r}): metrics hold no finite number; record at least one result")
    keys = list(headline) if headline else numbers[:HEADLINE_MAX]
    missing = [k for k in keys if k not in leaves]
    if missing:
        raise ValueError(f"record({name!r}): headline keys {missing} are not in metrics "
                         f"(have {', '.join(list(leaves)[:12])}{', ...' if len(leaves) > 12 else ''})")
    out = {
        "notebook": name, "profile": cfg.profile, "metrics": dict(metrics),
        # a list, not a dict: JSON files here are written with sorted keys, and the order is the author's
        "headline": [{"name": k, "value": leaves[k] if _is_number(leaves[k]) else None} for k in keys],
        "config": cfg.to_dict(), "config_hash": cfg.short_hash(),
        "entmask_version": __version__, "git_commit": runs.git_commit(),
        "python": sys.version.split()[0], "written": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    path = output_dir(cfg.profile, root) / f"{name}.metrics.json"
    runs.write_json(path, out)
    return path


def show_figures(res, keys: Sequence[str] = ("png",), width: int | None = None) -> None:
    """Display the PNG figures an ExperimentResult wrote (res.paths[key]); a missing one is named, not an error."""
    from IPython.display import Image, display

    for k in keys:
        p = res.paths.get(k)
        if p is not None and Path(p).exists():
            display(Image(filename=str(p), width=width))
        else:
            print(f"({res.name}: no figure {k!r} was written, e.g. no task had scores for every run)")


def markdown_html(md: str) -> str:
    """Markdown as HTML in which no raw HTML survives: tags, comments and entities in the text are shown as text,
    links to javascript:/data: URLs are neutralised (mistune, which nbconvert itself uses, is a dependency)."""
    import mistune
    from mistune.util import escape

    class NoRawHTML(mistune.HTMLRenderer):
        """Escapes what markdown would pass through as raw HTML; entities in plain text still read as characters
        (a table cell escaped at production, '&lt;b&gt;', shows '<b>', not '&lt;b&gt;')."""

        def inline_html(self, html: str) -> str:
            return escape(html)

        def block_html(self, html: str) -> str:
            return "<p>" + escape(html.strip()) + "</p>\n"

    return mistune.create_markdown(renderer=NoRawHTML(escape=False), plugins=["table", "strikethrough"])(md)


def brief_report(md: str, path: str | Path | None = None) -> str:
    """A report cut to what a reader needs first: its title, warnings and table, each note's first sentence, and a
    line naming the full report (every note, the per-seed tables, figures and runs) at `path`."""
    out, in_notes = [], False
    for line in md.splitlines():
        if line.startswith("## "):
            break  # per-seed tables, figures, runs: in the full report
        if line.strip() == "Notes:":
            in_notes = True
        elif in_notes and line.startswith("- "):
            first = re.split(r"(?<=[a-z)\]%])\.\s+(?=[A-Z])", line, maxsplit=1)[0]
            line = first if first == line else first + " ..."
        out.append(line)
    while out and not out[-1].strip():
        out.pop()
    if path is not None:
        out += ["", f"The full report (every note, per-seed tables, figures, runs): `{path}`"]
    return "\n".join(out) + "\n"


def show_report(res, brief: bool = False) -> None:
    """Display the markdown report an ExperimentResult wrote (the table, its warnings and notes) as HTML built by
    `markdown_html`: notes copy text from run files (a fine-tuning metrics.json), and nbconvert would pass raw HTML
    in a markdown output through into the notebook's HTML export, live. The markdown stays as text/plain.
    `brief`: the table, warnings and each note's first sentence, and where the full report is (`brief_report`)."""
    from IPython.display import display

    path = Path(res.paths["md"])
    md = path.read_text()
    if brief:
        md = brief_report(md, path)
    display({"text/html": markdown_html(md), "text/plain": md}, raw=True)


def live_label(res, cfg) -> str:
    """The line before a notebook's live runs: evidence, or a demonstration when the random-masked student did not
    leave the unigram plateau (so its rows say nothing about the paper's claims). Displayed; also returned."""
    sc = getattr(res, "extra", {}).get("scores")
    base = None
    if sc is not None and len(sc) and "label" in sc:
        hit = sc[(sc["source"] == "ours") & (sc["label"] == "baseline")]
        base = hit.iloc[0] if len(hit) else None
    head = f"Live runs at profile `{cfg.profile}`"
    if base is None or "left_plateau" not in base.index:
        text = f"**{head}** (trained or reused here; the committed results above are the evidence)."
    else:
        acc, uni = base.get("heldout_accuracy"), base.get("unigram_accuracy")
        rates = (f" (held-out masked accuracy {acc:.1%} vs the unigram rate {uni:.1%})"
                 if isinstance(acc, float) and isinstance(uni, float) else "")
        if base["left_plateau"] is True or base["left_plateau"] == 1:
            text = f"**{head}**: the random-masked student left the unigram plateau{rates}."
        else:
            text = (f"**{head}: a demonstration.** The random-masked student is on the unigram plateau{rates}, so "
                    f"these rows show the pipeline working, not evidence about the paper's claims; the committed "
                    f"results above are that evidence.")
    from IPython.display import display

    display({"text/html": markdown_html(text), "text/plain": text}, raw=True)
    return text


__all__ = ["HEADLINE_MAX", "live_label", "record", "experiment_metrics", "show_report", "brief_report",
           "markdown_html", "show_figures", "save_figure", "save_table", "to_markdown", "results_path", "tokenizer_of"]
