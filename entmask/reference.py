"""The offline teacher: the reference stage, which adapts an encoder with MLM on the train split, and where a
run's teacher comes from.

What it is: `build_reference(cfg)` (find or build the reference run: random 15% masking with BERT's 80/10/10
replacement, `reference_config`, stopped early on held-back train rows by `ReferenceStopper`), `resolve_teacher(cfg)`
(a local folder holding the teacher: the reference run's model, built in a child process under torchrun by
`_reference_in_child`; a given folder; or a hub model kept as a local copy) and `teacher_metrics` (a reference
teacher's metrics.json).

What it is not: no student training (entmask.pretrain) and no teacher scores (entmask.teacher_scores).
"""
from __future__ import annotations

import copy
import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file
from transformers import TrainerCallback

from entmask import runs, schemas
from entmask.config import ConfigError, PretrainConfig
from entmask.data import Corpus, prepare_corpus
from entmask.heldout import heldout_eval
from entmask.models import load_teacher, reference_start, transformers_bars
from entmask.training_run import _finish, _train, check_maskable, run_folder


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
    ref.train.short_positions = "own"  # (meaningless without short rows: at its default it stays out of the hash)
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
        if progress:  # without it, the run's one line when it is built (entmask.run_log)
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
        m = _finish(ref, run, trainer, result, secs, last, corpus, extra)  # prints the run's one line
        if progress:
            print(f"entmask: reference unmasked-view entropy {m['entropy_mean']:.2f} ± {m['entropy_sd']:.2f} nats")
    return run


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
