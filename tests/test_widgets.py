"""Tests for entmask.widgets: the rendered masks are exactly `select_mask`'s, predictions are the model's own
softmax top-k, the static HTML needs no JavaScript or network, and slow work runs only when asked.

Headless and fast: a tiny random BertForMaskedLM (seeded) over the offline bert-base-uncased vocabulary.
"""
from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

pytest.importorskip("ipywidgets")

from entmask import widgets as W  # noqa: E402
from entmask.entropy import model_entropy  # noqa: E402
from entmask.masking import STRATEGIES, candidate_mask, select_mask  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VOCAB = REPO / ".." / "shared" / "models" / "bert-base-uncased-vocab"
SENT_A = "The committee approved the new budget after a long debate about schools and roads."
SENT_B = "Rain fell on the quiet village all night."


@pytest.fixture(scope="module")
def tok():
    if not (VOCAB / "vocab.txt").exists():
        pytest.skip(f"offline BERT vocabulary not found at {VOCAB.resolve()} (the shared models mirror)")
    from entmask.data import load_tokenizer

    return load_tokenizer(str(VOCAB.resolve()))


def tiny_model(tok, seed: int = 0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64)
    return BertForMaskedLM(cfg).eval()


@pytest.fixture(scope="module")
def model(tok):
    return tiny_model(tok)


class _Spans(HTMLParser):
    """Collects the attributes of every token span (class em-tok), with the data-strategy of its table row."""

    def __init__(self):
        super().__init__()
        self.spans: list[dict] = []
        self._row: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-strategy" in a:
            self._row = a["data-strategy"]
        if tag == "span" and "em-tok" in (a.get("class") or "").split():
            self.spans.append({**a, "row": self._row})


def parse_spans(html_text: str) -> list[dict]:
    p = _Spans()
    p.feed(html_text)
    return p.spans


def marked(spans: list[dict]) -> list[int]:
    return [int(s["data-idx"]) for s in spans if s["data-masked"] == "1"]


def reference(model, tok, text: str, strategy: str, ratio: float, seed: int):
    """What training would mask: entropies, candidates and select_mask computed here, not through widgets."""
    ids = tok(text, return_tensors="pt")["input_ids"]  # [1, T]
    ent = model_entropy(model, ids, torch.ones_like(ids))  # [1, T]
    cand = candidate_mask(ids, tok.all_special_ids, tok.unk_token_id)  # [1, T]
    mask = select_mask(ent, cand, strategy, ratio=ratio, generator=torch.Generator().manual_seed(seed))
    return ids[0], ent[0], cand[0], mask[0]


class ForwardCounter:
    """Counts encoder forwards (entropy passes and prediction passes both go through model.bert)."""

    def __init__(self, model):
        self.n = 0
        self.handle = model.bert.register_forward_hook(self._hook)

    def _hook(self, *a):
        self.n += 1

    def close(self):
        self.handle.remove()


# ---- the marks are select_mask's -----------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_explorer_marks_exactly_select_mask(tok, model, strategy):
    ratio, seed = 0.25, 7
    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_B, ratio=ratio, seed=seed, score_now=False)
    ex.set_sentence(SENT_A)
    ex.set_strategy(strategy)
    ex.score()
    spans = parse_spans(ex.render_html())
    ids, ent, cand, mask = reference(model, tok, SENT_A, strategy, ratio, seed)

    assert [int(s["data-idx"]) for s in spans] == list(range(len(ids)))  # one span per token, in order
    assert [s["data-entropy"] for s in spans] == [f"{e:.2f}" for e in ent.tolist()]
    assert marked(spans) == torch.nonzero(mask).flatten().tolist()
    special = {i for i, c in enumerate(cand.tolist()) if not c}
    assert special >= {0, len(ids) - 1} and not special & set(marked(spans))  # [CLS]/[SEP] never marked
    n = int(cand.sum())
    assert len(marked(spans)) == min(max(1, int(n * ratio + 0.5)), n)  # k = floor(ratio*n + 0.5)
    # The live widget view shows the same marks as the static rendering.
    assert marked(parse_spans(ex.w_view.value)) == marked(spans)


def test_alternating_and_random_follow_the_seed(tok, model):
    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A, strategy="alternating", score_now=False)
    ex.score()
    sides = set()
    for seed in range(8):
        ex.set_seed(seed)
        _, ent, cand, mask = reference(model, tok, SENT_A, "alternating", 0.15, seed)
        assert marked(parse_spans(ex.render_html())) == torch.nonzero(mask).flatten().tolist()
        high = select_mask(ent[None], cand[None], "high")[0]
        sides.add(bool(torch.equal(mask, high)))
    assert sides == {True, False}  # both coin outcomes were exercised
    ex.set_strategy("random")
    masks = set()
    for seed in (1, 2, 3):
        ex.set_seed(seed)
        got = marked(parse_spans(ex.render_html()))
        assert got == torch.nonzero(reference(model, tok, SENT_A, "random", 0.15, seed)[3]).flatten().tolist()
        masks.add(tuple(got))
    assert len(masks) > 1


def test_comparison_rows_match_select_mask(tok, model):
    ratio, seed = 0.3, 4
    comp = W.StrategyComparison({"tiny": model}, tok, sentence=SENT_A, ratio=ratio, seed=seed)
    html_text = comp.render_html()
    spans = parse_spans(html_text)
    for s in STRATEGIES:
        row = [x for x in spans if x["row"] == s]
        _, _, _, mask = reference(model, tok, SENT_A, s, ratio, seed)
        assert marked(row) == torch.nonzero(mask).flatten().tolist(), s
        assert f'data-strategy="{s}" data-k="{int(mask.sum())}"' in html_text
    assert "<script" not in html_text.lower() and "http" not in html_text.lower()


# ---- predictions ---------------------------------------------------------------------------------------------
def test_top_predictions_are_the_models_softmax_topk(tok, model):
    scores = W.score_sentence(model, tok, SENT_A)
    mask = W.choose_mask(scores, "high", 0.15)
    masked_ids = scores.input_ids.clone()
    masked_ids[mask] = tok.mask_token_id
    with torch.no_grad():
        logits = model(input_ids=masked_ids[None]).logits[0]  # [T, V]
    for pos in torch.nonzero(mask).flatten().tolist():
        p, idx = torch.topk(torch.softmax(logits[pos].float(), -1), 5)
        got = W.top_predictions(model, tok, scores.input_ids, mask, pos, k=5)
        assert [t for t, _ in got] == tok.convert_ids_to_tokens(idx.tolist())
        assert torch.allclose(torch.tensor([q for _, q in got]), p, rtol=1e-4, atol=1e-7)

    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A, strategy="high")
    first = torch.nonzero(mask).flatten().tolist()[0]
    assert ex.predict() == W.top_predictions(model, tok, scores.input_ids, mask, first, k=5)
    assert f'data-position="{first}"' in ex.render_html()


def test_score_sentence_fields(tok, model):
    s = W.score_sentence(model, tok, SENT_B, source="tiny")
    assert s.tokens[0] == "[CLS]" and s.tokens[-1] == "[SEP]" and len(s.tokens) == s.input_ids.shape[0]
    assert s.entropy.dtype == torch.float32 and s.entropy.shape == s.input_ids.shape
    assert s.candidates.dtype == torch.bool and not s.candidates[0] and not s.candidates[-1]
    assert model.training is False
    long = W.score_sentence(model, tok, " ".join(["word"] * 300), max_len=32)
    assert len(long) == 32 and long.tokens[-1] == "[SEP]"


# ---- static HTML ---------------------------------------------------------------------------------------------
def test_mimebundle_has_widget_view_and_static_html(tok, model):
    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A)
    bundle = ex._repr_mimebundle_()
    assert W.WIDGET_MIME in bundle and "model_id" in bundle[W.WIDGET_MIME]
    assert bundle[W.WIDGET_MIME]["model_id"] == ex.widget.model_id
    h = bundle["text/html"]
    assert "<script" not in h.lower() and "http" not in h.lower()
    assert marked(parse_spans(h)) == ex.masked_positions() and ex.masked_positions()
    assert "<svg" not in h and 'class="em-bar"' in h and 'class="em-legend"' in h  # sanitiser-safe HTML bars
    comp = W.StrategyComparison({"tiny": model}, tok, sentence=SENT_A)
    cb = comp._repr_mimebundle_()
    assert W.WIDGET_MIME in cb and "<script" not in cb["text/html"].lower() and "http" not in cb["text/html"].lower()


def test_tokens_are_escaped(tok, model):
    s = W.score_sentence(model, tok, 'a <script>alert("x")</script> & b')
    h = W.render_tokens_html(s, W.choose_mask(s, "high")) + W.render_entropy_bars_html(s)
    assert "<script" not in h and "&lt;" in h and "&amp;" in h
    assert len(parse_spans(h)) == len(s)


def test_legend_and_bars(tok, model):
    s = W.score_sentence(model, tok, SENT_A)
    mask = W.choose_mask(s, "low", 0.2)
    h = W.render_tokens_html(s, mask, title="t")
    lo, hi = float(s.entropy.min()), float(s.entropy.max())
    got_lo = float(re.search(r'<span class="em-min">([\d.]+)</span>', h).group(1))
    got_hi = float(re.search(r'<span class="em-max">([\d.]+)</span>', h).group(1))
    assert got_lo == pytest.approx(lo, abs=0.006) and got_hi == pytest.approx(hi, abs=0.006) and got_lo < got_hi
    bars = W.render_entropy_bars_html(s, mask)
    bar_marks = [int(i) for i, m in re.findall(r'<div class="em-bar" data-idx="(\d+)" data-masked="([01])"', bars)
                 if m == "1"]
    assert bar_marks == torch.nonzero(mask).flatten().tolist()
    assert len(re.findall(r'<div class="em-bar"', bars)) == len(s)
    assert "http" not in bars and "<svg" not in bars  # plain HTML/CSS: JupyterLab's sanitiser keeps it


def test_static_report_is_standalone(tok, model, tmp_path):
    out = tmp_path / "masks.html"
    page = W.static_report(model, tok, [SENT_A, SENT_B], STRATEGIES, 0.15, 0, path=out)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert out.read_text() == page
    assert "<script" not in page.lower() and "http" not in page.lower() and "<link" not in page.lower()
    rows = re.findall(r'<tr class="em-row" data-strategy="(\w+)"', page)
    assert rows == list(STRATEGIES) * 2


# ---- slow work only when asked -------------------------------------------------------------------------------
def test_no_forward_on_setting_changes_and_cache_per_sentence_source(tok, model):
    other = tiny_model(tok, seed=1)
    ca, cb = ForwardCounter(model), ForwardCounter(other)
    try:
        ex = W.MaskExplorer({"a": model, "b": other}, tok, sentence=SENT_A, score_now=False)
        assert ex.w_ratio.continuous_update is False
        assert ca.n == 0 and cb.n == 0  # building the widget runs nothing when told not to
        ex.score()
        assert ca.n == 1
        for s in STRATEGIES:  # strategy, ratio and seed changes re-select from cached entropies
            ex.set_strategy(s)
            ex.render_html()
        ex.set_ratio(0.4)
        ex.set_seed(3)
        ex.w_ratio.value = 0.5  # as a slider release would
        assert ca.n == 1 and cb.n == 0

        ex.set_sentence(SENT_B)  # an edited sentence on a loaded source is scored at once (and its predictions)
        assert ca.n == 3 and ex.current_scores() is not None and "Score" not in ex.w_status.value
        ex.score()  # cached: no work
        assert ca.n == 3
        ex.set_sentence(SENT_A)
        ex.score()
        assert ca.n == 4  # entropies cached per (sentence, source); the predictions follow the shown sentence
        ex.set_source("b")
        assert cb.n == 0
        ex.w_score.click()  # the button: entropy pass + predictions at the first masked token, on source b
        assert cb.n == 2 and ca.n == 4
        ex.set_source("a")
        ex.set_strategy("low")
        # entropies are never recomputed by a setting change; the predictions on show follow the mask (one
        # prediction forward per change, on the selected source)
        assert ca.n == 5 and cb.n == 2 and ex.stats["entropy_passes"] == 3
    finally:
        ca.close()
        cb.close()


def test_picking_a_token_predicts_it(tok, model):
    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A, strategy="high", ratio=0.3)
    positions = ex.masked_positions()
    assert [v for _, v in ex.w_token.options if v is not None] == positions
    c = ForwardCounter(model)
    try:
        ex.w_token.value = positions[-1]
        assert c.n == 1 and f'data-position="{positions[-1]}"' in ex.w_view.value
        ex.w_token.value = positions[-1]  # no change, no work
        ex.set_strategy("low")  # the predictions follow the new mask: the token if still masked, else the first
        low = ex.masked_positions()
        assert c.n == 2 and ex.w_token.value == (positions[-1] if positions[-1] in low else low[0])
        assert f'data-position="{ex.w_token.value}"' in ex.w_view.value
    finally:
        c.close()


def test_sources_load_lazily_once(tok, model, tmp_path):
    run = tmp_path / "run"
    for e in (2, 10, 1):
        model.save_pretrained(str(run / "epochs" / f"epoch-{e}"))
    model.save_pretrained(str(tmp_path / "teacher"))
    sources = W.sources_from_run(run, teacher=tmp_path / "teacher")
    assert list(sources) == ["teacher", "epoch 1", "epoch 2", "epoch 10"]
    ex = W.MaskExplorer(sources, tok, sentence=SENT_A, score_now=False)
    assert ex.stats["loads"] == 0
    ex.set_source("epoch 2")
    ex.score()
    ex.set_sentence(SENT_B)
    ex.score()
    assert ex.stats["loads"] == 1  # loaded on first use, then kept
    ref = W.score_sentence(model, tok, SENT_B)
    assert torch.allclose(ex.current_scores().entropy, ref.entropy, atol=1e-5)


def test_show_static(tok, model, monkeypatch):
    shown = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A)
    W.show(ex, static=True)
    W.show(ex, static=False)
    assert isinstance(shown[0], IPython.display.HTML) and 'class="em-tok"' in shown[0].data
    assert shown[1] is ex


def test_nbconvert_export_shows_static_masks_without_widget_state(tok, model):
    """nbconvert prefers the widget view when widget state is saved (its JS comes from a CDN): dropping the
    state makes the export fall back to the static masks. No kernel needed: the output is built by hand."""
    nbformat = pytest.importorskip("nbformat")
    from nbconvert import HTMLExporter

    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A)
    bundle = ex._repr_mimebundle_()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("ex", outputs=[
        nbformat.v4.new_output("display_data", data=bundle)])])
    mid = bundle[W.WIDGET_MIME]["model_id"]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "version_major": 2, "version_minor": 0, "state": {mid: {"model_name": "VBoxModel", "model_module":
                                                                "@jupyter-widgets/controls", "state": {}}}}}
    with_state, _ = HTMLExporter().from_notebook_node(nb)
    assert 'class="em-tok"' not in with_state  # the documented trap
    body, _ = HTMLExporter().from_notebook_node(W.drop_widget_state(nb))
    assert marked(parse_spans(body)) == ex.masked_positions()
    assert "unpkg" not in body


def test_fixed_scale_coin_side_truncation_and_bernoulli(tok, model):
    """The explorer offers bernoulli, a fixed 0..log V colour scale named in the legend, says which side the
    alternating coin chose, and warns when the text was cut to the model's length."""
    import math

    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A, strategy="alternating", seed=3)
    assert "bernoulli" in ex.w_strategy.options
    side = W.alternating_side(3)
    assert f"alternating (coin: {side})" in ex.render_html()
    s = ex.current_scores()
    assert ex.masked_positions() == W.choose_mask(s, side, ex.ratio).nonzero().flatten().tolist()
    assert 'data-scale="sentence"' in ex.render_html()
    ex.w_scale.value = "fixed"
    h = ex.render_html()
    assert 'data-scale="fixed"' in h and "fixed scale 0..log V" in h
    assert float(re.search(r'<span class="em-max">([\d.]+)</span>', h).group(1)) == pytest.approx(
        math.log(len(tok)), abs=0.006)
    long_text = " ".join(["word"] * 300)
    cut = W.score_sentence(model, tok, long_text, max_len=32)
    assert len(cut) == 32 and cut.full_length == 302 and "cut to 32 of its 302" in W.truncation_note(cut)
    assert W.truncation_note(W.score_sentence(model, tok, SENT_A)) == ""


def test_predictions_follow_the_mask(tok, model):
    """After a ratio change the selected token stays selected while masked, and its predictions are recomputed
    under the new mask instead of vanishing."""
    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_B, strategy="high", ratio=0.15)
    first = ex.predict()
    pos = ex._position
    ex.set_ratio(0.5)
    assert pos in ex.masked_positions() and ex._position == pos
    assert 'class="em-predictions"' in ex.w_view.value and ex.w_token.value == pos
    assert first  # the old predictions existed; the new ones are shown for the new mask


def test_executed_notebooks_fall_back_to_the_static_view(tok, model):
    """In an executed notebook the widget's model is gone: drop_widget_state keeps the static masks of every
    widget output (no 'model not found'), and leaves outputs without a static rendering alone."""
    import nbformat

    ex = W.MaskExplorer({"tiny": model}, tok, sentence=SENT_A)
    bundle = ex._repr_mimebundle_()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("ex")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle),
                    nbformat.v4.new_output("display_data", data={W.WIDGET_MIME: bundle[W.WIDGET_MIME]})]
    nb.cells = [cell]
    nb.metadata["widgets"] = {"state": {}}
    W.drop_widget_state(nb)
    first, second = nb.cells[0].outputs
    assert W.WIDGET_MIME not in first["data"] and 'class="em-explorer-body"' in first["data"]["text/html"]
    assert W.WIDGET_MIME in second["data"] and "widgets" not in nb.metadata
