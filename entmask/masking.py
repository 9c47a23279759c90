"""Mask selection and application: the paper's strategies over per-token entropies.

What it is: `select_mask` (which k positions of each row to mask, from entropies and a candidate mask),
`STRATEGIES`, `candidate_mask` (which tokens may be masked), and `apply_mask` ([MASK]-only or BERT's 80/10/10).
Everything is vectorised over the batch; no Python loop over rows.

Beyond the paper: whole-word selection (`whole_word=max|mean` with `continuation_table`) and `schedule_value`
(mask rate and temperature as functions of training progress).

What it is not: it computes no entropy (see `entmask.entropy`) and knows nothing of models or training.

On k: the paper takes k = 15% of the sequence length. entmask takes 15% of each row's *candidates*
(`k = floor(ratio * n + 0.5)`, clipped to [1, n]). With packed sequences there is no padding, so the two differ
only by the [CLS]/[SEP] tokens and the [UNK]s that are left out of the candidates.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Callable

import torch

ALIASES = {"max": "high", "min": "low", "marg": "marginal", "alt": "alternating"}


# ---- the selector registry ---------------------------------------------------------------------------------------
# A selector maps (scores [B, T], candidates [B, T], k [B], generator, temperature) to a bool mask [B, T]. A new idea
# is one decorated function plus one test: config validation, the run names, the CLI's --strategy help, the mask
# explorer's menu and `entmask info --strategies` all read this registry.
@dataclass(frozen=True)
class Selector:
    """A registered masking strategy and what the rest of entmask needs to know about it."""
    name: str
    fn: Callable
    needs_scores: bool = True  # False: it ignores the scores, so no teacher pass or self pass is run for it
    paper: bool = False  # one of the paper's strategies (and random, its baseline)
    help: str = ""  # one line for the CLI and the docs
    uses_ratio: bool = False  # fn(scores, candidates, ratio, generator) instead of k: k varies per row

    def __call__(self, *args, **kw):
        return self.fn(*args, **kw)


SELECTORS: dict[str, Selector] = {}


def register_selector(name: str, *, needs_scores: bool = True, paper: bool = False, help: str = "",
                      uses_ratio: bool = False):
    """Decorator: make `fn(scores, candidates, k, generator, temperature) -> mask` the selector `name`."""
    if not name or name in ALIASES or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"selector name {name!r} must be letters, digits, - or _, and not an alias")

    def deco(fn):
        SELECTORS[name] = Selector(name, fn, needs_scores, paper, help or (fn.__doc__ or "").strip().split("\n")[0],
                                   uses_ratio)
        return fn
    return deco


def strategies(paper: bool | None = None) -> tuple[str, ...]:
    """Registered strategy names in registration order: all, the paper's (True) or the others (False)."""
    return tuple(n for n, s in SELECTORS.items() if paper is None or s.paper == paper)


def canonical_strategy(strategy: str) -> str:
    s = ALIASES.get(strategy, strategy)
    if s not in SELECTORS:
        raise ValueError(f"unknown masking strategy {strategy!r}; choose one of {', '.join(SELECTORS)} "
                         f"(aliases: {', '.join(f'{a}={b}' for a, b in ALIASES.items())})")
    return s


def needs_entropy(strategy: str) -> bool:
    """Whether `strategy` ranks scores (entropies): False for random and bernoulli, which ignore them."""
    return SELECTORS[canonical_strategy(strategy)].needs_scores


def num_to_mask(candidates: torch.Tensor, ratio: float = 0.15, num_tokens: int | None = None) -> torch.Tensor:
    """k per row: num_tokens, else floor(ratio*n + 0.5), clipped to [1, n] (0 for a row with no candidate)."""
    n = candidates.sum(dim=1)  # [B]
    if num_tokens is not None:
        k = torch.full_like(n, int(num_tokens))
    else:
        k = torch.floor(n.double() * ratio + 0.5).long()  # double: 0.15*n must round like the formula says
    return torch.minimum(k.clamp(min=1), n)


def _ranks(key: torch.Tensor) -> torch.Tensor:
    """Rank of each position under a stable ascending sort of `key` (ties keep position order). [B, T]"""
    order = torch.sort(key, dim=1, stable=True).indices  # [B, T]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(key.shape[1], device=key.device).expand_as(order))
    return ranks


def _first_k(key: torch.Tensor, candidates: torch.Tensor, start: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Candidates whose rank under ascending `key` is in [start, start+count). Non-candidates rank last."""
    key = key.masked_fill(~candidates, float("inf"))
    r = _ranks(key)  # [B, T]
    return (r >= start[:, None]) & (r < (start + count)[:, None]) & candidates


def select_mask(entropy: torch.Tensor, candidates: torch.Tensor, strategy: str, ratio: float = 0.15,
                num_tokens: int | None = None, generator: torch.Generator | None = None,
                temperature: float = 1.0, continues: torch.Tensor | None = None,
                whole_word: str = "none") -> torch.Tensor:
    """Choose the positions to mask in each row. Returns bool [B, T], True only at candidates.

    entropy: [B, T] float (ignored by `random`/`bernoulli`); candidates: [B, T] bool.
    high/low: the k largest/smallest entropies; mid: k starting at ascending rank (n-k)//2;
    marginal: ceil(k/2) highest + floor(k/2) lowest; alternating: one coin per call picks high or low;
    random: k uniformly at random; bernoulli: each candidate independently with probability `ratio`; sampled:
    k drawn without replacement with probability ~ softmax(entropy / temperature). Ties are broken by position:
    the earlier token wins. Every strategy is a Selector of the SELECTORS registry.

    whole_word (beyond the paper) = max | mean, with `continues` [B, T] bool (True at a wordpiece that continues
    the previous one, see `continuation_table`): the strategy picks whole words, a word scored by the max or mean
    of its candidate pieces, and every piece of a chosen word is masked. k then counts words (ratio of each row's
    candidate words), so about ratio x (pieces per word) of the tokens are masked, as in BERT's whole-word masking.
    """
    strategy = canonical_strategy(strategy)
    if not (isinstance(ratio, (int, float)) and 0 < ratio <= 1):
        raise ValueError(f"ratio={ratio!r} must be in (0, 1], e.g. 0.15")
    if num_tokens is not None and (int(num_tokens) != num_tokens or num_tokens < 1):
        raise ValueError(f"num_tokens={num_tokens!r} must be a positive integer (or None to use ratio)")
    if entropy.shape != candidates.shape or entropy.dim() != 2:
        raise ValueError(f"entropy {tuple(entropy.shape)} and candidates {tuple(candidates.shape)} must both be [B, T]")
    candidates = candidates.bool()
    if not temperature >= 0:
        raise ValueError(f"temperature={temperature!r} must be >= 0 (0 = hard top-k, inf = uniform)")

    sel = SELECTORS[strategy]
    if sel.uses_ratio:
        return sel(entropy.float(), candidates, ratio, generator)
    if whole_word != "none":
        return _whole_words(entropy, candidates, strategy, ratio, num_tokens, generator, temperature, continues,
                            whole_word)
    k = num_to_mask(candidates, ratio, num_tokens)  # [B]
    return sel(entropy.float(), candidates, k, generator, temperature)


def continuation_table(tokenizer) -> torch.Tensor:
    """True for every vocabulary id that continues a word (a WordPiece `##` piece). [V] bool"""
    toks = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return torch.tensor([isinstance(t, str) and t.startswith("##") for t in toks])


def _whole_words(entropy, candidates, strategy, ratio, num_tokens, generator, temperature, continues, reduce):
    if reduce not in ("max", "mean"):
        raise ValueError(f"whole_word={reduce!r}: choose none, max or mean")
    if continues is None or continues.shape != candidates.shape:
        raise ValueError("whole-word masking needs `continues` [B, T] (continuation_table(tokenizer)[input_ids])")
    # a word starts at every piece that does not continue the previous one; the first position always starts one
    starts = ~continues.bool()
    starts[:, 0] = True
    wid = starts.long().cumsum(1) - 1  # [B, T] word index of each position in its row
    cand = candidates.float()  # [B, T]
    score = torch.where(candidates, entropy.float(), torch.zeros_like(entropy, dtype=torch.float))
    n_pieces = torch.zeros_like(cand).scatter_add_(1, wid, cand)  # [B, W=T] candidate pieces per word
    if reduce == "max":
        wscore = torch.full_like(cand, -float("inf")).scatter_reduce_(
            1, wid, score.masked_fill(~candidates, -float("inf")), "amax")
    else:
        wscore = torch.zeros_like(cand).scatter_add_(1, wid, score) / n_pieces.clamp(min=1)
    wcand = n_pieces > 0  # [B, W] a word with at least one maskable piece
    wscore = torch.where(wcand, wscore, torch.zeros_like(wscore))
    wmask = select_mask(wscore, wcand, strategy, ratio, num_tokens, generator, temperature)  # [B, W]
    return wmask.gather(1, wid) & candidates  # [B, T] every candidate piece of a chosen word


def schedule_value(start: float, end: float | None, schedule: str, progress: float) -> float:
    """A scheduled value at `progress` in [0, 1] of training: constant, linear or cosine from start to end."""
    if end is None or schedule == "constant":
        return start
    p = min(max(float(progress), 0.0), 1.0)
    if schedule == "linear":
        return start + (end - start) * p
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * p))
    raise ValueError(f"schedule={schedule!r}: choose constant, linear or cosine")


@register_selector("high", paper=True, help="the k highest entropies (the paper's best for BERT)")
def _high(ent, candidates, k, generator=None, temperature=None):
    return _first_k(-ent, candidates, torch.zeros_like(k), k)


@register_selector("low", paper=True, help="the k lowest entropies")
def _low(ent, candidates, k, generator=None, temperature=None):
    return _first_k(ent, candidates, torch.zeros_like(k), k)


@register_selector("mid", paper=True, help="k around the median entropy (ascending ranks from (n-k)//2)")
def _mid(ent, candidates, k, generator=None, temperature=None):
    n = candidates.sum(dim=1)
    return _first_k(ent, candidates, (n - k) // 2, k)


@register_selector("marginal", paper=True, help="half the k highest and half the lowest (an odd k's extra: high)")
def _marginal(ent, candidates, k, generator=None, temperature=None):
    # The paper says "half highest, half lowest" and not where an odd k's extra token goes: here to the high side
    # (on cpu-long, where k is 4 or 5, that makes 53% of marginal's masks high-entropy ones).
    zero = torch.zeros_like(k)
    low = _first_k(ent, candidates, zero, k // 2)
    high = _first_k(-ent, candidates & ~low, zero, k - k // 2)  # excluding `low` keeps the two disjoint on ties
    return low | high


@register_selector("alternating", paper=True, help="high or low, one coin per call (per batch in training)")
def _alternating(ent, candidates, k, generator=None, temperature=None):
    # one draw from the generator, before anything else uses it (whole words included: _whole_words draws nothing)
    coin = torch.rand(1, generator=generator, device=generator.device if generator else "cpu")
    return (_high if coin.item() < 0.5 else _low)(ent, candidates, k)


@register_selector("random", needs_scores=False, paper=True, help="k uniformly at random (the paper's baseline)")
def _random(ent, candidates, k, generator=None, temperature=None):
    # a uniform key ranks the candidates in a uniformly random order; the first k are a uniform k-subset
    return _first_k(_uniform(ent.shape, generator, ent.device), candidates, torch.zeros_like(k), k)


@register_selector("bernoulli", needs_scores=False, uses_ratio=True,
                   help="each candidate with probability ratio, k varies per row (HF's MLM collator)")
def _bernoulli(ent, candidates, ratio, generator=None):
    u = _uniform(ent.shape, generator, ent.device)
    return (u < ratio) & candidates


@register_selector("sampled", help="k drawn with probability ~ softmax(entropy / masking.temperature), Gumbel top-k")
def _sampled(ent, candidates, k, generator=None, temperature=1.0):
    """k without replacement, each draw with probability proportional to softmax(entropy / temperature): the
    Gumbel top-k trick (top k of entropy/T + Gumbel noise). T = 0 is `high` exactly; T = inf is `random` exactly
    (the same uniforms, in the same order)."""
    if temperature == 0:
        return _high(ent, candidates, k)
    u = _uniform(ent.shape, generator, ent.device)
    # Gumbel noise from 1 - u (as uniform as u): decreasing in u, so at T = inf the top k are `random`'s k smallest u
    gumbel = -torch.log(-torch.log((1 - u).clamp(1e-12, 1 - 1e-7)))  # [B, T]
    key = gumbel if temperature == float("inf") else ent / temperature + gumbel
    return _first_k(-key, candidates, torch.zeros_like(k), k)


def _uniform(shape, generator: torch.Generator | None, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=gen_device).to(device)


def candidate_mask(input_ids: torch.Tensor, special_ids: list[int] | torch.Tensor, unk_id: int | None = None,
                   include_unk: bool = False) -> torch.Tensor:
    """True where a token may be masked: not special ([CLS], [SEP], [PAD], ...), and not [UNK] unless asked. [B, T]

    A tokenizer lists [UNK] among its special ids, so `include_unk` takes it out of the special set explicitly
    (otherwise the flag would have no effect).
    """
    special = [int(i) for i in (special_ids.tolist() if torch.is_tensor(special_ids) else special_ids)]
    if unk_id is not None:
        special = [i for i in special if i != unk_id]
    cand = ~torch.isin(input_ids, torch.as_tensor(special, dtype=input_ids.dtype, device=input_ids.device))
    if not include_unk and unk_id is not None:
        cand &= input_ids != unk_id
    return cand


def apply_mask(input_ids: torch.Tensor, mask: torch.Tensor, mask_token_id: int, policy: str = "mask",
               vocab_size: int | None = None, generator: torch.Generator | None = None,
               special_ids: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked inputs and labels (-100 where not masked).

    policy `mask`: every selected token becomes [MASK] (the paper's setting).
    policy `bert`: of the selected, 80% [MASK], 10% a random non-special token, 10% unchanged.
    """
    labels = input_ids.masked_fill(~mask, -100)  # [B, T]
    inputs = input_ids.clone()
    if policy == "mask":
        inputs[mask] = mask_token_id
        return inputs, labels
    if policy != "bert":
        raise ValueError(f"unknown mask policy {policy!r}; choose mask or bert")
    if vocab_size is None:
        raise ValueError("policy 'bert' needs vocab_size for its random replacements")
    u = _uniform(input_ids.shape, generator, input_ids.device)
    to_mask = mask & (u < 0.8)
    to_random = mask & (u >= 0.8) & (u < 0.9)
    inputs[to_mask] = mask_token_id
    n_special = 0
    if special_ids:
        # Special ids of BERT vocabularies sit at the start (0..103); draw replacements above them.
        n_special = max(special_ids) + 1 if max(special_ids) < vocab_size // 2 else 0
    rand_ids = (_uniform(input_ids.shape, generator, input_ids.device) * (vocab_size - n_special)).long() + n_special
    inputs[to_random] = rand_ids[to_random]
    return inputs, labels


def static_scores(ids: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Scores in [0, 1) [B, T] that depend only on each row's token ids and `seed`, so the k highest are a random
    k-subset that is the same every time the row comes back (masking.static, beyond the paper: random masks made
    static like teacher masks). A row's seed is the CRC32 of its ids started from `seed`."""
    rows = ids.detach().to("cpu", torch.int64).numpy()
    out = torch.empty(ids.shape, dtype=torch.float32)
    for b, row in enumerate(rows):
        g = torch.Generator().manual_seed(zlib.crc32(row.tobytes(), int(seed) & 0xFFFFFFFF))
        out[b] = torch.rand(ids.shape[1], generator=g)
    return out.to(ids.device)


# The paper's five and random, and the strategies beyond the paper, in registration order (views of SELECTORS).
STRATEGIES = strategies(paper=True)
EXTRA = strategies(paper=False)
