"""The pretraining Trainer: `EntropyMaskingTrainer`, whose loss step picks the masks, and the rows it is fed.

What it is: `PackedDataset` (packed token ids, with the teacher's cached scores beside them), `collate` (a stack:
packed rows need no padding) and `EntropyMaskingTrainer`, an HF Trainer whose `compute_loss` does, per micro-batch:
    entropy = cached teacher column | the student's own pass (no grad, eval mode)     (entmask.entropy)
    mask    = select_mask(entropy, candidates, strategy, ratio)                      (entmask.masking)
    inputs  = apply_mask(input_ids, mask, policy)
    loss    = MLM at masked positions only (sparse head) [+ alpha * KD]              (entmask.models)
and whose schedule says where the entropies of an epoch come from (teacher, self, or none: random), when KD is on,
and the mask ratio, temperature and short-row view (phases.py) at a step. bf16, gradient accumulation,
checkpoints and torchrun/accelerate come from the Trainer.

What it is not: it finds and writes no run and has no callbacks of its own (entmask.training_run.make_trainer
assembles it, entmask.pretrain runs it); no held-out evaluation (entmask.heldout).
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset
from transformers import Trainer

from entmask.config import PretrainConfig
from entmask.data import Corpus
from entmask.entropy import _bf16_ok, check_finite, model_entropy, score_tokens
from entmask.masking import (apply_mask, candidate_mask, continuation_table, needs_entropy, schedule_value,
                             select_mask, static_scores)
from entmask.models import encode, kd_loss, masked_logits
from entmask.phases import piece_positions, split_ids, view_rows


# ---- data plumbing -------------------------------------------------------------------------------------------
class PackedDataset(Dataset):
    """Rows of packed token ids, with the teacher's entropies beside them when a strategy needs them: of the whole
    rows, and of each short view (phases.py: {k: [N*k, t]}) the run trains on; and, for a scorer whose teacher half
    is cached (`excess_loss_fixed`), the fixed mask groups of each view ({1: [N, T], k: [N*k, t]} uint8)."""

    def __init__(self, input_ids: torch.Tensor, teacher_entropy: torch.Tensor | None = None,
                 teacher_entropy_views: dict | None = None, mask_groups: dict | None = None):
        self.input_ids = input_ids  # [N, T]
        self.teacher_entropy = teacher_entropy  # [N, T] or None
        # k -> [N*k, t] -> [N, k*t]: row i's k short rows side by side, so one index fetches them all
        self.views = {k: v.reshape(input_ids.shape[0], -1) for k, v in (teacher_entropy_views or {}).items()}
        self.groups = {k: v.reshape(input_ids.shape[0], -1) for k, v in (mask_groups or {}).items()}

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.input_ids[i]}
        if self.teacher_entropy is not None:
            item["teacher_entropy"] = self.teacher_entropy[i]
        for k, v in self.views.items():
            item[f"teacher_entropy_short{k}"] = v[i]
        for k, v in self.groups.items():
            item["mask_group" if k == 1 else f"mask_group_short{k}"] = v[i]
        return item


def collate(features: list[dict]) -> dict:
    """Packed rows need no padding: stack. Masking happens in the step, not here."""
    return {k: torch.stack([f[k] for f in features]) for k in features[0]}


# ---- the trainer ---------------------------------------------------------------------------------------------
class EntropyMaskingTrainer(Trainer):
    """A Trainer whose loss step selects the masks (teacher or self entropy) and adds KD when asked."""

    def __init__(self, *args, em: PretrainConfig, corpus: Corpus, steps_per_epoch: int, teacher=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.em = em
        tok = corpus.tokenizer
        self.special_ids = corpus.special_ids
        self.unk_id = tok.unk_token_id
        self.mask_id = tok.mask_token_id
        self.vocab_size = len(tok)
        self.cls_id, self.sep_id = tok.cls_token_id, tok.sep_token_id
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.teacher = teacher.to(self.args.device) if teacher is not None else None
        self.teacher_bf16 = teacher is not None and _bf16_ok(torch.device(self.args.device))
        self._acc: dict[str, float] = {}
        self._micro = (-1, 0)  # (global step, micro-batch index) for per-micro-batch mask seeds
        self.calls = {"self_entropy": 0}
        # [V] bool, True at "##" pieces: whole-word masking groups a word's pieces (None: the paper's wordpieces)
        self.continues = (continuation_table(tok).to(self.args.device) if em.masking.whole_word != "none" else None)

    # -- schedule ------------------------------------------------------------------------------------------------
    def epoch_index(self) -> int:
        return self.state.global_step // self.steps_per_epoch

    def entropy_source(self, epoch: int | None = None) -> str | None:
        """Where entropies come from in `epoch` (0-based; default: now): None (random), 'teacher' or 'self'."""
        m = self.em.masking
        if self.em.kd.mode == "kd-only" or not needs_entropy(m.strategy):
            return None
        in_teacher_phase = (self.epoch_index() if epoch is None else epoch) < m.teacher_epochs
        if self.em.kd.mode == "after-init":
            return "teacher" if in_teacher_phase else "self"
        if m.source == "teacher":
            return "teacher"
        if m.self_start == "init" and in_teacher_phase:
            return "teacher"
        return "self"

    def view_rows(self) -> int:
        """Short rows per row at this step (phases.py): train.short_rows in the first phase, each length_ramp
        stage's k in its share, then 1."""
        t = self.em.train
        return view_rows(self.state.global_step, self.state.max_steps or 1, t.short_rows, t.short_fraction,
                         t.length_ramp)

    def kd_active(self) -> bool:
        mode = self.em.kd.mode
        if mode in ("kd-only", "complete"):
            return True
        return mode == "after-init" and self.epoch_index() >= self.em.masking.teacher_epochs

    def _generators(self, device) -> tuple[torch.Generator, torch.Generator]:
        """(per-step coin generator, per-micro-batch mask generator), both pure functions of (seed, step, ...).

        The coin depends on the optimizer step only, so it is identical on every data-parallel rank and every
        accumulation micro-batch, and a resumed run draws the same coins as an uninterrupted one.
        """
        step = self.state.global_step
        micro = self._micro[1] + 1 if self._micro[0] == step else 0
        self._micro = (step, micro)
        seed = self.em.train.seed
        coin = torch.Generator().manual_seed(1_000_003 * seed + step)
        gen = torch.Generator(device=device).manual_seed(
            ((seed * 1_000_003 + step) * 1_009 + micro) * 131 + self.args.process_index)
        return coin, gen

    def scheduled(self) -> tuple[float, float]:
        """(mask ratio, sampled temperature) at this step: constant (the paper) or moving to their *_end values."""
        m = self.em.masking
        progress = self.state.global_step / max(1, (self.state.max_steps or 1) - 1)
        return (schedule_value(m.ratio, m.ratio_end, m.schedule, progress),
                schedule_value(m.temperature, m.temperature_end, m.schedule, progress))

    # -- the loss step -------------------------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        m, em = self.em.masking, self.em
        ids = inputs["input_ids"]  # [B, T]
        k = self.view_rows()
        if k > 1:  # the short phase: the same text as B*k rows [CLS] piece [SEP]
            ids = split_ids(ids, k, self.cls_id, self.sep_id)  # [B*k, (T-2)/k + 2]
        attn = torch.ones_like(ids)
        cand = candidate_mask(ids, self.special_ids, self.unk_id, m.include_unk)  # [B, T]
        coin, gen = self._generators(ids.device)
        source = self.entropy_source()
        core = self.accelerator.unwrap_model(model)
        ratio, temperature = self.scheduled()
        amp = torch.bfloat16 if self.args.bf16 else None  # the training precision: autocast wraps forward() only
        # natural short positions (phases.py): the student's own passes below, not the teacher's
        with piece_positions(core, inputs["input_ids"].shape[1], k, em.train.short_positions):
            if source == "teacher" and k > 1:  # the teacher's scores of the short rows themselves, cached per view
                entropy = inputs[f"teacher_entropy_short{k}"].reshape(ids.shape).float()  # [B*k, t]
            elif source == "teacher":
                entropy = inputs["teacher_entropy"].float()  # [B, T], cached once per corpus (any teacher-only scorer)
            elif source == "self" and m.scorer == "entropy":
                # [B, T], no grad, eval mode; at the training precision (autocast only wraps forward(), not this pass)
                entropy = model_entropy(core, ids, attn, em.train.entropy_chunk, autocast_dtype=amp)
                self.calls["self_entropy"] += 1
            elif source == "self":  # beyond the paper: masked-view / loss / excess-loss scores of the student
                cached = {}
                if "mask_group" in inputs:  # excess_loss_fixed: the teacher's half cached over these fixed groups
                    sfx = "" if k == 1 else f"_short{k}"
                    cached = dict(group=inputs[f"mask_group{sfx}"].reshape(ids.shape),  # [B*k, t]
                                  reference_scores=inputs[f"teacher_entropy{sfx}"].reshape(ids.shape).float())
                entropy = score_tokens(m.scorer, core, ids, cand, mask_id=self.mask_id, ratio=ratio,
                                       reference=self.teacher, generator=gen, chunk_size=em.train.entropy_chunk,
                                       autocast_dtype=amp, **cached)  # [B, T]
                self.calls["self_entropy"] += 1
            else:
                entropy = torch.zeros(ids.shape, device=ids.device)
            if source is not None:
                check_finite(entropy, f"{source} {m.scorer} at step {self.state.global_step}")
            strategy = m.strategy if source is not None else ("bernoulli" if m.strategy == "bernoulli" else "random")
            if source is None and m.static:  # the same random k-subset of a row every epoch: top-k of fixed scores
                entropy, strategy = static_scores(ids, em.train.seed), "high"  # [B, T]
            continues = self.continues[ids] if self.continues is not None else None  # [B, T]
            mask = select_mask(entropy, cand, strategy, ratio, m.num_tokens,
                               generator=coin if strategy == "alternating" else gen, temperature=temperature,
                               continues=continues, whole_word=m.whole_word)  # [B, T]
            self.last_mask, self.last_source = mask, source  # for inspection (tests, notebooks); no copy
            masked_ids, labels = apply_mask(ids, mask, self.mask_id, m.policy, self.vocab_size, gen, self.special_ids)

            # Through the (possibly DDP-wrapped) model's forward; the sparse model returns masked-position logits.
            out = model(input_ids=masked_ids, attention_mask=attn, labels=labels, sparse=em.train.sparse_head)
        loss, sel = out.loss, labels != -100  # [B, T]
        logits = out.logits if em.train.sparse_head else out.logits[sel]  # [M, V]
        mlm = loss.detach()
        if self.kd_active() and self.teacher is not None:
            with torch.no_grad(), torch.autocast(ids.device.type, dtype=torch.bfloat16, enabled=self.teacher_bf16):
                t_logits = masked_logits(self.teacher, encode(self.teacher, masked_ids, attn), sel).float()  # [M, V]
            kd = kd_loss(logits, t_logits, em.kd.temperature)
            loss = (1 - em.kd.alpha) * loss + em.kd.alpha * kd
            self._add("kd_loss", kd.detach())
        with torch.no_grad():
            self._add("mlm_loss", mlm)
            if logits.shape[0]:
                self._add("masked_accuracy", (logits.argmax(-1) == labels[sel]).float().mean())
            self._add("masked_per_row", mask.sum(1).float().mean())
            self._add("candidates_per_row", cand.sum(1).float().mean())
            if m.schedule != "constant":
                self._add("mask_ratio", torch.tensor(ratio))
            if source is not None:
                self._add("entropy_masked", entropy[mask].mean())
                self._add("entropy_maskable", entropy[cand].mean())
                self._add("self_source", torch.tensor(float(source == "self")))
        return (loss, {"logits": logits}) if return_outputs else loss

    def _add(self, key: str, value: torch.Tensor) -> None:
        s, n = self._acc.get(key, (0.0, 0))
        self._acc[key] = (s + float(value), n + 1)

    def log(self, logs: dict, *args, **kwargs) -> None:
        if "loss" in logs:  # a training log: add the step's masking figures, averaged since the last log
            for k, (s, n) in self._acc.items():
                logs[k] = round(s / max(n, 1), 5)
            self._acc = {}
        super().log(logs, *args, **kwargs)
