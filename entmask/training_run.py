"""One training stage in its run folder, as pretraining and the reference stage both run it.

What it is: `make_trainer` (the EntropyMaskingTrainer of a config with its TrainingArguments and callbacks, the
teacher's cached scores and the KD teacher loaded), `_train` (train, resuming from the folder's last complete
checkpoint), `_finish` (held-out evaluation, metrics.json with compute and wall time, model/ saved, checkpoints
removed, the run's one line printed: entmask.run_log), `run_folder` / `reference_hash` (where a stage's run
lives), `check_maskable` (a corpus with nothing to mask fails in one line) and the device helpers `use_bf16`,
`rank` and `device_name`.

What it is not: it decides nothing about whether a run is needed, takes no lock and builds no corpus or teacher
(entmask.pretrain, entmask.reference); the loss step is entmask.masking_trainer's.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import BertConfig, TrainingArguments

from entmask import runs, schemas
from entmask.compute import run_flops
from entmask.config import PretrainConfig, stable_hash
from entmask.data import Corpus, DataError
from entmask.entropy import _bf16_ok
from entmask.heldout import PROBE_ROWS, CurveCallback, EpochCallback, heldout_eval
from entmask.masking import candidate_mask
from entmask.masking_trainer import EntropyMaskingTrainer, PackedDataset, collate
from entmask.models import load_teacher
from entmask.phases import short_views
from entmask.resume import FailpointCallback, WallClock, _StopAt, last_complete_checkpoint
from entmask.run_log import ProgressFile, say_run, screen_callbacks
from entmask import trainer_cpu
from entmask.teacher_scores import (
    needs_teacher_model, reference_groups, teacher_scores, teacher_weights_needed, uses_reference_scores)


def use_bf16(precision: str) -> bool:
    """bf16 autocast: asked for, or `auto` on hardware that runs it fast (CUDA, or a CPU with AVX512-BF16/AMX,
    where a bert-tiny step measured 0.21 s vs 0.30 s in fp32 and the MiniLM reference 0.52 s vs 0.97 s)."""
    if precision == "bf16":
        return True
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return precision == "auto" and _bf16_ok(dev)


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo, else platform.processor()), or "unknown"."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def device_name() -> str:
    """The device a run trained on, as its metrics record it: the GPU's name, or the CPU's model, cores, torch
    threads, vector capability (AVX2, AVX512) and ", bf16" where it runs bf16 natively (AVX512-BF16/AMX: what
    `auto` precision picks; the seconds per step depend on all of these)."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    cap = torch.backends.cpu.get_cpu_capability() + (", bf16" if _bf16_ok(torch.device("cpu")) else "")
    return f"cpu {cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} threads, {cap})"


def check_maskable(corpus: Corpus, include_unk: bool) -> None:
    """Fail in one line when no train row has a token that may be masked (every piece [UNK] or special): the
    run would train on nothing. Typical cause: text in a script the tokenizer's vocabulary does not cover."""
    for name, ids in (("train", corpus.train_ids), ("test", corpus.test_ids)):
        cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id, include_unk)  # [N, T]
        if not bool(cand.any()):
            unk = float((ids == corpus.tokenizer.unk_token_id).float().mean())
            raise DataError(f"the {name} split's {ids.shape[0]} rows have no maskable token after tokenization "
                            f"({unk:.0%} [UNK], the rest special); use a tokenizer whose vocabulary covers the "
                            f"text (data.tokenizer), or masking.include_unk=true")


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
        torch_compile=t.compile,
    )


def _tensorboard(log_dir: Path) -> list:
    """A TensorBoard callback writing into this run's logs/tensorboard, or none without tensorboard installed.

    Not report_to=["tensorboard"]: transformers 5 takes that folder from the process-wide TENSORBOARD_LOGGING_DIR,
    read when each Trainer is built, so every run after the first in one process (an experiment, a notebook) wrote
    its curves into the first run's folder."""
    try:  # local and guarded: without tensorboard installed, runs train without the callback
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


def make_trainer(cfg: PretrainConfig, run: Path, model, corpus: Corpus, *, teacher_dir: Path | None,
                 max_steps: int = -1, epochs: float | None = None, lr: float | None = None, batch: int | None = None,
                 warmup_ratio: float | None = None, progress: bool = True, stop_after: int | None = None,
                 extra_callbacks: list | None = None):
    """The EntropyMaskingTrainer for `cfg` (teacher entropies loaded or computed once, teacher for KD loaded)."""
    t = cfg.train
    epochs, lr = t.epochs if epochs is None else epochs, t.lr if lr is None else lr
    batch, warmup_ratio = batch or t.batch_size, t.warmup_ratio if warmup_ratio is None else warmup_ratio
    ent = teacher_scores(cfg, teacher_dir, corpus, progress) if teacher_dir is not None else None
    ent_views = ({k: teacher_scores(cfg, teacher_dir, corpus, progress, short_rows=k)
                  for k in short_views(t.short_rows, t.length_ramp)} if teacher_dir is not None else {})
    ent_views = {k: v for k, v in ent_views.items() if v is not None}
    groups = ({k: reference_groups(cfg, corpus, k) for k in [1, *ent_views]}
              if teacher_dir is not None and uses_reference_scores(cfg) else None)
    needs_model = needs_teacher_model(cfg)
    if teacher_dir is not None and needs_model and runs.weightless_teacher(teacher_dir):
        raise teacher_weights_needed(cfg, teacher_dir)
    teacher = load_teacher(teacher_dir) if (teacher_dir is not None and needs_model) else None
    spe = _steps_per_epoch(corpus.train_ids.shape[0], batch, t.grad_accum)
    if max_steps <= 0:
        # A fixed step count (rather than the Trainer's epoch count) makes the warmup share exact.
        max_steps = int(math.ceil(epochs * spe))
    args = _training_args(cfg, run / "checkpoints", max_steps, epochs, lr, batch, warmup_ratio, progress)
    keep_epochs = cfg.masking.source == "self" or cfg.kd.mode in ("complete", "after-init")
    cb = EpochCallback(run, corpus.test_ids[:PROBE_ROWS], corpus, keep_epochs)
    curve = CurveCallback(run, corpus, cfg)
    callbacks = ([cb, curve, WallClock(), ProgressFile(run), FailpointCallback("pretrain-step")]
                 + ([_StopAt(stop_after)] if stop_after is not None else []) + list(extra_callbacks or []))
    callbacks += _tensorboard(run / "logs" / "tensorboard")
    trainer = EntropyMaskingTrainer(model=model, args=args,
                                    train_dataset=PackedDataset(corpus.train_ids, ent, ent_views, groups),
                                    data_collator=collate, em=cfg, corpus=corpus, steps_per_epoch=spe,
                                    teacher=teacher, callbacks=callbacks)
    screen_callbacks(trainer, progress)  # bars or nothing: no log dicts on the screen (they go to the run folder)
    cb.trainer = curve.trainer = trainer
    for extra in extra_callbacks or []:
        extra.trainer = trainer
    return trainer


def _train(cfg: PretrainConfig, run: Path, model, corpus: Corpus, **kw):
    """Train (resuming from the last checkpoint in the run folder, if any)."""
    trainer = make_trainer(cfg, run, model, corpus, **kw)
    last = last_complete_checkpoint(run / "checkpoints")
    if last:
        print(f"entmask: resuming {run.name} from {Path(last).name}")
    t0 = time.perf_counter()
    # without accelerate's full gc.collect() at the start on a CPU (entmask.trainer_cpu)
    result = trainer_cpu.train(trainer, resume_from_checkpoint=last)
    secs = time.perf_counter() - t0
    return trainer, result, secs, last, trainer.steps_per_epoch


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
        "device": device_name(), "precision": "bf16" if trainer.args.bf16 else "fp32",  # what autocast ran at
        "corpus": corpus.stats, "entmask_commit": runs.git_commit(),
        "masked_per_row_mean": avg("masked_per_row"), "candidates_per_row_mean": avg("candidates_per_row"),
        **ev, **extra,
    }
    teacher_cfg = trainer.teacher.config if trainer.teacher is not None else None
    if teacher_cfg is None and extra.get("teacher"):
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
    say_run("reference" if extra.get("kind") == "reference" else "pretrain", run.name, "trained", metrics)
    return metrics


def run_folder(cfg: PretrainConfig, stage: str = "pretrain", root=None) -> Path:
    h = cfg.short_hash() if stage == "pretrain" else reference_hash(cfg)
    return runs.run_dir_for(runs.stage_dir(cfg.profile, stage, root), cfg.name if stage == "pretrain" else
                            "reference", h)


def reference_hash(cfg: PretrainConfig) -> str:
    return stable_hash(cfg.reference_hash_dict())
