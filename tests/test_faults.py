"""Fault injection: kill -9 inside each long stage, rerun the same command, and get what an uninterrupted run gets.

Each victim is a real `entmask` CLI process that SIGKILLs itself at a point drawn at random inside one stage
(`ENTMASK_FAILPOINT=<stage>:<n>`, see `entmask.runs.failpoint`): tokenizing the corpus, the moment between the
corpus tensors and their completion marker, the teacher's entropy pass, the moment before the entropy cache is
written, a pretraining step, a fine-tuning step; the papermill run is killed from outside (its whole process
group). The rerun of the same command must finish, resume where a checkpoint or cache block exists, and produce
the same products as one uninterrupted run in another runs folder:

* corpus cache and teacher entropies: bitwise equal (same ops on the same rows, one thread);
* pretrained weights: within 1e-5 (a resume replays the same batches and RNG states; the Trainer restores them
  from the checkpoint, so only floating-point summation order could differ, and with one thread it does not);
* fine-tuning: the same predictions and scores.

The points are drawn from ENTMASK_FAULT_SEED (default 0), and ENTMASK_FAULT_TRIES (default 1) victims are run per
failpoint; `ENTMASK_FAULT_TRIES=3 pytest tests/test_faults.py` is the longer sweep quoted in docs/reliability.md.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("ENTMASK_FAULT_SEED", "0"))
TRIES = int(os.environ.get("ENTMASK_FAULT_TRIES", "1"))
# Small enough for seconds per command, large enough that every stage has several points to die at.
PRETRAIN = ["pretrain", "--profile", "smoke", "--quiet", "--strategy", "high", "--set", "data.max_articles=8",
            "--set", "train.max_steps=12", "--set", "train.save_steps=4", "--set", "train.eval_batch_size=16",
            "--set", "train.entropy_block_rows=32", "--set", "reference.steps=4"]
# Tokenizing comes before the teacher: the same corpus, with no reference to build or pass to run after the rerun.
TOKENIZE = [a if a != "high" else "random" for a in PRETRAIN]
FINETUNE = ["--profile", "smoke", "--quiet", "--tasks", "rte", "--set", "finetune.epochs=3",
            "--set", "finetune.patience=3", "--set", "finetune.max_train=80", "--set", "finetune.batch_size=16"]


def _env(root: Path, failpoint: str | None = None) -> dict:
    env = dict(os.environ, ENTMASK_RUNS_DIR=str(root), OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    env.pop("ENTMASK_FAILPOINT", None)
    if failpoint:
        env["ENTMASK_FAILPOINT"] = failpoint
    return env


def entmask(args: list, root: Path, failpoint: str | None = None, timeout: int = 600):
    return subprocess.run([sys.executable, "-m", "entmask", *args], env=_env(root, failpoint), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)


def one_run(root: Path, stage: str) -> Path:
    found = [p for p in (root / "smoke" / stage).iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def corpus_dir(root: Path) -> Path:
    found = [p for p in (root / "cache" / "corpus").iterdir() if p.is_dir()]
    assert len(found) == 1, found
    return found[0]


def kill_then_rerun(args: list, root: Path, failpoint: str) -> str:
    """Run once with the failpoint (it must die by SIGKILL), then again without; return the rerun's output."""
    victim = entmask(args, root, failpoint)
    assert victim.returncode == -signal.SIGKILL, f"{failpoint} was not reached:\n{victim.stdout[-2000:]}"
    again = entmask(args, root)
    assert again.returncode == 0, again.stdout[-3000:]
    return again.stdout


def report(stage: str, point, resumed) -> None:
    """One line per victim that passed every check (shown with `pytest -s`; docs/reliability.md's table counts them)."""
    print(f"\nFAULT stage={stage} point={point} resumed_from={resumed} same_result=yes", flush=True)


def points(lo: int, hi: int, salt: str) -> list[int]:
    rng = random.Random(f"{SEED}-{salt}")
    return sorted(rng.sample(range(lo, hi + 1), min(TRIES, hi - lo + 1)))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, session_runs):
    """The reference: the same pretraining and fine-tuning commands, never killed."""
    root = tmp_path_factory.mktemp("uninterrupted")
    out = entmask(PRETRAIN, root)
    assert out.returncode == 0, out.stdout[-3000:]
    run = one_run(root, "pretrain")
    ft = entmask(["finetune", str(run), *FINETUNE], root)
    assert ft.returncode == 0, ft.stdout[-3000:]
    return root


def seed_corpus(src: Path, root: Path, entropies: bool) -> None:
    """Copy `src`'s tokenized corpus (and its teacher entropies, or not) into `root`, for a victim whose stage
    comes after tokenizing: it would otherwise tokenize again first (the tokenizing stage has tests of its own)."""
    c = corpus_dir(src)
    shutil.copytree(c, root / "cache" / "corpus" / c.name,
                    ignore=None if entropies else shutil.ignore_patterns("entropy-*"))


def _same_corpus(a: Path, b: Path) -> None:
    ca, cb = corpus_dir(a), corpus_dir(b)
    assert (ca / "packed.safetensors").read_bytes() == (cb / "packed.safetensors").read_bytes()
    assert json.loads((ca / "stats.json").read_text()) == json.loads((cb / "stats.json").read_text())


def _entropy_cache(root: Path) -> torch.Tensor:
    files = list(corpus_dir(root).glob("entropy-train-*.safetensors"))
    assert len(files) == 1, files
    return load_file(str(files[0]))["entropy"]


@pytest.mark.parametrize("failpoint", ["tokenize", "corpus-write"])
def test_kill_while_tokenizing(uninterrupted, tmp_path, failpoint):
    hi = 7 if failpoint == "tokenize" else 1  # 8 articles pass the tokenize point; the write point once
    for n in points(1, hi, failpoint):
        root = tmp_path / f"n{n}"
        kill_then_rerun(TOKENIZE, root, f"{failpoint}:{n}")
        _same_corpus(uninterrupted, root)
        assert (one_run(root, "pretrain") / "metrics.json").exists()
        report(failpoint, n, "rebuilt (no completion marker)")


@pytest.mark.parametrize("failpoint", ["teacher-pass", "entropy-write"])
def test_kill_during_teacher_entropy_pass(uninterrupted, tmp_path, failpoint):
    teacher = one_run(uninterrupted, "reference")
    rows = json.loads((corpus_dir(uninterrupted) / "stats.json").read_text())["sequences_train"]
    batches = -(-rows // 16)
    assert batches >= 4, "the smoke corpus must give the teacher pass several batches to die in"
    for n in points(1, batches if failpoint == "teacher-pass" else 1, failpoint):
        root = tmp_path / f"n{n}"
        # The teacher and the tokenized corpus are there (copied): the victim dies in the pass, not before it.
        shutil.copytree(teacher, root / "smoke" / "reference" / teacher.name)
        seed_corpus(uninterrupted, root, entropies=False)
        out = kill_then_rerun(PRETRAIN, root, f"{failpoint}:{n}")
        done_blocks = (n - 1) // 2  # blocks of 32 rows = 2 batches of 16 finished before the kill
        if failpoint == "teacher-pass" and done_blocks and 32 * done_blocks < rows:
            assert f"resumed {min(32 * done_blocks, rows):,} of {rows:,} rows" in out, out[-2000:]
        if failpoint == "entropy-write":
            assert f"resumed {32 * ((rows - 1) // 32):,} of {rows:,} rows" in out, out[-2000:]
        assert torch.equal(_entropy_cache(root), _entropy_cache(uninterrupted))
        assert not list(corpus_dir(root).glob("*.partial-*")), "finished passes leave no blocks behind"
        report(failpoint, n, f"{32 * ((n - 1) // 2) if failpoint == 'teacher-pass' else 32 * ((rows - 1) // 32)} "
                             f"of {rows} rows")


def test_kill_during_pretraining_step(uninterrupted, tmp_path):
    ref = one_run(uninterrupted, "pretrain")
    for n in points(5, 11, "pretrain-step"):  # after the first checkpoint (step 4), before the end (12)
        root = tmp_path / f"n{n}"
        shutil.copytree(one_run(uninterrupted, "reference"), root / "smoke" / "reference" /
                        one_run(uninterrupted, "reference").name)
        seed_corpus(uninterrupted, root, entropies=True)  # the teacher's scores too: the victim starts training
        kill_then_rerun(PRETRAIN, root, f"pretrain-step:{n}")
        run = one_run(root, "pretrain")
        m = json.loads((run / "metrics.json").read_text())
        # The failpoint fires at the end of step n, before that step's checkpoint is written.
        assert m["resumed_from"] == f"checkpoint-{4 * ((n - 1) // 4)}" and m["steps"] == 12
        wa = load_file(str(ref / "model" / "model.safetensors"))
        wb = load_file(str(run / "model" / "model.safetensors"))
        for k in wa:
            assert torch.allclose(wa[k], wb[k], atol=1e-5), k
        assert m["heldout_accuracy"] == pytest.approx(json.loads((ref / "metrics.json").read_text())
                                                      ["heldout_accuracy"], abs=1e-6)
        report("pretrain-step", n, m["resumed_from"])


def test_kill_during_finetuning(uninterrupted, tmp_path):
    model = one_run(uninterrupted, "pretrain") / "model"
    ref = json.loads((one_run(uninterrupted, "finetune/rte") / "metrics.json").read_text())
    spe = -(-ref["n_train"] // 16)  # optimizer steps per epoch
    assert ref["epochs_run"] >= 2
    for n in points(spe + 1, spe * ref["epochs_run"] - 1, "finetune-step"):
        root = tmp_path / f"n{n}"
        kill_then_rerun(["finetune", str(model), *FINETUNE], root, f"finetune-step:{n}")
        run = one_run(root, "finetune/rte")
        m = json.loads((run / "metrics.json").read_text())
        assert m["resumed_from"] == f"checkpoint-{spe * ((n - 1) // spe)}"
        for key in ("paper_score", "eval_loss", "epochs_run", "best_epoch", "val_losses"):
            assert m[key] == pytest.approx(ref[key], abs=1e-6), key
        pa = json.loads((one_run(uninterrupted, "finetune/rte") / "predictions.json").read_text())
        pb = json.loads((run / "predictions.json").read_text())
        assert pa["y_pred"] == pb["y_pred"]
        assert not (run / "checkpoints").exists()
        report("finetune-step", n, m["resumed_from"])


def test_kill_during_papermill_run(uninterrupted, tmp_path):
    """SIGKILL to `entmask reproduce` and its kernel mid-notebook; the rerun executes the notebook afresh (its
    runs are found by hash and reused) and records the same numbers; the partial output is replaced."""
    src = tmp_path / "src"
    shutil.copytree(uninterrupted, src)
    args = ["reproduce", "--profile", "smoke", "--only", "00", "--quiet", "--set", "data.max_articles=8",
            "--set", "reference.steps=4"]
    ref = entmask(args, src)
    assert ref.returncode == 0, ref.stdout[-3000:]
    expected = json.loads((src / "smoke" / "notebooks" / "00_entropy_exploration.metrics.json").read_text())

    for t in range(TRIES):
        root = tmp_path / f"victim{t}"
        shutil.copytree(uninterrupted, root)
        out_nb = root / "smoke" / "notebooks" / "00_entropy_exploration.ipynb"
        delay = random.Random(f"{SEED}-papermill-{t}").uniform(0.5, 4.0)
        proc = subprocess.Popen([sys.executable, "-m", "entmask", *args], env=_env(root),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 300
        while time.time() < deadline and not out_nb.exists() and proc.poll() is None:
            time.sleep(0.1)
        time.sleep(delay)  # papermill has started the kernel and is executing cells
        assert proc.poll() is None, "the notebook finished before the kill; raise the notebook's work"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        metrics = root / "smoke" / "notebooks" / "00_entropy_exploration.metrics.json"
        assert not metrics.exists()  # a killed notebook records nothing
        again = entmask(args, root)
        assert again.returncode == 0, again.stdout[-3000:]
        got = json.loads(metrics.read_text())
        assert len(expected["headline"]) >= 2
        for want, have in zip(expected["headline"], got["headline"]):
            assert have["name"] == want["name"] and have["value"] == pytest.approx(want["value"], rel=1e-6), want
        report("papermill", f"{delay:.1f}s after start", "runs reused by hash, notebook re-executed")
