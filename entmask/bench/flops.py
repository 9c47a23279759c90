"""Model FLOPs of one benchmarked training step, and the peaks model FLOP utilisation (MFU) is measured against.

What it is: `step_flops(kind, preset, vocab, batch, seq_len)` (a row kind's step, built on
`entmask.models.forward_flops`, where the per-token and per-position formula lives), `peak_tflops(device_name)`
(dense bf16 tensor-core peaks of known GPUs; ENTMASK_PEAK_TFLOPS overrides) and `PEAK_BF16_TFLOPS`.

What it is not: no second copy of the forward formula (models.forward_flops is the one), and no measurement: these
are the matrix multiplications the model must do, which the tables divide by measured time.
"""
from __future__ import annotations

import math
import os

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity) of the SXM parts; override with ENTMASK_PEAK_TFLOPS.
PEAK_BF16_TFLOPS = (("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H200 NVL", 835.0), ("H100", 989.4),
                    ("H200", 989.4), ("GH200", 989.4), ("A100", 312.0))


def masked_positions(kind: str, batch: int, seq_len: int) -> int:
    """Positions the head is trained at: entmask masks round(15% of the T-2 maskable tokens) in every row (at least
    1); the stock collator masks each token with probability 15%, so 15% of the batch's maskable tokens on average."""
    if kind == "stock":
        return round(0.15 * batch * (seq_len - 2))
    return batch * min(max(math.floor(0.15 * (seq_len - 2) + 0.5), 1), seq_len - 2)


def step_flops(kind: str, preset: str, vocab: int, batch: int, seq_len: int) -> dict:
    """Model FLOPs of one training step (matrix multiplications only; 2 FLOPs per multiply-add, backward = 2x
    forward), the formula documented in docs/performance.md. From `models.forward_flops` (body per token, head per
    position it is applied to):

        encoder, forward:    body * B*T
        head, forward:       head at all B*T positions (stock, dense) or at the M masked ones (entmask, sparse)
        training step:       3 * forward;  the self pass adds one forward of the encoder and a dense head.
    """
    from entmask.models import bert_config, forward_flops

    f = forward_flops(bert_config(preset, vocab), seq_len)  # the preset's config, as the benchmarked model's
    tokens = batch * seq_len
    masked = masked_positions(kind, batch, seq_len)
    enc = tokens * f["body"]
    flops = 3 * (enc + f["head"] * (tokens if kind == "stock" else masked))
    if kind == "self":
        flops += enc + f["head"] * tokens
    return {"flops": float(flops), "masked": masked}


def peak_tflops(device_name: str) -> float | None:
    env = os.environ.get("ENTMASK_PEAK_TFLOPS")
    if env:
        return float(env)
    for key, val in PEAK_BF16_TFLOPS:
        if key in device_name:
            return val
    return None
