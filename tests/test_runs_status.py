"""`entmask runs status`: how far each run of a profile has got, read without taking a lock (entmask.runs.status),
and the progress file a training process writes for it (run_log.ProgressFile)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from filelock import FileLock

from entmask import cli
from entmask.records.layout import _left_out
from entmask.run_log import ProgressFile
from entmask.runs import status

LINUX_LOCKS = Path("/proc/locks").exists()


def _metrics(run: Path, **m) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").write_text(json.dumps({"steps": 1000, "heldout_accuracy": 0.244, "precision": "fp32", **m}))


def _checkpoint(run: Path, step: int, max_steps: int, seconds: float) -> None:
    c = run / "checkpoints" / f"checkpoint-{step}"
    c.mkdir(parents=True)
    (c / "model.safetensors").write_bytes(b"x")
    (c / "optimizer.pt").write_bytes(b"x")
    (c / "trainer_state.json").write_text(json.dumps({
        "global_step": step, "max_steps": max_steps,
        "stateful_callbacks": {"WallClock": {"attributes": {"segments": [
            {"from_step": 0, "to_step": step, "seconds": seconds}]}}}}))


@pytest.fixture
def tree(tmp_path):
    """A profile with a finished run (two fine-tunings done, one not), a run being trained (progress file, its lock
    held by this process), a stopped one (a checkpoint, no lock) and a teacher."""
    pre = tmp_path / "p" / "pretrain"
    fin = pre / "random-aaaaaaaaaa"
    _metrics(fin)
    (fin / "blimp.json").write_text(json.dumps({"accuracy": 0.5633}))
    for task, done in (("cola", True), ("rte", True), ("sst2", False)):
        d = tmp_path / "p" / "finetune" / task / f"{fin.name}-{task}0000"
        d.mkdir(parents=True)
        if done:
            (d / "metrics.json").write_text("{}")
    live = pre / "high-teacher-bbbbbbbbbb"
    (live / "logs").mkdir(parents=True)
    now = time.time()
    (live / "logs" / "progress.json").write_text(json.dumps({
        "step": 300, "max_steps": 1000, "time": now - 10, "pid": os.getpid(),
        "recent": [[100, now - 290], [200, now - 150], [300, now - 10]]}))
    stopped = pre / "low-teacher-cccccccccc"
    _checkpoint(stopped, 500, 1000, 700.0)
    _metrics(tmp_path / "p" / "reference" / "reference-dddddddddd", steps=2500, heldout_accuracy=0.351)
    lock = FileLock(str(live) + ".lock")
    lock.acquire()
    yield tmp_path, now
    lock.release()


def test_lock_holder_reads_proc_locks_without_taking_the_lock(tmp_path):
    if not LINUX_LOCKS:
        pytest.skip("no /proc/locks here (not Linux): lock_holder says it cannot tell")
    f = tmp_path / "x.lock"
    assert status.lock_holder(tmp_path / "absent.lock") == 0
    lock = FileLock(str(f))
    lock.acquire()
    try:
        assert status.lock_holder(f) == os.getpid()
    finally:
        lock.release()
    assert status.lock_holder(f) == 0


def test_each_run_says_its_state_step_pace_and_time_left(tree):
    root, now = tree
    rows = {r["name"]: r for r in status.profile_status("p", root)}
    assert [r["state"] for r in status.profile_status("p", root)] == ["pretraining", "stopped", "finished",
                                                                     "finished"]
    live = rows["high-teacher-bbbbbbbbbb"]
    assert live["state"] == "pretraining" and live["pid"] == os.getpid()
    assert (live["step"], live["max_steps"]) == (300, 1000)
    assert live["pace"] == pytest.approx(1.4)  # 280 s over the last 200 steps logged
    assert live["eta_s"] == pytest.approx(1.4 * 700 - 10, abs=2)  # from the last log, 10 s ago
    stopped = rows["low-teacher-cccccccccc"]
    assert stopped["state"] == "stopped" and stopped["pid"] is None
    assert (stopped["step"], stopped["max_steps"], stopped["checkpoint"]) == (500, 1000, 500)
    assert stopped["pace"] == pytest.approx(1.4) and stopped["eta_s"] is None  # nobody trains it: no time left
    # a run trained before progress files existed: its checkpoint's step and pace, less the time since it was saved
    ck = root / "p" / "pretrain" / "low-teacher-cccccccccc" / "checkpoints" / "checkpoint-500" / "trainer_state.json"
    os.utime(ck, (now - 100, now - 100))
    if not LINUX_LOCKS:
        pytest.skip("no /proc/locks here: a run without a progress file cannot be seen training")
    lock = FileLock(str(ck.parents[2]) + ".lock")
    with lock:
        again = status.run_status(ck.parents[2], now=now)
    assert again["state"] == "pretraining" and again["updated_s"] == pytest.approx(100, abs=1)
    assert again["source"] == "checkpoint" and live["source"] == "progress"
    assert again["eta_s"] == pytest.approx(1.4 * 500 - 100, abs=1)
    fin = rows["random-aaaaaaaaaa"]
    assert fin["state"] == "finished" and fin["heldout"] == 0.244 and fin["blimp"] == 0.5633
    assert fin["finetunes"] == (2, 1) and fin["precision"] == "fp32"
    assert rows["reference-dddddddddd"]["stage"] == "reference"
    text = status.format_status("p", status.profile_status("p", root))
    lines = text.splitlines()
    assert lines[0] == "p: 1 pretraining, 1 stopped, 2 finished"
    assert lines[1].split()[:3] == ["run", "state", "step"]
    assert "high-teacher-bbbbbbbbbb" in lines[2] and "300/1,000" in lines[2] and "1.40" in lines[2]
    assert "16m" in lines[2]  # ~970 s left
    assert "2 done, 1 unfinished" in text and "24.4%" in text and "56.3%" in text
    assert "reference/reference-dddddddddd" in text


def test_a_progress_file_whose_process_is_gone_is_a_stopped_run(tree, monkeypatch):
    """Without /proc/locks the writer's pid decides: alive is training, gone is stopped."""
    root, _ = tree
    monkeypatch.setattr(status, "lock_holder", lambda path: None)  # a system that cannot tell
    run = root / "p" / "pretrain" / "high-teacher-bbbbbbbbbb"
    assert status.run_status(run)["state"] == "pretraining"
    prog = json.loads((run / "logs" / "progress.json").read_text())
    (run / "logs" / "progress.json").write_text(json.dumps({**prog, "pid": 2 ** 22 + 12345}))  # no such process
    assert status.run_status(run)["state"] == "stopped"


def test_the_progress_callback_writes_step_pace_points_and_pid(tmp_path):
    cb = ProgressFile(tmp_path / "run")
    state = SimpleNamespace(global_step=0, max_steps=50, is_world_process_zero=True)
    cb.on_train_begin(None, state, None)
    state.global_step = 1
    cb.on_log(None, state, None, logs={"loss": 1.0})
    p = json.loads((tmp_path / "run" / "logs" / "progress.json").read_text())
    assert [s for s, _ in p["recent"]] == [1] and status._pace(p) is None  # the start is no pace point
    for step in range(5, 51, 5):
        state.global_step = step
        cb.on_log(None, state, None, logs={"loss": 1.0})
    cb.on_log(None, state, None, logs={"train_runtime": 1.0})  # the Trainer's last log, at the same step
    p = json.loads((tmp_path / "run" / "logs" / "progress.json").read_text())
    assert (p["step"], p["max_steps"], p["pid"]) == (50, 50, os.getpid())
    assert [s for s, _ in p["recent"]] == [25, 30, 35, 40, 45, 50]  # the last 6 distinct steps
    assert abs(p["time"] - time.time()) < 60
    other = SimpleNamespace(global_step=7, max_steps=50, is_world_process_zero=False)  # not rank 0: writes nothing
    ProgressFile(tmp_path / "rank1").on_train_begin(None, other, None)
    assert not (tmp_path / "rank1").exists()
    assert _left_out(Path("logs/progress.json"), 100)  # never part of a record: a process's pid and clock


def test_cli_runs_status_and_its_bad_inputs(tree, capsys):
    root, _ = tree
    assert cli.main(["runs", "status", "--runs-dir", str(root), "--profile", "p"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("p: 1 pretraining") and "low-teacher-cccccccccc" in out
    assert cli.main(["runs", "status", "--runs-dir", str(root)]) == 0  # every profile here
    assert capsys.readouterr().out.startswith("p: ")
    for argv, msg in [(["runs", "status", "--runs-dir", str(root), "--profile", "nope"],
                       "no runs of profile 'nope'"),
                      (["runs", "status", "somewhere", "--runs-dir", str(root)], "takes no folder"),
                      (["runs", "export", "--profile", "p"], "runs export needs a folder"),
                      (["runs", "import"], "runs import needs a folder")]:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and msg in err, err


def test_a_reader_that_goes_away_is_not_an_error(tree):
    """`entmask runs status | head -1`: the pipe closes before the table is written; exit 0, nothing on stderr
    (it was 'entmask: error: [Errno 32] Broken pipe')."""
    import subprocess
    import sys

    root, _ = tree
    p = subprocess.Popen([sys.executable, "-m", "entmask", "runs", "status", "--runs-dir", str(root)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the command has imported anything: its first print finds no reader
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 0 and "Broken pipe" not in err and "Traceback" not in err, err
