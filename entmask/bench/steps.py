"""The training-step table: each row's real Trainer, built once, and its optimizer steps timed round-robin.

What it is: `Runner(spec, ...)` (one row's trainer, prepared model and optimizer, and its batches; `step()` is one
optimizer step) and `bench_steps(specs, ...)` (builds every row, then times `warmup + repeats` rounds, each round
running every row once in a rotated order, so drift from other jobs on the machine hits every row alike; returns
tokens/s, step times, peak CUDA memory and model TFLOP/s per row).

How a step is timed (the Trainer's own code path): every variant is a real `transformers.Trainer`
(`EntropyMaskingTrainer` for entmask's, a plain `Trainer` + `DataCollatorForLanguageModeling` for stock HF) whose
model and optimizer went through `accelerator.prepare` as in `Trainer.train`. One step is what the Trainer's inner
loop does per optimizer step: the data collator on the rows of one batch, `trainer.training_step` (which calls the
trainer's `compute_loss` and the backward), the NaN/inf filter on the loss, `floating_point_ops`, gradient
clipping, `optimizer.step()` (the Trainer's default fused AdamW), `lr_scheduler.step()`, `model.zero_grad()`.
Only the sampler, callbacks and logging are left out. bf16 is accelerate's: the prepared model's `forward` runs
under autocast and its outputs are cast to fp32, exactly what `Trainer(bf16=True)` does; it is applied per variant
by hand because accelerate keeps one precision per process. Memory on CUDA: `torch.cuda.max_memory_allocated()`
minus the memory allocated before the step.

What it is not: no CPU memory (`memory` runs these Runners in a subprocess for that), no real data and no
convergence; proposed changes to masking_trainer.py are measured by subclassing (`_trainer_class`), never by editing it.
"""
from __future__ import annotations

import gc
import os
import statistics
import tempfile
import time
from dataclasses import asdict

import torch

from entmask.bench.entropy_kernels import _entr_kernel
from entmask.bench.flops import step_flops
from entmask.bench.machine import _rotate, _say, _timed
from entmask.bench.synthetic import VOCAB, synthetic_ids, synthetic_tokenizer
from entmask.bench.variants import Spec


class _Corpus:
    """The two things EntropyMaskingTrainer reads from a Corpus."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special_ids = list(tokenizer.all_special_ids)


class Runner:
    """A variant's trainer, prepared model and optimizer, and its batches; `step()` is one optimizer step."""

    def __init__(self, spec: Spec, preset: str, seq_len: int, batch_size: int, device: torch.device, tokenizer,
                 workdir: str, n_batches: int = 4, entropy_chunk: int | None = None):
        from entmask.models import _quiet_transformers

        _quiet_transformers()
        self.spec, self.device, self.tokens = spec, device, batch_size * seq_len
        args = _training_args(spec, batch_size, device, workdir)
        ids = synthetic_ids(n_batches * batch_size, seq_len, VOCAB, seed=1)
        if spec.kind == "stock":
            trainer, rows = _stock_trainer(spec, preset, args, tokenizer, ids)
        else:
            trainer, rows = _entmask_trainer(spec, preset, seq_len, batch_size, args, tokenizer, ids, entropy_chunk)
        self.batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        model_w = _prepare(trainer, spec, device)
        self.trainer, self.model, self.i, self.last_loss = trainer, model_w, 0, None

    def step(self) -> None:
        with _entr_kernel(self.spec.entr_kernel):
            self._step()

    def _step(self) -> None:
        tr, model = self.trainer, self.model
        batch = tr.data_collator(self.batches[self.i % len(self.batches)])
        self.i += 1
        # As the inner loop: one micro-batch per optimizer step, its loss-normalising item count.
        try:
            (batch,), num_items = tr.get_batch_samples(iter([batch]), 1, tr.args.device)
        except (AttributeError, TypeError):  # another transformers version: count the labels as it does
            num_items = int((batch["labels"] != -100).sum()) if "labels" in batch else None
        tr.current_gradient_accumulation_steps = 1
        loss = tr.training_step(model, batch, num_items)
        if torch.isnan(loss) or torch.isinf(loss):  # the Trainer loop's logging_nan_inf_filter (a host sync)
            pass
        tr.current_flos += float(tr.floating_point_ops(batch))
        tr.accelerator.clip_grad_norm_(model.parameters(), tr.args.max_grad_norm)
        tr.optimizer.step()
        tr.lr_scheduler.step()
        model.zero_grad()
        tr.state.global_step += 1
        self.last_loss = loss

    def close(self) -> None:
        self.trainer = self.model = self.batches = None


def _training_args(spec: Spec, batch_size: int, device: torch.device, workdir: str):
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=os.path.join(workdir, spec.name.replace(" ", "_")), per_device_train_batch_size=batch_size,
        learning_rate=1e-4, weight_decay=0.01, max_grad_norm=1.0, max_steps=10 ** 6, warmup_steps=0,
        lr_scheduler_type="linear", report_to=[], save_strategy="no", logging_strategy="no",
        disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0, seed=0, bf16=False,
        use_cpu=device.type == "cpu")


def _stock_trainer(spec: Spec, preset: str, args, tokenizer, ids: torch.Tensor):
    """A plain Trainer on BertForMaskedLM with HF's MLM collator, and its dataset rows."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, Trainer

    from entmask.models import bert_config

    torch.manual_seed(0)
    model = BertForMaskedLM(bert_config(preset, spec.vocab, {"attn_implementation": spec.attn}))
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
    trainer = Trainer(model=model, args=args, data_collator=collator)
    return trainer, [{"input_ids": r} for r in ids]


def _entmask_trainer(spec: Spec, preset: str, seq_len: int, batch_size: int, args, tokenizer, ids: torch.Tensor,
                     entropy_chunk: int | None):
    """entmask's EntropyMaskingTrainer (or a subclass with a proposed change), and its dataset rows."""
    from entmask import config
    from entmask.models import build_model
    from entmask.pretrain import EntropyMaskingTrainer, PackedDataset, collate

    strategy, source = ("random", "teacher") if spec.kind == "random" else ("high", spec.kind)
    cfg = config.resolve("bertlet", {"model.preset": preset, "data.seq_len": seq_len,
                                     "masking.strategy": strategy, "masking.source": source,
                                     "masking.self_start": "cold", "train.batch_size": batch_size,
                                     "train.entropy_chunk": spec.entropy_chunk or entropy_chunk
                                     or config.TrainConfig.entropy_chunk,
                                     "train.precision": spec.precision,
                                     "train.compile": spec.compiled})  # _prepare compiles, as the Trainer would
    model = build_model(preset, spec.vocab, {"attn_implementation": spec.attn}, seed=0)
    ent = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) * 8 if spec.kind == "teacher" \
        else None  # the cached teacher column: a precomputed [N, T] float32 tensor
    cls = _trainer_class(EntropyMaskingTrainer, spec)
    trainer = cls(model=model, args=args, data_collator=collate, train_dataset=PackedDataset(ids, ent),
                  em=cfg, corpus=_Corpus(tokenizer), steps_per_epoch=10 ** 6)
    ds = trainer.train_dataset
    return trainer, [ds[i] for i in range(len(ds))]


def _prepare(trainer, spec: Spec, device: torch.device):
    """As Trainer.train does: create the optimizer, accelerator.prepare(model, optimizer), the scheduler; then the
    row's precision and compilation. Returns the wrapped model the steps run."""
    trainer.create_optimizer()
    model_w, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
    trainer.create_scheduler(num_training_steps=10 ** 6, optimizer=trainer.optimizer)
    if spec.precision == "bf16":
        _autocast_forward(model_w, device, torch.bfloat16)
    if spec.compiled:
        model_w = torch.compile(model_w)
    trainer.model_wrapped = model_w
    return model_w


def _trainer_class(base, spec: Spec):
    """EntropyMaskingTrainer, or a subclass with a proposed change (measured without editing masking_trainer.py)."""
    if not (spec.self_bf16 or spec.async_stats):
        return base

    class Proposed(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not spec.self_bf16:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            from entmask import masking_trainer  # where compute_loss looks model_entropy up

            # Exactly the proposed line: model_entropy(core, ids, attn, chunk, autocast_dtype=torch.bfloat16).
            # Only the self pass runs in bf16; the training forward keeps the variant's own precision.
            original = masking_trainer.model_entropy

            def bf16_pass(*args, **kwargs):
                kwargs["autocast_dtype"] = torch.bfloat16
                return original(*args, **kwargs)

            masking_trainer.model_entropy = bf16_pass
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                masking_trainer.model_entropy = original

        def _add(self, key, value):
            if not spec.async_stats:
                return super()._add(key, value)
            s, n = self._acc.get(key, (0.0, 0))
            self._acc[key] = (s + value.detach().float(), n + 1)  # a device tensor; float() only when logging

    return Proposed


def _autocast_forward(model, device: torch.device, dtype) -> None:
    """What accelerate's prepare_model does for mixed precision: forward under autocast, outputs cast to fp32."""
    from types import MethodType

    from accelerate.utils import convert_outputs_to_fp32

    func = model.forward.__func__ if hasattr(model.forward, "__func__") else model.forward
    model.forward = MethodType(convert_outputs_to_fp32(torch.autocast(device.type, dtype=dtype)(func)), model)


def bench_steps(specs: list[Spec], preset: str, seq_len: int, batch_size: int, repeats: int, warmup: int,
                device: torch.device, progress: bool = True) -> dict:
    tok = synthetic_tokenizer()
    with tempfile.TemporaryDirectory(prefix="entmask-bench-") as work:
        runners = []
        for s in specs:
            t0 = time.perf_counter()
            runners.append(Runner(s, preset, seq_len, batch_size, device, tok, work))
            _say(progress, f"built {s.name} ({time.perf_counter() - t0:.1f}s)")
        times, peaks, first = _time_rounds(runners, repeats, warmup, device, progress)
        results: dict[str, dict] = {}
        for r in runners:
            results[r.spec.name] = _step_row(r, times[r.spec.name], peaks[r.spec.name], first.get(r.spec.name),
                                             preset, batch_size, seq_len)
            r.close()
        del runners
        gc.collect()
    return results


def _time_rounds(runners: list[Runner], repeats: int, warmup: int, device: torch.device, progress: bool):
    """Run `warmup + repeats` rounds, every runner once per round in a rotated order. Returns the timed rounds'
    seconds and CUDA peaks per row, and each row's first (cold) step in seconds."""
    times: dict[str, list[float]] = {r.spec.name: [] for r in runners}
    peaks: dict[str, list[int]] = {r.spec.name: [] for r in runners}
    first: dict[str, float] = {}
    for rnd in range(warmup + repeats):
        for r in _rotate(runners, rnd):
            secs, peak = _timed(r.step, device)
            if rnd == 0:
                first[r.spec.name] = secs
            if rnd >= warmup:
                times[r.spec.name].append(secs)
                if peak is not None:
                    peaks[r.spec.name].append(peak)
        _say(progress, f"round {rnd + 1}/{warmup + repeats} "
                       f"({'warm-up' if rnd < warmup else 'timed'}) done")
    return times, peaks, first


def _step_row(r: Runner, ts: list[float], peaks: list[int], first: float | None, preset: str, batch_size: int,
              seq_len: int) -> dict:
    """One row of the training-step table (the JSON's numbers; `report.format_steps` prints them)."""
    med = statistics.median(ts)
    fl = step_flops(r.spec.kind, preset, r.spec.vocab, batch_size, seq_len)
    return {
        **asdict(r.spec),
        "tokens_per_s": r.tokens / med, "step_ms": 1e3 * med, "step_ms_all": [1e3 * t for t in ts],
        "tokens_per_s_min": r.tokens / max(ts), "tokens_per_s_max": r.tokens / min(ts),
        "first_step_s": first, "peak_step_mib": (max(peaks) / 2 ** 20) if peaks else None,
        "flops_per_step": fl["flops"], "tflops": fl["flops"] / med / 1e12,
        "last_loss": float(r.last_loss) if r.last_loss is not None else None,
    }
