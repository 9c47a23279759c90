"""The teacher's view of the corpus: its cached per-token entropies over a seeded sample of rows, with the
candidates and train-split token counts the analyses need beside them.

What it is: `EntropyView`, `teacher_view` (reads `entmask.entropy.teacher_entropies`, the same cached file
teacher-masking runs read), `sample_rows` (a seeded sample of row indices) and `token_counts` (train frequencies,
special tokens zeroed).

What it is not: no analysis of the entropies (tables, overlap, checks: the other `entmask.exploration` modules)
and no training; it builds the reference teacher only when `cfg.teacher` names one that is missing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from entmask.data import prepare_corpus
from entmask.entropy import teacher_entropies
from entmask.masking import candidate_mask
from entmask.pretrain import check_teacher, resolve_teacher


@dataclass
class EntropyView:
    """Teacher entropies over a sample of corpus rows, and what the analyses need beside them."""

    ids: torch.Tensor  # [N, T] int64, the sampled rows
    entropy: torch.Tensor  # [N, T] float32, nats (the teacher's, on unmasked text: what training caches)
    candidates: torch.Tensor  # [N, T] bool, maskable positions
    rows: torch.Tensor  # [N] the sampled rows' indices in the split
    counts: torch.Tensor  # [V] token counts in the train split (specials zeroed)
    tokenizer: object
    teacher_dir: Path
    split: str
    corpus: object  # entmask.data.Corpus

    def __len__(self) -> int:
        return self.ids.shape[0]


def sample_rows(n: int, k: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a seeded sample of k of n rows (all rows when k is None or >= n)."""
    if k is None or k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed))
    return torch.sort(torch.randperm(n, generator=g)[: int(k)]).values


def token_counts(ids: torch.Tensor, vocab_size: int, special_ids: Sequence[int] = ()) -> torch.Tensor:
    """Occurrences of every token id in `ids` (special tokens set to 0). [V] int64"""
    counts = torch.bincount(ids.reshape(-1), minlength=vocab_size)
    if len(special_ids):
        counts[torch.as_tensor(list(special_ids))] = 0
    return counts


def teacher_view(cfg, split: str = "train", max_rows: int | None = 256, seed: int = 0, root=None,
                 device: str | None = None, progress: bool = True, teacher_dir=None) -> EntropyView:
    """The teacher's per-token entropies over `max_rows` seeded rows of a split of the prepared corpus.

    The entropies come from `entmask.entropy.teacher_entropies` over the whole split, the same cached file that
    teacher-masking runs read, so on the train split this costs nothing once a teacher-masked run exists.
    `teacher_dir`: the teacher's model folder; by default `cfg.teacher`, building the reference if it is missing.
    """
    corpus = prepare_corpus(cfg.data, root, progress)
    teacher_dir = Path(teacher_dir) if teacher_dir else resolve_teacher(cfg, root, progress)  # builds a missing one
    check_teacher(teacher_dir, corpus)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: choose train or test")
    all_ids = corpus.train_ids if split == "train" else corpus.test_ids
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ent = teacher_entropies(teacher_dir, corpus.dir, split, all_ids, device=dev, batch_size=cfg.train.eval_batch_size,
                            chunk_size=cfg.train.entropy_chunk, progress=progress)
    rows = sample_rows(all_ids.shape[0], max_rows, seed)
    tok = corpus.tokenizer
    ids = all_ids[rows]
    cand = candidate_mask(ids, corpus.special_ids, tok.unk_token_id, cfg.masking.include_unk)
    counts = token_counts(corpus.train_ids, len(tok), corpus.special_ids)
    return EntropyView(ids=ids, entropy=ent[rows].float(), candidates=cand, rows=rows, counts=counts, tokenizer=tok,
                       teacher_dir=Path(teacher_dir), split=split, corpus=corpus)
