"""The mask explorer's static HTML: tokens coloured by entropy with the mask marked, entropy bars, one sentence
under every strategy, top-k predictions, and a standalone page of all of them (`static_report`).

What it is: pure functions from `SentenceScores` (and a mask) to self-contained HTML: inline CSS only, no
JavaScript, no SVG and no external URLs, so results folders and notebooks exported offline by nbconvert show the
masks without the widget JavaScript, and JupyterLab's sanitiser (untrusted notebooks) keeps the mask visible. Every
token, sentence, strategy and source name goes through `_esc` (html.escape, quotes included): text never becomes
markup (docs/html-safety.md; tests/test_widgets.py::test_tokens_are_escaped and
tests/test_html_and_edges.py::test_widget_fallbacks_escape_hostile_sentence_and_source).

What it is not: no ipywidgets and no display (`entmask.widgets.explorer`, `entmask.widgets.display`); it loads a
model only when `static_report` is given a folder, and writes a file only when `static_report` is given a path.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from entmask import runs
from entmask.masking import STRATEGIES, canonical_strategy
from entmask.models import load_teacher
from entmask.widgets.scores import SentenceScores, choose_mask, mean_masked_entropy, score_sentence

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


def truncation_note(scores: SentenceScores) -> str:
    """A visible warning when the text was cut to the model's length ('' when it was not)."""
    if scores.full_length is None or scores.full_length <= len(scores):
        return ""
    return (f'<div class="em-truncated" style="{_FONT}font-size:12px;color:#b45309;margin:2px 0">text cut to '
            f'{len(scores)} of its {scores.full_length} wordpieces (the model\'s length); the rest is not scored</div>')


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
        runs.atomic_write_text(path, page)
    return page
