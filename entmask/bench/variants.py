"""The benchmark's rows: which training step each one builds, named as the tables print it.

What it is: `Spec` (one row: kind stock | random | teacher | self, plus modifiers), `parse_variant` (a printed name
back to its Spec, for `--variants` and the memory probe's subprocess) and `default_specs` (the rows of a run).

Rows: `stock HF`, `entmask random`, `teacher-masked` (strategy high on a cached [N, T] entropy column),
`self-masked cold` (the student's own no-grad pass each step); `--ablations` adds eager attention, the
vocabulary padded to 30528, bf16 autocast on CPU, and rows that measure changes proposed for other modules without
editing them (`bf16 self pass`: the self pass under bf16 autocast; `chunk N`: its head chunk; `entr kernel`:
`entr_rows` as `entropy._entropy_rows`; `no per-step sync`: the logging figures kept on the device);
`--compile` adds torch.compile rows.

What it is not: no model, no trainer and no timing (`steps` builds and times a Spec).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from entmask.bench.synthetic import PAD64, VOCAB

MAIN = ("stock HF", "entmask random", "teacher-masked", "self-masked cold")
KIND = dict(zip(MAIN, ("stock", "random", "teacher", "self")))


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
        s = _modify(s, m, name)
    return s


def _modify(s: Spec, m: str, name: str) -> Spec:
    """`s` with the printed modifier `m` (of the row `name`) applied."""
    if m in ("bf16", "fp32"):
        return replace(s, precision=m)
    if m.endswith("attn"):
        return replace(s, attn=m.split()[0])
    if m.startswith("vocab"):
        return replace(s, vocab=int(m.split()[1]))
    if m == "compiled":
        return replace(s, compiled=True)
    if m == "bf16 self pass":
        return replace(s, self_bf16=True)
    if m == "no per-step sync":
        return replace(s, async_stats=True)
    if m.startswith("chunk"):
        return replace(s, entropy_chunk=int(m.split()[1]))
    if m == "entr kernel":
        return replace(s, entr_kernel=True)
    raise ValueError(f"unknown variant modifier {m!r} in {name!r}")


def default_specs(precision: str, ablations: bool, compile_: bool, cpu_bf16: bool, cuda: bool = False,
                  big_chunk: int = 2048) -> list[Spec]:
    """The four main rows; with `ablations` the measured alternatives (attention, vocabulary padding, CPU bf16,
    host syncs) and the proposed fixes of the self pass (bf16 autocast, head chunk, entropy kernel)."""
    specs = [Spec(k, precision=precision) for k in ("stock", "random", "teacher", "self")]
    if ablations:
        specs += _ablation_specs(precision, cpu_bf16, cuda, big_chunk)
    if compile_:
        specs += [Spec("stock", precision=precision, compiled=True), Spec("teacher", precision=precision,
                                                                          compiled=True)]
    return [replace(s, main_precision=precision) for s in specs]


def _ablation_specs(precision: str, cpu_bf16: bool, cuda: bool, big_chunk: int) -> list[Spec]:
    specs = []
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
        specs.append(Spec("self", precision=precision, self_bf16=True, entropy_chunk=big_chunk, entr_kernel=True))
    else:
        specs.append(Spec("self", precision=precision, self_bf16=True, entr_kernel=True))
    return specs
