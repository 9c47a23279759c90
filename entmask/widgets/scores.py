"""One sentence scored for the mask explorer: its wordpieces, each token's entropy, and the masks drawn from them.

What it is: the pure-logic core of the widgets, needing no notebook and no HTML: `SentenceScores` (a tokenized
sentence with its per-token scores), `score_sentence` (one forward pass, as the teacher pass of training),
`choose_mask` (a strategy's mask for one seed, through `entmask.masking.select_mask`), `top_predictions` (what the
model predicts at a position under a mask), `mean_masked_entropy`, `alternating_side` and `fixed_scale`.

What it is not: no rendering (`entmask.widgets.render`), no model loading or caching (`entmask.widgets.sources`) and
no ipywidgets (`entmask.widgets.controls`, `entmask.widgets.explorer`). It selects masks only through
`entmask.masking.select_mask` and scores tokens only through `entmask.entropy`, so what it shows is what training
does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from entmask.entropy import check_finite, model_entropy, score_tokens
from entmask.masking import apply_mask, candidate_mask, select_mask


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
        ent = score_tokens(scorer, model, ids.to(dev), cand.to(dev), mask_id=tokenizer.mask_token_id, ratio=ratio,
                           reference=reference, generator=torch.Generator().manual_seed(seed))  # [1, T]
    check_finite(ent, f"{scorer} of {text[:40]!r}")
    return SentenceScores(tokens=tokenizer.convert_ids_to_tokens(ids[0].tolist()), input_ids=ids[0].clone(),
                          entropy=ent[0].float().cpu(), candidates=cand[0].clone(), text=text, source=source,
                          full_length=full, scorer=scorer)


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
