"""GLUE fine-tuning: metrics against scikit-learn, majority rows, early stopping (pure and HF), data protocols,
the frozen-encoder probe, run reuse and the offline gaps (QQP absent, QNLI from validation).

Real mirror data are read from ../shared/data beside the checkout; tests that need it skip when it is absent.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from entmask.config import FinetuneConfig
from entmask.finetune import (QNLI_NOTE, classification_metrics, early_stop_epoch, finetune_all, finetune_task,
                              majority_row, prediction_summary, task_data)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATA = SHARED / "data"
VOCAB = SHARED / "models" / "bert-base-uncased-vocab"
needs_mirror = pytest.mark.skipif(not (DATA / "glue").is_dir() or not VOCAB.is_dir(),
                                  reason=f"offline mirror not found at {SHARED} (needs data/glue and "
                                         f"models/bert-base-uncased-vocab)")


def tiny_cfg(**kw) -> FinetuneConfig:
    base = dict(epochs=2, patience=1, lr=1e-3, batch_size=16, max_len=32, max_train=64, max_eval=32,
                precision="fp32", frozen_epochs=1, seeds=[0], tasks=["mrpc"])
    base.update(kw)
    return FinetuneConfig(**base)


# ---- metrics -------------------------------------------------------------------------------------------------
def test_metrics_equal_sklearn():
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    y = np.array([1, 0, 1, 1, 0, 1, 0, 0, 1, 1])
    p = np.array([1, 0, 0, 1, 1, 1, 0, 1, 1, 0])
    for task in ("cola", "mrpc", "rte"):
        m = classification_metrics(y, p, task)
        assert m["accuracy"] == accuracy_score(y, p) == 0.6
        assert m["f1"] == f1_score(y, p)
        assert m["mcc"] == matthews_corrcoef(y, p)
    cola = classification_metrics(y, p, "cola")
    assert cola["paper_score"] == 100 * accuracy_score(y, p)
    assert cola["glue_score"] == 100 * matthews_corrcoef(y, p)
    mrpc = classification_metrics(y, p, "mrpc")
    assert mrpc["paper_score"] == mrpc["glue_score"] == 100 * f1_score(y, p)
    # Never predicting the positive class: F1 is 0 (not an error), MCC 0.
    none = classification_metrics(y, np.zeros_like(y), "mrpc")
    assert none["f1"] == 0.0 and none["mcc"] == 0.0


def test_prediction_summary_flags_collapse():
    s = prediction_summary([1] * 19 + [0], 2)
    assert s["pred_distribution"] == {"0": 0.05, "1": 0.95} and s["collapsed"] is True
    s = prediction_summary([1] * 18 + [0, 0], 2)
    assert s["collapsed"] is False


@needs_mirror
def test_majority_rows_match_the_paper():
    cola = majority_row("cola", str(DATA))
    assert cola["majority_label"] == 1 and round(cola["paper_score"], 2) == 69.13  # accuracy 721/1043
    assert cola["glue_score"] == 0.0  # MCC of a constant prediction
    mrpc = majority_row("mrpc", str(DATA))
    assert round(mrpc["paper_score"], 2) == 81.22  # F1 of all-"equivalent" = 558/687
    assert mrpc["paper_score"] == pytest.approx(100 * 558 / 687, abs=1e-12)
    assert majority_row("qqp", str(DATA))["status"] == "absent"


# ---- early stopping ------------------------------------------------------------------------------------------
def test_early_stop_epoch_scripted_curves():
    curve = [1.0, 0.8, 0.85, 0.9, 0.7, 0.9, 0.95]
    # HF semantics: two evaluations without improvement (epochs 3 and 4) reach patience 2, so epoch 5 never runs.
    assert early_stop_epoch(curve, 2) == (2, 4)
    # With patience 3 epoch 5 improves, then the curve (the epoch cap) ends at 7 before patience runs out.
    assert early_stop_epoch(curve, 3) == (5, 7)
    assert early_stop_epoch(curve, 1) == (2, 3)
    assert early_stop_epoch([1.0, 1.0, 1.0], 2) == (1, 3)  # equal is not an improvement
    assert early_stop_epoch([0.5], 5) == (1, 1)
    assert early_stop_epoch([1.0, float("nan"), 0.9], 2) == (3, 3)  # NaN never improves
    with pytest.raises(ValueError):
        early_stop_epoch([], 1)


class _Scripted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(1, 1)

    def forward(self, x, labels=None):
        return {"loss": ((self.w(x) - labels) ** 2).mean()}


@pytest.mark.parametrize("curve,patience", [([1.0, 0.8, 0.85, 0.9, 0.7, 0.9, 0.95], 2),
                                            ([1.0, 0.8, 0.85, 0.9, 0.7, 0.9, 0.95], 3),
                                            ([0.9, 0.9, 0.8, 0.8, 0.8, 0.7], 2)])
def test_early_stop_epoch_agrees_with_hf_callback(tmp_path, curve, patience):
    """A real Trainer + EarlyStoppingCallback, one step per epoch, fed the scripted validation losses."""
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    class ScriptedTrainer(Trainer):
        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            metrics = {"eval_loss": curve[len(self.seen)], "epoch": self.state.epoch}
            self.seen.append(self.state.global_step)
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
            return metrics

    data = [{"x": torch.ones(1), "labels": torch.zeros(1)}]
    args = TrainingArguments(output_dir=str(tmp_path), num_train_epochs=len(curve), per_device_train_batch_size=1,
                             eval_strategy="epoch", save_strategy="epoch", save_total_limit=1,
                             load_best_model_at_end=True, metric_for_best_model="eval_loss", use_cpu=True,
                             report_to=[], disable_tqdm=True, save_only_model=True, logging_strategy="no")
    trainer = ScriptedTrainer(model=_Scripted(), args=args, train_dataset=data, eval_dataset=data,
                              callbacks=[EarlyStoppingCallback(early_stopping_patience=patience)])
    trainer.remove_callback(PrinterCallback)
    trainer.seen = []
    trainer.train()
    best, stop = early_stop_epoch(curve, patience)
    assert len(trainer.seen) == stop
    assert trainer.state.best_global_step == best  # one optimizer step per epoch


# ---- data protocols ------------------------------------------------------------------------------------------
@needs_mirror
def test_task_data_is_seeded_and_disjoint():
    cfg = tiny_cfg(max_train=100, max_eval=40, heldout_fraction=0.1)
    a, b = task_data("rte", cfg, str(DATA)), task_data("rte", cfg, str(DATA))
    assert a.train["idx"].tolist() == b.train["idx"].tolist() and a.eval["idx"].tolist() == b.eval["idx"].tolist()
    assert (len(a.train), len(a.stop), len(a.eval)) == (90, 10, 40)
    assert not set(a.train["idx"]) & set(a.stop["idx"])  # the early-stopping slice is carved out of train
    assert a.eval_split == "validation" and a.note is None
    p = task_data("rte", tiny_cfg(max_train=100, max_eval=40, protocol="paper"), str(DATA))
    assert p.stop is p.eval and len(p.train) == 100  # paper: stop on validation, nothing carved from train
    q = task_data("qnli", cfg, str(DATA))
    assert q.note == QNLI_NOTE and not set(q.train["idx"]) & set(q.eval["idx"])  # both from validation


# ---- fine-tuning runs ----------------------------------------------------------------------------------------
@needs_mirror
def test_frozen_probe_leaves_encoder_bitwise_equal(tiny_mlm, tmp_path):
    from safetensors.torch import load_file

    m = finetune_task(tiny_mlm, "cola", tiny_cfg(), 0, profile="test", name="probe", data_dir=str(DATA),
                      root=tmp_path, frozen=True, progress=False)
    assert m["status"] == "ok" and m["encoder_unchanged"] is True and m["epochs_run"] == 1
    run = Path(m["run_dir"])
    assert run.name.startswith("probe-frozen-") and run.parent == tmp_path / "test" / "finetune" / "cola"
    pre = load_file(str(tiny_mlm / "model.safetensors"))
    ft = load_file(str(run / "model" / "model.safetensors"))
    init = load_file(str(run / "head_init.safetensors"))
    assert set(init) == {"bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight",
                         "classifier.bias"}
    for k, v in ft.items():
        if k.startswith("bert.pooler."):
            assert torch.equal(v, init[k]), k
        elif not k.startswith("classifier."):
            assert torch.equal(v, pre[k]), k
    assert not torch.equal(ft["classifier.weight"], init["classifier.weight"])  # the probe did train
    assert not (run / "checkpoints").exists()


@needs_mirror
def test_finetune_mrpc_writes_metrics_and_is_reused(tiny_mlm, tmp_path):
    from sklearn.metrics import f1_score

    from entmask import runs

    cfg = tiny_cfg()
    m = finetune_task(tiny_mlm, "mrpc", cfg, 0, profile="test", name="m", data_dir=str(DATA), root=tmp_path,
                      progress=False)
    run = Path(m["run_dir"])
    assert m["status"] == "ok" and m["reused"] is False
    assert 0 <= m["paper_score"] <= 100 and m["paper_metric"] == "f1"
    assert (m["n_train"], m["n_stop"], m["n_eval"]) == (58, 6, 32)
    assert 1 <= m["best_epoch"] <= m["epochs_run"] <= cfg.epochs and m["early_stop_agrees"] is True
    assert m["best_epoch"] == m["hf_best_epoch"]
    preds = runs.read_json(run / "predictions.json")
    assert len(preds["y_pred"]) == len(preds["y_true"]) == 32
    assert m["paper_score"] == pytest.approx(100 * f1_score(preds["y_true"], preds["y_pred"], zero_division=0))
    on_disk = runs.read_json(run / "metrics.json")
    assert on_disk["paper_score"] == m["paper_score"] and on_disk["hash"] == run.name.rsplit("-", 1)[1]
    assert (run / "config.json").exists() and (run / "model" / "model.safetensors").exists()
    assert not (run / "checkpoints").exists()
    # the precision and the truncated share are on record (MRPC at the tiny cfg's short length loses most ends)
    assert m["precision"] == ("bf16" if m["bf16"] else "fp32") and m["max_len"] == cfg.max_len
    assert 0.5 < m["eval_truncated"] <= 1.0

    mtime = (run / "metrics.json").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = finetune_task(tiny_mlm, "mrpc", cfg, 0, profile="test", name="other-name", data_dir=str(DATA),
                          root=tmp_path, progress=False)
    assert time.perf_counter() - t0 < 2.0
    assert again["reused"] is True and again["run_dir"] == str(run)  # found by hash, whatever the name
    assert (run / "metrics.json").stat().st_mtime_ns == mtime
    assert again["paper_score"] == m["paper_score"]


@needs_mirror
def test_absent_and_qnli_offline(tiny_mlm, tmp_path):
    cfg = tiny_cfg(epochs=1, tasks=["qqp", "qnli"])
    out = finetune_all(tiny_mlm, cfg, profile="test", name="a", data_dir=str(DATA), root=tmp_path, progress=False)
    qqp, qnli = out
    assert qqp["task"] == "qqp" and qqp["status"] == "absent" and "\n" not in qqp["reason"]
    assert not (tmp_path / "test" / "finetune" / "qqp").exists()  # never faked: no run folder
    assert qnli["status"] == "ok" and qnli["eval_note"] == QNLI_NOTE
    assert qnli["n_eval"] == 32 and 0 <= qnli["paper_score"] <= 100
    assert not math.isnan(qnli["majority_paper_score"])


@needs_mirror
def test_data_problems_are_errors_not_absent(tiny_mlm, tmp_path):
    from entmask.data import DataError

    with pytest.raises(DataError, match="too few"):  # 1 example cannot give a held-out slice: an error, not absent
        finetune_task(tiny_mlm, "rte", tiny_cfg(max_train=1), 0, profile="test", name="e", data_dir=str(DATA),
                      root=tmp_path, progress=False)
    with pytest.raises(DataError, match="unknown GLUE task"):
        finetune_task(tiny_mlm, "wnli", tiny_cfg(), 0, profile="test", name="e", data_dir=str(DATA), root=tmp_path,
                      progress=False)


def test_truncated_share_counts_examples_longer_than_max_len(tokenizer):
    import pandas as pd

    from entmask.finetune import truncated_share

    df = pd.DataFrame({"sentence": ["a b", "a b c d e f g h", "one"], "label": [0, 1, 0]})
    # [CLS] a b [SEP] = 4, [CLS] a ... h [SEP] = 10, [CLS] one [SEP] = 3
    assert truncated_share(df, tokenizer, "sst2", 4) == pytest.approx(1 / 3)
    assert truncated_share(df, tokenizer, "sst2", 3) == pytest.approx(2 / 3)
    assert truncated_share(df, tokenizer, "sst2", 10) == 0.0
    assert truncated_share(df.iloc[:0], tokenizer, "sst2", 10) == 0.0
    pair = pd.DataFrame({"sentence1": ["a b"], "sentence2": ["c d"], "label": [0]})  # [CLS] a b [SEP] c d [SEP] = 7
    assert truncated_share(pair, tokenizer, "mrpc", 6) == 1.0 and truncated_share(pair, tokenizer, "mrpc", 7) == 0.0


@needs_mirror
def test_cpu_wiki_truncates_at_most_a_tenth_of_every_task(tokenizer):
    """Issue 30: the cpu-wiki profile fine-tunes at a length that cuts <= 10% of each task's validation examples."""
    from entmask import config
    from entmask.data import load_glue_split
    from entmask.finetune import truncated_share

    cfg = config.resolve("cpu-wiki", {"data.data_dir": str(DATA)})
    assert cfg.finetune.max_len <= cfg.data.seq_len  # no position the student never trained
    shares = {t: truncated_share(load_glue_split(t, "validation", str(DATA)), tokenizer, t, cfg.finetune.max_len)
              for t in ("cola", "sst2", "mrpc", "qnli", "rte")}
    assert max(shares.values()) <= 0.10, shares
    assert shares["rte"] == pytest.approx(0.061, abs=0.001)  # the binding task (7.9% at 144, 11.9% at 128)


def test_auto_precision_is_bf16_exactly_where_pretraining_uses_it():
    from entmask.finetune import _resolve_bf16
    from entmask.pretrain import use_bf16

    assert _resolve_bf16("auto") == use_bf16("auto")
    assert _resolve_bf16("bf16") is True and _resolve_bf16("fp32") is False
