"""One fine-tuning run's training and report, inside its run folder.

What it is: `_train_and_report` (a BertForSequenceClassification initialised from a saved BertForMaskedLM, trained
by the HF Trainer with early stopping on the stop set and the best checkpoint restored, or for the frozen probe
exactly frozen_epochs epochs of the classifier alone; resumed from the folder's last complete checkpoint; then the
reported split's predictions, scores and majority baseline, and head_init.safetensors, model/, predictions.json and
log_history.json written) and `_assert_encoder_unchanged` (the frozen probe's encoder is bitwise the pretrained one).

What it is not: it finds no run, takes no lock and writes no metrics.json (entmask.finetune.finetune_task does, by
hash); the examples are entmask.glue_data's, the scores entmask.glue_metrics'.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

import datasets
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import (BertForSequenceClassification, DataCollatorWithPadding, EarlyStoppingCallback, Trainer,
                          TrainingArguments, set_seed)

from entmask import runs
from entmask.config import FinetuneConfig
from entmask.data import TASKS, load_tokenizer
from entmask.glue_data import TaskData, _encode, truncated_share
from entmask.glue_metrics import classification_metrics, early_stop_epoch, majority_scores, prediction_summary
from entmask.models import ModelError, _quiet_transformers, transformers_bars
from entmask.resume import FailpointCallback, last_complete_checkpoint
from entmask.run_log import screen_callbacks
from entmask import trainer_cpu


def _load_state(model_dir: Path) -> dict:
    """The pretrained tensors, by safetensors (never pickle)."""
    state = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        state.update(load_file(str(f)))
    return state


def _train_and_report(model_dir: Path, data: TaskData, cfg: FinetuneConfig, seed: int, run: Path, *,
                      frozen: bool, bf16: bool, progress: bool) -> dict:
    _quiet_transformers()
    with transformers_bars(progress):
        return _train_and_report_inner(model_dir, data, cfg, seed, run, frozen=frozen, bf16=bf16, progress=progress)


def _train_and_report_inner(model_dir: Path, data: TaskData, cfg: FinetuneConfig, seed: int, run: Path, *,
                            frozen: bool, bf16: bool, progress: bool) -> dict:
    task = data.task
    num_labels = TASKS[task]["num_labels"]
    tok = load_tokenizer(str(model_dir))

    bars = datasets.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
    try:
        train_ds = _encode(data.train, tok, task, cfg.max_len)
        stop_ds = _encode(data.stop, tok, task, cfg.max_len)
        eval_ds = stop_ds if data.stop is data.eval else _encode(data.eval, tok, task, cfg.max_len)
    finally:
        if bars:
            datasets.enable_progress_bars()

    set_seed(seed)  # the classifier's (and pooler's) initialisation, before the model is built
    model, info = BertForSequenceClassification.from_pretrained(str(model_dir), num_labels=num_labels,
                                                                output_loading_info=True, use_safetensors=True,
                                                                trust_remote_code=False)
    fresh = sorted(info.get("missing_keys", []))
    if any(not k.startswith(("classifier.", "bert.pooler.")) for k in fresh):
        bad = [k for k in fresh if not k.startswith(("classifier.", "bert.pooler."))]
        raise ModelError(f"{model_dir} lacks {len(bad)} encoder weights (e.g. {bad[0]}); give a BertForMaskedLM "
                         f"folder written by save_pretrained")
    if len(tok) > model.config.vocab_size:
        raise ModelError(f"{model_dir}: tokenizer has {len(tok)} tokens but the model {model.config.vocab_size}; "
                         f"save the pretraining tokenizer beside the model")
    params = dict(model.named_parameters())
    # A MaskedLM has no pooler and no classifier: they start random, so keep their start for the weight analysis.
    head_init = {k: params[k].detach().cpu().clone().contiguous() for k in fresh if k in params}
    save_file(head_init, str(run / "head_init.safetensors"))

    if frozen:
        for n, p in model.named_parameters():
            p.requires_grad_(n.startswith("classifier."))  # embeddings, encoder and pooler frozen

    cuda = torch.cuda.is_available()
    common = dict(output_dir=str(run / "checkpoints"), learning_rate=cfg.lr,
                  per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
                  logging_strategy="epoch", seed=seed, bf16=bf16, use_cpu=not cuda, report_to=[],
                  disable_tqdm=not progress, dataloader_num_workers=0)
    if frozen:
        # The probe trains exactly frozen_epochs epochs: no early stopping, no model selection.
        args = TrainingArguments(num_train_epochs=cfg.frozen_epochs, eval_strategy="no", save_strategy="no",
                                 **common)
        callbacks = []
    else:
        args = TrainingArguments(num_train_epochs=cfg.epochs, eval_strategy="epoch", save_strategy="epoch",
                                 save_total_limit=1, load_best_model_at_end=True, metric_for_best_model="eval_loss",
                                 greater_is_better=False, **common)
        callbacks = [EarlyStoppingCallback(early_stopping_patience=cfg.patience)]
    callbacks.append(FailpointCallback("finetune-step"))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=None if frozen else stop_ds,
                      processing_class=tok, data_collator=DataCollatorWithPadding(tok), callbacks=callbacks)
    screen_callbacks(trainer, progress)  # bars or nothing: the log dicts go to log_history.json, not the screen
    last = None if frozen else last_complete_checkpoint(run / "checkpoints")
    if last and progress:
        print(f"entmask: resuming {task} seed {seed} from {Path(last).name}")
    t0 = time.perf_counter()
    trainer_cpu.train(trainer, resume_from_checkpoint=last)  # on a CPU without accelerate's full gc.collect()
    train_seconds = time.perf_counter() - t0
    model = trainer.model

    out: dict = {"resumed_from": Path(last).name if last else None, "status": "ok", "split": data.eval_split,
                 "steps": int(trainer.state.global_step),
                 "n_train": len(data.train), "n_eval": len(data.eval),
                 "n_stop": 0 if frozen else len(data.stop), "train_seconds": train_seconds, "bf16": bf16,
                 "precision": "bf16" if bf16 else "fp32", "max_len": cfg.max_len,
                 "eval_truncated": truncated_share(data.eval, tok, task, cfg.max_len),
                 "stop_set": None if frozen else ("heldout-train-slice" if cfg.protocol == "heldout"
                                                  else data.eval_split)}
    if data.note:
        out["eval_note"] = data.note
    history = trainer.state.log_history
    if frozen:
        out.update(epochs_run=cfg.frozen_epochs, best_epoch=None, stop_epoch=cfg.frozen_epochs, val_losses=[])
        out["encoder_unchanged"] = _assert_encoder_unchanged(model, _load_state(model_dir), head_init)
    else:
        val_losses = [float(e["eval_loss"]) for e in history if "eval_loss" in e]
        best, stop = early_stop_epoch(val_losses, cfg.patience)
        by_step = {e["step"]: e.get("epoch") for e in history if "eval_loss" in e}
        hf_best = by_step.get(trainer.state.best_global_step)
        hf_best = None if hf_best is None else int(round(hf_best))
        out.update(epochs_run=len(val_losses), best_epoch=best, stop_epoch=stop, val_losses=val_losses,
                   hf_best_epoch=hf_best, early_stop_agrees=bool(best == hf_best and stop == len(val_losses)))

    pred = trainer.predict(eval_ds)
    logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions  # [N, K]
    y_pred = np.asarray(logits).argmax(-1).astype(np.int64)  # [N]
    y_true = np.asarray(data.eval["label"], dtype=np.int64)  # [N]
    out["eval_loss"] = float(pred.metrics.get("test_loss", float("nan")))
    out.update(classification_metrics(y_true, y_pred, task))
    out.update(majority_scores(data.train["label"], y_true, task))
    out.update(prediction_summary(y_pred, num_labels))

    runs.write_json(run / "predictions.json", {
        "task": task, "split": data.eval_split, "idx": [int(i) for i in data.eval["idx"]],
        "y_true": y_true.tolist(), "y_pred": y_pred.tolist()})
    out["predictions_file"] = "predictions.json"
    runs.write_json(run / "log_history.json", history)
    model.save_pretrained(str(run / "model"))  # safetensors; the weight analysis compares it with model_dir
    tok.save_pretrained(str(run / "model"))
    shutil.rmtree(run / "checkpoints", ignore_errors=True)
    return out


def _assert_encoder_unchanged(model, pretrained: dict, head_init: dict) -> bool:
    """Every non-classifier parameter bitwise equal to where it started (pretrained, or init for the pooler).

    Parameters, not activations, are compared, so dropout during training plays no part.
    """
    changed, checked = [], 0
    for n, p in model.named_parameters():
        if n.startswith("classifier."):
            continue
        ref = pretrained.get(n, head_init.get(n))
        if ref is None:
            raise RuntimeError(f"frozen probe: {n} has neither a pretrained nor an initial value to compare with")
        checked += 1
        if not torch.equal(p.detach().cpu(), ref.to(p.dtype)):
            changed.append(n)
    if changed:
        raise RuntimeError(f"frozen probe changed {len(changed)} of {checked} frozen tensors (e.g. {changed[0]}); "
                           f"the encoder must stay bitwise equal to the pretrained one")
    return True
