"""What the HF Trainer does for an accelerator's sake that a run on the CPU skips.

What it is: `train(trainer, **kwargs)`, which entmask calls instead of `trainer.train(**kwargs)`. `Trainer.train()`
starts with `accelerator.free_memory()`, which resets the accelerator's lists and then runs a full `gc.collect()` so
that a GPU's memory held by unreachable cycles is given back before the next model. On a CPU there is no device
memory to give back (Python's own collector frees those cycles in its time), and a full collection walks every object
of the process: 0.22 s with torch, transformers, pandas and matplotlib imported, 0.23 s in a notebook kernel, at
every `train()`. A smoke experiment trains 49 times (11.5 of its 143 s, profiled), the test suite and a notebook
kernel hundreds of times. On the CPU the collection is skipped while the trainer trains (accelerate's memory helpers
see a `gc` whose collect does nothing; everything else, Python's own collector included, is untouched) and the rest
of `free_memory` runs as written. It swaps a module attribute for the duration, so two trainings in threads of one
process would see each other's swap; entmask trains one model per process at a time.

What it is not: no change to training, to what is saved or to memory on a GPU (the trainer is left as it is there).
"""
from __future__ import annotations

import contextlib
import types


@contextlib.contextmanager
def _no_full_collection():
    """Inside, accelerate's memory helpers (`release_memory`, `clear_device_cache`) see a `gc` whose collect() does
    nothing; every other caller of gc is untouched."""
    try:
        from accelerate.utils import memory
    except ImportError:  # no accelerate, no free_memory to speed up
        yield
        return
    real = getattr(memory, "gc", None)
    if real is None:  # a later accelerate without the module-level gc: nothing to skip, nothing patched
        yield
        return
    memory.gc = types.SimpleNamespace(collect=lambda *args, **kwargs: 0)
    try:
        yield
    finally:
        memory.gc = real


def train(trainer, **kwargs):
    """`trainer.train(**kwargs)`, without accelerate's full garbage collection when it trains on the CPU (module
    docstring); as it is on any other device. Returns what train() returns."""
    if trainer.args.device.type != "cpu":
        return trainer.train(**kwargs)
    with _no_full_collection():
        return trainer.train(**kwargs)


__all__ = ["train"]
