"""Throughput benchmark: training steps of stock HF vs entmask's variants, the entropy pass, the teacher pass.

What it is: `main(preset, seq_len, batch_size, repeats, device)` (also `python -m entmask.bench` and
`entmask bench`) builds each variant on synthetic token ids (vocabulary 30522, no dataset, no hub) at the same
model, batch, length and precision, times full optimizer steps interleaved round-robin in one process (so drift
from other jobs on the machine hits every variant alike) and prints three tables:

1. training steps: tokens/s (median of the timed repeats), speed-up over the stock HF step (the median of the
   per-round ratios, so a slow stretch of the machine cancels), step time, peak memory of the step above the
   resident weights and optimizer state, model TFLOP/s and, on a GPU with a known bf16 peak, model FLOP
   utilisation (MFU; formula in `step_flops`);
2. the entropy computation on [N, V] float32 logits: naive `log_softmax` over the whole tensor vs `token_entropy`
   with chunks (and the proposed entr(softmax) kernel): time, peak extra memory, ratios to naive;
3. the teacher's entropy pass (inference mode, batched, fp32 vs bf16, head chunk) in tokens/s, and
   `teacher_entropies` computing once and then hitting its cache.

Rows: `stock HF`, `entmask random`, `teacher-masked` (strategy high on a cached [N, T] entropy column),
`self-masked cold` (the student's own no-grad pass each step); `--ablations` adds eager attention, the
vocabulary padded to 30528, bf16 autocast on CPU, and rows that measure changes proposed for other modules without
editing them (`bf16 self pass`: the self pass under bf16 autocast; `chunk N`: its head chunk; `entr kernel`:
`entr_rows` as `entropy._entropy_rows`; `no per-step sync`: the logging figures kept on the device);
`--compile` adds torch.compile rows. docs/performance.md holds the measured tables.

How a step is timed (the Trainer's own code path): every variant is a real `transformers.Trainer`
(`EntropyMaskingTrainer` for entmask's, a plain `Trainer` + `DataCollatorForLanguageModeling` for stock HF) whose
model and optimizer went through `accelerator.prepare` as in `Trainer.train`. One step is what the Trainer's inner
loop does per optimizer step: the data collator on the rows of one batch, `trainer.training_step` (which calls the
trainer's `compute_loss` and the backward), the NaN/inf filter on the loss, `floating_point_ops`, gradient
clipping, `optimizer.step()` (the Trainer's default fused AdamW), `lr_scheduler.step()`, `model.zero_grad()`.
Only the sampler, callbacks and logging are left out. bf16 is accelerate's: the prepared model's `forward` runs
under autocast and its outputs are cast to fp32, exactly what `Trainer(bf16=True)` does; it is applied per variant
by hand because accelerate keeps one precision per process.

Memory: on CUDA `torch.cuda.max_memory_allocated()` minus the memory allocated before the step. On CPU, torch's
allocations are invisible to tracemalloc, so a subprocess whose glibc malloc serves every block of 64 KiB or more
with mmap (freed memory goes back at once) resets the kernel's peak-RSS counter (/proc/self/clear_refs) before the
step and reads VmHWM - VmRSS after it.

What it is not: no real data, no convergence; it measures speed and memory only.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

VOCAB = 30522  # bert-base-uncased
PAD64 = 30528  # the same vocabulary padded to a multiple of 64
MAIN = ("stock HF", "entmask random", "teacher-masked", "self-masked cold")
KIND = dict(zip(MAIN, ("stock", "random", "teacher", "self")))
# A reference-teacher-sized model (all-MiniLM-L6-v2: 6 layers, hidden 384, 12 heads) for the teacher-pass table.
REFERENCE_SIZE = dict(num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)
TEST_PRESETS = ("bert-micro", "bert-tiny")

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) of the SXM parts; override with ENTMASK_PEAK_TFLOPS.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("H100", 989.4),
                    ("H200", 989.4), ("GH200", 989.4), ("A100", 312.0))


# ---- variants ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spec:
    """One benchmark row. kind: stock | random | teacher | self."""
    kind: str
    precision: str = "fp32"  # fp32 | bf16 (accelerate-style forward autocast)
    attn: str = "sdpa"  # attn_implementation: sdpa (the transformers default) | eager
    vocab: int = VOCAB  # model vocabulary (PAD64 pads the embedding and the head)
    compiled: bool = False  # torch.compile of the prepared model, as Trainer(torch_compile=True)
    self_bf16: bool = False  # the self-entropy pass under bf16 autocast (proposed change in pretrain.compute_loss)
    async_stats: bool = False  # the step's logging figures kept on the device (proposed change in pretrain._add)
    entropy_chunk: int | None = None  # train.entropy_chunk of the self pass (None: the config default)
    entr_kernel: bool = False  # entropy as entr(softmax) (proposed change in entropy._entropy_rows)
    main_precision: str = "fp32"  # the run's precision: a row's name says its precision only where it differs

    @property
    def name(self) -> str:
        base = {v: k for k, v in KIND.items()}[self.kind]
        mods = []
        if self.precision != self.main_precision:
            mods.append(self.precision)
        if self.attn != "sdpa":
            mods.append(f"{self.attn} attn")
        if self.vocab != VOCAB:
            mods.append(f"vocab {self.vocab}")
        if self.compiled:
            mods.append("compiled")
        if self.self_bf16:
            mods.append("bf16 self pass")
        if self.async_stats:
            mods.append("no per-step sync")
        if self.entropy_chunk is not None:
            mods.append(f"chunk {self.entropy_chunk}")
        if self.entr_kernel:
            mods.append("entr kernel")
        return " · ".join([base] + mods)


def parse_variant(name: str, precision: str) -> Spec:
    """'teacher-masked · eager attn · bf16' -> Spec. Modifiers: bf16, fp32, eager attn, vocab 30528, compiled,
    bf16 self pass, no per-step sync, chunk N (the self pass's head chunk), entr kernel."""
    parts = [p.strip() for p in re.split(r"[·+,]", name) if p.strip()]
    base = parts[0]
    if base not in KIND:
        raise ValueError(f"unknown variant {base!r}; choose one of {', '.join(MAIN)}")
    s = Spec(KIND[base], precision=precision, main_precision=precision)
    for m in parts[1:]:
        if m in ("bf16", "fp32"):
            s = replace(s, precision=m)
        elif m.endswith("attn"):
            s = replace(s, attn=m.split()[0])
        elif m.startswith("vocab"):
            s = replace(s, vocab=int(m.split()[1]))
        elif m == "compiled":
            s = replace(s, compiled=True)
        elif m == "bf16 self pass":
            s = replace(s, self_bf16=True)
        elif m == "no per-step sync":
            s = replace(s, async_stats=True)
        elif m.startswith("chunk"):
            s = replace(s, entropy_chunk=int(m.split()[1]))
        elif m == "entr kernel":
            s = replace(s, entr_kernel=True)
        else:
            raise ValueError(f"unknown variant modifier {m!r} in {name!r}")
    return s


def default_specs(precision: str, ablations: bool, compile_: bool, cpu_bf16: bool, cuda: bool = False,
                  big_chunk: int = 2048) -> list[Spec]:
    """The four main rows; with `ablations` the measured alternatives (attention, vocabulary padding, CPU bf16,
    host syncs) and the proposed fixes of the self pass (bf16 autocast, head chunk, entropy kernel)."""
    specs = [Spec(k, precision=precision) for k in ("stock", "random", "teacher", "self")]
    if ablations:
        for k in ("stock", "teacher"):
            specs.append(Spec(k, precision=precision, attn="eager"))
            specs.append(Spec(k, precision=precision, vocab=PAD64))
        specs.append(Spec("teacher", precision=precision, async_stats=True))
        if precision == "fp32" and cpu_bf16:  # bf16 autocast on a CPU that runs it natively
            specs += [Spec(k, precision="bf16") for k in ("stock", "random", "teacher", "self")]
            specs.append(Spec("self", precision="bf16", self_bf16=True))
        specs.append(Spec("self", precision=precision, self_bf16=True))
        specs.append(Spec("self", precision=precision, entr_kernel=True))
        if cuda:  # launch-bound with small chunks
            specs.append(Spec("self", precision=precision, entropy_chunk=big_chunk))
            specs.append(Spec("self", precision=precision, self_bf16=True, entropy_chunk=big_chunk))
            specs.append(Spec("self", precision=precision, self_bf16=True, entropy_chunk=big_chunk,
                              entr_kernel=True))
        else:
            specs.append(Spec("self", precision=precision, self_bf16=True, entr_kernel=True))
    if compile_:
        specs += [Spec("stock", precision=precision, compiled=True), Spec("teacher", precision=precision,
                                                                          compiled=True)]
    return [replace(s, main_precision=precision) for s in specs]


# ---- synthetic inputs ----------------------------------------------------------------------------------------
def synthetic_tokenizer(vocab_size: int = VOCAB):
    """A BERT WordPiece tokenizer with bert-base-uncased's special ids ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102,
    [MASK] 103) and `vocab_size` entries, built in memory (no hub, no files)."""
    from transformers import BertTokenizer

    from entmask.models import _quiet_transformers

    _quiet_transformers()
    toks = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += [f"w{i}" for i in range(vocab_size - len(toks))]
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(toks)})
    if len(tok) != vocab_size or tok.mask_token_id != 103:
        raise RuntimeError(f"synthetic tokenizer has {len(tok)} entries (wanted {vocab_size}); transformers changed "
                           f"BertTokenizer's constructor")
    return tok


def synthetic_ids(rows: int, seq_len: int, vocab_size: int = VOCAB, seed: int = 0) -> torch.Tensor:
    """Packed rows like the corpus's: [CLS] w ... w [SEP], the words uniform over the non-special ids. [rows, T]"""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, vocab_size, (rows, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids


class _Corpus:
    """The two things EntropyMaskingTrainer reads from a Corpus."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.special_ids = list(tokenizer.all_special_ids)


# ---- one built variant ---------------------------------------------------------------------------------------
class Runner:
    """A variant's trainer, prepared model and optimizer, and its batches; `step()` is one optimizer step."""

    def __init__(self, spec: Spec, preset: str, seq_len: int, batch_size: int, device: torch.device, tokenizer,
                 workdir: str, n_batches: int = 4, entropy_chunk: int | None = None):
        from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, Trainer, TrainingArguments

        from entmask import config
        from entmask.models import _quiet_transformers, bert_config, build_model
        from entmask.pretrain import EntropyMaskingTrainer, PackedDataset, collate

        _quiet_transformers()
        self.spec, self.device, self.tokens = spec, device, batch_size * seq_len
        overrides = {"attn_implementation": spec.attn}
        args = TrainingArguments(
            output_dir=os.path.join(workdir, spec.name.replace(" ", "_")), per_device_train_batch_size=batch_size,
            learning_rate=1e-4, weight_decay=0.01, max_grad_norm=1.0, max_steps=10 ** 6, warmup_steps=0,
            lr_scheduler_type="linear", report_to=[], save_strategy="no", logging_strategy="no",
            disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0, seed=0, bf16=False,
            use_cpu=device.type == "cpu")
        ids = synthetic_ids(n_batches * batch_size, seq_len, VOCAB, seed=1)
        if spec.kind == "stock":
            torch.manual_seed(0)
            model = BertForMaskedLM(bert_config(preset, spec.vocab, overrides))
            collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15)
            trainer = Trainer(model=model, args=args, data_collator=collator)
            rows = [{"input_ids": r} for r in ids]
        else:
            strategy, source = ("random", "teacher") if spec.kind == "random" else ("high", spec.kind)
            cfg = config.resolve("bertlet", {"model.preset": preset, "data.seq_len": seq_len,
                                             "masking.strategy": strategy, "masking.source": source,
                                             "masking.self_start": "cold", "train.batch_size": batch_size,
                                             "train.entropy_chunk": spec.entropy_chunk or entropy_chunk
                                             or config.TrainConfig.entropy_chunk,
                                             "train.precision": spec.precision})
            model = build_model(preset, spec.vocab, overrides, seed=0)
            ent = torch.rand(ids.shape, generator=torch.Generator().manual_seed(2)) * 8 if spec.kind == "teacher" \
                else None  # the cached teacher column: a precomputed [N, T] float32 tensor
            cls = _trainer_class(EntropyMaskingTrainer, spec)
            trainer = cls(model=model, args=args, data_collator=collate, train_dataset=PackedDataset(ids, ent),
                          em=cfg, corpus=_Corpus(tokenizer), steps_per_epoch=10 ** 6)
            ds = trainer.train_dataset
            rows = [ds[i] for i in range(len(ds))]
        self.batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
        # As Trainer.train does: create the optimizer, accelerator.prepare(model, optimizer), the scheduler.
        trainer.create_optimizer()
        model_w, trainer.optimizer = trainer.accelerator.prepare(trainer.model, trainer.optimizer)
        trainer.create_scheduler(num_training_steps=10 ** 6, optimizer=trainer.optimizer)
        if spec.precision == "bf16":
            _autocast_forward(model_w, device, torch.bfloat16)
        if spec.compiled:
            model_w = torch.compile(model_w)
        trainer.model_wrapped = model_w
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


def entr_rows(x: torch.Tensor) -> torch.Tensor:
    """Proposed `entropy._entropy_rows`: entropy = sum of entr(softmax(x)), three kernels instead of eight.
    entr(0) = 0, so -inf logits need no masking; a row with NaN/+inf, or all -inf, still gives NaN. [N, V] -> [N]"""
    return torch.special.entr(torch.softmax(x.float(), dim=-1)).sum(dim=-1)


@contextlib.contextmanager
def _entr_kernel(on: bool):
    """Swap entropy._entropy_rows for `entr_rows` during one variant's step (model_entropy looks it up per call)."""
    if not on:
        yield
        return
    from entmask import entropy

    old = entropy._entropy_rows
    entropy._entropy_rows = entr_rows
    try:
        yield
    finally:
        entropy._entropy_rows = old


def _trainer_class(base, spec: Spec):
    """EntropyMaskingTrainer, or a subclass with a proposed change (to measure it without editing pretrain.py)."""
    if not (spec.self_bf16 or spec.async_stats):
        return base

    class Proposed(base):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not spec.self_bf16:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            from entmask import pretrain

            # Exactly the proposed line: model_entropy(core, ids, attn, chunk, autocast_dtype=torch.bfloat16).
            # Only the self pass runs in bf16; the training forward keeps the variant's own precision.
            original = pretrain.model_entropy

            def bf16_pass(*args, **kwargs):
                kwargs["autocast_dtype"] = torch.bfloat16
                return original(*args, **kwargs)

            pretrain.model_entropy = bf16_pass
            try:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            finally:
                pretrain.model_entropy = original

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


# ---- timing helpers ------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, int | None]:
    """(seconds, peak bytes allocated above what was allocated before; CUDA only) of one call."""
    peak = None
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    secs = time.perf_counter() - t0
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - before
    return secs, peak


def _rotate(items: list, r: int) -> list:
    k = r % len(items) if items else 0
    return items[k:] + items[:k]


# ---- FLOPs ---------------------------------------------------------------------------------------------------
def step_flops(kind: str, preset: str, vocab: int, batch: int, seq_len: int) -> dict:
    """Model FLOPs of one training step (matrix multiplications only; 2 FLOPs per multiply-add, backward = 2x
    forward), the formula documented in docs/performance.md:

        per token, forward:  2*N_enc + 4*L*T*H (attention scores and weighted sum)
        head, forward:       2*(H*H + H*V) at each position it is applied to: all B*T (stock, dense) or the M
                             masked ones (entmask, sparse)
        training step:       3 * forward;  the self pass adds one forward of the encoder and a dense head.
    N_enc = L*(4*H*H + 2*H*I) are the encoder's non-embedding weights.
    """
    from entmask.models import PRESETS

    p = dict(PRESETS[preset])
    L, H = p["num_hidden_layers"], p["hidden_size"]
    inter = p.get("intermediate_size", 4 * H)
    tokens = batch * seq_len
    k = min(max(math.floor(0.15 * (seq_len - 2) + 0.5), 1), seq_len - 2)
    masked = batch * k if kind != "stock" else round(0.15 * batch * (seq_len - 2))
    enc = tokens * (2 * L * (4 * H * H + 2 * H * inter) + 4 * L * seq_len * H)
    head_per_pos = 2 * (H * H + H * vocab)
    head_pos = tokens if kind == "stock" else masked
    flops = 3 * (enc + head_per_pos * head_pos)
    if kind == "self":
        flops += enc + head_per_pos * tokens
    return {"flops": float(flops), "masked": masked}


def peak_tflops(device_name: str) -> float | None:
    env = os.environ.get("ENTMASK_PEAK_TFLOPS")
    if env:
        return float(env)
    for key, val in PEAK_BF16_TFLOPS:
        if key in device_name:
            return val
    return None


# ---- machine -------------------------------------------------------------------------------------------------
def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        m = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        model = m.group(1).strip() if m else model
    flags = ""
    with contextlib.suppress(OSError):
        info = Path("/proc/cpuinfo").read_text()
        flags = ", AVX512-BF16" if "avx512_bf16" in info else ""
        flags += ", AMX" if "amx_bf16" in info else ""
    return f"{model} ({os.cpu_count()} cores{flags}; torch threads {torch.get_num_threads()})"


def cpu_bf16_native() -> bool:
    from entmask.entropy import _bf16_ok

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return _bf16_ok(torch.device("cpu"))


# ---- the training-step table ---------------------------------------------------------------------------------
def bench_steps(specs: list[Spec], preset: str, seq_len: int, batch_size: int, repeats: int, warmup: int,
                device: torch.device, progress: bool = True) -> dict:
    tok = synthetic_tokenizer()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="entmask-bench-") as work:
        runners = []
        for s in specs:
            t0 = time.perf_counter()
            runners.append(Runner(s, preset, seq_len, batch_size, device, tok, work))
            _say(progress, f"built {s.name} ({time.perf_counter() - t0:.1f}s)")
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
        for r in runners:
            name = r.spec.name
            ts = times[name]
            med = statistics.median(ts)
            fl = step_flops(r.spec.kind, preset, r.spec.vocab, batch_size, seq_len)
            results[name] = {
                **asdict(r.spec),
                "tokens_per_s": r.tokens / med, "step_ms": 1e3 * med, "step_ms_all": [1e3 * t for t in ts],
                "tokens_per_s_min": r.tokens / max(ts), "tokens_per_s_max": r.tokens / min(ts),
                "first_step_s": first.get(name), "peak_step_mib": (max(peaks[name]) / 2 ** 20) if peaks[name]
                else None, "flops_per_step": fl["flops"], "tflops": fl["flops"] / med / 1e12,
                "last_loss": float(r.last_loss) if r.last_loss is not None else None,
            }
            r.close()
        del runners
        gc.collect()
    return results


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load averages (other jobs make CPU timings noisy; the table says so)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"  [bench] {msg}", file=sys.stderr, flush=True)


# ---- the entropy-computation table ---------------------------------------------------------------------------
def _naive_entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)  # [N, V]
    return -(logp.exp() * logp).sum(dim=-1)


ENTR = "entr(softmax), proposed"


def entropy_methods(chunks: tuple[int, ...]) -> list[tuple[str, int | None]]:
    return ([("naive log_softmax", None), ("token_entropy", None)] + [("token_entropy", c) for c in chunks]
            + [(ENTR, None)] + [(ENTR, c) for c in chunks])


def _entropy_fn(method: str, chunk: int | None):
    from entmask.entropy import token_entropy

    if method.startswith("naive"):
        return _naive_entropy
    if method == ENTR:
        def entr(x):
            with _entr_kernel(True):
                return token_entropy(x, chunk_size=chunk)
        return entr
    return lambda x: token_entropy(x, chunk_size=chunk)


def bench_entropy(rows: int, vocab: int, chunks: tuple[int, ...], repeats: int, device: torch.device) -> list[dict]:
    g = torch.Generator(device=device).manual_seed(3)
    logits = torch.randn(rows, vocab, generator=g, device=device) * 3  # float32 [N, V]
    methods = entropy_methods(chunks)
    ref = _naive_entropy(logits)
    times = {i: [] for i in range(len(methods))}
    peaks = {i: [] for i in range(len(methods))}
    diffs = {}
    for i, (m, c) in enumerate(methods):  # warm-up, and the agreement check
        diffs[i] = float((_entropy_fn(m, c)(logits) - ref).abs().max())
    for rnd in range(repeats):
        for i in _rotate(list(range(len(methods))), rnd):
            fn = _entropy_fn(*methods[i])
            secs, peak = _timed(lambda: fn(logits), device)
            times[i].append(secs)
            if peak is not None:
                peaks[i].append(peak)
    out = []
    for i, (m, c) in enumerate(methods):
        out.append({"method": m, "chunk": c, "rows": rows, "vocab": vocab, "ms": 1e3 * statistics.median(times[i]),
                    "peak_extra_mib": max(peaks[i]) / 2 ** 20 if peaks[i] else None, "max_abs_diff": diffs[i]})
    base = out[0]
    for r in out:
        r["speed_vs_naive"] = base["ms"] / r["ms"]
        r["mem_vs_naive"] = (r["peak_extra_mib"] / base["peak_extra_mib"]) if r["peak_extra_mib"] and \
            base["peak_extra_mib"] else None
    return out


# ---- the teacher-pass table ----------------------------------------------------------------------------------
def teacher_pass_configs(device: torch.device, chunk: int, big_chunk: int = 2048) -> list[tuple[str, int, bool]]:
    """(precision, head chunk, entr kernel) rows of the teacher-pass table: today's fp32 and bf16 paths, and on a
    GPU the proposed larger chunk and entropy kernel."""
    from entmask.entropy import _bf16_ok

    rows = [("fp32", chunk, False)]
    if _bf16_ok(device):
        rows.append(("bf16", chunk, False))
    low = rows[-1][0]
    rows.append((low, chunk, True))
    if device.type == "cuda":
        rows += [(low, big_chunk, False), (low, big_chunk, True)]
    return rows


def bench_teacher_pass(models: dict[str, dict], rows: int, seq_len: int, batch: int, chunk: int,
                       device: torch.device, repeats: int = 1) -> list[dict]:
    """Tokens/s of the teacher's entropy pass as `teacher_entropies` runs it (inference mode, batched, the head in
    chunks), fp32 vs bf16 autocast (and the proposed chunk/kernel), interleaved batch by batch."""
    from entmask.entropy import model_entropy
    from entmask.models import build_model

    configs = teacher_pass_configs(device, chunk)
    ids = synthetic_ids(rows, seq_len, VOCAB, seed=4).to(device)
    attn = torch.ones_like(ids)
    out = []

    def run(cfg, s):
        prec, c, fast = cfg
        with _entr_kernel(fast):
            model_entropy(model, ids[s:s + batch], attn[s:s + batch], c,
                          autocast_dtype=torch.bfloat16 if prec == "bf16" else None)

    for label, m in models.items():
        model = build_model(m["preset"], VOCAB, m.get("overrides"), seed=0).to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        secs = {cfg: 0.0 for cfg in configs}
        with torch.inference_mode():
            for cfg in configs:
                run(cfg, 0)  # warm-up
            for _ in range(repeats):
                for s in range(0, rows, batch):
                    for cfg in _rotate(configs, s // batch):
                        t, _ = _timed(lambda: run(cfg, s), device)
                        secs[cfg] += t
        for cfg in configs:
            out.append({"model": label, "precision": cfg[0], "chunk": cfg[1], "entr_kernel": cfg[2],
                        "tokens_per_s": repeats * ids.numel() / secs[cfg],
                        "params_m": sum(q.numel() for q in model.parameters()) / 1e6})
        del model
    first = {}
    for r in out:
        first.setdefault(r["model"], r["tokens_per_s"])
        r["speed_vs_fp32"] = r["tokens_per_s"] / first[r["model"]]
    return out


def bench_teacher_cache(preset: str, rows: int, seq_len: int, batch: int, chunk: int, device: torch.device) -> dict:
    """`entropy.teacher_entropies` itself on a saved (random) teacher: the first call computes and caches, the
    second reads the cache."""
    from entmask import entropy
    from entmask.models import build_model

    ids = synthetic_ids(rows, seq_len, VOCAB, seed=5)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory(prefix="entmask-bench-teacher-") as d:
        tdir, cdir = Path(d) / "teacher", Path(d) / "corpus"
        cdir.mkdir()
        build_model(preset, VOCAB, seed=0).save_pretrained(str(tdir))
        passes = entropy.STATS["passes"]
        t0 = time.perf_counter()
        first = entropy.teacher_entropies(tdir, cdir, "train", ids, device=str(device), batch_size=batch,
                                          chunk_size=chunk, progress=False)
        t1 = time.perf_counter()
        again = entropy.teacher_entropies(tdir, cdir, "train", ids, device=str(device), batch_size=batch,
                                          chunk_size=chunk, progress=False)
        t2 = time.perf_counter()
        meta = entropy.describe_cache(cdir)[0]
        return {"model": preset, "tokens": ids.numel(), "first_call_s": t1 - t0, "cached_call_s": t2 - t1,
                "passes_run": entropy.STATS["passes"] - passes, "identical": bool(torch.equal(first, again)),
                "pass_tokens_per_s": float(meta.get("tokens_per_s", "nan")), "precision": meta.get("precision")}


# ---- CPU peak memory, measured in a subprocess ---------------------------------------------------------------
_PROBE_PRELUDE = ("import ctypes, sys\n"
                  "libc = ctypes.CDLL('libc.so.6')\n"
                  "libc.mallopt(-3, 65536)  # M_MMAP_THRESHOLD: blocks >= 64 KiB are mmapped, freed at once\n"
                  "libc.mallopt(-1, 0)  # M_TRIM_THRESHOLD: give the heap top back at once\n"
                  "from entmask.bench import _probe_main\n"
                  "_probe_main(sys.argv[1])\n")


def _status_kib(key: str) -> int:
    m = re.search(rf"{key}:\s+(\d+)", Path("/proc/self/status").read_text())
    return int(m.group(1)) if m else 0


def _peak_rss_extra(fn) -> float:
    """MiB the peak RSS rose above the RSS before `fn()` (the kernel's high-water mark, reset just before)."""
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) / 1024


def _probe_main(spec_json: str) -> None:
    spec = json.loads(spec_json)
    torch.set_num_threads(spec["threads"])
    out: dict = {"steps": {}, "entropy": []}
    dev = torch.device("cpu")
    if spec.get("variants"):
        tok = synthetic_tokenizer()
        with tempfile.TemporaryDirectory(prefix="entmask-probe-") as work:
            for name in spec["variants"]:
                r = Runner(parse_variant(name, spec["precision"]), spec["preset"], spec["seq_len"],
                           spec["batch_size"], dev, tok, work)
                r.step()  # the optimizer state now exists (resident from here on)
                out["steps"][name] = _peak_rss_extra(r.step)
                r.close()
                del r
                gc.collect()
    if spec.get("entropy"):
        e = spec["entropy"]
        logits = torch.randn(e["rows"], e["vocab"], generator=torch.Generator().manual_seed(3)) * 3
        for m, c in entropy_methods(tuple(e["chunks"])):
            fn = _entropy_fn(m, c)
            fn(logits)
            out["entropy"].append(_peak_rss_extra(lambda: fn(logits)))
    print("@@probe " + json.dumps(out), flush=True)


def cpu_memory_probe(variants: list[str], preset: str, seq_len: int, batch_size: int, entropy: dict | None,
                     precision: str = "fp32", timeout: float = 1800) -> dict | None:
    if not Path("/proc/self/clear_refs").exists():
        return None
    spec = {"variants": variants, "preset": preset, "seq_len": seq_len, "batch_size": batch_size,
            "entropy": entropy, "threads": torch.get_num_threads(), "precision": precision}
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])  # the repository: entmask/bench/__init__.py
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    try:
        p = subprocess.run([sys.executable, "-c", _PROBE_PRELUDE, json.dumps(spec)], env=env, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    for line in p.stdout.splitlines():
        if line.startswith("@@probe "):
            return json.loads(line[len("@@probe "):])
    print(f"entmask bench: the memory probe failed: {(p.stderr.strip().splitlines() or ['?'])[-1][:200]}",
          file=sys.stderr)
    return None


# ---- printing ------------------------------------------------------------------------------------------------
def _fmt(x, spec: str = ",.0f", none: str = "–") -> str:
    return none if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def speedup(steps: dict, name: str, base: str = "stock HF") -> float | None:
    """Median over the rounds of base's step time / name's step time. Both ran in the same round, so a slow
    stretch of the machine (other jobs) cancels out; more robust than the ratio of the two medians."""
    if base not in steps or name not in steps:
        return None
    a, b = steps[base]["step_ms_all"], steps[name]["step_ms_all"]
    if len(a) != len(b) or not a:
        return steps[name]["tokens_per_s"] / steps[base]["tokens_per_s"]
    return statistics.median(x / y for x, y in zip(a, b))


def format_steps(res: dict) -> str:
    steps, mfu_peak = res["steps"], res.get("peak_tflops")
    load = f"; load average {res['load_before'][0]:.1f} at the start" \
        if res.get("load_before") and res["device"] == "cpu" else ""
    lines = [f"Training step: {res['preset']}, seq_len {res['seq_len']}, batch {res['batch_size']}, "
             f"{res['precision']} ({res['device_name']}); median of {res['repeats']} interleaved repeats after "
             f"{res['warmup']} warm-up rounds{load}", "",
             "× stock: median over the rounds of the per-round ratio of step times (paired, so drift cancels)", "",
             "| variant | tokens/s | × stock | step ms | min–max tokens/s | peak step mem MiB | model TFLOP/s | MFU "
             "| 1st step s |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in steps.items():
        ratio = speedup(steps, name)
        mfu = r["tflops"] / mfu_peak if (mfu_peak and r["precision"] == "bf16" and res["device"] == "cuda") else None
        lines.append(f"| {name} | {_fmt(r['tokens_per_s'])} | {_fmt(ratio, '.2f')}× | {_fmt(r['step_ms'], '.1f')} | "
                     f"{_fmt(r['tokens_per_s_min'])}–{_fmt(r['tokens_per_s_max'])} | "
                     f"{_fmt(r['peak_step_mib'], ',.0f')} | {_fmt(r['tflops'], '.2f')} | "
                     f"{_fmt(100 * mfu if mfu is not None else None, '.1f')}{'%' if mfu is not None else ''} | "
                     f"{_fmt(r['first_step_s'], '.1f')} |")
    return "\n".join(lines)


def format_entropy(rows: list[dict], device_name: str) -> str:
    if not rows:
        return ""
    r0 = rows[0]
    lines = [f"Entropy of [N={r0['rows']}, V={r0['vocab']}] float32 logits ({device_name})", "",
             "| method | chunk | ms | speed vs naive | peak extra MiB | memory vs naive | max |Δ| nats |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['chunk'] or 'none'} | {_fmt(r['ms'], '.1f')} | "
                     f"{_fmt(r['speed_vs_naive'], '.2f')}× | {_fmt(r['peak_extra_mib'], ',.1f')} | "
                     f"{_fmt(100 * r['mem_vs_naive'] if r['mem_vs_naive'] else None, '.0f')}"
                     f"{'%' if r['mem_vs_naive'] else ''} | {r['max_abs_diff']:.1e} |")
    return "\n".join(lines)


def format_teacher(rows: list[dict], cache: dict | None, info: str) -> str:
    lines = [f"Teacher entropy pass ({info})", "",
             "| model | params M | precision | head chunk | entropy kernel | tokens/s | × fp32 (today's chunk) |",
             "|---|---:|---|---:|---|---:|---:|"]
    for r in rows:
        kernel = "entr(softmax), proposed" if r.get("entr_kernel") else "today's"
        lines.append(f"| {r['model']} | {r['params_m']:.1f} | {r['precision']} | {r.get('chunk', 128)} | {kernel} | "
                     f"{_fmt(r['tokens_per_s'])} | {r['speed_vs_fp32']:.2f}× |")
    if cache:
        lines += ["", f"teacher_entropies ({cache['model']}, {cache['tokens']:,} tokens): first call "
                      f"{cache['first_call_s']:.2f}s (pass {_fmt(cache['pass_tokens_per_s'])} tokens/s, "
                      f"{cache['precision']}), second call {cache['cached_call_s']:.3f}s from the cache; teacher "
                      f"passes run: {cache['passes_run']}; identical: {cache['identical']}"]
    return "\n".join(lines)


def format_targets(res: dict) -> str:
    t = res.get("targets") or {}
    if not t:
        return ""
    out = ["Targets (same model, batch, length, precision):"]
    if "teacher_vs_stock" in t:
        out.append(f"  teacher-masked / stock HF = {t['teacher_vs_stock']:.2f}× (target ≥ 1.8×, FLOP bound "
                   f"{t['teacher_flop_bound']:.2f}×)")
    if "self_vs_stock" in t:
        out.append(f"  self-masked cold / stock HF = {t['self_vs_stock']:.2f}× (target ≥ 1.1×, FLOP bound "
                   f"{t['self_flop_bound']:.2f}×)")
    if "self_overhead_vs_random" in t:
        out.append(f"  self-masked cold costs {100 * t['self_overhead_vs_random']:.0f}% more time per step than "
                   f"entmask random (FLOP ratio {100 * t['self_flop_overhead']:.0f}%)")
    if "self_best" in t:
        b = t["self_best"]
        extra = f", {100 * b['overhead_vs_random']:.0f}% over entmask random" if "overhead_vs_random" in b else ""
        out.append(f"  best measured self-masking row: {b['name']} = {b['vs_stock']:.2f}× stock{extra}")
    for e in t.get("entropy", []):
        out.append(f"  {e['label']}: {100 * e['mem']:.0f}% of the naive peak extra memory (target ≤ 25%) at "
                   f"{e['speed']:.2f}× its speed (target ≥ 1)")
    return "\n".join(out)


# ---- main ----------------------------------------------------------------------------------------------------
def main(preset: str = "bertlet", seq_len: int = 128, batch_size: int = 16, repeats: int = 5,
         device: str | None = None, warmup: int = 2, *, precision: str | None = None, ablations: bool = False,
         compile: bool = False, variants: list[str] | None = None, entropy: bool = True, teacher: bool = True,
         memory: bool = True, entropy_chunks: tuple[int, ...] | None = None, entropy_chunk: int = 128,
         threads: int | None = None, json_path: str | None = None, progress: bool = True,
         quiet: bool = False) -> dict:
    """Run the benchmark and print its tables. Returns every number as a dict (also written to `json_path`).

    precision: None = bf16 on a GPU that supports it, else fp32. ablations: add the rows that measure SDPA vs
    eager attention, the vocabulary padded to 30528, bf16 autocast on CPU, the bf16 self pass and a step without
    per-step host syncs. compile: add torch.compile rows. variants: run exactly these rows (names as printed).
    threads: torch's intra-op threads (default: torch's own choice, the core count).
    """
    threads_before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _main(preset, seq_len, batch_size, repeats, device, warmup, precision, ablations, compile, variants,
                     entropy, teacher, memory, entropy_chunks, entropy_chunk, json_path, progress, quiet)
    finally:
        torch.set_num_threads(threads_before)


def _main(preset, seq_len, batch_size, repeats, device, warmup, precision, ablations, compile, variants, entropy,
          teacher, memory, entropy_chunks, entropy_chunk, json_path, progress, quiet) -> dict:
    from entmask.entropy import _bf16_ok

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if precision is None:
        precision = "bf16" if dev.type == "cuda" and _bf16_ok(dev) else "fp32"
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32 (the PyTorch default)
    small = preset in TEST_PRESETS
    specs = [parse_variant(v, precision) for v in variants] if variants else \
        default_specs(precision, ablations, compile, dev.type == "cpu" and cpu_bf16_native(), dev.type == "cuda")
    res: dict = {"preset": preset, "seq_len": seq_len, "batch_size": batch_size, "repeats": repeats,
                 "warmup": warmup, "precision": precision, "device": dev.type, "device_name": describe_device(dev),
                 "torch": torch.__version__, "threads": torch.get_num_threads(), "load_before": _load(),
                 "entropy_chunk": entropy_chunk}
    import transformers

    res["transformers"] = transformers.__version__
    res["peak_tflops"] = peak_tflops(res["device_name"]) if dev.type == "cuda" else None
    res["errors"] = {}
    chunks = entropy_chunks or ((32, 128, 512) if dev.type == "cpu" else (128, 1024, 4096))
    ent_rows = batch_size * seq_len

    def emit(text: str) -> None:  # each table as soon as it is measured; the JSON rewritten after each
        if not quiet and text:
            print("\n" + text, flush=True)
        if json_path:
            Path(json_path).write_text(json.dumps(res, indent=2, default=str) + "\n")

    _say(progress, f"{len(specs)} variants on {res['device_name']}")
    load = res["load_before"]
    if dev.type == "cpu" and load and torch.get_num_threads() > 1 and load[0] > 0.5 * (os.cpu_count() or 1):
        print(f"entmask bench: load average {load[0]:.1f} on {os.cpu_count()} cores from other processes; with "
              f"{torch.get_num_threads()} torch threads the steps are oversubscribed (threads wait for descheduled "
              f"ones): consider --threads 1", file=sys.stderr)
    res["steps"] = bench_steps(specs, preset, seq_len, batch_size, repeats, warmup, dev, progress)
    probe = None
    if memory and dev.type == "cpu":
        _say(progress, "CPU memory probe (subprocess)")
        probe = cpu_memory_probe([s.name for s in specs if not s.compiled], preset, seq_len, batch_size,
                                 {"rows": ent_rows, "vocab": VOCAB, "chunks": list(chunks)} if entropy else None,
                                 precision)
        for name, mib in (probe or {}).get("steps", {}).items():
            res["steps"][name]["peak_step_mib"] = mib
        res["memory_method"] = "peak RSS above the step's starting RSS (subprocess, mmap'd allocations)"
    elif dev.type == "cuda":
        res["memory_method"] = "torch.cuda.max_memory_allocated above the allocation before the step"
    res["targets"] = _targets(res, preset, seq_len, batch_size, entropy_chunk)
    emit(format_steps(res) + "\n\n" + format_targets(res))

    if entropy:
        _say(progress, "entropy table")
        try:
            res["entropy"] = bench_entropy(ent_rows, VOCAB, chunks, max(repeats, 3), dev)
            if probe and probe.get("entropy"):
                for r, mib in zip(res["entropy"], probe["entropy"]):
                    r["peak_extra_mib"] = mib
                base = res["entropy"][0]["peak_extra_mib"]
                for r in res["entropy"]:
                    r["mem_vs_naive"] = r["peak_extra_mib"] / base if base else None
            res["targets"] = _targets(res, preset, seq_len, batch_size, entropy_chunk)
            emit(format_entropy(res["entropy"], res["device_name"]))
        except Exception as e:  # noqa: BLE001 - one section failing must not lose the others
            res["errors"]["entropy"] = f"{type(e).__name__}: {e}"
            emit(f"entropy table failed: {res['errors']['entropy']}")
    if teacher:
        _say(progress, "teacher pass")
        try:
            if small:
                models = {preset: {"preset": preset}}
                rows, tbatch = 4 * batch_size, batch_size
            else:
                models = {preset: {"preset": preset}, "reference size (MiniLM-L6: 6×384×12)":
                          {"preset": "bertlet", "overrides": REFERENCE_SIZE}}
                rows, tbatch = (64, 32) if dev.type == "cpu" else (4096, 256)
            res["teacher_pass_info"] = f"{rows} rows × {seq_len}, batch {tbatch}, head chunk {entropy_chunk}, " \
                                       f"{res['device_name']}"
            res["teacher_pass"] = bench_teacher_pass(models, rows, seq_len, tbatch, entropy_chunk, dev)
            res["teacher_cache"] = bench_teacher_cache(preset, rows, seq_len, tbatch, entropy_chunk, dev)
            emit(format_teacher(res["teacher_pass"], res.get("teacher_cache"), res["teacher_pass_info"]))
        except Exception as e:  # noqa: BLE001
            res["errors"]["teacher"] = f"{type(e).__name__}: {e}"
            emit(f"teacher pass failed: {res['errors']['teacher']}")
    res["load_after"] = _load()
    emit("")
    return res


def render(res: dict) -> str:
    """All tables of a result dict (from `main` or a --json file), as markdown."""
    res = dict(res)
    res["targets"] = _targets(res, res["preset"], res["seq_len"], res["batch_size"],
                              (res.get("entropy_chunk") or 128))
    parts = [format_steps(res), format_targets(res)]
    if res.get("entropy"):
        parts.append(format_entropy(res["entropy"], res["device_name"]))
    if res.get("teacher_pass"):
        parts.append(format_teacher(res["teacher_pass"], res.get("teacher_cache"), res["teacher_pass_info"]))
    return "\n\n".join(p for p in parts if p)


def _targets(res: dict, preset: str, seq_len: int, batch: int, chunk: int) -> dict:
    s = res["steps"]
    t: dict = {}
    fl = {k: step_flops(k, preset, VOCAB, batch, seq_len)["flops"] for k in ("stock", "random", "teacher", "self")}
    if "stock HF" in s and "teacher-masked" in s:
        t["teacher_vs_stock"] = speedup(s, "teacher-masked")
        t["teacher_flop_bound"] = fl["stock"] / fl["teacher"]
    if "stock HF" in s and "self-masked cold" in s:
        t["self_vs_stock"] = speedup(s, "self-masked cold")
        t["self_flop_bound"] = fl["stock"] / fl["self"]
    alts = [n for n, r in s.items() if r.get("kind") == "self" and n != "self-masked cold"
            and r.get("precision") == res["precision"] and "stock HF" in s]
    if alts:
        best = max(alts, key=lambda n: speedup(s, n))
        t["self_best"] = {"name": best, "vs_stock": speedup(s, best)}
        if "entmask random" in s:
            t["self_best"]["overhead_vs_random"] = 1 / speedup(s, best, "entmask random") - 1
    if "entmask random" in s and "self-masked cold" in s:
        t["self_overhead_vs_random"] = 1 / speedup(s, "self-masked cold", "entmask random") - 1
        t["self_flop_overhead"] = fl["self"] / fl["random"] - 1
    ent = [r for r in (res.get("entropy") or []) if r.get("mem_vs_naive") is not None and r["chunk"]]
    rows = [r for r in ent if r["method"] == "token_entropy" and r["chunk"] == chunk]  # the configured chunk
    for method in ("token_entropy", ENTR):  # and each kernel's fastest chunk within the memory target
        ok = [r for r in ent if r["method"] == method and r["mem_vs_naive"] <= 0.25]
        rows += [max(ok, key=lambda r: r["speed_vs_naive"])] if ok else []
    seen = set()
    for r in rows:
        if (r["method"], r["chunk"]) not in seen:
            seen.add((r["method"], r["chunk"]))
            t.setdefault("entropy", []).append({"label": f"{r['method']} (chunk {r['chunk']})",
                                                "mem": r["mem_vs_naive"], "speed": r["speed_vs_naive"]})
    return t


def bench_scorers(preset: str = "bertlet", seq_len: int = 128, batch_size: int = 16, repeats: int = 3,
                  device: str | torch.device | None = None, ratio: float = 0.15, progress: bool = True) -> list[dict]:
    """Seconds per batch of each registered scorer (`entropy.SCORERS`) on one model (the student) and, for
    excess_loss, a second of the same preset as reference; ratios to the paper's unmasked-view entropy. Timed
    round-robin (each repeat runs every scorer once), median over repeats. Synthetic ids, no data."""
    from entmask.entropy import SCORERS, score_tokens
    from entmask.models import build_model

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model(preset, VOCAB, seed=0).to(dev).eval()
    ref = build_model(preset, VOCAB, seed=1).to(dev).eval()
    ids = synthetic_ids(batch_size, seq_len).to(dev)  # [B, T]
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, 0] = cand[:, -1] = False
    times: dict[str, list[float]] = {n: [] for n in SCORERS}
    for r in range(repeats + 1):  # the first round warms up
        for name in _rotate(list(SCORERS), r):
            gen = torch.Generator(device=dev).manual_seed(r)
            fn = lambda: score_tokens(name, model, ids, cand, mask_id=103, ratio=ratio,  # noqa: E731
                                      reference=ref, generator=gen)
            secs, _ = _timed(fn, dev)
            if r:
                times[name].append(secs)
        _say(progress, f"scorers: round {r}/{repeats}")
    base = statistics.median(times["entropy"])
    return [{"scorer": n, "view": SCORERS[n].view, "passes": SCORERS[n].passes(ratio) * (2 if SCORERS[n].uses_reference else 1),
             "seconds_per_batch": statistics.median(t), "tokens_per_s": ids.numel() / statistics.median(t),
             "x entropy time": statistics.median(t) / base} for n, t in times.items()]


def format_scorers(rows: list[dict], info: str) -> str:
    lines = [f"token scorers ({info}): seconds per batch, median; ratio to the paper's unmasked-view entropy", "",
             "| scorer | view | forward passes | s / batch | tokens/s | x entropy time |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scorer']} | {r['view']} | {r['passes']} | {r['seconds_per_batch']:.4f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['x entropy time']:.2f} |")
    return "\n".join(lines)


def _cli(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m entmask.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="bertlet")
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default=None,
                   help="default: bf16 on a GPU that supports it, else fp32")
    p.add_argument("--ablations", action="store_true",
                   help="add rows: eager attention, vocab 30528, CPU bf16, bf16 self pass, no per-step sync")
    p.add_argument("--compile", action="store_true", help="add torch.compile rows (slow to compile on a CPU)")
    p.add_argument("--variants", default=None,
                   help="';'-separated rows, e.g. 'stock HF;teacher-masked · compiled'")
    p.add_argument("--entropy-chunks", default=None, help="comma-separated chunk sizes for the entropy table")
    p.add_argument("--no-entropy", action="store_true")
    p.add_argument("--no-teacher", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the CPU memory probe subprocess")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    p.add_argument("--json", default=None, help="also write every number to this file")
    p.add_argument("--quiet-progress", action="store_true")
    p.add_argument("--render", default=None, metavar="JSON", help="print the tables of a saved --json run and exit")
    p.add_argument("--scorers", action="store_true", help="only the token-scorer table (entropy.SCORERS), then exit")
    a = p.parse_args(argv)
    if a.scorers:
        if a.threads:
            torch.set_num_threads(a.threads)
        dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        rows = bench_scorers(a.preset, a.seq_len, a.batch_size, a.repeats, dev, progress=not a.quiet_progress)
        print(format_scorers(rows, f"{a.preset}, {a.batch_size} x {a.seq_len}, {describe_device(dev)}"))
        if a.json:
            Path(a.json).write_text(json.dumps(rows, indent=1))
        return 0
    if a.render:
        print(render(json.loads(Path(a.render).read_text())))
        return 0
    variants = [v.strip() for v in a.variants.split(";") if v.strip()] if a.variants else None
    chunks = tuple(int(c) for c in a.entropy_chunks.split(",")) if a.entropy_chunks else None
    main(preset=a.preset, seq_len=a.seq_len, batch_size=a.batch_size, repeats=a.repeats, device=a.device,
         warmup=a.warmup, precision=a.precision, ablations=a.ablations, compile=a.compile, variants=variants,
         entropy=not a.no_entropy, teacher=not a.no_teacher, memory=not a.no_memory, entropy_chunks=chunks,
         threads=a.threads, json_path=a.json, progress=not a.quiet_progress)
    return 0

