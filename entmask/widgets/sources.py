"""The mask explorer's entropy sources: which models it can score a sentence with, loaded when first needed, and
the scores it has computed, kept per (sentence, source, scorer).

What it is: `sources_from_run` (the teacher and each kept epoch model of a self-masking run, as folders) and
`_Scorer`, the state behind both widgets: lazy model loading (a folder is loaded once, on first use), the score
cache, and counts of the slow work done (model loads, entropy passes, prediction passes) that the widgets and
their tests read.

What it is not: no controls, no HTML, no display; it never runs a model until asked for a sentence's scores.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from entmask.entropy import SCORERS
from entmask.models import load_teacher, transformers_bars
from entmask.widgets.scores import SentenceScores, score_sentence


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
        return [n for n, sc in SCORERS.items() if not sc.uses_reference or "teacher" in self.sources]

    def loaded(self, source: str) -> bool:
        """Whether scoring with `source` costs only a forward pass (its model is in memory)."""
        return source in self._models or (source in self.sources and not isinstance(self.sources[source], (str, Path)))

    def scores(self, text: str, source: str) -> SentenceScores:
        key = (text, source, self.scorer)
        if key not in self._scores:
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
