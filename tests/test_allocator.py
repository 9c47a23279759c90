"""entmask.allocator / entmask.launch: the `entmask` command runs with glibc malloc keeping large freed blocks, which
removes the page faults of re-mapping a step's big tensors; off on request; the user's own tunables kept."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entmask import allocator

ROOT = Path(__file__).resolve().parents[1]
GLIBC = allocator.glibc_version() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="glibc malloc tunables exist only on glibc")


def _clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "ENTMASK_MALLOC")}
    env.update(extra)
    return env


@needs_glibc
def test_target_respects_off_switch_and_user_tunables():
    T = allocator.TUNABLES
    assert allocator.target({}) == T
    assert allocator.target({"GLIBC_TUNABLES": T}) == T  # already there: nothing new (no re-exec loop)
    for off in ("system", "SYSTEM", " off ", "0", "no"):
        assert allocator.target({"ENTMASK_MALLOC": off}) == ""
        assert allocator.target({"ENTMASK_MALLOC": off, "GLIBC_TUNABLES": T}) == ""  # a tuned parent: ours removed
    assert allocator.target({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}) is None  # the user's malloc settings win
    assert allocator.target({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}) == f"glibc.pthread.rseq=0:{T}"
    assert allocator.target({"ENTMASK_MALLOC": "system", "GLIBC_TUNABLES": f"glibc.pthread.rseq=0:{T}"}) == \
        "glibc.pthread.rseq=0"
    assert allocator.target({"GLIBC_TUNABLES": ""}) == T


@needs_glibc
def test_large_blocks_in_heap_tells_what_glibc_started_with():
    code = "from entmask import allocator; print(allocator.large_blocks_in_heap())"
    run = lambda env: subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,  # noqa: E731
                                     check=True).stdout.strip()
    assert run(_clean_env()) == "False"
    assert run(_clean_env(GLIBC_TUNABLES=allocator.TUNABLES)) == "True"
    # set in os.environ after the start: glibc never saw it, and describe() says so
    late = ("import os; from entmask import allocator; os.environ['GLIBC_TUNABLES'] = allocator.TUNABLES; "
            "print(allocator.describe())")
    out = subprocess.run([sys.executable, "-c", late], env=_clean_env(), capture_output=True, text=True, check=True)
    assert "set after this process started" in out.stdout


def test_nothing_to_tune_off_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "glibc_version", lambda: None)
    assert allocator.target({}) is None
    assert allocator.describe({}).startswith("system malloc")


@needs_glibc
def test_describe_names_each_state():
    assert "set by entmask)" in allocator.describe({"GLIBC_TUNABLES": allocator.TUNABLES})
    assert "after the user's glibc.pthread.rseq=0" in allocator.describe(
        {"GLIBC_TUNABLES": f"glibc.pthread.rseq=0:{allocator.TUNABLES}"})
    assert "ENTMASK_MALLOC=system" in allocator.describe({"ENTMASK_MALLOC": "system"})
    assert "user's GLIBC_TUNABLES=glibc.malloc.arena_max=2" in allocator.describe(
        {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert "defaults" in allocator.describe({})


@needs_glibc
def test_makefile_exports_the_same_tunables():
    """make test / make lab set the variable themselves (pytest never goes through the launcher): one value."""
    m = re.search(r"^GLIBC_TUNABLES \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m and m.group(1) == allocator.TUNABLES


# A child that runs a few steps of an MLM head's forward and backward (logits over a 30,522-word vocabulary for 1,024
# tokens: 125 MB, as are their softmax and gradient) and prints the minor page faults of six steps after six more.
_FAULTS = """
import resource, torch
torch.manual_seed(0)
head = torch.nn.Linear(64, 30522)
h = torch.randn(1024, 64, requires_grad=True)
y = torch.randint(0, 30522, (1024,))
def step():
    torch.nn.functional.cross_entropy(head(h), y).backward()
for _ in range(6):  # the heap settles: tuned, the first few steps still grow it (measured: 123k, 92k, 61k, 0, ...)
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(6):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _thp_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@needs_glibc
@pytest.mark.skipif(_thp_always(), reason="transparent hugepages 'always': fresh mmaps fault in 2 MiB pages, so the "
                                          "untuned fault count is small; the launcher tests still run")
def test_tunables_remove_most_page_faults_of_a_training_step():
    """The mechanism itself: untuned, a step's big blocks are mmapped and faulted afresh (~30k pages each);
    tuned, the settled heap keeps them (measured: 0-61k faults against 735k untuned; a whole tiny pretraining: 6.0M ->
    0.36M). Fails if glibc ignored the tunables (the ratio is then ~1)."""
    def faults(env):
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])
    untuned = faults(_clean_env())
    tuned = faults(_clean_env(GLIBC_TUNABLES=allocator.TUNABLES))
    assert untuned > 6 * 60_000, untuned
    assert tuned < untuned / 5, (tuned, untuned)


@needs_glibc
@pytest.mark.parametrize("extra, expect, child_sees", [
    ({}, "large blocks kept for reuse (GLIBC_TUNABLES set by entmask)", allocator.TUNABLES),
    ({"ENTMASK_MALLOC": "system"}, "defaults (ENTMASK_MALLOC=system)", "-"),
    # under a tuned parent (make lab, a tuned kernel), the off switch restarts without ours
    ({"ENTMASK_MALLOC": "system", "GLIBC_TUNABLES": allocator.TUNABLES}, "defaults (ENTMASK_MALLOC=system)", "-"),
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}, "the user's GLIBC_TUNABLES=glibc.malloc.arena_max=2",
     "glibc.malloc.arena_max=2"),
    ({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"},
     "large blocks kept for reuse (GLIBC_TUNABLES set by entmask, after the user's glibc.pthread.rseq=0)",
     f"glibc.pthread.rseq=0:{allocator.TUNABLES}"),
])
def test_command_restarts_itself_tuned_and_its_children_inherit(extra, expect, child_sees):
    """`python -m entmask` (the console script's path too) re-executes with the tunables before anything heavy.
    `info`'s line asks glibc where a 64 MiB block lands (the heap only when the tunables were read at the start),
    so a launcher that only changed os.environ without restarting fails here; a child it starts (a notebook kernel,
    a spawned worker) sees the same value."""
    env = _clean_env(**extra)
    out = subprocess.run([sys.executable, "-m", "entmask", "info", "--profile", "smoke"], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"# malloc: glibc malloc, {expect}" in out.stdout
    child = subprocess.run(
        [sys.executable, "-c", "import sys, subprocess; from entmask import allocator; "
         "allocator.reexec_tuned(list(sys.orig_argv), sys.executable); "
         "print(subprocess.run([sys.executable, '-c', 'import os; print(os.environ.get(\"GLIBC_TUNABLES\", \"-\"))'],"
         " capture_output=True, text=True).stdout.strip())"],
        env=env, capture_output=True, text=True, check=True)
    assert child.stdout.strip() == child_sees
