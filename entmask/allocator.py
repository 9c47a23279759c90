"""The process's memory allocator: glibc malloc settings that keep large freed blocks for reuse.

What it is: on Linux with glibc, PyTorch's CPU tensors come from malloc, and glibc serves every block over its mmap
threshold (at most 32 MiB) with a fresh `mmap` and gives it back with `munmap` when freed. A student's logits over a
30,522-word vocabulary, their softmax and their gradients are hundreds of MiB each, so every training step mapped
them again and the kernel faulted and zeroed each 4 KiB page anew: at the tiny profile 6.0 million page faults in a
29 s pretraining, 12 s of system time (a quarter of its CPU time). `glibc.malloc.mmap_max=0` serves large blocks from
the heap and a high `trim_threshold` keeps freed heap memory, so the next step reuses the pages: 0.35 million faults,
1.4 s of system time, training 22.3 -> 14.6 s (docs/performance.md, "glibc malloc"). The price is a higher peak
resident size (the freed blocks stay: 1.2 -> 1.6 GB there). Numerics are untouched: the same bytes in the same
order, so no config hash or result depends on it.

glibc reads `GLIBC_TUNABLES` only when a process starts, so the `entmask` command (`entmask.launch`) sets it and
re-executes itself once before importing anything; its children (notebook kernels, multiprocessing's spawned
workers, torchrun's ranks) inherit it. The Makefile exports the same value for `make test`, `make lab` and the
matrices. Off with `ENTMASK_MALLOC=system` (also under a tuned parent: the command restarts without ours); malloc
tunables the user set are left as they are, other tunables of theirs kept beside ours.

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


def switched_off(environ=None) -> bool:
    env = os.environ if environ is None else environ
    return env.get("ENTMASK_MALLOC", "").strip().lower() in OFF_VALUES


def large_blocks_in_heap() -> bool | None:
    """Whether glibc serves a 64 MiB block from the heap in this process (the tunables in effect) rather than from a
    fresh mmap (glibc's default for any block over 32 MiB): the block's address lies below the heap's end. None where
    it cannot be asked (not glibc). Costs no page: the block is never touched. glibc reads GLIBC_TUNABLES only at the
    start (and rewrites its copy in /proc/self/environ), so this is how a process knows what it started with."""
    if glibc_version() is None:
        return None
    import ctypes

    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.restype, libc.free.argtypes = None, [ctypes.c_void_p]
    libc.sbrk.restype, libc.sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    block = libc.malloc(64 << 20)
    if not block:
        return None
    end = libc.sbrk(0)
    libc.free(block)
    return bool(end) and block < end


def _without_ours(tunables: str) -> str:
    ours = set(TUNABLES.split(":"))
    return ":".join(t for t in tunables.split(":") if t and t not in ours)


def target(environ=None) -> str | None:
    """The GLIBC_TUNABLES this environment's processes should start with, or None where nothing is to be done (not
    glibc, or the user set malloc tunables of their own). Off: the user's tunables without ours ('' = unset). On:
    ours, after any tunables of the user's that are not malloc's (e.g. glibc.pthread.rseq=0)."""
    env = os.environ if environ is None else environ
    if glibc_version() is None:
        return None
    current = env.get("GLIBC_TUNABLES", "")
    others = _without_ours(current)
    if switched_off(env):
        return others
    if "glibc.malloc." in others:  # the user's own malloc settings win
        return None
    return f"{others}:{TUNABLES}" if others else TUNABLES


def describe(environ=None) -> str:
    """One line for `entmask info`: the malloc settings of this process (None: asked of glibc itself, see
    `large_blocks_in_heap`) or of an environment's processes; children inherit them."""
    env = os.environ if environ is None else environ
    if glibc_version() is None:
        return "system malloc (not glibc: nothing to tune)"
    tunables = env.get("GLIBC_TUNABLES", "")
    others = _without_ours(tunables)
    if TUNABLES in tunables:
        if environ is None and not large_blocks_in_heap():
            return ("glibc malloc, defaults: GLIBC_TUNABLES was set after this process started (glibc reads it only "
                    "at the start; run through `entmask` or `make`)")
        return ("glibc malloc, large blocks kept for reuse (GLIBC_TUNABLES set by entmask"
                + (f", after the user's {others})" if others else ")"))
    if others:
        return f"glibc malloc, the user's GLIBC_TUNABLES={others}"
    if switched_off(env):
        return "glibc malloc, defaults (ENTMASK_MALLOC=system)"
    return "glibc malloc, defaults (large blocks mmapped afresh: run through `entmask` or `make` to tune)"


def reexec_tuned(argv: list[str], executable: str) -> None:
    """Restart this process once with the GLIBC_TUNABLES that `target()` asks for, where they differ from the ones
    it started with (tuning on, or ENTMASK_MALLOC=system under a tuned parent); else return.

    Must be the first thing the process does: code before it runs again after the exec. `argv` is the interpreter's
    own command line (sys.orig_argv: the interpreter as typed, then its arguments, e.g. `python3 -m entmask ...` or a
    console script's path); the exec runs `executable` (an absolute path, as typed names need not be) with argv[1:].
    The second start costs only the interpreter's (~30 ms). The new value is in the environment after the exec, so
    the check there finds nothing to do: no loop."""
    want = target()
    if want is None or not argv or not executable:
        return
    if want == os.environ.get("GLIBC_TUNABLES", ""):  # started with it (the launcher runs first): nothing to do
        return
    before = os.environ.get("GLIBC_TUNABLES", "")
    _put(want)
    try:
        os.execv(executable, [executable, *argv[1:]])
    except (OSError, ValueError):  # an interpreter that cannot be executed again: run as started rather than fail
        _put(before)


def _put(tunables: str) -> None:
    """Set GLIBC_TUNABLES for the exec and the children ('' = unset)."""
    if tunables:
        os.environ["GLIBC_TUNABLES"] = tunables
    else:
        os.environ.pop("GLIBC_TUNABLES", None)
