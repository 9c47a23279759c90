"""The two mask widgets: `MaskExplorer` (one sentence, one strategy, and what the model predicts at a masked token)
and `StrategyComparison` (one sentence under every strategy side by side).

What it is: what each widget adds to the shared controls of `entmask.widgets.controls._WidgetBase`: its own
controls (strategy, colour scale, "predict at"), its layout, its callbacks, the prediction cache, and `_body`, the
HTML it shows (built by `entmask.widgets.render`, so the static rendering is the same page).

What it is not: no scoring, loading or caching of entropies (`entmask.widgets.sources`), no HTML of its own beyond
the layout of the rendered parts, and no display (`entmask.widgets.display`).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from entmask.masking import EXTRA, STRATEGIES, canonical_strategy
from entmask.widgets.controls import DEFAULT_EXAMPLES, _ipywidgets, _WidgetBase
from entmask.widgets.render import (
    _CONTAIN, _FONT, _esc, _fmt, render_comparison_html, render_entropy_bars_html, render_predictions_html,
    render_tokens_html, truncation_note,
)
from entmask.widgets.scores import (
    SentenceScores, alternating_side, choose_mask, fixed_scale, mean_masked_entropy, top_predictions,
)


class MaskExplorer(_WidgetBase):
    """One sentence, one strategy: tokens coloured by entropy with the mask marked, the entropy bars, and the
    model's top predictions at a chosen masked token.

    `sources`: {name: model folder or BertForMaskedLM} (e.g. `sources_from_run(run, teacher=teacher_dir)`);
    folders are loaded on first use and kept. Predictions come from the selected source's model.
    """

    kind = "explorer"

    def __init__(self, sources, tokenizer, examples: Sequence[str] = DEFAULT_EXAMPLES, sentence: str | None = None,
                 strategy: str = "high", ratio: float = 0.15, seed: int = 0, top_k: int = 5, max_len: int = 128,
                 device: str | torch.device = "cpu", loader: Callable | None = None, score_now: bool = True,
                 scale: str = "sentence"):
        super().__init__(sources, tokenizer, examples, sentence, ratio, seed, max_len, device, loader)
        w = _ipywidgets()
        if scale not in ("sentence", "fixed"):
            raise ValueError(f"scale={scale!r}: choose sentence (each sentence's min..max) or fixed (0..log V)")
        self.top_k = top_k
        self._preds: dict[tuple, list[tuple[str, float]]] = {}
        self._position: int | None = None
        self.w_strategy = w.Dropdown(options=list(STRATEGIES) + list(EXTRA), value=canonical_strategy(strategy),
                                     description="strategy")
        self.w_strategy.observe(self._on_setting, names="value")
        self.w_scale = w.ToggleButtons(options=[("sentence range", "sentence"), ("fixed 0..log V", "fixed")],
                                       value=scale, description="colours", style={"button_width": "130px"})
        self.w_scale.observe(self._on_setting, names="value")
        self.w_token = w.Dropdown(options=[("(press Score)", None)], value=None, description="predict at",
                                  layout=w.Layout(width="auto"))
        self.w_token.observe(self._on_token, names="value")
        self.widget = w.VBox([
            self.w_examples, self.w_text,
            w.HBox([self.w_source, self.w_scorer, self.w_strategy, self.w_score]),
            w.HBox([self.w_ratio, self.w_seed, self.w_token]),
            self.w_scale, self.w_status, self.w_view])
        if score_now:
            self._run_score()
        else:
            self._refresh()

    @property
    def strategy(self) -> str:
        return self.w_strategy.value

    def set_strategy(self, strategy: str) -> None:
        self.w_strategy.value = canonical_strategy(strategy)

    def mask(self) -> torch.Tensor | None:
        """The current mask (bool [T]) from cached scores, or None if the sentence is not scored yet."""
        scores = self.current_scores()
        return None if scores is None else choose_mask(scores, self.strategy, self.ratio, seed=self.seed)

    def masked_positions(self) -> list[int]:
        m = self.mask()
        return [] if m is None else torch.nonzero(m).flatten().tolist()

    def predict(self, position: int | None = None) -> list[tuple[str, float]]:
        """Top-k predictions at `position` (default: the selected, else the first masked token) under the current
        mask; a forward pass unless cached. Also selects that token in the widget."""
        scores = self._scorer.scores(self.sentence, self.source)
        mask = choose_mask(scores, self.strategy, self.ratio, seed=self.seed)
        pos = self._position if position is None else int(position)
        masked = torch.nonzero(mask).flatten().tolist()
        if pos is None or (position is None and pos not in masked):
            if not masked:
                return []
            pos = masked[0]
        key = (self.sentence, self.source, bytes(mask.numpy()), pos, self.top_k)
        if key not in self._preds:
            self._preds[key] = top_predictions(self._scorer.model(self.source), self.tokenizer, scores.input_ids,
                                               mask, pos, self.top_k)
            self._scorer.stats["prediction_passes"] += 1
        self._position = pos
        self._sync_token_dropdown(scores, mask)
        self.w_view.value = self._body(scores)
        return self._preds[key]

    def _run_score(self) -> None:
        super()._run_score()
        if self.current_scores() is not None:
            try:
                self.predict()  # the button is the place for slow work: show the selected token's predictions
            except Exception as e:  # noqa: BLE001
                self.w_status.value = f'<span style="color:#b00">{_esc(type(e).__name__)}: {_esc(e)}</span>'

    def _on_token(self, change) -> None:
        if self._quiet or change["new"] is None:
            return
        self._position = int(change["new"])
        try:
            self.predict(self._position)  # a deliberate pick (not a slider tick): one forward at most
        except Exception as e:  # noqa: BLE001
            self.w_status.value = f'<span style="color:#b00">{_esc(type(e).__name__)}: {_esc(e)}</span>'

    def _sync_token_dropdown(self, scores: SentenceScores, mask: torch.Tensor) -> None:
        masked = torch.nonzero(mask).flatten().tolist()
        opts = [("(pick a masked token)", None)] + [(f"{i}: {scores.tokens[i]}", i) for i in masked]
        value = self._position if self._position in masked else None
        self._quiet = True
        try:
            self.w_token.options = opts
            self.w_token.value = value
        finally:
            self._quiet = False

    def _refresh(self) -> None:
        scores = self.current_scores()
        if scores is not None and hasattr(self, "w_token"):
            mask = choose_mask(scores, self.strategy, self.ratio, seed=self.seed)
            masked = torch.nonzero(mask).flatten().tolist()
            if self._position not in masked:  # keep "predict at" on a masked token after a ratio/seed/strategy change
                self._position = masked[0] if masked else None
            self._sync_token_dropdown(scores, mask)
            if self._position is not None and self._cached_prediction(scores, mask) is None and self._preds:
                # predictions were on show: keep them in step with the new mask (one forward of one sentence)
                key = (scores.text, scores.source, bytes(mask.numpy()), self._position, self.top_k)
                self._preds[key] = top_predictions(self._scorer.model(self.source), self.tokenizer,
                                                   scores.input_ids, mask, self._position, self.top_k)
                self._scorer.stats["prediction_passes"] += 1
        super()._refresh()

    def _cached_prediction(self, scores: SentenceScores, mask: torch.Tensor):
        if self._position is None or self._position >= len(scores):
            return None
        return self._preds.get((scores.text, scores.source, bytes(mask.numpy()), self._position, self.top_k))

    def _body(self, scores: SentenceScores) -> str:
        mask = choose_mask(scores, self.strategy, self.ratio, seed=self.seed)
        k = int(mask.sum())
        name = self.strategy
        if name == "alternating":  # say which side the coin chose, or the mask looks like plain high or low
            name = f"alternating (coin: {alternating_side(self.seed)})"
        title = (f"{name} · ratio {self.ratio:g} · seed {self.seed} · k={k} of "
                 f"{int(scores.candidates.sum())} · mean H masked {_fmt(mean_masked_entropy(scores, mask))} nats · "
                 + (f"entropy from {scores.source}" if scores.scorer == "entropy"
                    else f"score {scores.scorer} from {scores.source} (beyond the paper)"))
        preds = self._cached_prediction(scores, mask)
        if preds is not None:
            pred_html = render_predictions_html(scores, self._position, preds, bool(mask[self._position]))
        else:
            pred_html = (f'<div style="{_FONT}font-size:11px;color:#666;margin-top:6px">pick a masked token under '
                         f'"predict at" (or press Score) to see what the model predicts there</div>')
        scale = fixed_scale(self.tokenizer) if self.w_scale.value == "fixed" else None
        return (f'<div class="em-explorer-body" data-strategy="{_esc(self.strategy)}" data-k="{k}" '
                f'data-scale="{self.w_scale.value}" style="{_CONTAIN}">{truncation_note(scores)}'
                f'{render_tokens_html(scores, mask, title, scale)}{render_entropy_bars_html(scores, mask, scale=scale)}'
                f'{pred_html}</div>')


class StrategyComparison(_WidgetBase):
    """One sentence under all strategies side by side (a row each: mask, k, mean masked entropy)."""

    kind = "comparison"

    def __init__(self, sources, tokenizer, examples: Sequence[str] = DEFAULT_EXAMPLES, sentence: str | None = None,
                 strategies: Sequence[str] = STRATEGIES, ratio: float = 0.15, seed: int = 0, max_len: int = 128,
                 device: str | torch.device = "cpu", loader: Callable | None = None, score_now: bool = True):
        super().__init__(sources, tokenizer, examples, sentence, ratio, seed, max_len, device, loader)
        w = _ipywidgets()
        self.strategies = [canonical_strategy(s) for s in strategies]
        self.widget = w.VBox([self.w_examples, self.w_text,
                              w.HBox([self.w_source, self.w_scorer, self.w_ratio, self.w_seed, self.w_score]),
                              self.w_status, self.w_view])
        if score_now:
            self._run_score()
        else:
            self._refresh()

    def _body(self, scores: SentenceScores) -> str:
        return (render_comparison_html(scores, self.strategies, self.ratio, self.seed)
                + render_entropy_bars_html(scores))
