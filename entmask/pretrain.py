"""Pretraining: find or run one pretraining run of a config, and the face of the modules that do its parts.

What it is: `pretrain(cfg)` (find or run one pretraining run; under torchrun every rank calls it). Rank 0 decides
whether the run is needed, builds the teacher, the corpus cache and the teacher-score caches while the other ranks
wait, then all ranks train and rank 0 evaluates and writes. The parts live in their own modules, each saying what
it is and is not, and every name they define is re-exported here (`from entmask.pretrain import run_folder`,
`pretrain.resolve_teacher(...)` and the like keep working; new code may import from the modules):
    masking_trainer  EntropyMaskingTrainer (the loss step that masks by entropy, [+ KD]), PackedDataset, collate
    heldout          heldout_eval and the plateau criterion, student_entropy_stats, CurveCallback, EpochCallback
    teacher_scores   uses_teacher_scores, teacher_scores (the teacher's cached scores), check_teacher
    training_run     make_trainer, _train, _finish, run_folder, reference_hash, check_maskable, use_bf16, rank,
                     device_name
    resume           last_complete_checkpoint, checkpoint_state, WallClock, checkpoint_pace, wall_seconds,
                     FailpointCallback, _StopAt
    compute          run_flops
    reference        build_reference (the offline teacher), reference_config, ReferenceStopper, resolve_teacher,
                     teacher_metrics

What it is not: no GLUE (entmask.finetune), no tables (entmask.experiments).
"""
from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from entmask import runs
from entmask.config import PretrainConfig
from entmask.data import prepare_corpus  # looked up here by _pretrain (tests patch pretrain.prepare_corpus)
from entmask.models import build_model, transformers_bars
from entmask.phases import short_len, short_steps, short_views, view_steps
from entmask.run_log import say_run

# Re-exported: the names pretrain.py defined before it was split (and model_entropy, which tests read here).
from entmask.entropy import model_entropy  # noqa: F401
from entmask.masking_trainer import EntropyMaskingTrainer, PackedDataset, collate  # noqa: F401
from entmask.heldout import (  # noqa: F401
    HELDOUT_SEED, PROBE_ROWS, CurveCallback, EpochCallback, heldout_eval, student_entropy_stats,
)
from entmask.teacher_scores import (  # noqa: F401
    check_teacher, needs_teacher_model, teacher_scores, teacher_weights_needed, uses_teacher_scores)
from entmask.resume import (  # noqa: F401
    FailpointCallback, WallClock, _StopAt, checkpoint_pace, checkpoint_state, last_complete_checkpoint, wall_seconds,
)
from entmask.compute import run_flops  # noqa: F401
from entmask.training_run import (  # noqa: F401
    _finish, _steps_per_epoch, _tensorboard, _train, _training_args, check_maskable, device_name, make_trainer, rank,
    reference_hash, run_folder, use_bf16,
)
from entmask.reference import (  # noqa: F401
    ReferenceStopper, _reference_in_child, build_reference, reference_config, resolve_teacher, teacher_metrics,
)



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
            if rank() == 0:
                say_run("pretrain", run.name, "reused", runs.read_json(run / "metrics.json"))
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
                if needs_teacher_model(cfg) and runs.weightless_teacher(tdir):  # before any folder is written
                    raise teacher_weights_needed(cfg, tdir)
                check_teacher(tdir, corpus, cfg.trust_remote_code)
                teacher_scores(cfg, tdir, corpus, progress, force=force and rank() == 0)
                for k in short_views(cfg.train.short_rows, cfg.train.length_ramp):
                    teacher_scores(cfg, tdir, corpus, progress, force=force and rank() == 0, short_rows=k)
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
                                     "steps": short_steps(trainer.state.max_steps, t.short_rows, t.short_fraction),
                                     "positions": t.short_positions,
                                     **({"ramp": [{"rows": k, "rows_len": short_len(cfg.data.seq_len, k), "steps": n}
                                                  for k, n in view_steps(trainer.state.max_steps, t.short_rows,
                                                                         t.short_fraction, t.length_ramp).items()
                                                  if k not in (1, t.short_rows)]} if t.length_ramp else {})}})
    return run
