"""The process's memory allocator: glibc malloc settings that keep large freed blocks for reuse.

What it is: on Linux with glibc, PyTorch's CPU tensors come from malloc, and glibc serves every block over its mmap
threshold (at most 32 MiB) with a fresh `mmap` and gives it back with `munmap` when freed. A student's logits over a
30,522-word vocabulary, their softmax and their gradients are hundreds of MiB each, so every training step mapped
them again and the kernel faulted and zeroed each 4 KiB page anew: at the tiny profile 6.0 million page faults in a
29 s pretraining, 12 s of system time (a quarter of its CPU time). `glibc.malloc.mmap_max=0` serves large blocks from
the heap and a high `trim_threshold` keeps freed heap memory, so the next step reuses the pages: 0.35 million faults,
1.4 s of system time, training 22.3 -> 14.6 s (docs/performance.md, "Session 31"). The price is a higher peak
resident size (the freed blocks stay: 1.2 -> 1.6 GB there). Numerics are untouched: the same bytes in the same
order, so no config hash or result depends on it.

glibc reads `GLIBC_TUNABLES` only when a process starts, so the `entmask` command (`entmask.launch`) sets it and
re-executes itself once before importing anything; its children (notebook kernels, multiprocessing's spawned
workers, torchrun's ranks) inherit it. The Makefile exports the same value for `make test`, `make lab` and the
matrices. Off with `ENTMASK_MALLOC=system`; a `GLIBC_TUNABLES` already set by the user is left as it is.

What it is not: not a different allocator (jemalloc, tcmalloc: not installable from PyPI here) and not a PyTorch
setting; it does nothing on macOS, Windows or musl.
"""
from __future__ import annotations

import os

# Both knobs are glibc's own (since 2.26). trim_threshold: 16 GiB, i.e. never hand freed heap memory back while the
# process lives (its peak stays resident; the kernel takes it back at exit).
TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
OFF_VALUES = ("system", "off", "0", "no")


def glibc_version() -> str | None:
    """'2.36' where this process runs on glibc, else None (macOS, Windows, musl)."""
    try:
        name = os.confstr("CS_GNU_LIBC_VERSION")  # 'glibc 2.36'
    except (AttributeError, ValueError, OSError):
        return None
    if not name or not name.startswith("glibc "):
        return None
    return name.split()[1]


def wanted(environ: dict | None = None) -> bool:
    """Whether this environment should get the tuned malloc: glibc, not switched off, no user GLIBC_TUNABLES."""
    env = os.environ if environ is None else environ
    if env.get("ENTMASK_MALLOC", "").strip().lower() in OFF_VALUES:
        return False
    if env.get("GLIBC_TUNABLES"):  # the user's own tunables win (and ours are there after the re-exec)
        return False
    return glibc_version() is not None


def describe(environ: dict | None = None) -> str:
    """One line for `entmask info`: what malloc this process and its children run with."""
    env = os.environ if environ is None else environ
    if glibc_version() is None:
        return "system malloc (not glibc: nothing to tune)"
    if env.get("ENTMASK_MALLOC", "").strip().lower() in OFF_VALUES:
        return "glibc malloc, defaults (ENTMASK_MALLOC=system)"
    tunables = env.get("GLIBC_TUNABLES", "")
    if tunables == TUNABLES:
        return "glibc malloc, large blocks kept for reuse (GLIBC_TUNABLES set by entmask)"
    if tunables:
        return f"glibc malloc, the user's GLIBC_TUNABLES={tunables}"
    return "glibc malloc, defaults (large blocks mmapped afresh: run through `entmask` or `make` to tune)"


def reexec_tuned(argv: list[str], executable: str) -> None:
    """Set GLIBC_TUNABLES and replace this process with the same command, when `wanted()`; else return.

    `argv` is the interpreter's own command line (sys.orig_argv: the interpreter as typed, then its arguments, e.g.
    `python3 -m entmask ...` or a console script's path); the exec runs `executable` (an absolute path, as typed
    names need not be) with argv[1:]. Called before anything heavy is imported, so the second start costs only the
    interpreter's (~30 ms)."""
    if not wanted() or not argv:
        return
    os.environ["GLIBC_TUNABLES"] = TUNABLES  # present after the exec, so wanted() is False there: no loop
    try:
        os.execv(executable, [executable, *argv[1:]])
    except OSError:  # an interpreter path that cannot be executed again: run untuned rather than fail
        os.environ.pop("GLIBC_TUNABLES", None)
