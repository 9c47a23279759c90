"""The teacher's cached per-position scores of the train split, which the teacher-masked phases mask by.

What it is: `uses_teacher_scores(cfg)` (whether some phase of a run masks by them), `uses_reference_scores(cfg)`
(whether a self-scorer's teacher half is cached: `excess_loss_fixed`, with `reference_groups`, the fixed mask
groups those scores were computed on), `teacher_scores` (computed once
per (teacher, corpus, scorer, view) and cached beside the corpus: of the long rows, or of their short view,
phases.py), `score_views` (all of a profile's views at once, for the teacher's record) and `check_teacher` (fail
in one line, before any scoring, when the teacher is not a complete masked LM of the tokenizer's vocabulary; a
teacher imported with its scores only passes).

What it is not: no finding or building of the teacher (entmask.reference); the passes and the cache files
themselves are entmask.entropy's.
"""
from __future__ import annotations

import copy
from pathlib import Path

import torch

from entmask import runs
from entmask.config import PretrainConfig
from entmask.data import Corpus
from entmask.entropy import SCORERS, fixed_groups, teacher_entropies
from entmask.masking import candidate_mask, needs_entropy
from entmask.models import load_teacher
from entmask.phases import short_views, split_ids


def uses_teacher_scores(cfg: PretrainConfig) -> bool:
    """Whether some phase of this run masks by the teacher's (cached) scores."""
    m = cfg.masking
    if not needs_entropy(m.strategy) or cfg.kd.mode == "kd-only":
        return False
    return m.source == "teacher" or m.self_start == "init" or cfg.kd.mode == "after-init"


def uses_reference_scores(cfg: PretrainConfig) -> bool:
    """Whether the run's self-scorer takes the teacher's half from the teacher's cached scores (`excess_loss_fixed`:
    the teacher's masked loss over each row's fixed groups) instead of running the teacher every step."""
    m = cfg.masking
    return (needs_entropy(m.strategy) and cfg.kd.mode != "kd-only" and m.source == "self"
            and m.scorer in SCORERS and SCORERS[m.scorer].reference_score is not None)


def reference_groups(cfg: PretrainConfig, corpus: Corpus, short_rows: int = 1) -> torch.Tensor:
    """The mask groups the cached reference scores of `teacher_scores` were computed on, per row of the view
    (`short_rows` = k: the short view's [N*k, t]), for the student's half of the same score. [rows, T] uint8"""
    tok = corpus.tokenizer
    ids = split_ids(corpus.train_ids, short_rows, tok.cls_token_id, tok.sep_token_id)
    return fixed_groups(ids.shape, cfg.masking.ratio, cfg.train.seed)


def teacher_scores(cfg: PretrainConfig, teacher_dir: Path, corpus: Corpus, progress: bool = True,
                   force: bool = False, short_rows: int = 1) -> torch.Tensor | None:
    """The teacher's scores of every train position (the paper's unmasked-view entropy, or `masking.scorer`, or
    for `excess_loss_fixed` the teacher's half of it: its masked loss), computed once per (teacher, corpus, scorer,
    view) and cached beside the corpus; None when the run uses none.
    `short_rows` = k > 1 scores the short view of the rows (phases.py), [N*k, (T-2)/k + 2]: the teacher sees the
    rows the student trains on."""
    reference = uses_reference_scores(cfg)
    if not (uses_teacher_scores(cfg) or reference):
        return None
    t, m = cfg.train, cfg.masking
    scorer = SCORERS[m.scorer].reference_score if reference else m.scorer  # excess_loss_fixed: the teacher's loss
    tok = corpus.tokenizer
    ids = split_ids(corpus.train_ids, short_rows, tok.cls_token_id, tok.sep_token_id)
    extra = {}
    if scorer != "entropy":  # masked-view scorers: the candidates they mask, and the masking ratio of the view
        extra = dict(scorer=scorer, ratio=m.ratio, seed=t.seed, mask_id=tok.mask_token_id,
                     candidates=candidate_mask(ids, corpus.special_ids, tok.unk_token_id, m.include_unk))
    split = "train" if short_rows == 1 else f"train-short{short_rows}"
    return teacher_entropies(teacher_dir, corpus.dir, split, ids,
                             device="cuda" if torch.cuda.is_available() else "cpu", batch_size=t.eval_batch_size,
                             chunk_size=t.entropy_chunk, progress=progress, block_rows=t.entropy_block_rows,
                             force=force, **extra)


def needs_teacher_model(cfg: PretrainConfig) -> bool:
    """Whether training needs the teacher's weights, not only its cached scores: KD, or a scorer that compares the
    student with the teacher at every step (`excess_loss`; `excess_loss_fixed` reads the teacher's cached half)."""
    sc = SCORERS[cfg.masking.scorer]
    online_reference = sc.uses_reference and sc.reference_score is None and needs_entropy(cfg.masking.strategy)
    return cfg.kd.mode != "none" or online_reference


def check_teacher(teacher_dir: Path, corpus: Corpus, trust_remote_code: bool = False) -> None:
    """Fail early, in one line, if the teacher is not a complete masked LM of the tokenizer's vocabulary."""
    if runs.weightless_teacher(teacher_dir):
        return  # imported with its scores only: the score cache checks corpus, teacher and token ids when read
    load_teacher(teacher_dir, expect_vocab=len(corpus.tokenizer), trust_remote_code=trust_remote_code)


def score_views(cfg: PretrainConfig, teacher_dir: Path, corpus: Corpus, progress: bool = True) -> list[str]:
    """Score every view of the train rows that a teacher-masked student of `cfg`'s profile trains on (the whole rows,
    the short phase's and every train.length_ramp stage's), with `cfg`'s scorer, so the caches exist before any
    student needs them and `entmask runs export` records them with the teacher (`entmask reference --scores`).
    Returns the views scored: "train", "train-short<k>"."""
    c = copy.deepcopy(cfg)
    c.masking.source, c.kd.mode = "teacher", "none"
    half = SCORERS[c.masking.scorer].reference_score if c.masking.scorer in SCORERS else None
    if half:  # excess_loss_fixed: what the teacher contributes is its cached `loss` over the same fixed groups
        c.masking.scorer = half
    if not needs_entropy(c.masking.strategy):
        c.masking.strategy = "high"  # any strategy that ranks by the scores: they do not depend on which
    views = [1] + short_views(c.train.short_rows, c.train.length_ramp)
    for k in views:
        teacher_scores(c, teacher_dir, corpus, progress, short_rows=k)
    return ["train" if k == 1 else f"train-short{k}" for k in views]


def teacher_weights_needed(cfg: PretrainConfig, teacher_dir: Path) -> runs.RunError:
    """The one line for a run that needs the weights of a teacher imported with its scores only."""
    import json
    import shlex

    from entmask.config import overrides_of

    what = "knowledge distillation" if cfg.kd.mode != "none" else f"scorer {cfg.masking.scorer}"
    teacher_keys = {k: v for k, v in overrides_of(cfg).items() if k.split(".")[0] in ("reference", "data", "teacher")}
    sets = " ".join(f"--set {shlex.quote(f'{k}={v if isinstance(v, str) else json.dumps(v)}')}"
                    for k, v in teacher_keys.items())
    return runs.no_weights_error(teacher_dir, what, sets)

