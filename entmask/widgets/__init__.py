"""Widgets: look at which tokens each masking strategy picks in one sentence, and what the model predicts there.

What it is: a pure-logic core that needs no notebook (`score_sentence`, `choose_mask`, `top_predictions`, and the
static HTML renderers `render_tokens_html`, `render_entropy_bars_html`, `render_comparison_html`, `static_report`),
plus a thin ipywidgets layer over it (`MaskExplorer`, `StrategyComparison`, `show`). Everything the widgets show is
also available as self-contained HTML (inline CSS only, no JavaScript, no external URLs), so results folders and
executed notebooks exported offline by nbconvert show the masks without the widget JavaScript. For the export,
execute with `store_widget_state=False` (papermill/nbclient) or call `drop_widget_state` first: with saved widget
state nbconvert renders the widget view (JavaScript from a CDN) instead of the static HTML.

What it is not: it selects masks only through `entmask.masking.select_mask` and scores tokens only through
`entmask.entropy.model_entropy`, so what it shows is what training does; it trains nothing and writes nothing
unless asked (`static_report(..., path=...)`).

Loading a model happens only on an explicit request: the Score button, picking a token to predict, or the
programmatic `score()` / `predict()` / `render_html()`. An edited sentence is scored when the box loses focus if its
source is already loaded (one forward pass). Changing the strategy, ratio or seed re-selects the mask from cached
entropies, which are kept per (sentence, source).

The modules, each saying what it is and is not:
    scores      SentenceScores, score_sentence, choose_mask, top_predictions, mean_masked_entropy, alternating_side,
                fixed_scale: the pure-logic core
    render      render_tokens_html, render_entropy_bars_html, render_comparison_html, render_predictions_html,
                truncation_note, static_report: the static HTML (every token and name escaped)
    sources     sources_from_run and _Scorer: entropy sources loaded on first use, the score cache
    controls    _WidgetBase: the shared ipywidgets controls, callbacks and refresh; DEFAULT_EXAMPLES
    explorer    MaskExplorer, StrategyComparison
    display     show, drop_widget_state, WIDGET_MIME, ENV_STATIC
"""
from __future__ import annotations

# The package re-exports every name the single-module widgets.py defined, so `from entmask import widgets as W;
# W.MaskExplorer(...)`, notebooks, tests and entmask.notebooks keep working; new code may import from the submodules.
from entmask.widgets.scores import (  # noqa: F401
    SentenceScores, _device_of, alternating_side, choose_mask, fixed_scale, mean_masked_entropy, score_sentence,
    top_predictions,
)
from entmask.widgets.render import (  # noqa: F401
    _CONTAIN, _FONT, _MASK_COLOR, _MASK_TEXT, _STOPS, _Scale, _esc, _fmt, _hex, _legend, _mask_list, _page,
    _token_spans, render_comparison_html, render_entropy_bars_html, render_predictions_html, render_tokens_html,
    static_report, truncation_note,
)
from entmask.widgets.sources import (  # noqa: F401
    _Scorer, sources_from_run,
)
from entmask.widgets.controls import (  # noqa: F401
    DEFAULT_EXAMPLES, _ipywidgets, _WidgetBase,
)
from entmask.widgets.explorer import (  # noqa: F401
    MaskExplorer, StrategyComparison,
)
from entmask.widgets.display import (  # noqa: F401
    ENV_STATIC, WIDGET_MIME, drop_widget_state, show,
)

__all__ = ["SentenceScores", "score_sentence", "choose_mask", "top_predictions", "mean_masked_entropy",
           "render_tokens_html", "render_entropy_bars_html", "render_comparison_html", "render_predictions_html",
           "static_report", "sources_from_run", "drop_widget_state", "MaskExplorer", "StrategyComparison", "show",
           "DEFAULT_EXAMPLES"]
