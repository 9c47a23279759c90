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
"""
from __future__ import annotations

import html
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from entmask.entropy import check_finite, model_entropy
from entmask.masking import EXTRA, STRATEGIES, apply_mask, candidate_mask, canonical_strategy, select_mask

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
ENV_STATIC = "ENTMASK_STATIC_WIDGETS"  # set to 1: `show` emits only the static HTML (see `show`)

DEFAULT_EXAMPLES = (
    "The quick brown fox jumps over the lazy dog.",
    "Paris is the capital and most populous city of France.",
    "The experiment was repeated three times with different random seeds.",
    "She played the violin in the orchestra for twenty years before retiring.",
)


# ---- the pure-logic core -------------------------------------------------------------------------------------
@dataclass
class SentenceScores:
    """One tokenized sentence with the per-token entropy of a model's predictions on it (unmasked)."""

    tokens: list[str]  # wordpieces, [CLS] and [SEP] included
    input_ids: torch.Tensor  # [T] int64
    entropy: torch.Tensor  # [T] float32, nats
    candidates: torch.Tensor  # [T] bool: may be masked (not special, not [UNK])
    text: str = ""
    source: str | None = None  # the entropy source's name, for titles
    full_length: int | None = None  # wordpieces of the whole text with [CLS]/[SEP]; > len(tokens) when it was cut
    scorer: str = "entropy"  # what `entropy` holds: the paper's unmasked-view entropy, or another SCORERS entry

    def __len__(self) -> int:
        return len(self.tokens)


def _device_of(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def score_sentence(model, tokenizer, text: str, max_len: int = 128, source: str | None = None,
                   scorer: str = "entropy", reference=None, ratio: float = 0.15, seed: int = 0) -> SentenceScores:
    """Tokenize `text` ([CLS] ... [SEP], truncated to `max_len`) and score every token's entropy with `model`.

    The entropy comes from `model_entropy` (eval mode, unmasked input), exactly as the teacher pass of training.
    Beyond the paper, `scorer` names another `entropy.SCORERS` entry (masked_entropy, loss; excess_loss needs
    `reference`), computed by `entropy.score_tokens` as training computes it, its masked-view groups drawn at
    `ratio` from `seed` (the explorer keeps these at 0.15 and 0: its ratio and seed sliders pick the mask, not the
    view the scores were taken in).
    """
    enc = tokenizer(text, truncation=True, max_length=max_len, return_tensors="pt")
    ids = enc["input_ids"]  # [1, T]
    full = len(tokenizer(text)["input_ids"])  # the untruncated length, so a cut text can say so
    dev = _device_of(model)
    cand = candidate_mask(ids, list(tokenizer.all_special_ids), tokenizer.unk_token_id)  # [1, T]
    if scorer == "entropy":
        ent = model_entropy(model, ids.to(dev), enc.get("attention_mask", torch.ones_like(ids)).to(dev))  # [1, T]
    else:
        from entmask.entropy import score_tokens

        ent = score_tokens(scorer, model, ids.to(dev), cand.to(dev), mask_id=tokenizer.mask_token_id, ratio=ratio,
                           reference=reference, generator=torch.Generator().manual_seed(seed))  # [1, T]
    check_finite(ent, f"{scorer} of {text[:40]!r}")
    return SentenceScores(tokens=tokenizer.convert_ids_to_tokens(ids[0].tolist()), input_ids=ids[0].clone(),
                          entropy=ent[0].float().cpu(), candidates=cand[0].clone(), text=text, source=source,
                          full_length=full, scorer=scorer)


def truncation_note(scores: SentenceScores) -> str:
    """A visible warning when the text was cut to the model's length ('' when it was not)."""
    if scores.full_length is None or scores.full_length <= len(scores):
        return ""
    return (f'<div class="em-truncated" style="{_FONT}font-size:12px;color:#b45309;margin:2px 0">text cut to '
            f'{len(scores)} of its {scores.full_length} wordpieces (the model\'s length); the rest is not scored</div>')


def alternating_side(seed: int) -> str:
    """The side ('high' or 'low') the alternating coin picks for this seed, as `choose_mask` draws it."""
    coin = torch.rand(1, generator=torch.Generator().manual_seed(int(seed)))
    return "high" if coin.item() < 0.5 else "low"


def fixed_scale(tokenizer) -> tuple[float, float]:
    """The fixed colour scale 0..log V: a flat model (all near log V) looks flat, not pale-to-dark."""
    return (0.0, math.log(len(tokenizer)))


def choose_mask(scores: SentenceScores, strategy: str, ratio: float = 0.15, num_tokens: int | None = None,
                seed: int = 0) -> torch.Tensor:
    """The positions `strategy` masks in this sentence. Bool [T].

    A fresh generator seeded with `seed` is used per call, so `random` and `alternating` give the same mask for the
    same seed (training draws from one running generator instead; a seed here is one possible draw).
    """
    gen = torch.Generator().manual_seed(int(seed))
    mask = select_mask(scores.entropy[None], scores.candidates[None], strategy, ratio=ratio,
                       num_tokens=num_tokens, generator=gen)  # [1, T]
    return mask[0]


@torch.no_grad()
def top_predictions(model, tokenizer, input_ids: torch.Tensor, mask: torch.Tensor, position: int,
                    k: int = 5) -> list[tuple[str, float]]:
    """The model's top-k tokens and probabilities at `position` when every masked token is [MASK].

    That is the student's task under this mask. The head runs at `position` only (same numbers as the full
    logits there); the model's training mode is restored afterwards.
    """
    input_ids = torch.as_tensor(input_ids).reshape(-1)  # [T]
    mask = torch.as_tensor(mask).bool().reshape(-1)  # [T]
    if not 0 <= position < input_ids.shape[0]:
        raise IndexError(f"position {position} is outside the sentence of {input_ids.shape[0]} tokens")
    if tokenizer.mask_token_id is None:
        raise ValueError("the tokenizer has no [MASK] token; top_predictions needs a masked-LM tokenizer")
    masked, _ = apply_mask(input_ids[None], mask[None], tokenizer.mask_token_id)  # [1, T]
    dev = _device_of(model)
    was_training = model.training
    model.eval()
    try:
        hidden = model.bert(input_ids=masked.to(dev)).last_hidden_state  # [1, T, H]
        logits = model.cls(hidden[:, position])[0].float()  # [V]
    finally:
        model.train(was_training)
    probs = torch.softmax(logits, dim=-1)  # [V]
    p, idx = torch.topk(probs, min(k, probs.shape[0]))
    toks = tokenizer.convert_ids_to_tokens(idx.tolist())
    return [(t, float(q)) for t, q in zip(toks, p.tolist())]


def mean_masked_entropy(scores: SentenceScores, mask: torch.Tensor) -> float:
    """Mean entropy of the masked tokens (NaN when nothing is masked)."""
    sel = scores.entropy[mask.bool()]
    return float(sel.mean()) if sel.numel() else float("nan")


# ---- HTML rendering ------------------------------------------------------------------------------------------
# A sequential light-to-dark scale (ColorBrewer YlOrRd): low entropy is pale, high entropy dark red.
_STOPS = ("#ffffcc", "#ffeda0", "#fed976", "#feb24c", "#fd8d3c", "#fc4e2a", "#e31a1c", "#b10026")
# Plain colours and border/underline/bold for the mask: JupyterLab's sanitiser (untrusted notebooks) strips
# `outline`, CSS variables and data-* attributes, and keeps these, so the mask stays visible there too.
_MASK_COLOR = "#1d3fd6"
_MASK_TEXT = "var(--jp-brand-color1,#1d3fd6)"  # text only: if stripped, the text inherits the theme's colour
# The body takes the width it is given and never its content's: a 500-token chart then scrolls in its own box
# instead of widening the widget (and the notebook) to 1,700 px. `contain:inline-size` is what stops the flex
# parents of an ipywidgets HTML view from growing to the content's width.
_CONTAIN = "contain:inline-size;width:100%;max-width:100%;min-width:0;box-sizing:border-box;"
_FONT = "font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;"


@dataclass
class _Scale:
    lo: float
    hi: float

    @classmethod
    def of(cls, *entropies: torch.Tensor) -> "_Scale":
        vals = torch.cat([e.reshape(-1).float() for e in entropies])
        vals = vals[torch.isfinite(vals)]
        if vals.numel() == 0:
            return cls(0.0, 1.0)
        return cls(float(vals.min()), float(vals.max()))

    def t(self, x: float) -> float:
        if not math.isfinite(x) or self.hi <= self.lo:
            return 0.0
        return min(1.0, max(0.0, (x - self.lo) / (self.hi - self.lo)))

    def color(self, x: float) -> str:
        pos = self.t(x) * (len(_STOPS) - 1)
        i = min(int(pos), len(_STOPS) - 2)
        a, b = _hex(_STOPS[i]), _hex(_STOPS[i + 1])
        f = pos - i
        return "#" + "".join(f"{round(u + (v - u) * f):02x}" for u, v in zip(a, b))

    def text_color(self, x: float) -> str:
        return "#ffffff" if self.t(x) > 0.72 else "#111111"  # dark reds need white text to stay readable

    def gradient(self) -> str:
        return f"linear-gradient(to right,{','.join(_STOPS)})"


def _hex(c: str) -> tuple[int, int, int]:
    return int(c[1:3], 16), int(c[3:5], 16), int(c[5:7], 16)


def _esc(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _fmt(x: float) -> str:
    return f"{x:.2f}" if math.isfinite(x) else "—"


def _mask_list(scores: SentenceScores, mask: torch.Tensor | None) -> list[bool]:
    if mask is None:
        return [False] * len(scores)
    m = torch.as_tensor(mask).bool().reshape(-1)
    if m.shape[0] != len(scores):
        raise ValueError(f"mask has {m.shape[0]} positions but the sentence has {len(scores)} tokens")
    return m.tolist()


def _legend(scale: _Scale, show_mask: bool = True, fixed: bool = False) -> str:
    bar = (f'<span style="display:inline-block;width:140px;height:10px;vertical-align:middle;'
           f'background:{scale.gradient()};border:1px solid #999;margin:0 6px"></span>')
    masked = (f'<span style="margin-left:14px;padding:0 4px;border:2px solid {_MASK_COLOR};'
              f'text-decoration:underline;text-decoration-color:{_MASK_COLOR};text-decoration-thickness:2px">'
              f'masked</span>') if show_mask else ""
    # A near-flat sentence (e.g. an untrained model, all near log V) gets more digits: the colours stretch
    # whatever range there is, and the legend must show how small it is.
    span = scale.hi - scale.lo
    d = 2 if span >= 0.1 or span == 0 else min(6, 1 - math.floor(math.log10(span)))
    kind = "fixed scale 0..log V" if fixed else "scale: this sentence's min..max"
    return (f'<div class="em-legend" data-scale="{"fixed" if fixed else "sentence"}" style="{_FONT}font-size:11px;'
            f'color:var(--jp-ui-font-color1,#333);margin:4px 0">entropy '
            f'<span class="em-min">{scale.lo:.{d}f}</span>{bar}<span class="em-max">{scale.hi:.{d}f}</span> nats'
            f' <span class="em-scale-kind" style="color:var(--jp-ui-font-color2,#666)">({kind})</span>{masked}</div>')


def _token_spans(scores: SentenceScores, mask: torch.Tensor | None, scale: _Scale) -> str:
    masked = _mask_list(scores, mask)
    out = []
    for i, (tok, h, m) in enumerate(zip(scores.tokens, scores.entropy.tolist(), masked)):
        style = (f"display:inline-block;margin:2px 1px;padding:1px 3px;border-radius:3px;"
                 f"background:{scale.color(h)};color:{scale.text_color(h)};")
        if m:  # border + underline + bold: visible without colour, in greyscale prints, and after sanitising
            style += (f"border:2px solid {_MASK_COLOR};padding:0 2px;text-decoration:underline;"
                      f"text-decoration-color:{_MASK_COLOR};text-decoration-thickness:2px;font-weight:bold;")
        else:
            style += "border:2px solid transparent;padding:0 2px;"
        tip = f"H={h:.2f} nats" + (" (masked)" if m else "")
        out.append(f'<span class="em-tok" data-idx="{i}" data-masked="{int(m)}" data-entropy="{h:.2f}" '
                   f'title="{_esc(tip)}" style="{style}">{_esc(tok)}</span>')
    return "".join(out)


def render_tokens_html(scores: SentenceScores, mask: torch.Tensor | None = None, title: str | None = None,
                       scale: tuple[float, float] | None = None) -> str:
    """Every token coloured by its entropy, masked tokens outlined and underlined, with a min/max legend.

    Each token is `<span class="em-tok" data-idx="i" data-masked="0|1" data-entropy="x.xx" title="H=x.xx nats">`.
    `scale` fixes (min, max) of the colour scale (e.g. to compare sentences); default: this sentence's range.
    """
    sc = _Scale(*scale) if scale else _Scale.of(scores.entropy)
    head = (f'<div style="{_FONT}font-weight:bold;margin-bottom:2px;color:var(--jp-ui-font-color1,#111)">'
            f'{_esc(title)}</div>' if title else "")
    return (f'<div class="em-tokens" style="{_FONT}line-height:1.9;max-width:100%;overflow-wrap:anywhere">{head}'
            f'{_legend(sc, mask is not None, fixed=scale is not None)}'
            f'<div style="display:flex;flex-wrap:wrap;max-width:100%">{_token_spans(scores, mask, sc)}</div></div>')


def render_entropy_bars_html(scores: SentenceScores, mask: torch.Tensor | None = None, height: int = 150,
                             bar_width: int = 14, scale: tuple[float, float] | None = None) -> str:
    """Bar chart of entropy per token in plain HTML/CSS (no SVG, no JavaScript): it survives JupyterLab's
    sanitiser in untrusted notebooks, where inline SVG is stripped. Masked bars get a blue outline and a dot.
    The chart scrolls inside its own box, so a long sentence never widens the page. Bars are
    `<div class="em-bar" data-idx="i" data-masked="0|1" title="i tok: H=x.xx nats">`."""
    masked = _mask_list(scores, mask)
    ent = scores.entropy.tolist()
    sc = _Scale(*scale) if scale else _Scale.of(scores.entropy)
    top = scale[1] if scale else max([e for e in ent if math.isfinite(e)] + [1e-6])
    col = f"display:inline-flex;flex-direction:column;align-items:center;width:{bar_width}px;flex:0 0 {bar_width}px;"
    cols = []
    for i, (tok, e, m) in enumerate(zip(scores.tokens, ent, masked)):
        bh = 0.0 if not math.isfinite(e) else min(height, height * e / top)
        outline = f"border:2px solid {_MASK_COLOR};box-sizing:border-box;" if m else ""
        dot = (f'<div style="width:5px;height:5px;border-radius:50%;background:{_MASK_COLOR};margin-bottom:1px">'
               f'</div>' if m else '<div style="height:6px"></div>')
        label = tok if len(tok) <= 12 else tok[:11] + "…"
        tip = f"{i} {tok}: H={e:.2f} nats" + (" (masked)" if m else "")
        cols.append(
            f'<div class="em-col" style="{col}" title="{_esc(tip)}">'
            f'<div style="height:{height + 8}px;display:flex;flex-direction:column;justify-content:flex-end;'
            f'align-items:center">{dot}<div class="em-bar" data-idx="{i}" data-masked="{int(m)}" '
            f'style="width:{bar_width - 3}px;height:{bh:.1f}px;background:{sc.color(e)};{outline}"></div></div>'
            f'<div style="writing-mode:vertical-rl;transform:rotate(180deg);height:70px;width:{bar_width}px;'
            f'font-size:10px;white-space:nowrap;overflow:hidden;'
            f'color:{_MASK_TEXT if m else "var(--jp-ui-font-color1,#333)"};'
            f'{"font-weight:bold;" if m else ""}">{_esc(label)}</div></div>')
    axis = (f'<div style="display:inline-flex;flex-direction:column;justify-content:space-between;height:{height}px;'
            f'margin-top:8px;padding-right:4px;font-size:10px;color:var(--jp-ui-font-color2,#555)">'
            f'<span>{top:.1f}</span><span>nats</span><span>0</span></div>')
    return (f'<div class="em-bars-wrap" style="overflow-x:auto;max-width:100%;width:100%;box-sizing:border-box">'
            f'<div class="em-bars" style="{_FONT}display:flex;align-items:flex-start;width:max-content;'
            f'border-bottom:1px solid #999">{axis}{"".join(cols)}</div></div>')


def render_comparison_html(scores: SentenceScores, strategies: Sequence[str] = STRATEGIES, ratio: float = 0.15,
                           seed: int = 0, num_tokens: int | None = None) -> str:
    """One sentence under each strategy: a table row per strategy with its mask, k and mean masked entropy.

    Rows carry `data-strategy`; token spans are those of `render_tokens_html`, on one colour scale for all rows.
    """
    sc = _Scale.of(scores.entropy)
    cell = "padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:top;"
    rows = []
    for s in strategies:
        name = canonical_strategy(s)
        mask = choose_mask(scores, name, ratio, num_tokens, seed)
        k = int(mask.sum())
        rows.append(f'<tr class="em-row" data-strategy="{_esc(name)}" data-k="{k}">'
                    f'<td style="{cell}font-weight:bold">{_esc(name)}</td>'
                    f'<td style="{cell}text-align:right">{k}</td>'
                    f'<td style="{cell}text-align:right">{_fmt(mean_masked_entropy(scores, mask))}</td>'
                    f'<td style="{cell}line-height:1.9">{_token_spans(scores, mask, sc)}</td></tr>')
    n = int(scores.candidates.sum())
    mean_all = float(scores.entropy[scores.candidates].mean()) if n else float("nan")
    what = "entropy" if scores.scorer == "entropy" else f"score {_esc(scores.scorer)}"
    src = f" · {what} from {_esc(scores.source)}" if scores.source else ""
    caption = (f'<div style="{_FONT}font-size:11px;color:#333">ratio {ratio:g} · seed {seed} · {n} candidate '
               f'tokens, mean entropy {_fmt(mean_all)} nats{src}</div>')
    th = f'style="{cell}text-align:left;border-bottom:2px solid #999"'
    return (f'<div class="em-comparison" style="{_FONT}">{caption}{_legend(sc)}'
            f'<table style="border-collapse:collapse;{_FONT}"><thead><tr><th {th}>strategy</th><th {th}>k</th>'
            f'<th {th}>mean H masked</th><th {th}>tokens</th></tr></thead><tbody>{"".join(rows)}</tbody>'
            f'</table></div>')


def render_predictions_html(scores: SentenceScores, position: int, preds: list[tuple[str, float]],
                            masked: bool = True) -> str:
    """The top-k predictions at one position as a small table (the true token in bold)."""
    true = scores.tokens[position]
    what = "<b>[MASK]</b>" if masked else "(not masked)"
    cell = "padding:2px 8px;border-bottom:1px solid #eee;"
    body = "".join(
        f'<tr class="em-pred" data-token="{_esc(t)}" data-prob="{p:.6f}"><td style="{cell}'
        f'{"font-weight:bold;" if t == true else ""}">{_esc(t)}</td><td style="{cell}text-align:right">{p:.3f}</td>'
        f'<td style="{cell}"><span style="display:inline-block;height:8px;width:{max(1, round(120 * p))}px;'
        f'background:{_MASK_COLOR}"></span></td></tr>'
        for t, p in preds)
    return (f'<div class="em-predictions" data-position="{position}" style="{_FONT}margin-top:6px">'
            f'<div>predictions at {position} {what} (true: <b>{_esc(true)}</b>, '
            f'H={scores.entropy[position]:.2f} nats)</div>'
            f'<table style="border-collapse:collapse;{_FONT}">{body}</table></div>')


def _page(title: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title></head>\n<body style=\"{_FONT}max-width:1200px;margin:16px auto;"
            f"padding:0 12px;color:#111;background:#fff\">\n{body}\n</body></html>\n")


def static_report(model, tokenizer, sentences: Sequence[str], strategies: Sequence[str] = STRATEGIES,
                  ratio: float = 0.15, seed: int = 0, title: str = "entmask: masks per strategy",
                  max_len: int = 128, source: str | None = None, path: str | Path | None = None) -> str:
    """A standalone HTML page: for each sentence, every strategy's mask and the entropy bar chart.

    `model` is a BertForMaskedLM or a folder to load it from. With `path`, the page is also written there
    (atomically). No JavaScript and no external URLs, so it opens offline and survives nbconvert/papermill.
    """
    if isinstance(model, (str, Path)):
        from entmask.models import load_teacher

        source = source or Path(model).name
        model = load_teacher(model, expect_vocab=len(tokenizer))
    source = source or str(getattr(getattr(model, "config", None), "_name_or_path", "") or "model")
    parts = [f'<h1 style="font-size:20px">{_esc(title)}</h1>',
             f'<p style="font-size:12px;color:#333">Entropy H = -&sum; p log p of the predictions of '
             f'<b>{_esc(source)}</b> on each unmasked sentence; each row shows the tokens a strategy masks '
             f'(outlined, underlined) at ratio {ratio:g}, seed {seed}. [CLS]/[SEP] and [UNK] are never '
             f'masked.</p>']
    for n, text in enumerate(sentences, 1):
        scores = score_sentence(model, tokenizer, text, max_len, source=source)
        parts.append(f'<section class="em-sentence" data-n="{n}" style="margin:18px 0">'
                     f'<h2 style="font-size:15px">{n}. {_esc(text)}</h2>'
                     f'{render_comparison_html(scores, strategies, ratio, seed)}'
                     f'{render_entropy_bars_html(scores)}</section>')
    page = _page(title, "\n".join(parts))
    if path is not None:
        from entmask import runs

        runs.atomic_write_text(path, page)
    return page


# ---- entropy sources -----------------------------------------------------------------------------------------
def sources_from_run(run: str | Path | None = None, teacher: Any = None) -> dict[str, Any]:
    """Entropy sources for the widgets: `teacher` (a folder or model), then each kept epoch of a self-masking run
    (`<run>/epochs/epoch-N`, in epoch order). Folders are loaded only when the widget first needs them."""
    out: dict[str, Any] = {}
    if teacher is not None:
        out["teacher"] = teacher
    if run is not None:
        def epoch_no(p: Path) -> int:
            m = re.search(r"(\d+)$", p.name)
            return int(m.group(1)) if m else -1

        for d in sorted((Path(run) / "epochs").glob("epoch-*"), key=epoch_no):
            if (d / "config.json").exists():
                out[f"epoch {epoch_no(d)}"] = d
    return out


class _Scorer:
    """Lazy model loading and the (sentence, source) -> SentenceScores cache shared by the widgets."""

    def __init__(self, sources, tokenizer, max_len: int = 128, device: str | torch.device = "cpu",
                 loader: Callable | None = None):
        if not isinstance(sources, Mapping):
            sources = {"model": sources}  # one model or folder
        if not sources:
            raise ValueError("give at least one entropy source, e.g. {'teacher': 'runs/.../teacher'}")
        self.sources: dict[str, Any] = dict(sources)
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.device = device
        self._loader = loader
        self._models: dict[str, Any] = {}
        self._scores: dict[tuple[str, str, str], SentenceScores] = {}
        self.stats = {"loads": 0, "entropy_passes": 0, "prediction_passes": 0}
        self.scorer = "entropy"  # what the strategies rank (entropy.SCORERS); excess_loss uses the source "teacher"

    def model(self, name: str):
        if name not in self.sources:
            raise KeyError(f"unknown entropy source {name!r}; have {', '.join(self.sources)}")
        if name not in self._models:
            src = self.sources[name]
            if isinstance(src, (str, Path)):
                if self._loader is not None:
                    m = self._loader(src)
                else:
                    from entmask.models import load_teacher, transformers_bars

                    with transformers_bars(False):  # no "Loading weights" bar printed above the widget
                        m = load_teacher(src, device=self.device, expect_vocab=len(self.tokenizer))
                self.stats["loads"] += 1
            else:
                m = src
            self._models[name] = m
        return self._models[name]

    def cached(self, text: str, source: str) -> SentenceScores | None:
        return self._scores.get((text, source, self.scorer))

    def scorers(self) -> list[str]:
        """The scorers this set of sources can compute: excess loss needs a source named "teacher"."""
        from entmask.entropy import SCORERS

        return [n for n, sc in SCORERS.items() if not sc.uses_reference or "teacher" in self.sources]

    def loaded(self, source: str) -> bool:
        """Whether scoring with `source` costs only a forward pass (its model is in memory)."""
        return source in self._models or (source in self.sources and not isinstance(self.sources[source], (str, Path)))

    def scores(self, text: str, source: str) -> SentenceScores:
        key = (text, source, self.scorer)
        if key not in self._scores:
            from entmask.entropy import SCORERS

            ref = None
            if SCORERS[self.scorer].uses_reference:
                if source == "teacher":
                    raise ValueError(f"{self.scorer} compares a model with the teacher; the teacher against itself "
                                     f"scores 0 everywhere: pick another entropy source")
                ref = self.model("teacher")
            self._scores[key] = score_sentence(self.model(source), self.tokenizer, text, self.max_len, source,
                                               scorer=self.scorer, reference=ref)
            self.stats["entropy_passes"] += 1
        return self._scores[key]


def _ipywidgets():
    try:
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
        from entmask.entropy import SCORERS

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


__all__ = ["SentenceScores", "score_sentence", "choose_mask", "top_predictions", "mean_masked_entropy",
           "render_tokens_html", "render_entropy_bars_html", "render_comparison_html", "render_predictions_html",
           "static_report", "sources_from_run", "drop_widget_state", "MaskExplorer", "StrategyComparison", "show",
           "DEFAULT_EXAMPLES"]
