"""Showing the masks in a notebook and keeping them in its exports: `show` and `drop_widget_state`.

What it is: `show` (display a widget, a `SentenceScores` or an HTML string; with $ENTMASK_STATIC_WIDGETS=1 only the
static HTML) and `drop_widget_state` (remove saved widget state and dead widget views from an executed notebook, so
nbconvert and JupyterLab show the static `text/html` rendering instead of "model not found" or a CDN's JavaScript).

What it is not: no rendering of its own (`entmask.widgets.render` escapes every token and name; a string given to
`show` is shown as HTML as it is) and no notebook execution (`entmask.notebooks`).
"""
from __future__ import annotations

import os

from entmask.widgets.render import render_entropy_bars_html, render_tokens_html
from entmask.widgets.scores import SentenceScores

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ENV_STATIC = "ENTMASK_STATIC_WIDGETS"  # set to 1: `show` emits only the static HTML (see `show`)


def drop_widget_state(nb):
    """Remove the saved widget state and the dead widget views from an executed notebook (an nbformat node), in
    place; returns it.

    nbclient and papermill store widget state by default (`store_widget_state=True`). With it, nbconvert's HTML
    export renders every widget output as the widget view, whose JavaScript comes from a CDN (blank offline), and
    never uses the text/html rendering that `MaskExplorer`/`StrategyComparison` put in the same output. Without
    it, nbconvert falls back to that static HTML. Equivalent: execute with
    `papermill.execute_notebook(..., store_widget_state=False)` or `NotebookClient(..., store_widget_state=False)`.
    """
    nb.metadata.pop("widgets", None)
    # An executed notebook opened later has no live kernel and now no saved state, so a widget view would say
    # "model not found" (JupyterLab prefers it once the notebook is trusted): where an output carries any other
    # rendering (the masks' text/html, a plain widget's text/plain), keep only that, trusted or not.
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            data = out.get("data") or {}
            if WIDGET_MIME in data and len(data) > 1:
                data.pop(WIDGET_MIME)
    return nb


def show(obj, static: bool | None = None) -> None:
    """Display a widget object, a SentenceScores, or an HTML string in a notebook. A string is shown as HTML as it
    is, so build it from escaped parts (the render_* functions and `render_html` escape every token and name).

    `static` (default: $ENTMASK_STATIC_WIDGETS set to 1) displays only the text/html rendering, with no live
    widget. The default display carries both, but an nbconvert HTML export uses the static one only if the
    notebook holds no saved widget state (see `drop_widget_state`).
    """
    # IPython only where a notebook displays something (and looked up at each call, as tests replace display)
    from IPython.display import HTML, display

    if static is None:
        static = os.environ.get(ENV_STATIC, "0") not in ("", "0", "false")
    if isinstance(obj, str):
        display(HTML(obj))
    elif isinstance(obj, SentenceScores):
        display(HTML(render_tokens_html(obj) + render_entropy_bars_html(obj)))
    elif static and hasattr(obj, "render_html"):
        display(HTML(obj.render_html()))
    else:
        display(obj)
