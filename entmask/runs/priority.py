"""Background priority: `lower_priority(n)` makes a long matrix yield the CPU to interactive work, Linux
autogroups included (plain `nice` does not, across login sessions).

What it is not: scheduling or limiting work (threads, workers); it changes this process's priority only, and
that of the session it leads.
"""
from __future__ import annotations

import os
from pathlib import Path


def _has_tty() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDONLY))
        return True
    except OSError:
        return False


def lower_priority(n: int, *, autogroup: str | Path = "/proc/self/autogroup", has_tty=_has_tty) -> str:
    """Lower this process, and every process it starts, by `n` nice steps, so a long matrix yields the CPU to
    interactive work. Returns what it did, in one line, to print.

    Why not just `nice`: Linux with autogroups (kernel.sched_autogroup_enabled=1, the default on most kernels)
    shares the CPU between login sessions first and applies nice only inside a session, so a `nice -n 19` job
    still takes half the CPU from a test suite started in another terminal (measured on 2 cores: the matrix's
    two nice-10 workers ran at 50% and 44% beside one nice-19 fine-tuning process in another session, at 97% each
    once that session's autogroup was set to 19). So when this process has no controlling terminal (started with
    `setsid`, `nohup setsid`, cron or a service: its session holds only what it started) the session's autogroup
    is lowered too. From a terminal that would lower the user's shell as well, so it says how instead.
    The autogroup nice is absolute and shared by the session: it is only ever raised, never lowered."""
    if not 0 <= n <= 19:
        raise ValueError(f"nice {n} is out of range: give 0 (no change) to 19 (the lowest priority)")
    if n == 0:
        return "priority unchanged (nice 0)"
    os.nice(n)
    p = Path(autogroup)
    try:
        text = p.read_text()
    except OSError:  # not Linux, or a kernel without autogroups: nice alone orders every process
        return f"nice +{n}"
    cur = int(text.split("nice")[-1]) if "nice" in text else 0
    if has_tty():
        return (f"nice +{n} (this process only: Linux autogroups share the CPU between login sessions before nice "
                f"applies, so other terminals still get no more than an equal share with it; start it with "
                f"`setsid` to lower its whole session too)")
    if cur >= n:
        return f"nice +{n}; this session's autogroup already at nice {cur}"
    try:
        p.write_text(str(n))
    except OSError as e:
        return f"nice +{n}; could not lower this session's autogroup ({e.strerror or e})"
    return f"nice +{n}, and this session's autogroup to nice {n} (so other sessions' work comes first)"

