"""Pretraining: the HF Trainer subclass whose loss step masks by entropy, the teacher/self schedule, KD, and the
reference (offline teacher) stage.

What it is: `pretrain(cfg)` (find or run one pretraining run), `build_reference(cfg)` (find or build the offline
teacher), `resolve_teacher(cfg)`, and `EntropyMaskingTrainer`, whose `compute_loss` does, per micro-batch:
    entropy = cached teacher column | the student's own pass (no grad, eval mode)     (entmask.entropy)
    mask    = select_mask(entropy, candidates, strategy, ratio)                      (entmask.masking)
    inputs  = apply_mask(input_ids, mask, policy)
    loss    = MLM at masked positions only (sparse head) [+ alpha * KD]              (entmask.models)
bf16, gradient accumulation, checkpoint/resume, TensorBoard and torchrun/accelerate come from the Trainer.

What it is not: no GLUE (entmask.finetune), no tables (entmask.experiments).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import shutil
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import ExportableState

from entmask import runs, schemas
from entmask.config import ConfigError, PretrainConfig
from entmask.data import Corpus, prepare_corpus, unigram_baseline
from entmask.entropy import SCORERS, _bf16_ok, check_finite, model_entropy, score_tokens, teacher_entropies
from entmask.masking import (apply_mask, candidate_mask, continuation_table, needs_entropy, schedule_value,
                             select_mask, static_scores)
from entmask.models import (build_model, encode, kd_loss, load_teacher, masked_logits, reference_start,
                            score_masked, transformers_bars)
from entmask.phases import short_len, short_steps, split_ids, split_rows, view_rows

HELDOUT_SEED = 20240607  # one fixed random masking of the test split, identical for every run (comparability)
PROBE_ROWS = 64  # test rows used to measure a student's per-position entropy spread during training


# ---- data plumbing -------------------------------------------------------------------------------------------
class PackedDataset(Dataset):
    """Rows of packed token ids, with the teacher's entropies beside them when a strategy needs them: of the whole
    rows, and of their short view (phases.py) when the run starts on short rows."""

    def __init__(self, input_ids: torch.Tensor, teacher_entropy: torch.Tensor | None = None,
                 teacher_entropy_short: torch.Tensor | None = None):
        self.input_ids = input_ids  # [N, T]
        self.teacher_entropy = teacher_entropy  # [N, T] or None
        # [N*k, t] -> [N, k*t]: row i's k short rows side by side, so one index fetches them all
        self.teacher_entropy_short = (teacher_entropy_short.reshape(input_ids.shape[0], -1)
                                      if teacher_entropy_short is not None else None)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def __getitem__(self, i: int) -> dict:
        item = {"input_ids": self.input_ids[i]}
        if self.teacher_entropy is not None:
            item["teacher_entropy"] = self.teacher_entropy[i]
        if self.teacher_entropy_short is not None:
            item["teacher_entropy_short"] = self.teacher_entropy_short[i]
        return item


def collate(features: list[dict]) -> dict:
    """Packed rows need no padding: stack. Masking happens in the step, not here."""
    return {k: torch.stack([f[k] for f in features]) for k in features[0]}


# ---- device and precision ------------------------------------------------------------------------------------
def use_bf16(precision: str) -> bool:
    """bf16 autocast: asked for, or `auto` on hardware that runs it fast (CUDA, or a CPU with AVX512-BF16/AMX,
    where a bert-tiny step measured 0.21 s vs 0.30 s in fp32 and the MiniLM reference 0.52 s vs 0.97 s)."""
    if precision == "bf16":
        return True
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return precision == "auto" and _bf16_ok(dev)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


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
        """Short rows per row at this step (phases.py): train.short_rows in the first phase, then 1."""
        t = self.em.train
        return view_rows(self.state.global_step, self.state.max_steps or 1, t.short_rows, t.short_fraction)

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
        if source == "teacher" and k > 1:  # the teacher's scores of the short rows themselves, cached per view
            entropy = inputs["teacher_entropy_short"].reshape(ids.shape).float()  # [B*k, t]
        elif source == "teacher":
            entropy = inputs["teacher_entropy"].float()  # [B, T], cached once per corpus (any teacher-only scorer)
        elif source == "self" and m.scorer == "entropy":
            # [B, T], no grad, eval mode; at the training precision (autocast only wraps forward(), not this pass)
            entropy = model_entropy(core, ids, attn, em.train.entropy_chunk, autocast_dtype=amp)
            self.calls["self_entropy"] += 1
        elif source == "self":  # beyond the paper: masked-view / loss / excess-loss scores of the student
            entropy = score_tokens(m.scorer, core, ids, cand, mask_id=self.mask_id, ratio=ratio,
                                   reference=self.teacher, generator=gen, chunk_size=em.train.entropy_chunk,
                                   autocast_dtype=amp)  # [B, T]
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


class EpochCallback(TrainerCallback):
    """At each epoch end: keep the model of self-masking runs (so notebooks can show mask drift) and record the
    student's per-position entropy spread (self-masking is only meaningful once it varies)."""

    def __init__(self, run: Path, probe: torch.Tensor, corpus: Corpus, keep_epochs: bool):
        self.run, self.probe, self.corpus, self.keep = run, probe, corpus, keep_epochs
        self.trainer: EntropyMaskingTrainer | None = None

    def on_train_begin(self, args, state, control, model=None, **kw):
        # Epoch 0 = the untrained student: the switch point of self-masking `cold`.
        if state.global_step == 0 and self.keep:
            self._record(state, model, epoch=0, source=self.trainer.entropy_source(0) if self.trainer else None)

    def on_epoch_end(self, args, state, control, model=None, **kw):
        tr = self.trainer
        if tr is None:
            return
        epoch = int(round(state.global_step / tr.steps_per_epoch))
        self._record(state, model, epoch=epoch, source=tr.entropy_source(epoch - 1))
        if self.keep and state.is_world_process_zero:
            core = tr.accelerator.unwrap_model(model)
            out = self.run / "epochs" / f"epoch-{epoch}"
            core.save_pretrained(str(out))
            self.corpus.tokenizer.save_pretrained(str(out))

    def _record(self, state, model, epoch: int, source) -> None:
        tr = self.trainer
        if tr is None or not state.is_world_process_zero:
            return
        core = tr.accelerator.unwrap_model(model)  # model_entropy restores train/eval mode itself
        stats = student_entropy_stats(core, self.probe, self.corpus, tr.em.masking.include_unk,
                                      tr.em.train.entropy_chunk)
        stats.update(epoch=epoch, step=state.global_step, source=source)
        path = self.run / "logs" / "epochs.json"
        hist = runs.read_json(path, schemas.EPOCHS) if path.exists() else []
        hist = [h for h in hist if h.get("epoch") != epoch] + [stats]
        runs.write_json(path, sorted(hist, key=lambda h: h["epoch"]))


@torch.no_grad()
def student_entropy_stats(model, ids: torch.Tensor, corpus: Corpus, include_unk: bool, chunk: int) -> dict:
    dev = next(model.parameters()).device
    ids = ids.to(dev)
    ent = model_entropy(model, ids, torch.ones_like(ids), chunk)  # [P, T]
    cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id, include_unk)
    e = ent[cand].double()
    return {"entropy_mean": float(e.mean()), "entropy_sd": float(e.std())}


# ---- held-out evaluation -------------------------------------------------------------------------------------
@torch.no_grad()
def heldout_eval(model, corpus: Corpus, batch_size: int = 64, chunk: int = 1024, rows: int | None = None,
                 short_rows: int = 1) -> dict:
    """MLM loss/accuracy on the 5% test split under one fixed random 15% [MASK] masking shared by all runs, the
    unigram (most-frequent-token) accuracy on the same targets, and the model's unmasked-view entropy spread.
    `rows` evaluates the first rows only (learning curves); their masks are those of the full evaluation.
    `short_rows` = k > 1 evaluates the short view (phases.py): the same masked targets, each seen in its
    1/k-row piece, as a student in the short phase is trained."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    tok = corpus.tokenizer
    ids = corpus.test_ids
    cand = candidate_mask(ids, corpus.special_ids, tok.unk_token_id)  # [N, T]
    gen = torch.Generator().manual_seed(HELDOUT_SEED)
    mask = select_mask(torch.zeros(ids.shape), cand, "random", 0.15, generator=gen)  # [N, T]
    if rows is not None:
        ids, cand, mask = ids[:rows], cand[:rows], mask[:rows]
    if short_rows > 1:  # [n, T] -> [n*k, (T-2)/k + 2]; the long row's [CLS]/[SEP] are never candidates
        ids = split_ids(ids, short_rows, tok.cls_token_id, tok.sep_token_id)
        cand, mask = split_rows(cand, short_rows, False, False), split_rows(mask, short_rows, False, False)
    masked, labels = apply_mask(ids, mask, tok.mask_token_id, "mask")
    sc = score_masked(model, masked, labels, batch_size)
    ents = []
    for s in range(0, ids.shape[0], batch_size):
        raw = ids[s:s + batch_size].to(dev)
        ent = model_entropy(model, raw, torch.ones_like(raw), chunk)
        ents.append(ent[cand[s:s + batch_size].to(dev)].double().cpu())
    e = torch.cat(ents)
    out = {"heldout_loss": sc["loss"], "heldout_accuracy": sc["accuracy"], "heldout_masked_tokens": sc["masked_tokens"],
           "entropy_mean": float(e.mean()), "entropy_sd": float(e.std())}
    out.update(unigram_baseline(corpus.train_ids, labels[mask], corpus.special_ids))
    # Issue criterion for "left the unigram plateau": twice the top-token rate and varied entropies.
    out["left_plateau"] = bool(out["heldout_accuracy"] >= 2 * out["unigram_accuracy"] and out["entropy_sd"] >= 0.5)
    model.train(was_training)
    return out


class CurveCallback(TrainerCallback):
    """Every `train.eval_steps` steps: held-out masked accuracy and entropy spread on the first `train.eval_rows`
    test rows, appended to logs/curve.json (the learning curves of docs/small-scale.md: when a student leaves the
    unigram plateau, not only whether it has at the end)."""

    def __init__(self, run: Path, corpus: Corpus, cfg: PretrainConfig):
        self.run, self.corpus, self.cfg = run, corpus, cfg
        self.trainer = None

    def _record(self, state, model) -> None:
        t = self.cfg.train
        core = self.trainer.accelerator.unwrap_model(model) if self.trainer else model
        # on the rows being trained: a short-phase student has never seen the positions past its short rows
        k = view_rows(state.global_step, state.max_steps or 1, t.short_rows, t.short_fraction)
        ev = heldout_eval(core, self.corpus, t.eval_batch_size, t.entropy_chunk, rows=t.eval_rows, short_rows=k)
        point = {"step": state.global_step, "rows_len": short_len(self.cfg.data.seq_len, k),
                 "heldout_accuracy": ev["heldout_accuracy"],
                 "heldout_loss": ev["heldout_loss"], "unigram_accuracy": ev["unigram_accuracy"],
                 "entropy_sd": ev["entropy_sd"], "left_plateau": ev["left_plateau"]}
        path = self.run / "logs" / "curve.json"
        curve = runs.read_json(path, schemas.CURVE) if path.exists() else []
        # A resumed run re-evaluates nothing twice: points at or after the resume step are replaced.
        curve = [c for c in curve if c["step"] < state.global_step] + [point]
        runs.write_json(path, curve)

    def on_step_end(self, args, state, control, model=None, **kw):
        every = self.cfg.train.eval_steps
        if every > 0 and state.is_world_process_zero and (state.global_step % every == 0 or state.global_step == 1):
            self._record(state, model)


# ---- teacher -------------------------------------------------------------------------------------------------
def resolve_teacher(cfg: PretrainConfig, root=None, progress: bool = True, force: bool = False) -> Path:
    """A local folder holding the teacher: the reference run's model, or a given folder / hub model."""
    if cfg.teacher == "reference":
        if runs.world_size() > 1:
            return _reference_in_child(cfg, root, progress, force) / "model"
        return build_reference(cfg, root=root, progress=progress, force=force) / "model"
    p = Path(cfg.teacher).expanduser()
    if p.is_dir():
        return p
    local = runs.cache_dir(root) / "teachers" / runs.safe_name(cfg.teacher)
    if not (local / "config.json").exists():
        # A hub name: check it, then keep a local copy (written atomically: a folder renamed into place).
        model = load_teacher(cfg.teacher, trust_remote_code=cfg.trust_remote_code)
        tmp = local.with_name(f".{local.name}.{os.getpid()}.tmp")
        model.save_pretrained(str(tmp))
        os.replace(tmp, local)
    return local


def teacher_metrics(teacher_dir) -> dict:
    """An entmask reference teacher's metrics.json (held-out accuracy/loss on the students' test split), or {}."""
    m = Path(str(teacher_dir)).parent / "metrics.json"
    if Path(str(teacher_dir)).name == "model" and m.exists():
        try:
            return runs.read_json(m, schemas.METRICS)
        except runs.RunError:
            return {}
    return {}


def _reference_in_child(cfg: PretrainConfig, root, progress: bool, force: bool) -> Path:
    """Under torchrun, rank 0 builds the reference in a child process that is not part of the process group (an
    in-process Trainer would try to train it with DDP across ranks that are waiting at a barrier, and the teacher
    would depend on the launch). The child is `entmask reference` with the same config; the other ranks wait."""
    import subprocess
    import sys
    import tempfile

    run = run_folder(cfg, "reference", root)
    if runs.is_finished(run) and not force:
        return run
    dist_vars = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "MASTER_ADDR",
                 "MASTER_PORT", "TORCHELASTIC_RUN_ID", "GROUP_WORLD_SIZE", "ROLE_WORLD_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in dist_vars and not k.startswith("TORCHELASTIC_")}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(cfg.to_json())
    cmd = [sys.executable, "-m", "entmask", "reference", "--config", f.name,
           "--runs-dir", str(runs.runs_root(root))] + (["--force"] if force else []) + ([] if progress else ["--quiet"])
    try:
        done = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL)
    finally:
        os.unlink(f.name)
    if done.returncode != 0 or not runs.is_finished(run):
        raise runs.RunError(f"building the reference teacher in {run} failed (exit {done.returncode}); run "
                            f"`entmask reference --profile {cfg.profile}` alone to see why")
    return run


def check_maskable(corpus: Corpus, include_unk: bool) -> None:
    """Fail in one line when no train row has a token that may be masked (every piece [UNK] or special): the
    run would train on nothing. Typical cause: text in a script the tokenizer's vocabulary does not cover."""
    from entmask.data import DataError

    for name, ids in (("train", corpus.train_ids), ("test", corpus.test_ids)):
        cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id, include_unk)  # [N, T]
        if not bool(cand.any()):
            unk = float((ids == corpus.tokenizer.unk_token_id).float().mean())
            raise DataError(f"the {name} split's {ids.shape[0]} rows have no maskable token after tokenization "
                            f"({unk:.0%} [UNK], the rest special); use a tokenizer whose vocabulary covers the "
                            f"text (data.tokenizer), or masking.include_unk=true")


def check_teacher(teacher_dir: Path, corpus: Corpus, trust_remote_code: bool = False) -> None:
    """Fail early, in one line, if the teacher is not a complete masked LM of the tokenizer's vocabulary."""
    load_teacher(teacher_dir, expect_vocab=len(corpus.tokenizer), trust_remote_code=trust_remote_code)


# ---- the runs ------------------------------------------------------------------------------------------------
def _training_args(cfg: PretrainConfig, out: Path, max_steps: int, epochs: float, lr: float, batch: int,
                   warmup_ratio: float, progress: bool) -> TrainingArguments:
    t = cfg.train
    total = max_steps if max_steps > 0 else None
    warmup = int(math.ceil(warmup_ratio * total)) if total else 0
    return TrainingArguments(
        output_dir=str(out), max_steps=max_steps, num_train_epochs=epochs, learning_rate=lr,
        per_device_train_batch_size=batch, gradient_accumulation_steps=t.grad_accum,
        warmup_steps=warmup, lr_scheduler_type=t.scheduler, weight_decay=t.weight_decay,
        adam_beta2=t.adam_beta2, max_grad_norm=t.max_grad_norm, bf16=use_bf16(t.precision),
        logging_steps=t.logging_steps, save_strategy="steps", save_steps=t.save_steps,
        save_total_limit=t.save_total_limit, seed=t.seed, data_seed=t.seed, report_to=[],  # see _tensorboard
        remove_unused_columns=False, dataloader_num_workers=t.num_workers, disable_tqdm=not progress,
        use_cpu=not torch.cuda.is_available(), ddp_find_unused_parameters=False, logging_first_step=True,
    )


def _tensorboard(log_dir: Path) -> list:
    """A TensorBoard callback writing into this run's logs/tensorboard, or none without tensorboard installed.

    Not report_to=["tensorboard"]: transformers 5 takes that folder from the process-wide TENSORBOARD_LOGGING_DIR,
    read when each Trainer is built, so every run after the first in one process (an experiment, a notebook) wrote
    its curves into the first run's folder."""
    try:
        import tensorboard  # noqa: F401
        from transformers.integrations import TensorBoardCallback
    except ImportError:
        return []
    cb = TensorBoardCallback()
    cb.logging_dir = str(log_dir)
    return [cb]


def _steps_per_epoch(n_rows: int, batch: int, accum: int, world: int | None = None) -> int:
    """Optimizer updates per epoch by the Trainer's own rule (Trainer.set_initial_training_values): the last,
    partial accumulation window of an epoch is an update too. [Rounding down instead made 1,100 rows at batch 128
    with accumulation 4 two updates per epoch where the Trainer does three, so teacher phases ended early.]"""
    world = int(os.environ.get("WORLD_SIZE", "1")) if world is None else world
    batches = math.ceil(n_rows / (batch * world))  # len(dataloader) per rank (drop_last is off)
    return max(batches // accum + int(batches % accum > 0), 1)


def uses_teacher_scores(cfg: PretrainConfig) -> bool:
    """Whether some phase of this run masks by the teacher's (cached) scores."""
    m = cfg.masking
    if not needs_entropy(m.strategy) or cfg.kd.mode == "kd-only":
        return False
    return m.source == "teacher" or m.self_start == "init" or cfg.kd.mode == "after-init"


def teacher_scores(cfg: PretrainConfig, teacher_dir: Path, corpus: Corpus, progress: bool = True,
                   force: bool = False, short_rows: int = 1) -> torch.Tensor | None:
    """The teacher's scores of every train position (the paper's unmasked-view entropy, or `masking.scorer`),
    computed once per (teacher, corpus, scorer, view) and cached beside the corpus; None when no phase uses them.
    `short_rows` = k > 1 scores the short view of the rows (phases.py), [N*k, (T-2)/k + 2]: the teacher sees the
    rows the student trains on."""
    if not uses_teacher_scores(cfg):
        return None
    t, m = cfg.train, cfg.masking
    tok = corpus.tokenizer
    ids = split_ids(corpus.train_ids, short_rows, tok.cls_token_id, tok.sep_token_id)
    extra = {}
    if m.scorer != "entropy":  # masked-view scorers: the candidates they mask, and the masking ratio of the view
        extra = dict(scorer=m.scorer, ratio=m.ratio, seed=t.seed, mask_id=tok.mask_token_id,
                     candidates=candidate_mask(ids, corpus.special_ids, tok.unk_token_id, m.include_unk))
    split = "train" if short_rows == 1 else f"train-short{short_rows}"
    return teacher_entropies(teacher_dir, corpus.dir, split, ids,
                             device="cuda" if torch.cuda.is_available() else "cpu", batch_size=t.eval_batch_size,
                             chunk_size=t.entropy_chunk, progress=progress, block_rows=t.entropy_block_rows,
                             force=force, **extra)


def make_trainer(cfg: PretrainConfig, run: Path, model, corpus: Corpus, *, teacher_dir: Path | None,
                 max_steps: int = -1, epochs: float | None = None, lr: float | None = None, batch: int | None = None,
                 warmup_ratio: float | None = None, progress: bool = True, stop_after: int | None = None,
                 extra_callbacks: list | None = None):
    """The EntropyMaskingTrainer for `cfg` (teacher entropies loaded or computed once, teacher for KD loaded)."""
    t = cfg.train
    epochs, lr = t.epochs if epochs is None else epochs, t.lr if lr is None else lr
    batch, warmup_ratio = batch or t.batch_size, t.warmup_ratio if warmup_ratio is None else warmup_ratio
    ent = teacher_scores(cfg, teacher_dir, corpus, progress) if teacher_dir is not None else None
    ent_short = (teacher_scores(cfg, teacher_dir, corpus, progress, short_rows=t.short_rows)
                 if teacher_dir is not None and t.short_rows > 1 else None)
    needs_model = cfg.kd.mode != "none" or (SCORERS[cfg.masking.scorer].uses_reference
                                             and needs_entropy(cfg.masking.strategy))
    teacher = load_teacher(teacher_dir) if (teacher_dir is not None and needs_model) else None
    spe = _steps_per_epoch(corpus.train_ids.shape[0], batch, t.grad_accum)
    if max_steps <= 0:
        # A fixed step count (rather than the Trainer's epoch count) makes the warmup share exact.
        max_steps = int(math.ceil(epochs * spe))
    args = _training_args(cfg, run / "checkpoints", max_steps, epochs, lr, batch, warmup_ratio, progress)
    keep_epochs = cfg.masking.source == "self" or cfg.kd.mode in ("complete", "after-init")
    cb = EpochCallback(run, corpus.test_ids[:PROBE_ROWS], corpus, keep_epochs)
    curve = CurveCallback(run, corpus, cfg)
    callbacks = ([cb, curve, WallClock(), FailpointCallback("pretrain-step")]
                 + ([_StopAt(stop_after)] if stop_after is not None else []) + list(extra_callbacks or []))
    callbacks += _tensorboard(run / "logs" / "tensorboard")
    trainer = EntropyMaskingTrainer(model=model, args=args,
                                    train_dataset=PackedDataset(corpus.train_ids, ent, ent_short),
                                    data_collator=collate, em=cfg, corpus=corpus, steps_per_epoch=spe,
                                    teacher=teacher, callbacks=callbacks)
    cb.trainer = curve.trainer = trainer
    for extra in extra_callbacks or []:
        extra.trainer = trainer
    return trainer


def last_complete_checkpoint(folder: Path, quiet: bool = False) -> str | None:
    """The newest checkpoint that was written to the end. The Trainer writes trainer_state.json last, so a
    checkpoint without a parseable one was cut off (kill -9, full disk) and is skipped, never half-read."""
    found = checkpoint_state(folder, quiet)
    return found[0] if found else None


def checkpoint_state(folder: Path, quiet: bool = False) -> tuple[str, dict] | None:
    """(path, trainer_state) of the newest complete checkpoint in `folder`, or None. Reads only, so a report can
    look at a run another process is training (a checkpoint rotated away meanwhile is skipped)."""
    import json

    if not Path(folder).is_dir():
        return None
    cands = sorted((p for p in Path(folder).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for c in cands:
        try:
            state = json.loads((c / "trainer_state.json").read_text())
        except (OSError, ValueError):
            if not quiet:
                print(f"entmask: skipping incomplete checkpoint {c.name}")
            continue
        if list(c.glob("*.safetensors")) and (c / "optimizer.pt").exists():
            return str(c), state
    return None


def _train(cfg: PretrainConfig, run: Path, model, corpus: Corpus, **kw):
    """Train (resuming from the last checkpoint in the run folder, if any)."""
    trainer = make_trainer(cfg, run, model, corpus, **kw)
    last = last_complete_checkpoint(run / "checkpoints")
    if last:
        print(f"entmask: resuming {run.name} from {Path(last).name}")
    t0 = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=last)
    secs = time.perf_counter() - t0
    return trainer, result, secs, last, trainer.steps_per_epoch


class WallClock(TrainerCallback, ExportableState):
    """Seconds of training behind the final model, across resumes. The Trainer writes an ExportableState
    callback's `state()` into every checkpoint's trainer_state.json, so a run resumed three times still knows how
    long its earlier processes took to reach the checkpoint it resumed from. Time a killed process spent past its
    last checkpoint produced no step of the final model and is not counted. (Read back in on_train_begin rather
    than through `restore_callback_states_from_checkpoint`, which would also restore TrainerControl's flags: a
    checkpoint saved by a stopped run carries should_training_stop=True.)"""

    def __init__(self):
        self.segments: list[dict] = []  # one per process: {"from_step", "to_step", "seconds"}
        self.complete = True  # False when resumed from a checkpoint written before entmask recorded this
        self._t0 = self._from = self._step = self._end = None

    @classmethod
    def saved(cls, stateful_callbacks: dict | None) -> dict | None:
        """The attributes this callback stored in a trainer state's stateful_callbacks, or None if it stored none."""
        entry = (stateful_callbacks or {}).get(cls.__name__)
        entry = entry[0] if isinstance(entry, list) and entry else entry
        return entry.get("attributes") or {} if isinstance(entry, dict) and entry else None

    def on_train_begin(self, args, state, control, **kw):
        attrs = self.saved(state.stateful_callbacks)
        self.segments = [dict(s) for s in (attrs or {}).get("segments", [])]
        self.complete = state.global_step == 0 or (attrs is not None and attrs.get("complete", True))
        self._t0, self._from, self._step, self._end = time.perf_counter(), state.global_step, state.global_step, None
        # The Trainer indexes stateful_callbacks by name when it saves; a state loaded from a checkpoint written
        # without this callback lacks the key (a KeyError at the first save after the resume).
        state.stateful_callbacks[type(self).__name__] = self.state()

    def on_step_end(self, args, state, control, **kw):
        self._step = state.global_step

    def on_train_end(self, args, state, control, **kw):
        self._end = time.perf_counter()  # training time only: not the held-out evaluation that follows

    def all_segments(self) -> list[dict]:
        if self._t0 is None:
            return list(self.segments)
        end = self._end if self._end is not None else time.perf_counter()
        return self.segments + [{"from_step": self._from, "to_step": self._step, "seconds": round(end - self._t0, 3)}]

    def total_seconds(self, segments: list[dict] | None = None) -> float | None:
        """Seconds of every process up to the steps it handed on (of `segments`, a snapshot of all_segments(),
        so that the total and the list agree); None if an earlier process's are unknown."""
        segments = self.all_segments() if segments is None else segments
        return round(sum(s["seconds"] for s in segments), 3) if self.complete else None

    def state(self) -> dict:
        return {"args": {}, "attributes": {"segments": self.all_segments(), "complete": self.complete}}


def checkpoint_pace(state: dict) -> float | None:
    """Seconds per step of the process that wrote a checkpoint (its trainer_state.json as a dict, WallClock's last
    segment), or None if unknown: for reports on a run another process is training."""
    segs = (WallClock.saved(state.get("stateful_callbacks")) or {}).get("segments")
    if not segs:
        return None
    last = segs[-1]
    steps = last.get("to_step", 0) - last.get("from_step", 0)
    return last["seconds"] / steps if steps > 0 and last.get("seconds") else None


class FailpointCallback(TrainerCallback):
    """Passes `runs.failpoint(name)` after every optimizer step (the kill -9 tests pick the step)."""

    def __init__(self, name: str):
        self.name = name

    def on_step_end(self, args, state, control, **kw):
        runs.failpoint(self.name)


class _StopAt(TrainerCallback):
    """Stop after a given optimizer step (tests of resume: a run interrupted right after a checkpoint)."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= self.step:
            control.should_save = True
            control.should_training_stop = True


def _finish(cfg: PretrainConfig, run: Path, trainer, result, secs: float, resumed_from, corpus: Corpus,
            extra: dict) -> dict:
    model = trainer.accelerator.unwrap_model(trainer.model)
    ev = heldout_eval(model, corpus, cfg.train.eval_batch_size, cfg.train.entropy_chunk)
    hist = trainer.state.log_history
    runs.write_json(run / "logs" / "log_history.json", hist)
    train_logs = [h for h in hist if "loss" in h]

    def avg(key):
        vals = [h[key] for h in train_logs if key in h]
        return sum(vals) / len(vals) if vals else None

    clock = next(c for c in trainer.callback_handler.callbacks if isinstance(c, WallClock))
    segments = clock.all_segments()
    # tokens of the steps this process trained: a resumed run's seconds cover only those
    steps_here = trainer.state.global_step - (segments[-1]["from_step"] if segments else 0)
    batch = trainer.args.per_device_train_batch_size  # the reference trains with reference.batch_size, not train's
    tokens = steps_here * batch * trainer.args.gradient_accumulation_steps * cfg.data.seq_len * runs.world_size()
    epochs_path = run / "logs" / "epochs.json"
    curve_path = run / "logs" / "curve.json"
    metrics = {
        "name": cfg.name, "hash": cfg.short_hash(), "profile": cfg.profile, "strategy": cfg.masking.strategy,
        "source": cfg.masking.source, "self_start": cfg.masking.self_start, "kd": cfg.kd.mode,
        "ratio": cfg.masking.ratio, "num_tokens": cfg.masking.num_tokens,
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch, "train_seconds": secs,
        "tokens_per_s": tokens / max(secs, 1e-9) if steps_here else None,
        "train_seconds_total": clock.total_seconds(segments), "wallclock_segments": segments,
        "resumed_from": Path(resumed_from).name if resumed_from else None,
        "final_train_loss": train_logs[-1]["loss"] if train_logs else None, "train_loss": result.training_loss,
        "entropy_masked_mean": avg("entropy_masked"), "entropy_maskable_mean": avg("entropy_maskable"),
        "masked_accuracy_last": train_logs[-1].get("masked_accuracy") if train_logs else None,
        "first_train_loss": train_logs[0]["loss"] if train_logs else None,
        "epoch_entropy": runs.read_json(epochs_path, schemas.EPOCHS) if epochs_path.exists() else [],
        "curve": runs.read_json(curve_path, schemas.CURVE) if curve_path.exists() else [],
        "device": device_name(), "corpus": corpus.stats, "entmask_commit": runs.git_commit(),
        "masked_per_row_mean": avg("masked_per_row"), "candidates_per_row_mean": avg("candidates_per_row"),
        **ev, **extra,
    }
    teacher_cfg = trainer.teacher.config if trainer.teacher is not None else None
    if teacher_cfg is None and extra.get("teacher"):
        from transformers import BertConfig

        teacher_cfg = BertConfig.from_pretrained(extra["teacher"])
    metrics["compute"] = {**run_flops(cfg, model.config, teacher_cfg, trainer.state.global_step,
                                      extra.get("steps_per_epoch", 1), int(corpus.train_ids.shape[0]),
                                      metrics["masked_per_row_mean"], metrics["candidates_per_row_mean"],
                                      runs.world_size(), batch=batch),
                          "wall_seconds": metrics["train_seconds_total"]}  # None when an earlier process's is unknown
    model.save_pretrained(str(run / "model"))
    corpus.tokenizer.save_pretrained(str(run / "model"))
    if (run / "checkpoints").is_dir():
        shutil.rmtree(run / "checkpoints", ignore_errors=True)  # the final model is saved; resume is done with
    runs.write_json(run / "metrics.json", metrics)  # last: its presence marks the run finished
    return metrics


def wall_seconds(metrics: dict) -> float | None:
    """A finished run's training wall time across resumes: train_seconds_total, or for a run finished before
    entmask recorded it, train_seconds if it never resumed (else unknown: that is the last process's only)."""
    if "train_seconds_total" in metrics:
        return metrics["train_seconds_total"]
    return metrics.get("train_seconds") if not metrics.get("resumed_from") else None


def run_flops(cfg: PretrainConfig, student, teacher, steps: int, steps_per_epoch: int, train_rows: int,
              masked_per_row: float | None = None, candidates_per_row: float | None = None,
              world: int = 1, batch: int | None = None) -> dict:
    """Compute spent by a pretraining run, in FLOPs by part (beyond the paper: so a strategy that costs more is
    compared with random masking trained for the same compute). `student`/`teacher`: their BertConfigs (teacher
    None when unused). Estimates from `models.forward_flops`: training = 3 forwards (forward + backward) of the
    body on every token and of the head on masked positions (all positions without the sparse head); an
    unmasked-view score = 1 forward, head everywhere; a masked-view score = ceil(1/ratio) body passes, head on
    each candidate once; the teacher's cached scores are one pass over the train split, counted in full for every
    run that uses them; KD = one teacher forward per step, head on masked positions."""
    from entmask.models import forward_flops

    m, t, T = cfg.masking, cfg.train, cfg.data.seq_len
    rows = (batch or t.batch_size) * t.grad_accum * world  # rows per optimizer step (batch: per device, if not train's)
    cand = candidates_per_row if candidates_per_row is not None else T - 2
    masked = masked_per_row if masked_per_row is not None else (m.num_tokens or m.ratio * cand)
    fs = forward_flops(student, T)
    ft = forward_flops(teacher, T) if teacher is not None else None
    sc = SCORERS[m.scorer]

    # masked-view passes per scoring, averaged over a mask-rate schedule (ceil(1/ratio) at each step's ratio)
    grid = [i / 99 for i in range(100)] if m.schedule != "constant" and m.ratio_end is not None else [0.0]
    passes = sum(sc.passes(schedule_value(m.ratio, m.ratio_end, m.schedule, q)) for q in grid) / len(grid)

    def scoring(f, n_rows):  # one scoring of n_rows rows by a model with forward FLOPs f
        if sc.view == "unmasked":
            return n_rows * T * (f["body"] + f["head"])
        return n_rows * (passes * T * f["body"] + cand * f["head"])

    teacher_phase = 0
    if uses_teacher_scores(cfg) and (m.source == "self" or cfg.kd.mode == "after-init"):
        teacher_phase = min(steps, m.teacher_epochs * steps_per_epoch)
    self_steps = 0
    if needs_entropy(m.strategy) and cfg.kd.mode != "kd-only" and (m.source == "self" or cfg.kd.mode == "after-init"):
        self_steps = steps - teacher_phase
    # KD after init starts after teacher_epochs whatever the strategy (the trainer's kd_active)
    kd_after = steps - min(steps, m.teacher_epochs * steps_per_epoch)
    kd_steps = {"none": 0, "kd-only": steps, "complete": steps, "after-init": kd_after}[cfg.kd.mode]
    head_positions = masked if t.sparse_head else T
    parts = {"student_train": 3 * steps * rows * (T * fs["body"] + head_positions * fs["head"]),
             "self_scoring": self_steps * scoring(fs, rows)}
    n_short = min(steps, short_steps(steps, t.short_rows, t.short_fraction))
    if n_short:  # the short phase: k rows of Ts tokens per row, attention over Ts; the same masked share
        k, ts = t.short_rows, short_len(T, t.short_rows)
        fss = forward_flops(student, ts)
        short_step = 3 * rows * k * (ts * fss["body"] + (head_positions * (ts - 2) / max(T - 2, 1)) * fss["head"])
        parts["student_train"] += n_short * (short_step - 3 * rows * (T * fs["body"] + head_positions * fs["head"]))
    if sc.uses_reference and ft is not None:
        parts["self_scoring"] += self_steps * scoring(ft, rows)  # the reference's passes on the same masks
    parts["teacher_scores"] = scoring(ft, train_rows) if (ft is not None and uses_teacher_scores(cfg)) else 0.0
    parts["kd_teacher"] = kd_steps * rows * (T * ft["body"] + masked * ft["head"]) if ft is not None else 0.0
    return {"flops": {k: float(v) for k, v in parts.items()}, "total_flops": float(sum(parts.values()))}


def run_folder(cfg: PretrainConfig, stage: str = "pretrain", root=None) -> Path:
    h = cfg.short_hash() if stage == "pretrain" else reference_hash(cfg)
    return runs.run_dir_for(runs.stage_dir(cfg.profile, stage, root), cfg.name if stage == "pretrain" else
                            "reference", h)


def reference_hash(cfg: PretrainConfig) -> str:
    from entmask.config import stable_hash

    return stable_hash(cfg.reference_hash_dict())


def pretrain(cfg: PretrainConfig, root=None, force: bool = False, progress: bool = True,
             stop_after: int | None = None) -> Path:
    """Find or run the pretraining run of `cfg`; returns its folder (metrics.json + model/ inside).

    Under torchrun every rank calls this. Rank 0 decides (finished? forced?) and the decision is broadcast; rank 0
    alone builds the reference teacher, the corpus cache and the teacher-entropy cache while the others wait at a
    barrier and then read them; all ranks train; rank 0 evaluates and writes; all meet at a final barrier.
    """
    distributed = runs.init_distributed()
    try:
        return _pretrain(cfg, root, force, progress, stop_after)
    finally:
        if distributed:
            runs.finish_distributed()


def _pretrain(cfg: PretrainConfig, root, force: bool, progress: bool, stop_after: int | None) -> Path:
    run = run_folder(cfg, "pretrain", root)
    with (runs.locked(run) if rank() == 0 else contextlib.nullcontext()), transformers_bars(progress):
        finished = runs.broadcast(runs.is_finished(run) and not force)
        if finished:
            runs.check_version(run)
            return run
        if force and run.exists() and rank() == 0:
            shutil.rmtree(run)
        runs.barrier()  # nobody looks at the folder before rank 0 has cleared it

        def prepare():
            # The teacher first: a bad --teacher fails in one line before any corpus work.
            tdir = resolve_teacher(cfg, root, progress, force=False) if cfg.uses_teacher() else None
            corpus = prepare_corpus(cfg.data, root, progress, force=force and rank() == 0,
                                    trust_remote_code=cfg.trust_remote_code)
            check_maskable(corpus, cfg.masking.include_unk)
            if tdir is not None:
                check_teacher(tdir, corpus, cfg.trust_remote_code)
                teacher_scores(cfg, tdir, corpus, progress, force=force and rank() == 0)
                if cfg.train.short_rows > 1:
                    teacher_scores(cfg, tdir, corpus, progress, force=force and rank() == 0,
                                   short_rows=cfg.train.short_rows)
            return tdir, corpus

        teacher_dir, corpus = runs.main_first(prepare, what="the teacher, corpus and entropy caches")
        if rank() == 0:
            run.mkdir(parents=True, exist_ok=True)
            runs.atomic_write_text(run / "config.json", cfg.to_json() + "\n")
            runs.write_meta(run)
        model = build_model(cfg.model.preset, len(corpus.tokenizer), cfg.model.overrides, cfg.model.init_from,
                            seed=cfg.train.seed, trust_remote_code=cfg.trust_remote_code)
        t = cfg.train
        trainer, result, secs, last, spe = _train(
            cfg, run, model, corpus, teacher_dir=teacher_dir, max_steps=t.max_steps, epochs=t.epochs, lr=t.lr,
            batch=t.batch_size, warmup_ratio=t.warmup_ratio, progress=progress, stop_after=stop_after)
        if stop_after is not None and trainer.state.global_step < trainer.state.max_steps:
            return run  # interrupted on purpose (tests): no metrics, the checkpoint stays for resume
        if rank() == 0:
            _finish(cfg, run, trainer, result, secs, last, corpus,
                    {"teacher": str(teacher_dir) if teacher_dir else None, "steps_per_epoch": spe,
                     "short_phase": {"rows": t.short_rows, "rows_len": short_len(cfg.data.seq_len, t.short_rows),
                                     "steps": short_steps(trainer.state.max_steps, t.short_rows, t.short_fraction)}})
    return run


def reference_config(cfg: PretrainConfig) -> PretrainConfig:
    """The training config of the reference stage: random 15% masking with BERT's 80/10/10 replacement, because
    the teacher scores *unmasked* text and must have been trained at visible positions."""
    r = cfg.reference
    ref = copy.deepcopy(cfg)
    ref.name = "reference"
    ref.masking.strategy, ref.masking.policy, ref.masking.ratio, ref.masking.num_tokens = "random", r.policy, 0.15, None
    ref.kd.mode = "none"
    ref.train.seed = r.seed
    ref.train.scheduler = r.scheduler
    ref.train.short_rows = 1  # the teacher is adapted from a pretrained encoder whose positions are trained
    return ref


class ReferenceStopper(TrainerCallback):
    """Early stopping of the reference adaptation on held-out MLM loss (the corpus is small: a teacher adapted too
    long memorises it). Every `reference.eval_steps` steps the loss on `reference.stop_rows` train rows held back
    from adaptation is measured (the test split, on which teacher and students are reported, stays unseen);
    the best model is saved to best/ (atomically) and training stops after `reference.patience` evaluations
    without improvement. The record in logs/stop.json survives a kill, so a resumed build keeps its best."""

    def __init__(self, run: Path, stop_corpus: Corpus, cfg: PretrainConfig):
        self.run, self.stop_corpus, self.cfg = run, stop_corpus, cfg
        self.trainer = None
        self.path = run / "logs" / "stop.json"
        self.state = (runs.read_json(self.path, schemas.STOP) if self.path.exists() else
                      {"best_loss": None, "best_step": None, "bad": 0, "points": []})

    def on_step_end(self, args, state, control, model=None, **kw):
        r = self.cfg.reference
        if not r.eval_steps or state.global_step % r.eval_steps:
            return
        if any(p["step"] == state.global_step for p in self.state["points"]):
            return  # evaluated before a kill and a resume
        core = self.trainer.accelerator.unwrap_model(model)
        ev = heldout_eval(core, self.stop_corpus, self.cfg.train.eval_batch_size, self.cfg.train.entropy_chunk)
        loss = ev["heldout_loss"]
        st = self.state
        st["points"].append({"step": state.global_step, "loss": loss, "accuracy": ev["heldout_accuracy"]})
        if st["best_loss"] is None or loss < st["best_loss"]:
            st.update(best_loss=loss, best_step=state.global_step, bad=0)
            tmp = self.run / ".best.tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            core.save_pretrained(str(tmp))
            shutil.rmtree(self.run / "best", ignore_errors=True)
            os.replace(tmp, self.run / "best")
        else:
            st["bad"] += 1
            if st["bad"] >= r.patience:
                st["stopped_at"] = state.global_step
                control.should_training_stop = True
        runs.write_json(self.path, st)

    def restore_best(self, model) -> dict:
        """Load the best weights into `model` (when an evaluation ran), and return the stopping record."""
        best = self.run / "best"
        if self.state["best_step"] is not None and best.is_dir():
            from safetensors.torch import load_file

            state = {}
            for f in sorted(best.glob("*.safetensors")):
                state.update(load_file(str(f)))
            model.load_state_dict(state, strict=False)
            model.tie_weights()
        return self.state


def build_reference(cfg: PretrainConfig, root=None, force: bool = False, progress: bool = True) -> Path:
    """Find or build the offline teacher: an encoder adapted with MLM (80/10/10) on the train split."""
    run = run_folder(cfg, "reference", root)
    with runs.locked(run), transformers_bars(progress):
        if runs.is_finished(run) and not force:
            runs.check_version(run)
            return run
        if force and run.exists():
            shutil.rmtree(run)
        corpus = prepare_corpus(cfg.data, root, progress, trust_remote_code=cfg.trust_remote_code)
        check_maskable(corpus, include_unk=False)
        r = cfg.reference
        ref = reference_config(cfg)
        model = reference_start(r.init, len(corpus.tokenizer), r.preset, r.seed)  # a bad init fails before any folder
        run.mkdir(parents=True, exist_ok=True)
        runs.write_json(run / "config.json", cfg.reference_hash_dict())
        runs.write_meta(run)
        stopper = None
        train_corpus = corpus
        if r.eval_steps > 0 and r.stop_rows > 0:
            if corpus.train_ids.shape[0] < 2 * r.stop_rows:
                raise ConfigError(f"reference.stop_rows={r.stop_rows} is more than half of the "
                                  f"{corpus.train_ids.shape[0]} train rows; lower it or set reference.eval_steps=0")
            train_corpus = dataclasses.replace(corpus, train_ids=corpus.train_ids[:-r.stop_rows])  # [N - S, T]
            stop_corpus = dataclasses.replace(corpus, test_ids=corpus.train_ids[-r.stop_rows:])  # [S, T]
            stopper = ReferenceStopper(run, stop_corpus, ref)
        print(f"entmask: building the reference teacher ({r.init}, up to {r.steps} steps of batch {r.batch_size}, "
              f"lr {r.lr}{f', early stopping every {r.eval_steps} steps' if stopper else ''}) in {run}")
        trainer, result, secs, last, spe = _train(ref, run, model, train_corpus, teacher_dir=None, max_steps=r.steps,
                                                  epochs=1, lr=r.lr, batch=r.batch_size,
                                                  warmup_ratio=r.warmup_ratio, progress=progress,
                                                  extra_callbacks=[stopper] if stopper else [])
        extra = {"reference": vars(r).copy(), "kind": "reference"}
        if stopper is not None:
            record = stopper.restore_best(trainer.accelerator.unwrap_model(trainer.model))
            extra["early_stopping"] = record
            shutil.rmtree(run / "best", ignore_errors=True)  # the final model/ is the best one
        m = _finish(ref, run, trainer, result, secs, last, corpus, extra)
        print(f"entmask: reference held-out masked accuracy {m['heldout_accuracy']:.3f} (unigram "
              f"{m['unigram_accuracy']:.3f}), unmasked-view entropy {m['entropy_mean']:.2f} ± "
              f"{m['entropy_sd']:.2f} nats")
    return run

