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
