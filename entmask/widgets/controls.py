"""The controls both mask widgets share (ipywidgets): sentence, examples, entropy source, scorer, ratio, seed, the
Score button, a status line and the HTML view, with their callbacks and the refresh loop.

What it is: `_WidgetBase`, which holds the widget state (the current sentence, source, ratio and seed are the
controls' values), drives it programmatically (`set_sentence`, `set_ratio`, `score`, ...) and redraws the view
from cached scores; `render_html` and `_repr_mimebundle_` give the same view as static HTML beside the live
widget. `DEFAULT_EXAMPLES` are the example sentences; `_ipywidgets` imports ipywidgets or says how to get it.

What it is not: what a widget shows (`_body`: `entmask.widgets.explorer`), how it is drawn
(`entmask.widgets.render`) or where scores come from (`entmask.widgets.sources`). Only the Score button, a deliberate
pick or `score()` runs a model (an edited sentence too, when its source is already in memory).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from entmask.entropy import SCORERS
from entmask.widgets.render import _FONT, _esc
from entmask.widgets.scores import SentenceScores
from entmask.widgets.sources import _Scorer

DEFAULT_EXAMPLES = (
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital and most populous city of France.",
    "The experiment was repeated three times with different random seeds.",
    "She played the violin in the orchestra for twenty years before retiring.",
)


def _ipywidgets():
    try:  # here, not at the top: the static renderers and the scoring core work without ipywidgets
        import ipywidgets
    except ImportError:  # pragma: no cover - pinned in pyproject
        raise ImportError("the entmask widgets need ipywidgets (pip install ipywidgets==8.1.9); the static "
                          "renderers (render_*_html, static_report) work without it") from None
    return ipywidgets


class _WidgetBase:
    """Shared controls: sentence, examples, source, ratio, seed, Score button, status line and HTML view."""

    kind = "widget"

    def __init__(self, sources, tokenizer, examples: Sequence[str] = DEFAULT_EXAMPLES, sentence: str | None = None,
                 ratio: float = 0.15, seed: int = 0, max_len: int = 128, device: str | torch.device = "cpu",
                 loader: Callable | None = None):
        w = _ipywidgets()
        self._scorer = _Scorer(sources, tokenizer, max_len, device, loader)
        self.examples = [str(e) for e in examples]
        self.tokenizer = tokenizer
        self._quiet = False  # True while we set widget values ourselves (their observers must not act)
        first = sentence if sentence is not None else (self.examples[0] if self.examples else "")
        lay = w.Layout(width="auto")
        self.w_examples = w.Dropdown(options=[("(pick an example)", "")] + [(e[:70], e) for e in self.examples],
                                     value="", description="example", layout=w.Layout(width="95%"))
        self.w_text = w.Textarea(value=first, description="sentence", continuous_update=False,
                                 layout=w.Layout(width="95%", height="60px"))
        self.w_source = w.Dropdown(options=list(self._scorer.sources), description="entropy", layout=lay)
        # beyond the paper: what the strategy ranks (the paper's unmasked-view entropy first)
        self.w_scorer = w.Dropdown(options=self._scorer.scorers(), value="entropy", description="score", layout=lay)
        self.w_ratio = w.FloatSlider(value=ratio, min=0.01, max=1.0, step=0.01, description="ratio",
                                     continuous_update=False, readout_format=".2f")
        self.w_seed = w.IntText(value=seed, description="seed", layout=w.Layout(width="160px"))
        self.w_score = w.Button(description="Score", button_style="primary",
                                tooltip="run the entropy source on the sentence (the only slow step)")
        self.w_status = w.HTML()
        self.w_view = w.HTML()
        self.w_examples.observe(self._on_example, names="value")
        self.w_text.observe(self._on_text, names="value")
        self.w_source.observe(self._on_input, names="value")
        self.w_scorer.observe(self._on_scorer, names="value")
        for c in (self.w_ratio, self.w_seed):
            c.observe(self._on_setting, names="value")
        self.w_score.on_click(lambda _b: self._run_score())

    # -- state ---------------------------------------------------------------------------------------------
    @property
    def sentence(self) -> str:
        return self.w_text.value

    @property
    def source(self) -> str:
        return self.w_source.value

    @property
    def ratio(self) -> float:
        return float(self.w_ratio.value)

    @property
    def seed(self) -> int:
        return int(self.w_seed.value)

    @property
    def stats(self) -> dict:
        """Slow work done so far: model loads, entropy passes and prediction passes."""
        return self._scorer.stats

    def current_scores(self) -> SentenceScores | None:
        """Scores of the current (sentence, source) if already computed; never runs a model."""
        return self._scorer.cached(self.sentence, self.source)

    # -- programmatic drivers (no model runs in these; call score()) ------------------------------------------
    def set_sentence(self, text: str) -> None:
        self.w_text.value = str(text)

    def set_source(self, name: str) -> None:
        if name not in self._scorer.sources:
            raise KeyError(f"unknown entropy source {name!r}; have {', '.join(self._scorer.sources)}")
        self.w_source.value = name

    def set_ratio(self, ratio: float) -> None:
        if not 0 < ratio <= 1:
            raise ValueError(f"ratio={ratio!r} must be in (0, 1]")
        self.w_ratio.value = float(ratio)  # observers re-select the mask from cached entropies

    def set_seed(self, seed: int) -> None:
        self.w_seed.value = int(seed)

    def score(self) -> SentenceScores:
        """Entropies of the current sentence under the current source (cached per (sentence, source))."""
        s = self._scorer.scores(self.sentence, self.source)
        self._refresh()
        return s

    # -- events --------------------------------------------------------------------------------------------
    def _on_example(self, change) -> None:
        if change["new"]:
            self.w_text.value = change["new"]
            self.w_examples.value = ""  # back to the placeholder, so picking the same example again works

    def _on_input(self, change) -> None:
        if not self._quiet:
            self._refresh()  # cached -> shown at once; otherwise the status asks for Score

    def _on_scorer(self, change) -> None:
        self._scorer.scorer = change["new"]
        if not self._quiet:
            self._refresh()  # cached -> shown at once; otherwise the status asks for Score

    def set_scorer(self, name: str) -> None:
        if name not in self._scorer.scorers():
            raise KeyError(f"unknown or unavailable scorer {name!r}; have {', '.join(self._scorer.scorers())}")
        self.w_scorer.value = name

    def _on_text(self, change) -> None:
        # An edited sentence (sent when the box loses focus: continuous_update=False) is scored at once when its
        # source is already in memory: one forward pass, milliseconds. Only a model still to be loaded waits for
        # Score. Why not always wait: ipywidgets sends a click as a custom message, which can overtake a text
        # update still buffered in the browser (one state update in flight at a time), so "type, then Score"
        # on a busy kernel scored the old text and then showed "not scored yet" for the new one.
        if self._quiet:
            return
        needs = [self.source] + (["teacher"] if SCORERS[self._scorer.scorer].uses_reference else [])
        if all(self._scorer.loaded(n) for n in needs):
            self._run_score()
        else:
            self._refresh()

    def _on_setting(self, change) -> None:
        if not self._quiet:
            self._refresh()

    def _run_score(self) -> None:
        self.w_status.value = "<i>scoring…</i>"
        try:
            self.score()
        except Exception as e:  # noqa: BLE001 - a widget callback must show the error, not lose it in a log
            self.w_status.value = f'<span style="color:#b00">{_esc(type(e).__name__)}: {_esc(e)}</span>'

    # -- rendering -----------------------------------------------------------------------------------------
    def _refresh(self) -> None:
        scores = self.current_scores()
        if scores is None:
            self.w_status.value = ('<span style="color:#a60">not scored yet for this sentence and source: press '
                                   '<b>Score</b></span>')
            self.w_view.value = ""  # the old sentence's tokens would read as this one's
            return
        self.w_status.value = ""
        self.w_view.value = self._body(scores)

    def _body(self, scores: SentenceScores) -> str:
        raise NotImplementedError

    def render_html(self, score_if_needed: bool = True) -> str:
        """The current state as static HTML (no JavaScript). Scores the sentence first if it is not cached."""
        scores = self.current_scores()
        if scores is None and score_if_needed:
            scores = self._scorer.scores(self.sentence, self.source)
        if scores is None:
            return f'<div class="em-{self.kind}" style="{_FONT}">(not scored yet)</div>'
        return f'<div class="em-{self.kind}" style="{_FONT}">{self._body(scores)}</div>'

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        """The live widget for Jupyter frontends plus a static text/html rendering for everything else."""
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self.render_html()
        bundle["text/plain"] = f"<entmask {type(self).__name__}: {self.sentence[:60]!r} ({self.source})>"
        return bundle
