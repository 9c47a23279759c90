"""How far each run of a profile has got: `entmask runs status` (a matrix trains for hours in the background; this
says which students are training, at which step, at what pace, when they will finish, and what the finished ones
measured).

What it is: `lock_holder` (the pid holding an OS lock on a file, read from /proc/locks: a lock is never taken, so
it can look at a running matrix without getting in its way), `run_status` (one run folder: state, step, pace, time
left, last checkpoint, held-out accuracy, BLiMP, fine-tuning runs), `profile_status` and `format_status`. A run's
progress comes from logs/progress.json (written by run_log.ProgressFile at every logging step), else from its last
checkpoint's trainer state (runs trained before progress.json existed).
What it is not: it trains, resumes or changes nothing (entmask.pretrain), and decides nothing about which runs an
experiment needs (entmask.experiments, `--report-only`)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from entmask.runs.folders import finished_metrics, profile_dir, runs_root

PROGRESS_FILE = "progress.json"  # in the run's logs/
STAGES = ("pretrain", "reference")


def lock_holder(path: str | Path) -> int | None:
    """The pid holding an OS (flock/fcntl) lock on `path`, 0 when nobody does (or the file is absent), None when
    this system cannot tell (no /proc/locks: not Linux). Reads /proc/locks only: taking the lock to test it could
    make a matrix worker skip the row it was about to claim."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    try:
        text = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        # e.g. "3: FLOCK  ADVISORY  WRITE 9184 fe:00:6416750 0 EOF" (a "->" line is a waiter: skipped)
        parts = line.split()
        if len(parts) < 6 or "->" in parts:
            continue
        try:
            maj, minor, ino = parts[5].split(":")
            if int(ino) == st.st_ino and os.makedev(int(maj, 16), int(minor, 16)) == st.st_dev:
                return int(parts[4])
        except ValueError:
            continue
    return 0


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pace(progress: dict | None) -> float | None:
    """Seconds per step over the last points this process logged (its held-out evaluations included)."""
    pts = [p for p in (progress or {}).get("recent", []) if isinstance(p, list) and len(p) == 2]
    if len(pts) < 2 or pts[-1][0] <= pts[0][0]:
        return None
    return (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])


def _finetunes(run: Path) -> tuple[int, int]:
    """(finished, unfinished) fine-tuning runs of this pretraining run (runs/<profile>/finetune/<task>/<run>-*)."""
    done = left = 0
    for d in (run.parents[1] / "finetune").glob(f"*/{run.name}-*"):
        if d.is_dir():
            if (d / "metrics.json").exists():
                done += 1
            else:
                left += 1
    return done, left


def run_status(run: str | Path, now: float | None = None) -> dict:
    """One run folder as `entmask runs status` shows it: name, stage, state ('finished', 'pretraining',
    'fine-tuning' (the row's lock held after pretraining: fine-tuning or BLiMP), 'stopped', 'not started'), pid,
    step, max_steps, pace (s/step), eta_s, checkpoint (step of the last complete one), heldout, blimp (fractions),
    finetunes (finished, unfinished), precision, updated_s (seconds since the step was written), source ('progress':
    logs/progress.json; 'checkpoint': the last checkpoint's trainer state)."""
    from entmask.resume import checkpoint_pace, checkpoint_state

    run = Path(run)
    now = time.time() if now is None else now
    out = {"name": run.name, "stage": run.parent.name, "state": "not started", "pid": None, "step": None,
           "max_steps": None, "pace": None, "eta_s": None, "checkpoint": None, "heldout": None, "blimp": None,
           "finetunes": _finetunes(run) if run.parent.name == "pretrain" else (0, 0), "precision": None,
           "updated_s": None, "source": None}
    metrics = finished_metrics(run)
    run_pid = lock_holder(str(run) + ".lock")
    row_pid = lock_holder(str(run) + ".row.lock")
    progress = _read(run / "logs" / PROGRESS_FILE)
    progress = progress if isinstance(progress, dict) else None
    ck = checkpoint_state(run / "checkpoints", quiet=True)
    if ck:
        out["checkpoint"] = ck[1].get("global_step")
    if metrics is not None:
        blimp = _read(run / "blimp.json")
        out.update(state="finished", step=metrics.get("steps"), max_steps=metrics.get("steps"),
                   heldout=metrics.get("heldout_accuracy"), precision=metrics.get("precision"),
                   blimp=blimp.get("accuracy") if isinstance(blimp, dict) else None)
        if row_pid:  # the row's process holds it beyond pretraining: BLiMP, held-out bands, fine-tuning
            out.update(state="fine-tuning", pid=row_pid)
        return out
    if progress is not None:
        out.update(step=progress.get("step"), max_steps=progress.get("max_steps"), pace=_pace(progress),
                   source="progress")
        if isinstance(progress.get("time"), (int, float)):
            out["updated_s"] = max(0.0, now - progress["time"])
    if ck and (out["step"] is None or (ck[1].get("global_step") or 0) > out["step"]):
        # no progress file (a run trained before it existed), or one older than the checkpoint
        out.update(step=ck[1].get("global_step"), max_steps=ck[1].get("max_steps"), pace=checkpoint_pace(ck[1]),
                   source="checkpoint")
        try:  # time since the checkpoint was written, as for a progress file
            out["updated_s"] = max(0.0, now - (Path(ck[0]) / "trainer_state.json").stat().st_mtime)
        except OSError:
            out["updated_s"] = None
    # Who trains it: the pretraining lock's holder (Linux), else the pid that writes progress.json, if alive.
    pid = run_pid if run_pid is not None else ((progress or {}).get("pid") if _alive((progress or {}).get("pid"))
                                               else 0)
    if pid:
        out.update(state="pretraining", pid=pid)
        if out["pace"] and isinstance(out["step"], int) and isinstance(out["max_steps"], int):
            out["eta_s"] = max(0.0, out["pace"] * (out["max_steps"] - out["step"]) - (out["updated_s"] or 0.0))
    elif run.is_dir():
        out["state"] = "stopped"
    return out


def profile_status(profile: str, root=None) -> list[dict]:
    """run_status of every run folder of `profile` (pretraining and reference), the ones being trained first, then
    stopped, then finished (newest metrics first)."""
    rows = []
    for stage in STAGES:
        d = profile_dir(profile, root) / stage
        if d.is_dir():
            rows += [run_status(p) for p in sorted(d.iterdir()) if p.is_dir()]
    order = {"pretraining": 0, "fine-tuning": 1, "stopped": 2, "not started": 3, "finished": 4}
    return sorted(rows, key=lambda r: (order[r["state"]], r["stage"] != "pretrain", r["name"]))


def profiles_here(root=None) -> list[str]:
    """The profiles with a pretrain or reference folder under the runs root."""
    base = runs_root(root)
    return sorted(p.name for p in base.iterdir() if p.is_dir() and any((p / s).is_dir() for s in STAGES)) \
        if base.is_dir() else []


def _dur(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _pct(x) -> str:
    return f"{100 * x:.1f}%" if isinstance(x, (int, float)) else "-"


def _steps(r: dict) -> str:
    n = [f"{x:,}" if isinstance(x, int) else "?" for x in (r["step"], r["max_steps"])]
    return "-" if r["step"] is None and r["max_steps"] is None else f"{n[0]}/{n[1]}"


def format_status(profile: str, rows: list[dict]) -> str:
    """The table `entmask runs status` prints for one profile, with a one-line summary first."""
    counts = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    head = f"{profile}: " + (", ".join(f"{n} {s}" for s, n in counts.items()) if rows else "no runs")
    cols = ("run", "state", "step", "s/step", "left", "checkpoint", "held-out", "BLiMP", "fine-tuning", "precision")
    table = [cols]
    for r in rows:
        state = r["state"] + (f" (pid {r['pid']})" if r["pid"] else "")
        # a progress file is rewritten every logging step; a checkpoint comes only every save_steps
        if r["state"] == "pretraining" and r["source"] == "progress" and (r["updated_s"] or 0) > 900:
            state += f", no progress for {_dur(r['updated_s'])}"
        done, left = r["finetunes"]
        ft = "-" if not done and not left else f"{done} done" + (f", {left} unfinished" if left else "")
        table.append((("" if r["stage"] == "pretrain" else f"{r['stage']}/") + r["name"], state, _steps(r),
                      f"{r['pace']:.2f}" if r["pace"] else "-", _dur(r["eta_s"]),
                      f"{r['checkpoint']:,}" if isinstance(r["checkpoint"], int) else "-", _pct(r["heldout"]),
                      _pct(r["blimp"]), ft, r["precision"] or "-"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join([head, *lines])
