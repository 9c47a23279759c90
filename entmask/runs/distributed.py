"""Distributed runs (torchrun / accelerate): this process's rank, the process group, barriers, and `main_first`,
which runs the work that only rank 0 does (reference teacher, corpus, entropy cache) while the others wait.

Every function is a no-op (or the identity) in a single process. torch is imported inside the functions: entmask
.runs is imported by config and data, and a config import stays light.

What it is not: the training loop's own distribution (the Trainer and accelerate do that).
"""
from __future__ import annotations

import datetime
import os
from typing import Any

from entmask.runs.files import RunError


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def init_distributed() -> bool:
    """Start the process group once, before the Trainer does, so entmask can hold ranks at barriers around the
    work only rank 0 does (reference teacher, corpus, entropy cache). accelerate reuses an initialised group.
    The timeout is long because the other ranks wait while rank 0 builds a teacher (tens of minutes on a CPU)."""
    if world_size() <= 1:
        return False
    import torch  # local: see the module docstring
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            backend = "cpu:gloo,cuda:nccl"
        else:
            backend = "gloo"
        dist.init_process_group(backend=backend, timeout=datetime.timedelta(hours=12))
    return True


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's value of `obj` on every rank (a decision made once: resume, force, finished)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish_distributed() -> None:
    """All ranks meet, then the process group is closed (no 'process group not destroyed' warning, no rank left
    behind printing an unfinished state)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def main_first(work, *, what: str):
    """Run `work()` on rank 0 while the other ranks wait at a barrier, then on the others (which then only read
    what rank 0 wrote: caches hit). An exception on rank 0 is broadcast so every rank fails with the same line."""
    if world_size() <= 1 or not _dist_ready():
        return work()
    err = None
    out = None
    if is_main():
        try:
            out = work()
        except Exception as e:  # noqa: BLE001 - re-raised below, after the other ranks are told
            err = e
    first_line = str(err).strip().splitlines()[0] if err is not None and str(err).strip() else ""
    failed = broadcast(None if err is None else f"{type(err).__name__}: {first_line}")
    if err is not None:
        raise err
    if failed is not None:
        raise RunError(f"rank 0 failed while preparing {what} ({failed})")
    if not is_main():
        out = work()
    barrier()
    return out


def _dist_ready() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()

