"""Token scores of a masked LM's predictions: the entropy kernels, the masked view, and the registry of scorers.

What it is: `token_entropy` (stable, chunked, any float dtype in, float32 out), `model_entropy` (a BertForMaskedLM
scoring *unmasked* sequences, the head applied a chunk of positions at a time so no [B, T, V] float32 tensor
exists), `check_finite` and `EntropyError`; `mask_groups`, `masked_pass` and `masked_view` (each candidate scored
while it is masked, as in training); `SCORERS`, the registry of what the strategies can rank (the paper's
unmasked-view entropy, masked-view entropy, the model's own masked loss, Rho-1's excess loss over the teacher,
online or with each row's mask groups fixed so that the teacher's half is scored once) with `register_scorer`,
`get_scorer` and `score_tokens`; `entropy_rank_check`, whether an entropy ranks what a model does not know.

What it is not: no caching and no corpus (the teacher's pass over a whole split, stored on disk, is
`entmask.entropy`, which re-exports every name here), and it does not choose which tokens to mask (see
`entmask.masking`). scipy is imported in `entropy_rank_check` only: this module is imported by every training step
and CLI command, and scipy.stats costs about a second.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Callable

import torch


GPU_MIN_CHUNK = 2048  # positions per head/entropy chunk on CUDA: below this the pass is launch-bound


class EntropyError(RuntimeError):
    """Non-finite logits in an entropy pass; the message says where and what to do."""


_F32_MIN = torch.finfo(torch.float32).min


def _entropy_rows(x: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax over the last dim of a 2-D block, float32. [N, V] -> [N]

    -inf logits are fine (they contribute 0); NaN/+inf anywhere in a row, or a row of all -inf, makes the result
    NaN (reported by check_finite, not silently 0). Two kernels, whichever is faster on the device: on CUDA
    entr(softmax(x)) (entr(0) = 0; 2x log_softmax + exp on an H200, docs/performance.md); on the CPU
    log_softmax + exp, one transcendental per logit instead of entr's exp and log (measured at one thread on
    4,096 x 30,522 logits with `bench.bench_entropy`: 2.06x entr at the CPU's chunk of 128 positions, 1.41x at
    1,024; it is most of a self-masking step on a CPU). They agree to ~4e-6 nats (near-uniform rows of 30,522; the
    CPU kernel is within ~6e-6 of float64 there, entr ~2e-6); a one-hot row gives -0.0 on the CPU.
    """
    if x.is_cuda:
        return torch.special.entr(torch.softmax(x.float(), dim=-1)).sum(dim=-1)
    logp = torch.log_softmax(x, dim=-1, dtype=torch.float32)  # [N, V]
    # A -inf logit has p = 0: 0 * -inf would be NaN, 0 * (the lowest float) is 0. clamp keeps NaN rows NaN; in
    # place (no copy) unless autograd needs log_softmax's output for backward.
    logp = logp.clamp_min(_F32_MIN) if logp.requires_grad else logp.clamp_min_(_F32_MIN)
    return -(logp.exp() * logp).sum(dim=-1)


def token_entropy(logits: torch.Tensor, chunk_size: int | None = None) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(logits) over the last dim. Shape logits.shape[:-1], float32.

    `chunk_size` positions are converted and reduced at a time, so peak extra memory is about three float32
    copies of one chunk instead of the whole tensor. The result does not depend on it.
    A row of all -inf, or any NaN/+inf, gives NaN for that position (callers check; see `check_finite`).
    """
    if not torch.is_floating_point(logits):
        raise TypeError(f"token_entropy needs float logits, got {logits.dtype}")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])  # [N, V] (a view for contiguous input)
    if chunk_size is None or chunk_size >= flat.shape[0]:
        return _entropy_rows(flat).reshape(lead)
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    for s in range(0, flat.shape[0], chunk_size):
        out[s:s + chunk_size] = _entropy_rows(flat[s:s + chunk_size])
    return out.reshape(lead)


def check_finite(entropy: torch.Tensor, where: str) -> None:
    """Refuse NaN entropies (from NaN/+inf logits or a row of all -inf): they would silently pick masks."""
    bad = ~torch.isfinite(entropy)
    if bad.any():
        n = int(bad.sum())
        raise EntropyError(f"{where}: {n} position(s) have non-finite entropy (NaN/+inf logits or a row of all "
                           f"-inf); the step was not trained on. Check the model for divergence (lower the lr).")


@torch.no_grad()
def model_entropy(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  chunk_size: int | None = 1024, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Entropy of a BertForMaskedLM's predictions on the unmasked input, in eval mode. [B, T] float32.

    The encoder runs once; the vocabulary head runs `chunk_size` positions at a time (bounded memory).
    The model's training mode is restored afterwards (self-masking calls this inside a training step).
    """
    was_training = model.training
    model.eval()
    try:
        device_type = input_ids.device.type
        ctx = (torch.autocast(device_type, dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
        with ctx:
            hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state  # [B, T, H]
            flat = hidden.reshape(-1, hidden.shape[-1])  # [B*T, H]
            step = chunk_size or flat.shape[0]
            if flat.is_cuda:  # small chunks make a GPU launch-bound (measured: 52 ms -> 27 ms per step with both)
                step = max(step, GPU_MIN_CHUNK)
            out = torch.empty(flat.shape[0], dtype=torch.float32, device=flat.device)
            for s in range(0, flat.shape[0], step):
                logits = model.cls(flat[s:s + step])  # [c, V]
                out[s:s + step] = _entropy_rows(logits)
        return out.reshape(input_ids.shape)
    finally:
        model.train(was_training)


# ---- the masked view -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _eval(model):
    """Eval mode for a scoring pass (no dropout), the caller's mode restored after (self-masking scores mid-step)."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def mask_groups(shape, ratio: float, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """The masked-view pass each position is masked in: ceil(1/ratio) disjoint groups drawn at random. [B, T] long"""
    gdev = generator.device if generator is not None else "cpu"
    return torch.randint(0, math.ceil(1 / ratio), tuple(shape), generator=generator, device=gdev).to(device or gdev)


def fixed_groups(shape, ratio: float, seed: int) -> torch.Tensor:
    """The mask groups of a whole split, drawn once from `seed` on the CPU: the same for every batch size, device
    and epoch. The teacher's cached masked-view scores and the trainer's `excess_loss_fixed` both use these, so a
    row's cached reference half and its student half mask the same positions together. [N, T] uint8"""
    return mask_groups(shape, ratio, torch.Generator().manual_seed(seed)).to(torch.uint8)


@torch.no_grad()
def masked_pass(model, input_ids: torch.Tensor, candidates: torch.Tensor, mask_id: int, group: torch.Tensor,
                autocast_dtype: torch.dtype | None = None, chunk_size: int | None = 1024) -> dict:
    """Entropy and loss of the true token at each candidate, scored while it is masked. [B, T] float32 each, NaN
    at non-candidates. Group g's candidates are masked together in pass g (see `mask_groups`), so every candidate
    is seen masked exactly once with about `ratio` of its row masked around it: the view the student trains on."""
    ent = torch.full(input_ids.shape, float("nan"), device=input_ids.device)  # [B, T]
    loss = torch.full(input_ids.shape, float("nan"), device=input_ids.device)  # [B, T]
    ctx = (torch.autocast(input_ids.device.type, dtype=autocast_dtype) if autocast_dtype is not None
           else contextlib.nullcontext())
    with _eval(model), ctx:
        for g in range(int(group.max()) + 1 if group.numel() else 0):
            sel = candidates & (group == g)  # [B, T]
            if not bool(sel.any()):
                continue
            masked = input_ids.masked_fill(sel, mask_id)
            hidden = model.bert(input_ids=masked, attention_mask=torch.ones_like(input_ids)).last_hidden_state
            h, target = hidden[sel], input_ids[sel]  # [M, H], [M]
            step = chunk_size or h.shape[0]
            if h.is_cuda:
                step = max(step, GPU_MIN_CHUNK)
            e_out = torch.empty(h.shape[0], device=h.device)
            l_out = torch.empty(h.shape[0], device=h.device)
            for a in range(0, h.shape[0], step):  # the head a chunk at a time: no [M, V] float32 for all of M
                logits = model.cls(h[a:a + step]).float()  # [c, V]
                e_out[a:a + step] = _entropy_rows(logits)  # the device's faster kernel
                l_out[a:a + step] = torch.nn.functional.cross_entropy(logits, target[a:a + step], reduction="none")
            ent[sel], loss[sel] = e_out, l_out
    return {"entropy": ent, "loss": loss}


@torch.no_grad()
def masked_view(model, input_ids: torch.Tensor, candidates: torch.Tensor, mask_id: int, ratio: float = 0.15,
                seed: int = 0, batch_size: int = 64, chunk_size: int | None = 1024) -> dict:
    """Each candidate position of a whole split scored while it is masked: its entropy and the model's loss on the
    true token (`masked_pass` over batches, on the model's device). Cost: ceil(1/ratio) forward passes (7 at
    15%), against one for the unmasked view. Returns {"entropy": [N, T], "loss": [N, T]} float32 on the CPU, NaN
    where not a candidate."""
    dev = next(model.parameters()).device
    group = mask_groups(input_ids.shape, ratio, torch.Generator().manual_seed(seed))  # [N, T]
    out = {"entropy": [], "loss": []}
    for s in range(0, input_ids.shape[0], batch_size):
        r = masked_pass(model, input_ids[s:s + batch_size].to(dev), candidates[s:s + batch_size].to(dev).bool(),
                        mask_id, group[s:s + batch_size].to(dev), chunk_size=chunk_size)
        for k in out:
            out[k].append(r[k].cpu())
    return {k: torch.cat(v) if v else torch.empty(0, input_ids.shape[1]) for k, v in out.items()}


# ---- token scorers: what the selectors rank -------------------------------------------------------------------
# A scorer maps (model, ids [B, T], candidates [B, T], context) to a float32 [B, T] score (0 at non-candidates):
# a new idea is one registered function plus one test, usable at once from the CLI (--scorer), configs, the trainer
# (teacher-cached or self, each step) and the widgets. The paper's unmasked-view entropy is `entropy`.
@dataclasses.dataclass(frozen=True)
class ScoreContext:
    mask_id: int | None = None  # masked-view scorers mask with it
    ratio: float = 0.15  # masked-view scorers cover each row in ceil(1/ratio) passes
    reference: Any = None  # a second model (the teacher) for scorers that compare two models
    generator: torch.Generator | None = None  # which pass masks which position (masked view)
    group: torch.Tensor | None = None  # [B, T] the pass of each position, given instead of drawn (cached passes)
    reference_scores: torch.Tensor | None = None  # [B, T] the reference's half, cached (scorers with reference_score)
    chunk_size: int | None = 1024  # positions per head chunk in the unmasked pass
    autocast_dtype: torch.dtype | None = None


@dataclasses.dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable
    view: str  # "unmasked": one pass over the sequence as is | "masked": each position scored while masked
    uses_reference: bool  # compares the scored model with a reference (the teacher)
    doc: str
    # the teacher scorer whose cached scores (over fixed groups) are the reference's half, so training needs the
    # teacher's scores but not its weights; None: the reference runs beside the model at every scoring
    reference_score: str | None = None

    def passes(self, ratio: float = 0.15) -> int:
        """Forward passes of the scored model per row (the reference adds as many when it is used)."""
        return 1 if self.view == "unmasked" else math.ceil(1 / ratio)


SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str, view: str = "unmasked", uses_reference: bool = False,
                    reference_score: str | None = None):
    """Decorator: make `fn(model, ids, candidates, ctx) -> [B, T] float32` the scorer `name`."""
    if view not in ("unmasked", "masked"):
        raise ValueError(f"view={view!r}: unmasked or masked")

    def deco(fn):
        SCORERS[name] = Scorer(name, fn, view, uses_reference, (fn.__doc__ or "").strip().split("\n")[0],
                               reference_score)
        return fn
    return deco


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}")
    return SCORERS[name]


@torch.no_grad()
def score_tokens(name: str, model, input_ids: torch.Tensor, candidates: torch.Tensor, **ctx) -> torch.Tensor:
    """Scores of every position under scorer `name` ([B, T] float32, 0 at non-candidates); `ctx` fills a
    `ScoreContext` (mask_id, ratio, reference or reference_scores, generator or group, chunk_size, autocast_dtype)."""
    sc = get_scorer(name)
    c = ScoreContext(**ctx)
    if sc.view == "masked" and c.mask_id is None:
        raise ValueError(f"scorer {name!r} masks positions: give mask_id")
    if sc.uses_reference and c.reference is None and not (sc.reference_score and c.reference_scores is not None):
        raise ValueError(f"scorer {name!r} compares the model with a reference: give reference=<the teacher>")
    if c.reference_scores is not None and c.group is None:
        raise ValueError(f"scorer {name!r}: cached reference_scores need the groups they were scored on (group=)")
    candidates = candidates.bool()
    out = sc.fn(model, input_ids, candidates, c).float()  # [B, T]
    return torch.where(candidates, out, torch.zeros_like(out))


@register_scorer("entropy")
def _score_entropy(model, ids, cand, c: ScoreContext):
    """The paper's score: entropy of the prediction at each position of the unmasked sequence (one pass)."""
    return model_entropy(model, ids, torch.ones_like(ids), c.chunk_size, autocast_dtype=c.autocast_dtype)


def _groups(ids, c: ScoreContext):
    if c.group is not None:
        return c.group.to(ids.device).long()
    return mask_groups(ids.shape, c.ratio, c.generator, ids.device)


@register_scorer("masked_entropy", view="masked")
def _score_masked_entropy(model, ids, cand, c: ScoreContext):
    """Entropy at each position while it is masked, as in training (ceil(1/ratio) passes)."""
    return masked_pass(model, ids, cand, c.mask_id, _groups(ids, c), c.autocast_dtype, c.chunk_size)["entropy"]


@register_scorer("loss", view="masked")
def _score_loss(model, ids, cand, c: ScoreContext):
    """The model's own loss on the true token at each position while it is masked (ceil(1/ratio) passes)."""
    return masked_pass(model, ids, cand, c.mask_id, _groups(ids, c), c.autocast_dtype, c.chunk_size)["loss"]


@register_scorer("excess_loss", view="masked", uses_reference=True)
def _score_excess_loss(model, ids, cand, c: ScoreContext):
    """Rho-1's excess loss: the model's masked loss minus the reference's, on the same masks (2 x ceil(1/ratio))."""
    return _excess_loss(model, ids, cand, c)


def _excess_loss(model, ids, cand, c: ScoreContext) -> torch.Tensor:
    """The model's masked loss minus the reference's on the same groups: the reference's from `c.reference_scores`
    when cached (excess_loss_fixed), else a pass of `c.reference`. [B, T]"""
    g = _groups(ids, c)
    own = masked_pass(model, ids, cand, c.mask_id, g, c.autocast_dtype, c.chunk_size)["loss"]
    if c.reference_scores is not None:
        return own - c.reference_scores.to(own.device).float()
    return own - masked_pass(c.reference, ids, cand, c.mask_id, g, c.autocast_dtype, c.chunk_size)["loss"]


@register_scorer("excess_loss_fixed", view="masked", uses_reference=True, reference_score="loss")
def _score_excess_loss_fixed(model, ids, cand, c: ScoreContext):
    """Rho-1's excess loss with each row's mask groups fixed: the teacher's half is scored once and cached."""
    # Rho-1 also scores its reference once: a token's reference loss is a constant there. Here each row keeps the
    # groups `fixed_groups` drew (every epoch), so the teacher's masked loss of a position is a constant too: it is
    # the teacher's cached `loss` score (entmask.entropy.teacher_entropies), and a training step runs only the
    # student's ceil(1/ratio) passes. Given no cached scores, the reference is scored here on the same groups.
    return _excess_loss(model, ids, cand, c)


def entropy_rank_check(model, input_ids: torch.Tensor, candidates: torch.Tensor, mask_id: int,
                       ratio: float = 0.15, seed: int = 0, chunk_size: int | None = 1024) -> dict:
    """Does a model's unmasked-view entropy rank what it does not know? Spearman correlation, over candidate
    positions, between each position's unmasked-view entropy (what masking strategies rank) and (a) the model's
    own loss there when masked, (b) its masked-view entropy; plus the overlap of the top 15% by each score.
    A teacher whose entropies do not correlate with its own masked loss picks masks by noise."""
    from scipy import stats

    dev = next(model.parameters()).device
    unmasked = torch.cat([model_entropy(model, input_ids[s:s + 64].to(dev), None, chunk_size).cpu()
                          for s in range(0, input_ids.shape[0], 64)])  # [N, T]
    mv = masked_view(model, input_ids, candidates, mask_id, ratio, seed)
    c = candidates.bool()
    u, ml, me = unmasked[c].numpy(), mv["loss"][c].numpy(), mv["entropy"][c].numpy()
    k = max(1, int(0.15 * u.size))
    top = lambda x: set(torch.topk(torch.as_tensor(x), k).indices.tolist())  # noqa: E731
    return {"spearman_entropy_vs_masked_loss": float(stats.spearmanr(u, ml).statistic),
            "spearman_entropy_vs_masked_entropy": float(stats.spearmanr(u, me).statistic),
            "spearman_masked_entropy_vs_masked_loss": float(stats.spearmanr(me, ml).statistic),
            "top15_overlap_entropy_vs_loss": len(top(u) & top(ml)) / k,
            "positions": int(u.size), "masked_loss_mean": float(ml.mean()), "unmasked_entropy_mean": float(u.mean()),
            "unmasked": u, "masked_loss": ml, "masked_entropy": me}
