"""Token entropy: H = -sum p log p of a model's predicted distribution, and the cached teacher pass over a corpus.

What it is: `teacher_entropies` (the whole corpus once per (teacher, corpus, tokenizer, length), stored beside
the tokenized corpus, resumable block by block, and reused by every run; a scorer other than the paper's entropy is
cached under its own file), `teacher_key`, `cache_path`, `describe_cache`, `entropy_summary` and `_bf16_ok`. The
scores themselves are `entmask.token_scores`: `token_entropy` (stable, chunked), `model_entropy` (a
BertForMaskedLM scoring *unmasked* sequences a chunk of positions at a time), the masked view (`masked_pass`,
`masked_view`) and `SCORERS`, the registry of token scores the strategies can rank (masked-view entropy, the
model's own masked loss, Rho-1's excess loss over the teacher), with `score_tokens`; every name there is
re-exported here, so `from entmask.entropy import ...` keeps working.

What it is not: it does not choose which tokens to mask (see `entmask.masking`).
"""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from tqdm.auto import tqdm

from entmask import models, runs
from entmask.token_scores import (  # noqa: F401 - re-exported
    _F32_MIN, GPU_MIN_CHUNK, SCORERS, EntropyError, Scorer, ScoreContext, _entropy_rows, _eval, _groups,
    _score_entropy, _score_excess_loss, _score_excess_loss_fixed, _score_loss, _score_masked_entropy, check_finite,
    entropy_rank_check, fixed_groups, get_scorer, mask_groups, masked_pass, masked_view, model_entropy,
    register_scorer, score_tokens, token_entropy)


def teacher_key(teacher_dir: str | Path) -> str:
    """Identity of a teacher: a hash of its config and weights (a retrained teacher gets a new cache); for a
    teacher imported from records without its weights (runs.weightless_teacher), the key its record names."""
    if runs.weightless_teacher(teacher_dir):
        return runs.recorded_key(teacher_dir)
    return runs.weights_key(teacher_dir)


def cache_path(corpus_dir: Path, split: str, tkey: str) -> Path:
    return Path(corpus_dir) / f"entropy-{split}-{tkey}.safetensors"


# the masked-view scorers one teacher sweep computes together (masked_pass's output of each): caching one caches both
SWEEP_OUTPUT = {"loss": "loss", "masked_entropy": "entropy"}

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
    device, or where a resumed pass restarted. `masked_entropy` and `loss` come out of the same sweep
    (`SWEEP_OUTPUT`), so caching one caches the other beside it, under one lock.

    The cache file lives beside the tokenized corpus (so a new length or corpus is a new cache) and is keyed by
    the teacher's weights (so a changed teacher is a new cache). Its metadata records the corpus folder, the
    teacher key and a digest of the token ids it was computed on; a cache whose record differs (or whose shape
    does, or that does not parse) is rebuilt, never trusted on its shape alone. `force` rebuilds it. The pass is
    resumable: every `block_rows` rows are saved (atomically) in `<cache>.partial-<block_rows>/`, so a pass killed
    after hours restarts at its last finished block; the blocks are deleted once the cache file is written.
    """
    tkey = teacher_key(teacher_dir)
    sc = get_scorer(scorer)
    if sc.uses_reference:
        raise ValueError(f"scorer {scorer!r} compares the student with the teacher, so it cannot be cached from the "
                         f"teacher alone: use it with --source self")
    if sc.view == "masked" and (candidates is None or mask_id is None):
        raise ValueError(f"scorer {scorer!r} masks positions: give candidates and mask_id")
    # a masked-view score depends on which positions are candidates (include_unk): their digest is in the key
    def key(name: str) -> str:
        return tkey if name == "entropy" else f"{tkey}-{name}-r{ratio:g}-s{seed}-c{ids_digest(candidates)[:8]}"

    skey = key(scorer)
    path = cache_path(corpus_dir, split, skey)
    # one masked-view sweep yields both masked_entropy and loss: the other is cached too, and both take one lock,
    # so a second row that needs the other waits for the first and reads it (notebook 06 swept twice before)
    sib = next((n for n in SWEEP_OUTPUT if n != scorer), None) if scorer in SWEEP_OUTPUT else None
    sib_path = cache_path(corpus_dir, split, key(sib)) if sib else None
    lock = cache_path(corpus_dir, split, key(min(SWEEP_OUTPUT))) if sib else path
    want = {"corpus": Path(corpus_dir).name, "teacher_key": tkey, "ids_digest": ids_digest(input_ids),
            "split": split}
    if scorer != "entropy":
        want["scorer"] = skey
    weightless = runs.weightless_teacher(teacher_dir)
    if force and weightless:  # its recorded scores are all there is: --force cannot score again, so they stay
        print(f"entmask: --force: teacher {Path(teacher_dir).parent.name} was imported without its weights; its "
              f"recorded scores {path.name} are kept")
        force = False
    with runs.locked(lock):
        if force and path.exists():
            print(f"entmask: --force: rebuilding the teacher entropy cache {path.name}")
            path.unlink()
        if force and sib_path is not None:  # the sweep's other score is rebuilt with it, never kept from before
            sib_path.unlink(missing_ok=True)
        if path.exists():
            try:
                with safe_open(str(path), "pt") as fh:
                    meta = fh.metadata() or {}
                ent = runs.read_tensors(path)["entropy"]  # copied: a later in-place rewrite cannot SIGBUS us
                stale = {k: (meta.get(k), v) for k, v in want.items() if meta.get(k) != v}
                if ent.shape == input_ids.shape and not stale:
                    return ent
                why = (f"built for {', '.join(f'{k}={a}' for k, (a, _) in stale.items())}" if stale
                       else f"shape {tuple(ent.shape)}, not {tuple(input_ids.shape)}")
                print(f"entmask: teacher entropy cache {path.name} does not match this corpus/teacher ({why}); "
                      f"rebuilding it")
            except Exception:  # noqa: BLE001 - any damage (truncated, foreign) means rebuild
                print(f"entmask: teacher entropy cache {path} is incomplete or corrupt; rebuilding it")
        if weightless:
            raise runs.no_weights_error(teacher_dir, f"scoring the {split} rows of corpus {Path(corpus_dir).name}")
        model = models.load_teacher(teacher_dir, device=device)
        dev = torch.device(device)
        amp = torch.bfloat16 if _bf16_ok(dev) else None
        n, width = input_ids.shape
        block_rows = max(batch_size, block_rows - block_rows % batch_size)  # whole batches per block
        parts = path.parent / f"{path.name}.partial-{block_rows}-{want['ids_digest']}"
        if force:
            shutil.rmtree(parts, ignore_errors=True)
        parts.mkdir(exist_ok=True)
        out = torch.empty(input_ids.shape, dtype=torch.float32)  # [N, T]
        sib_out = torch.empty(input_ids.shape, dtype=torch.float32) if sib else None  # [N, T] the sibling score
        groups = fixed_groups(input_ids.shape, ratio, seed) if scorer != "entropy" else None  # [N, T] uint8
        t0 = time.perf_counter()
        bar = tqdm(total=n, desc=f"teacher {scorer} ({split})", disable=not progress, unit="row")
        resumed = 0
        for b0 in range(0, n, block_rows):
            b1 = min(n, b0 + block_rows)
            part = parts / f"rows-{b0}-{b1}.safetensors"
            block = _load_block(part, (b1 - b0, width))
            sblock = _load_block(part, (b1 - b0, width), "sibling") if sib and block is not None else None
            if block is not None:
                resumed += b1 - b0
                sib_out = None if sblock is None else sib_out  # a block from before siblings: that one is not kept
            else:
                block = torch.empty(b1 - b0, width, dtype=torch.float32)  # [rows, T]
                sblock = torch.empty(b1 - b0, width, dtype=torch.float32) if sib else None  # [rows, T]
                with torch.inference_mode():
                    for s in range(b0, b1, batch_size):
                        runs.failpoint("teacher-pass")
                        ids = input_ids[s:min(s + batch_size, b1)].to(dev)  # [B, T]
                        where = f"teacher entropy pass over {split} rows {s}..{s + len(ids)}"
                        if scorer == "entropy":
                            ent = model_entropy(model, ids, torch.ones_like(ids), chunk_size, autocast_dtype=amp)
                        elif sib:  # both outputs of the one sweep, zero off the candidates as score_tokens gives
                            cand = candidates[s:s + len(ids)].to(dev).bool()  # [B, T]
                            r = masked_pass(model, ids, cand, mask_id, groups[s:s + len(ids)].to(dev).long(), amp,
                                            chunk_size)
                            ent, other = (torch.where(cand, r[SWEEP_OUTPUT[name]], 0.0) for name in (scorer, sib))
                            check_finite(other, where)
                            sblock[s - b0:s - b0 + len(ids)] = other.cpu()
                        else:
                            ent = score_tokens(scorer, model, ids, candidates[s:s + len(ids)].to(dev),
                                               mask_id=mask_id, ratio=ratio, group=groups[s:s + len(ids)],
                                               chunk_size=chunk_size, autocast_dtype=amp)
                        check_finite(ent, where)
                        block[s - b0:s - b0 + len(ids)] = ent.cpu()
                if b1 < n:  # the last block goes straight into the cache file
                    runs.atomic_write_bytes(part, save({"entropy": block, **({"sibling": sblock} if sib else {})}))
            out[b0:b1] = block
            if sib_out is not None:
                sib_out[b0:b1] = sblock
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
        if sib_out is not None:  # written first (the named cache marks the sweep done), over any older one
            runs.atomic_write_bytes(sib_path, save({"entropy": sib_out}, metadata={**meta, "scorer": key(sib)}))
        runs.atomic_write_bytes(path, save({"entropy": out}, metadata=meta))
        shutil.rmtree(parts, ignore_errors=True)
        print(f"entmask: teacher entropy over {split}: {input_ids.numel():,} tokens in {secs:.1f}s "
              f"({input_ids.numel() / max(secs, 1e-9):,.0f} tokens/s, {meta['precision']}) -> {path.name}")
        return out


def _load_block(part: Path, shape: tuple, name: str = "entropy") -> torch.Tensor | None:
    """A finished block of an interrupted teacher pass, or None (absent, or damaged: then it is recomputed)."""
    if not part.exists():
        return None
    try:
        block = runs.read_tensors(part)[name]
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
    out = []
    for f in sorted(Path(corpus_dir).glob("entropy-*.safetensors")):
        try:
            with safe_open(str(f), "pt") as fh:
                out.append({"file": f.name, **(fh.metadata() or {})})
        except Exception:  # noqa: BLE001 - a damaged cache is listed as such, not fatal here
            out.append({"file": f.name, "status": "unreadable"})
    return out
