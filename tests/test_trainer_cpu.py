"""entmask.trainer_cpu: a CPU Trainer starts train() without accelerate's full garbage collection, and the rest of
accelerate's free_memory (its lists reset) still runs."""
import gc

import torch

from entmask import trainer_cpu


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def forward(self, x, labels=None):
        return {"loss": ((self.w(x).squeeze(-1) - labels) ** 2).mean()}


def _trainer(tmp_path):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, use_cpu=True,
                             report_to=[], save_strategy="no", disable_tqdm=True)
    data = [{"x": torch.randn(2), "labels": torch.tensor(0.0)} for _ in range(8)]
    return Trainer(model=_Tiny(), args=args, train_dataset=data)


def test_a_cpu_trainer_trains_without_a_full_garbage_collection(tmp_path, monkeypatch):
    from accelerate.utils import memory

    calls = []
    real = gc.collect
    monkeypatch.setattr(gc, "collect", lambda *a, **k: calls.append(1) or real(*a, **k))
    _trainer(tmp_path).train()
    assert calls, "the stock Trainer no longer collects at train(): entmask.trainer_cpu has nothing left to skip"
    calls.clear()
    t = _trainer(tmp_path)
    out = trainer_cpu.train(t)
    trainer_cpu.train(t)  # free_memory still empties the accelerator's lists: one model prepared, not two
    assert calls == [] and len(t.accelerator._models) == 1
    assert memory.gc is gc  # accelerate's own gc is back after each call
    assert t.state.global_step == 2 and out.global_step == 2
    with __import__("pytest").raises(ZeroDivisionError):  # back after a training that fails, too
        with trainer_cpu._no_full_collection():
            1 / 0
    assert memory.gc is gc
