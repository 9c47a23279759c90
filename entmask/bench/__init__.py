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

`--ablations` and `--compile` add rows (see `variants`); `--scorers` prints the token-scorer table instead;
`--render JSON` prints a saved run's tables again. docs/performance.md holds the measured tables.

The modules, each saying what it is and is not:
    variants          the rows: Spec, parse_variant, default_specs (MAIN, KIND)
    steps             table 1: Runner (a row's real Trainer and one optimizer step), bench_steps
    entropy_kernels   table 2: bench_entropy, entr_rows and the swap that measures it inside the other tables
    teacher           table 3: bench_teacher_pass, bench_teacher_cache
    memory            CPU peak memory of steps and entropy methods, in a subprocess (cpu_memory_probe)
    flops             step_flops (on models.forward_flops) and the GPU peaks MFU divides by
    report            format_* / render / the targets: pure functions of a result dict
    run               main: the tables in order, each printed and saved as it is done
    scorers           the token-scorer table (bench_scorers, format_scorers)
    synthetic         VOCAB, PAD64, synthetic_tokenizer, synthetic_ids
    machine           timing (_timed, _rotate), describe_device, load averages, progress lines
    cli, __main__     python -m entmask.bench
    gpu_check         `make gpu-check`: stock vs entmask steps with MFU, the teacher pass and a short pretraining
                      with resume, at bert-let and BERT-base sizes, one report (python -m entmask.bench.gpu_check;
                      --cpu: its smoke mode); not imported here, so `python -m` runs it cleanly
    gpu_report        the gpu check's tables and docs/performance-gpu.md
    short_pretrain    a short pretraining through training_run on synthetic text: checkpoint, resume, loss

What it is not: no real data, no convergence; it measures speed and memory only.
"""
from __future__ import annotations

# The package re-exports every name the single-module bench.py defined, so `from entmask import bench;
# bench.step_flops(...)`, `bench.main`, entmask/cli.py, the tests and the docs keep working; new code may import
# from the submodules.
from entmask.bench.synthetic import PAD64, VOCAB, synthetic_ids, synthetic_tokenizer  # noqa: F401
from entmask.bench.machine import (  # noqa: F401
    _load, _rotate, _say, _sync, _timed, cpu_bf16_native, describe_device,
)
from entmask.bench.variants import KIND, MAIN, Spec, default_specs, parse_variant  # noqa: F401
from entmask.bench.flops import PEAK_BF16_TFLOPS, peak_tflops, step_flops  # noqa: F401
from entmask.bench.entropy_kernels import (  # noqa: F401
    ENTR, _entr_kernel, _entropy_fn, _naive_entropy, bench_entropy, entr_rows, entropy_methods,
)
from entmask.bench.steps import Runner, _autocast_forward, _Corpus, _trainer_class, bench_steps  # noqa: F401
from entmask.bench.teacher import (  # noqa: F401
    REFERENCE_SIZE, bench_teacher_cache, bench_teacher_pass, teacher_pass_configs,
)
from entmask.bench.memory import (  # noqa: F401
    _PROBE_PRELUDE, _peak_rss_extra, _probe_main, _status_kib, cpu_memory_probe,
)
from entmask.bench.report import (  # noqa: F401
    _fmt, _targets, format_entropy, format_steps, format_targets, format_teacher, render, speedup,
)
from entmask.bench.run import TEST_PRESETS, _main, main  # noqa: F401
from entmask.bench.scorers import bench_scorers, format_scorers  # noqa: F401
from entmask.bench.cli import _cli  # noqa: F401
