"""Token entropy: H = -sum p log p of a model's predicted distribution, and the cached teacher pass over a corpus.

What it is: `token_entropy` (stable, chunked, any float dtype in, float32 out), `model_entropy` (a BertForMaskedLM
scoring *unmasked* sequences, the head applied a chunk of positions at a time so no [B, T, V] float32 tensor
exists), and `teacher_entropies` (the whole corpus once per (teacher, corpus, tokenizer, length), stored beside
the tokenized corpus and reused by every run).

Beyond the paper: `SCORERS`, a registry of token scores the strategies can rank instead of the unmasked-view
entropy (masked-view entropy, the model's own masked loss, Rho-1's excess loss over the teacher), with
`score_tokens` to call one and `masked_pass` / `masked_view` for the masked view they share.

What it is not: it does not choose which tokens to mask (see `entmask.masking`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from entmask import runs


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


def teacher_key(teacher_dir: str | Path) -> str:
    """Identity of a teacher: a hash of its config and weights (a retrained teacher gets a new cache)."""
    return runs.weights_key(teacher_dir)


def cache_path(corpus_dir: Path, split: str, tkey: str) -> Path:
    return Path(corpus_dir) / f"entropy-{split}-{tkey}.safetensors"


STATS = {"passes": 0}  # teacher forward passes done in this process (tests assert the cache is hit)


def ids_digest(input_ids: torch.Tensor) -> str:
    """sha256 of a token-id tensor's bytes: what an entropy cache was computed on, checked when it is reused."""
    return hashlib.sha256(input_ids.contiguous().cpu().numpy().tobytes()).hexdigest()[:16]


def teacher_entropies(teacher_dir: str | Path, corpus_dir: Path, split: str, input_ids: torch.Tensor,
                      device: str | torch.device = "cpu", batch_size: int = 64, chunk_size: int = 1024,
                      progress: bool = True, block_rows: int = 2048, force: bool = False, scorer: str = "entropy",
                      candidates: torch.Tensor | None = None, mask_id: int | None = None, ratio: float = 0.15,
                      seed: int = 0) -> torch.Tensor:
    """Per-token teacher entropy of every packed sequence of a split, computed once and cached. [N, T] float32.

    `scorer` other than the paper's `entropy` (e.g. `masked_entropy`, `loss`; see SCORERS) caches that score
    instead, under its own file; masked-view scorers need `candidates` [N, T] and `mask_id`, and draw the mask
    groups of the whole split at once from `seed` (on the CPU), so the scores do not depend on the batch size, the
    device, or where a resumed pass restarted.

    The cache file lives beside the tokenized corpus (so a new length or corpus is a new cache) and is keyed by
    the teacher's weights (so a changed teacher is a new cache). Its metadata records the corpus folder, the
    teacher key and a digest of the token ids it was computed on; a cache whose record differs (or whose shape
    does, or that does not parse) is rebuilt, never trusted on its shape alone. `force` rebuilds it. The pass is
    resumable: every `block_rows` rows are saved (atomically) in `<cache>.partial-<block_rows>/`, so a pass killed
    after hours restarts at its last finished block; the blocks are deleted once the cache file is written.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    tkey = teacher_key(teacher_dir)
    sc = get_scorer(scorer)
    if sc.uses_reference:
        raise ValueError(f"scorer {scorer!r} compares the student with the teacher, so it cannot be cached from the "
                         f"teacher alone: use it with --source self")
    if sc.view == "masked" and (candidates is None or mask_id is None):
        raise ValueError(f"scorer {scorer!r} masks positions: give candidates and mask_id")
    # a masked-view score depends on which positions are candidates (include_unk): their digest is in the key
    skey = tkey if scorer == "entropy" else f"{tkey}-{scorer}-r{ratio:g}-s{seed}-c{ids_digest(candidates)[:8]}"
    path = cache_path(corpus_dir, split, skey)
    want = {"corpus": Path(corpus_dir).name, "teacher_key": tkey, "ids_digest": ids_digest(input_ids),
            "split": split}
    if scorer != "entropy":
        want["scorer"] = skey
    with runs.locked(path):
        if force and path.exists():
            print(f"entmask: --force: rebuilding the teacher entropy cache {path.name}")
            path.unlink()
        if path.exists():
            try:
                with safe_open(str(path), "pt") as fh:
                    meta = fh.metadata() or {}
                ent = load_file(str(path))["entropy"]
                stale = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
                if ent.shape == input_ids.shape and not stale:
                    return ent
                why = (f"built for {', '.join(f'{k}={a}' for k, (a, _) in stale.items())}" if stale
                       else f"shape {tuple(ent.shape)}, not {tuple(input_ids.shape)}")
                print(f"entmask: teacher entropy cache {path.name} does not match this corpus/teacher ({why}); "
                      f"rebuilding it")
            except Exception:  # noqa: BLE001 - any damage (truncated, foreign) means rebuild
                print(f"entmask: teacher entropy cache {path} is incomplete or corrupt; rebuilding it")
        from entmask.models import load_teacher

        model = load_teacher(teacher_dir, device=device)
        dev = torch.device(device)
        amp = torch.bfloat16 if _bf16_ok(dev) else None
        n, width = input_ids.shape
        block_rows = max(batch_size, block_rows - block_rows % batch_size)  # whole batches per block
        parts = path.parent / f"{path.name}.partial-{block_rows}-{want['ids_digest']}"
        if force:
            shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(exist_ok=True)
        out = torch.empty(input_ids.shape, dtype=torch.float32)  # [N, T]
        groups = (mask_groups(input_ids.shape, ratio, torch.Generator().manual_seed(seed)).to(torch.uint8)
                  if scorer != "entropy" else None)  # [N, T] the masked-view pass of every position
        t0 = time.perf_counter()
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"teacher {scorer} ({split})", disable=not progress, unit="row")
        resumed = 0
        for b0 in range(0, n, block_rows):
            b1 = min(n, b0 + block_rows)
            part = parts / f"rows-{b0}-{b1}.safetensors"
            block = _load_block(part, (b1 - b0, width))
            if block is not None:
                resumed += b1 - b0
            else:
                block = torch.empty(b1 - b0, width, dtype=torch.float32)  # [rows, T]
                with torch.inference_mode():
                    for s in range(b0, b1, batch_size):
                        runs.failpoint("teacher-pass")
                        ids = input_ids[s:min(s + batch_size, b1)].to(dev)  # [B, T]
                        if scorer == "entropy":
                            ent = model_entropy(model, ids, torch.ones_like(ids), chunk_size, autocast_dtype=amp)
                        else:
                            ent = score_tokens(scorer, model, ids, candidates[s:s + len(ids)].to(dev),
                                               mask_id=mask_id, ratio=ratio, group=groups[s:s + len(ids)],
                                               chunk_size=chunk_size, autocast_dtype=amp)
                        check_finite(ent, f"teacher entropy pass over {split} rows {s}..{s + len(ids)}")
                        block[s - b0:s - b0 + len(ids)] = ent.cpu()
                if b1 < n:  # the last block goes straight into the cache file
                    runs.atomic_write_bytes(part, save({"entropy": block}))
            out[b0:b1] = block
            bar.update(b1 - b0)
        bar.close()
        if resumed:
            print(f"entmask: teacher entropy over {split} resumed {resumed:,} of {n:,} rows from {parts.name}")
        STATS["passes"] += 1
        secs = time.perf_counter() - t0
        meta = {"tokens": str(input_ids.numel()), "seconds": f"{secs:.2f}",
                "tokens_per_s": f"{input_ids.numel() / max(secs, 1e-9):.0f}", "complete": "1",
                "precision": "bf16" if amp else "fp32", "resumed_rows": str(resumed), **want}
        runs.failpoint("entropy-write")
        runs.atomic_write_bytes(path, save({"entropy": out}, metadata=meta))
        shutil.rmtree(parts, ignore_errors=True)
        print(f"entmask: teacher entropy over {split}: {input_ids.numel():,} tokens in {secs:.1f}s "
              f"({input_ids.numel() / max(secs, 1e-9):,.0f} tokens/s, {meta['precision']}) -> {path.name}")
        return out


def _load_block(part: Path, shape: tuple) -> torch.Tensor | None:
    """A finished block of an interrupted teacher pass, or None (absent, or damaged: then it is recomputed)."""
    from safetensors.torch import load_file

    if not part.exists():
        return None
    try:
        block = load_file(str(part))["entropy"]
    except Exception:  # noqa: BLE001 - a damaged block is recomputed, never trusted
        return None
    return block if tuple(block.shape) == shape else None


def _bf16_ok(device: torch.device) -> bool:
    """bf16 autocast for inference passes where the hardware runs it fast: CUDA, or CPUs with AVX512-BF16/AMX
    (measured here: the reference encoder 3x faster than fp32). Entropies then differ from fp32 by ~1e-2 nats."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def entropy_summary(entropy: torch.Tensor, candidates: torch.Tensor) -> dict:
    """Mean and standard deviation of entropy over candidate positions (teacher quality, plateau check)."""
    e = entropy[candidates.bool()].double()
    return {"entropy_mean": float(e.mean()), "entropy_sd": float(e.std())} if e.numel() > 1 else {}


def describe_cache(corpus_dir: Path) -> list[dict]:
    """What teacher-entropy caches sit beside a corpus (for `entmask info`)."""
    from safetensors import safe_open

    out = []
    for f in sorted(Path(corpus_dir).glob("entropy-*.safetensors")):
        try:
            with safe_open(str(f), "pt") as fh:
                out.append({"file": f.name, **(fh.metadata() or {})})
        except Exception:  # noqa: BLE001 - a damaged cache is listed as such, not fatal here
            out.append({"file": f.name, "status": "unreadable"})
    return out




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
    chunk_size: int | None = 1024  # positions per head chunk in the unmasked pass
    autocast_dtype: torch.dtype | None = None


@dataclasses.dataclass(frozen=True)
class Scorer:
    name: str
    fn: Callable
    view: str  # "unmasked": one pass over the sequence as is | "masked": each position scored while masked
    uses_reference: bool  # compares the scored model with a reference (the teacher)
    doc: str

    def passes(self, ratio: float = 0.15) -> int:
        """Forward passes of the scored model per row (the reference adds as many when it is used)."""
        return 1 if self.view == "unmasked" else math.ceil(1 / ratio)


SCORERS: dict[str, Scorer] = {}


def register_scorer(name: str, view: str = "unmasked", uses_reference: bool = False):
    """Decorator: make `fn(model, ids, candidates, ctx) -> [B, T] float32` the scorer `name`."""
    if view not in ("unmasked", "masked"):
        raise ValueError(f"view={view!r}: unmasked or masked")

    def deco(fn):
        SCORERS[name] = Scorer(name, fn, view, uses_reference, (fn.__doc__ or "").strip().split("\n")[0])
        return fn
    return deco


def get_scorer(name: str) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}")
    return SCORERS[name]


@torch.no_grad()
def score_tokens(name: str, model, input_ids: torch.Tensor, candidates: torch.Tensor, **ctx) -> torch.Tensor:
    """Scores of every position under scorer `name` ([B, T] float32, 0 at non-candidates); `ctx` fills a
    `ScoreContext` (mask_id, ratio, reference, generator, chunk_size, autocast_dtype)."""
    sc = get_scorer(name)
    c = ScoreContext(**ctx)
    if sc.view == "masked" and c.mask_id is None:
        raise ValueError(f"scorer {name!r} masks positions: give mask_id")
    if sc.uses_reference and c.reference is None:
        raise ValueError(f"scorer {name!r} compares the model with a reference: give reference=<the teacher>")
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
    g = _groups(ids, c)
    own = masked_pass(model, ids, cand, c.mask_id, g, c.autocast_dtype, c.chunk_size)["loss"]
    ref = masked_pass(c.reference, ids, cand, c.mask_id, g, c.autocast_dtype, c.chunk_size)["loss"]
    return own - ref


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
