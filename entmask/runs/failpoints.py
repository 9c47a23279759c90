"""Fault injection: `failpoint(name)` kills this process with SIGKILL at the n-th pass of a named point, when
ENTMASK_FAILPOINT="name:n" is set, so the kill -9 tests (tests/test_faults.py) can die inside any stage.

What it is not: error handling or recovery (each stage resumes on its own: checkpoints, completion markers,
atomic writes); unset, a failpoint does nothing but read one environment variable.
"""
from __future__ import annotations

import os
import signal

ENV_FAILPOINT = "ENTMASK_FAILPOINT"
_FAIL_HITS: dict[str, int] = {}


def failpoint(name: str) -> None:
    """kill -9 this process at the n-th time it passes `name`, when ENTMASK_FAILPOINT="name:n" is set.

    The fault-injection tests use it to die at a chosen point inside a stage (tokenizing, the teacher pass,
    a training step, a cache write): a real SIGKILL, so no handler, `finally` or atexit runs, exactly as when a
    job is preempted. Unset, it costs one dictionary lookup.
    """
    spec = os.environ.get(ENV_FAILPOINT)
    if not spec:
        return
    target, _, n = spec.rpartition(":")
    if target != name:
        return
    _FAIL_HITS[name] = _FAIL_HITS.get(name, 0) + 1
    if _FAIL_HITS[name] == int(n):
        print(f"entmask: failpoint {name}:{n} reached, sending SIGKILL to myself", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

