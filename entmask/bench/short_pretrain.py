"""A short pretraining run end to end: the pretraining stage's own trainer, checkpoint and resume, on synthetic text.

What it is: `learnable_ids` (packed rows `[CLS] w ... w [SEP]` with structure a student can learn: Zipf-distributed
words, half of them followed by a fixed successor), `synthetic_corpus` (a `data.Corpus` of them with the bench's
synthetic bert-base-uncased-sized tokenizer) and `short_pretrain(preset, steps, ...)`: a `preset` student trained
with `high` teacher-masking through `entmask.training_run` (`make_trainer` / `_train` / `_finish`, what
`entmask pretrain` runs: the teacher's cached entropy pass, EntropyMaskingTrainer, checkpoints, held-out evaluation,
metrics.json), stopped right after its checkpoint at step `steps // 2`, then resumed from that checkpoint by a fresh
model and Trainer and trained to `steps`. It returns what a check needs: the first and last logged training loss,
the checkpoint the first process wrote, the step the second process started from and the step it ended at, its
tokens/s and the precision `train.precision: auto` picked.

What it is not: no real data and no trained teacher (a randomly initialised teacher of the student's shape scores
the text: its entropies rank positions, which is all the mechanics need, and say nothing of a teacher's quality);
not `entmask pretrain` itself (no run-hash folder, no lock, no corpus cache: the corpus is built in memory, so it
runs where no dataset mirror or hub is reachable); no claim about convergence beyond "the loss goes down".
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from entmask.bench.synthetic import VOCAB, synthetic_tokenizer

FIRST_WORD = 999  # the first non-special id of the synthetic vocabulary (synthetic.synthetic_ids starts there too)


def learnable_ids(rows: int, seq_len: int, words: int = 2000, follow: float = 0.5, seed: int = 0) -> torch.Tensor:
    """[rows, T] packed rows `[CLS] w ... w [SEP]`: each word is, with probability `follow`, the fixed successor of
    the previous one (a seeded permutation), else a Zipf(1) draw from `words` word ids; uniform ids would leave a
    student nothing to learn beyond the vocabulary's size, so its loss could not show training working."""
    g = torch.Generator().manual_seed(seed)
    zipf = 1.0 / torch.arange(1, words + 1, dtype=torch.float64)
    draws = torch.multinomial(zipf / zipf.sum(), rows * seq_len, replacement=True, generator=g).view(rows, seq_len)
    succ = torch.randperm(words, generator=g)
    keep = torch.rand(rows, seq_len, generator=g) < follow
    body = draws.clone()
    for t in range(1, seq_len):  # sequential: a followed word follows the word actually placed before it
        body[:, t] = torch.where(keep[:, t], succ[body[:, t - 1]], draws[:, t])
    ids = body + FIRST_WORD
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS], [SEP]
    return ids


def synthetic_corpus(folder: Path, train_rows: int, test_rows: int, seq_len: int, seed: int = 0):
    """A `data.Corpus` of `learnable_ids` (train and test rows drawn apart) in `folder` (where the teacher's
    entropy cache is written)."""
    from entmask.data import Corpus

    folder.mkdir(parents=True, exist_ok=True)
    ids = learnable_ids(train_rows + test_rows, seq_len, seed=seed)
    stats = {"source": "synthetic (bench.short_pretrain.learnable_ids)", "train_rows": train_rows,
             "test_rows": test_rows, "seq_len": seq_len}
    return Corpus(folder, f"synthetic-{seed}", ids[:train_rows], ids[train_rows:], synthetic_tokenizer(), stats)


def short_pretrain(preset: str, steps: int, batch: int, seq_len: int, train_rows: int, workdir: Path,
                   test_rows: int = 64, lr: float = 1e-3, progress: bool = False) -> dict:
    """Train a `preset` student for `steps` optimizer steps with `high` teacher-masking, interrupted after the
    checkpoint at `steps // 2` and resumed from it (see the module docstring). Returns the figures a check reads."""
    from entmask import config
    from entmask.models import build_model
    from entmask.resume import last_complete_checkpoint
    from entmask.training_run import _finish, _train, use_bf16

    if steps < 2:
        raise ValueError(f"steps={steps}: a resume check needs at least 2 steps (one before the checkpoint)")
    half = steps // 2
    teacher = workdir / "teacher"
    build_model(preset, VOCAB, seed=1).save_pretrained(str(teacher))  # random: ranks positions, nothing more
    corpus = synthetic_corpus(workdir / "corpus", train_rows, test_rows, seq_len)
    cfg = config.resolve("bertlet", {
        "model.preset": preset, "data.seq_len": seq_len, "masking.strategy": "high", "masking.source": "teacher",
        "teacher": str(teacher), "train.batch_size": batch, "train.max_steps": steps, "train.lr": lr,
        "train.warmup_ratio": 0.1, "train.logging_steps": max(1, steps // 20), "train.save_steps": half,
        "train.eval_batch_size": min(256, max(batch, 16)), "train.precision": "auto"}, name="gpu-check")
    run = workdir / "run"
    kw = dict(teacher_dir=teacher, max_steps=steps, progress=progress)
    t0 = time.perf_counter()
    first, _, _, _, _ = _train(cfg, run, build_model(preset, VOCAB, seed=0), corpus, stop_after=half, **kw)
    stopped_at = first.state.global_step
    checkpoint = last_complete_checkpoint(run / "checkpoints", quiet=True)
    checkpoint_files = sorted(p.name for p in Path(checkpoint).iterdir()) if checkpoint else []
    del first
    # a fresh model and Trainer, as a new process would build them: _train resumes from the last checkpoint
    trainer, result, secs, resumed, spe = _train(cfg, run, build_model(preset, VOCAB, seed=0), corpus, **kw)
    metrics = _finish(cfg, run, trainer, result, secs, resumed, corpus, {"teacher": str(teacher),
                                                                          "steps_per_epoch": spe})
    segments = metrics.get("wallclock_segments") or []
    return {
        "preset": preset, "steps": steps, "batch": batch, "seq_len": seq_len, "train_rows": train_rows,
        "precision": metrics.get("precision", "bf16" if use_bf16("auto") else "fp32"),
        "first_loss": metrics["first_train_loss"], "last_loss": metrics["final_train_loss"],
        "stopped_at": stopped_at, "checkpoint": Path(checkpoint).name if checkpoint else None,
        "checkpoint_files": checkpoint_files, "resumed_from": metrics["resumed_from"],
        "resume_started_at": segments[-1]["from_step"] if segments else None, "final_step": metrics["steps"],
        "tokens_per_s": metrics["tokens_per_s"], "heldout_accuracy": metrics["heldout_accuracy"],
        "unigram_accuracy": metrics["unigram_accuracy"], "metrics_written": (run / "metrics.json").exists(),
        "model_written": (run / "model" / "model.safetensors").exists(), "seconds": time.perf_counter() - t0,
    }
