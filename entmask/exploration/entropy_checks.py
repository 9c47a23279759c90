"""Does a model's unmasked-view entropy rank what it does not know? The masked vs unmasked view of a model's
entropies on the held-out split, and the teacher's strength beside it.

What it is: `view_check` (any BertForMaskedLM folder: `entmask.entropy.entropy_rank_check` over seeded test rows,
cached as entropy_check-<rows>-<seed>.npz/.json when given a folder) and `teacher_check` (the reference teacher's
held-out metrics and its `view_check`, cached in its run's logs/).

What it is not: no training and no masks of a strategy; it builds the reference teacher only when `cfg.teacher`
names one that is missing.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from entmask import runs
from entmask.data import prepare_corpus
from entmask.entropy import entropy_rank_check
from entmask.exploration.view import sample_rows
from entmask.masking import candidate_mask
from entmask.models import load_teacher, transformers_bars
from entmask.pretrain import resolve_teacher, teacher_metrics


def view_check(cfg, model_dir, max_rows: int | None = 512, seed: int = 0, root=None, progress: bool = True,
               cache_dir=None) -> dict:
    """Masked vs unmasked view of any BertForMaskedLM folder (the teacher or a student) on the held-out split.

    `entropy.entropy_rank_check` over `max_rows` seeded test rows: Spearman between each position's
    unmasked-view entropy (what the strategies rank) and the model's own loss (and entropy) there when masked,
    and the top-15% overlap. Arrays `unmasked`, `masked_loss`, `masked_entropy` come back for plots. Cached as
    `<cache_dir>/entropy_check-<rows>-<seed>.npz/.json` when cache_dir is given (a model's check is computed once).
    """
    corpus = prepare_corpus(cfg.data, root, progress)
    rows = sample_rows(corpus.test_ids.shape[0], max_rows, seed)
    ids = corpus.test_ids[rows]
    tok = corpus.tokenizer
    cand = candidate_mask(ids, corpus.special_ids, tok.unk_token_id)
    cache = Path(cache_dir) / f"entropy_check-{max_rows}-{seed}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        z = np.load(cache)
        arrays = {k: z[k] for k in ("unmasked", "masked_loss", "masked_entropy")}
        summary = runs.read_json(cache.with_suffix(".json"))
    else:
        with transformers_bars(progress):
            model = load_teacher(model_dir)
        r = entropy_rank_check(model, ids, cand, tok.mask_token_id, seed=seed, chunk_size=cfg.train.entropy_chunk)
        arrays = {k: r.pop(k) for k in ("unmasked", "masked_loss", "masked_entropy")}
        summary = r
        if cache is not None:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            runs.atomic_write_bytes(cache, buf.getvalue())
            runs.write_json(cache.with_suffix(".json"), summary)
    return {"model": str(model_dir), "rows": len(rows), **summary, **arrays}


def teacher_check(cfg, max_rows: int | None = 512, seed: int = 0, root=None, progress: bool = True,
                  teacher_dir=None) -> dict:
    """The teacher's strength and the quality of its entropies on the held-out (test) split.

    Returns its held-out masked accuracy/loss (the reference run's metrics, same masking as every student's) and
    `view_check` over `max_rows` seeded test rows: Spearman between each position's unmasked-view entropy (what
    the strategies rank) and the teacher's own loss there when masked. Cached as logs/entropy_check-<rows>-<seed>
    .json in the reference run folder (a reference's check is computed once).
    """
    tdir = Path(teacher_dir) if teacher_dir else resolve_teacher(cfg, root, progress)
    cache_dir = tdir.parent / "logs" if tdir.name == "model" else None
    v = view_check(cfg, tdir, max_rows, seed, root, progress, cache_dir)
    v.pop("model")
    m = teacher_metrics(tdir)
    return {"teacher": str(tdir), "heldout_accuracy": m.get("heldout_accuracy"), "heldout_loss": m.get("heldout_loss"),
            "unigram_accuracy": m.get("unigram_accuracy"), "recipe": m.get("reference"),
            "early_stopping": {k: x for k, x in (m.get("early_stopping") or {}).items() if k != "points"}, **v}
