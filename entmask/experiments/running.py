"""Running an experiment's rows: find or train each pretraining run at each seed, fine-tune it on every task and seed,
score BLiMP, export records.

What it is: `_Run` (a row and its runs), `_pretrain_and_finetune` (train what is missing, in a fixed cost order, under
row locks), `train_rows` (the same, the rows split between worker processes) and `_report_finished` (the same rows
read only, for --report-only).
What it is not: tables, figures or statistics."""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from entmask import records as record_io  # (`records` is a records folder here)
from entmask import runs
from entmask.config import PretrainConfig
from entmask.experiments.specs import at_seed, pretrain_seeds


@dataclass
class _Run:
    label: str
    cfg: PretrainConfig
    run_dir: Path | None = None
    metrics: dict = field(default_factory=dict)
    ft: list = field(default_factory=list)  # finetune_all rows (with pretrain_seed), all seeds
    seed_runs: list = field(default_factory=list)  # one {pretrain_seed, run_dir, metrics} per pretraining seed
    error: str | None = None  # set when the run could not be had (a corpus unavailable here)
    unfinished: dict = field(default_factory=dict)  # report only (train=False): seed not finished -> how far it got

    def how_far(self, sep: str = ", ") -> str:
        """'seed 0: pretraining, checkpoint at step 3,000 of 4,760' for each unfinished seed (report only)."""
        return sep.join(f"seed {k}: {v}" for k, v in self.unfinished.items())


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(f"entmask experiment: {msg}", flush=True)


def _report_finished(specs, root, frozen: bool) -> list[_Run]:
    """train=False of _pretrain_and_finetune: every row at every pretraining seed as it stands, training nothing and
    taking no lock (so it can run beside the process that trains them). A (row, seed) counts only when its
    pretraining and every fine-tuning of it have finished; the others are listed in _Run.unfinished."""
    from entmask.finetune import finetune_all
    from entmask.pretrain import checkpoint_state, run_folder

    seeds = pretrain_seeds(specs[0][1]) if specs else []
    out = []
    for label, c in specs:
        r = _Run(label, c)
        for seed in seeds:
            cs = at_seed(c, seed)
            run_dir = run_folder(cs, "pretrain", root)
            metrics = runs.finished_metrics(run_dir)
            if metrics is None:
                ck = checkpoint_state(run_dir / "checkpoints", quiet=True)
                if ck:
                    r.unfinished[seed] = _checkpoint_progress(ck[1])
                else:
                    r.unfinished[seed] = "pretraining, no checkpoint yet" if run_dir.exists() else "not started"
                continue
            runs.check_version(run_dir)
            ft = finetune_all(run_dir / "model", c.finetune, profile=c.profile, name=run_dir.name,
                              data_dir=c.data.data_dir, root=root, frozen=frozen, progress=False, train=False)
            left = [f for f in ft if f["status"] == "not finished"]
            if left:
                have = [f for f in ft if f["status"] != "absent"]  # tasks without data here are never run
                r.unfinished[seed] = (f"pretrained; {len(have) - len(left)} of {len(have)} fine-tuning runs "
                                      f"finished")
                continue
            r.seed_runs.append({"pretrain_seed": seed, "run_dir": run_dir, "metrics": metrics})
            r.ft.extend({**f, "pretrain_seed": seed} for f in ft)
            if len(r.seed_runs) == 1:  # the first finished seed stands for the row, as in _pretrain_and_finetune
                r.run_dir, r.metrics, r.cfg = run_dir, r.seed_runs[0]["metrics"], cs
        out.append(r)
    return out


def _checkpoint_progress(state: dict) -> str:
    """'pretraining, checkpoint at step 1,000 of 4,760 (1.8 s/step: ~1.9 h left at that pace)' from a checkpoint's
    trainer state (the pace is its writer's, from the wall clock the checkpoints carry; left out when unknown)."""
    from entmask.pretrain import checkpoint_pace

    done, total = state.get("global_step"), state.get("max_steps")
    n = [f"{x:,}" if isinstance(x, int) else "?" for x in (done, total)]
    out = f"pretraining, checkpoint at step {n[0]} of {n[1]}"
    pace = checkpoint_pace(state)
    if pace is not None and isinstance(done, int) and isinstance(total, int) and total > done:
        left = pace * (total - done)
        out += (f" ({pace:.2g} s/step: ~{left / 3600:.1f} h left at that pace)" if left >= 5400 else
                f" ({pace:.2g} s/step: ~{left / 60:.0f} min left at that pace)")
    return out


def row_cost(cfg: PretrainConfig) -> float:
    """A row's pretraining cost relative to a teacher-masked one of the same size, to order rows (not a timing).

    Self-masking scores every batch with the student first: measured ~2.7x a teacher-masked step for bert-tiny on
    this CPU (1.9 vs 0.7 s per step, one thread; docs/results-cpu-long.md); an extra model pass per step (KD) ~1.5x.
    Rough on purpose (init's cheaper teacher epoch and excess_loss's second pass are ignored): it only orders rows.
    """
    cost = float(cfg.train.max_steps if cfg.train.max_steps > 0 else cfg.train.epochs)
    if cfg.masking.source == "self":
        cost *= 2.7
    if cfg.kd.mode != "none":
        cost *= 1.5
    return cost


def _record(profile: str, records, root, progress: bool) -> None:
    """After each row of a matrix run with --records: the records of every finished run exported to `records`, so
    a matrix that outlives its machine loses only the rows it was training. A failed export is said, and the
    matrix goes on (its runs are unaffected)."""
    if not records:
        return
    try:
        with runs.locked(runs.profile_dir(profile, root) / ".records-export",  # workers export one at a time
                         waiting="another worker is exporting the records; this one exports after it"):
            r = record_io.export_records(profile, records, root)
        _say(progress, f"records: {r['total_in_dest']} finished run(s) recorded in {records}")
        for what, why in (("failed", "not exported"), ("teacher_changed", "the teacher here is not the recorded one"),
                          ("no_key", "recorded without a weights key")):
            for line in r[what]:
                _say(True, f"records: {why}: {line}")
    except Exception as e:  # noqa: BLE001 - a record is a copy: nothing about it may stop the matrix
        first = str(e).splitlines()[0] if str(e) else ""
        _say(True, f"records: exporting to {records} failed ({type(e).__name__}: {first}); the runs are unaffected")


def _pretrain_and_finetune(name: str, specs, root, progress: bool, frozen: bool = False,
                           tolerate_data_errors: bool = False, records=None) -> list[_Run]:
    """Pretrain and fine-tune every row at every pretraining seed, seed-major: all rows at the first seed, then
    all at the next, so what has finished is always a whole table. One _Run per row holds all its seeds; its
    fine-tuning rows carry `pretrain_seed`, and the statistics treat (pretrain seed, fine-tuning seed) as a unit.

    Rows are claimed one at a time (runs.claim_first on `<run>.row`): a row another process is training is skipped
    and come back to at the end, so `--workers N`, or the same command started twice, splits the rows instead of
    queueing behind one lock. Within a seed the rows go costliest first (row_cost: self-masking before
    teacher-masking), so that workers finish a seed at about the same time."""
    from entmask.data import DataError
    from entmask.finetune import finetune_all
    from entmask.pretrain import pretrain, run_folder

    seeds = pretrain_seeds(specs[0][1]) if specs else []
    out = {label: _Run(label, c) for label, c in specs}
    todo = []
    # Within a seed the costliest rows start first, so that processes sharing the rows finish the seed together
    # instead of one waiting hours for a self-masking row started last (longest-processing-time-first).
    order = sorted(range(len(specs)), key=lambda i: -row_cost(specs[i][1]))
    for k, seed in enumerate(seeds):
        for i in order:
            label, c = specs[i]
            cs = at_seed(c, seed)
            todo.append((len(todo) + 1, label, seed, c, cs))
    n = len(todo)

    def wait(p):
        _say(progress, f"{name}: waiting for {p.name}: another entmask process is training that row; it will be reused")

    # Under torchrun every rank must train the same row in step (pretrain locks on rank 0 only), so ranks do not
    # claim rows: they take them in order.
    claiming = runs.world_size() == 1
    exported = False
    while todo:
        todo = [t for t in todo if out[t[1]].error is None]
        if not todo:
            break
        j, claim = (runs.claim_first([str(run_folder(t[4], "pretrain", root)) + ".row" for t in todo], on_wait=wait)
                    if claiming else (0, None))
        try:
            pos, label, seed, c, cs = todo.pop(j)
            r = out[label]
            _say(progress, f"{name}: pretraining {label} seed {seed} ({pos}/{n}, {cs.name}-{cs.short_hash()})")
            # A row whose runs were all found finished adds nothing to the records: skip its export (workers
            # stepping over finished rows would otherwise queue for the export lock, each saying so).
            was_finished = runs.is_finished(run_folder(cs, "pretrain", root))
            try:
                run_dir = pretrain(cs, root=root, progress=progress)
            except DataError as e:
                if not tolerate_data_errors:
                    raise
                r.error = str(e).strip().splitlines()[0]  # e.g. the other corpus is not in the mirror / hub offline
                continue
            metrics = runs.read_json(run_dir / "metrics.json")
            scored_now = _score_blimp(run_dir, c, progress)
            r.seed_runs.append({"pretrain_seed": seed, "run_dir": run_dir, "metrics": metrics, "cfg": cs})
            _say(progress, f"{name}: fine-tuning {label} seed {seed}{' (frozen)' if frozen else ''} on "
                           f"{', '.join(c.finetune.tasks)} x seeds {c.finetune.seeds}")
            ft = finetune_all(run_dir / "model", c.finetune, profile=c.profile, name=run_dir.name,
                              data_dir=c.data.data_dir, root=root, frozen=frozen, progress=progress)
            r.ft.extend({**f, "pretrain_seed": seed} for f in ft)
            # (a task absent from the mirror trained nothing either)
            if not was_finished or scored_now or any(not f.get("reused") and f.get("status") != "absent" for f in ft):
                _record(cs.profile, records, root, progress)
                exported = True
        finally:
            if claim is not None:
                claim.release()
    if not exported and any(r.seed_runs for r in out.values()):  # all reused: still record runs trained without it
        _record(specs[0][1].profile, records, root, progress)
    for r in out.values():  # rows may finish out of seed order when processes share them
        r.seed_runs.sort(key=lambda sr: seeds.index(sr["pretrain_seed"]))
        r.ft.sort(key=lambda f: seeds.index(f["pretrain_seed"]))  # stable: task x seed order kept within a seed
        if r.seed_runs:  # the first seed's run stands for the row in figures that show one run
            first = r.seed_runs[0]
            r.run_dir, r.metrics, r.cfg = first["run_dir"], first["metrics"], first.pop("cfg")
        for sr in r.seed_runs:
            sr.pop("cfg", None)
    return list(out.values())


def _score_blimp(run_dir: Path, c: PretrainConfig, progress: bool) -> bool:
    """BLiMP (zero-shot, entmask.blimp) of a finished student, written beside its metrics and reused; True when it
    was scored now. A mirror without BLiMP, or a run imported without weights, is skipped: the table says so."""
    from entmask import blimp
    from entmask.data import DataError

    per = c.experiment.blimp_per_paradigm
    if not per:
        return False
    per = None if per >= 1000 else per
    f = run_dir / blimp.RESULT_FILE
    if f.is_file():
        with contextlib.suppress(runs.RunError, AttributeError, TypeError):
            if runs.read_json(f).get("scoring", {}).get("per_paradigm") == per:
                return False
    try:
        blimp.score_run(run_dir, data_dir=c.data.data_dir, per_paradigm=per, progress=progress)
    except (DataError, ValueError) as e:
        _say(progress, f"BLiMP not scored for {run_dir.name}: {str(e).splitlines()[0]}")
        return False
    return True


# ---- worker processes: the rows of one call split between N processes ------------------------------------------
def _exit_with_parent() -> None:
    """End this worker when the process that spawned it dies (killed, or its session ended), so a restarted
    command never competes with orphans from the last one (their rows resume from checkpoints)."""
    import multiprocessing
    import os
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()
        print(f"entmask worker (pid {os.getpid()}): the parent process ended; stopping", flush=True)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker_main(tag: str, specs, root, threads: int, log: str, progress: bool, records=None, frozen: bool = False,
                 tolerate_data_errors: bool = False) -> None:
    """A worker process of train_rows: its output goes to `log`, and it uses `threads` torch threads."""
    import os
    import sys

    fh = open(log, "a", buffering=1)
    os.dup2(fh.fileno(), 1)
    os.dup2(fh.fileno(), 2)
    sys.stdout = sys.stderr = fh
    import torch

    torch.set_num_threads(threads)
    _exit_with_parent()
    print(f"entmask worker {tag} (pid {os.getpid()}, {threads} torch thread(s)) started "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)
    _pretrain_and_finetune(tag, specs, root, progress, frozen=frozen, tolerate_data_errors=tolerate_data_errors,
                           records=records)
    print(f"entmask worker {tag}: no rows left, {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)


def train_rows(tag: str, specs, root, progress: bool, *, workers: int = 1, logs: Path | None = None,
               records=None, frozen: bool = False, tolerate_data_errors: bool = False) -> list[_Run]:
    """`_pretrain_and_finetune` with the rows split between this process and `workers` - 1 spawned ones, each with
    threads/N torch threads (their output in `logs`/<tag>-worker-<k>.log); the rows are claimed under locks, so
    this process visits every row and returns them all finished. On a 2-core CPU two one-thread processes train
    bert-tiny rows faster than one two-thread process: measured on an AMD EPYC (AVX2, fp32) at the tiny profile's
    shapes, two threads made pretraining only 1.66x and GLUE fine-tuning 1.41x faster than one (2026-12-07);
    cpu-long's batch, 1.1-1.2x in favour of the workers (docs/performance.md). Rows are still claimed seed-major,
    but a process that finds nothing left at one seed starts the next while the other finishes."""
    import multiprocessing

    import torch

    if workers <= 1:
        return _pretrain_and_finetune(tag, specs, root, progress, frozen=frozen,
                                      tolerate_data_errors=tolerate_data_errors, records=records)
    threads_before = torch.get_num_threads()
    threads = max(1, threads_before // workers)
    logs = Path(logs) if logs is not None else Path(root or ".") / "workers"
    logs.mkdir(parents=True, exist_ok=True)
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch thread pool inherited
    procs = []
    try:
        for w in range(2, workers + 1):
            log = logs / f"{tag}-worker-{w}.log"
            p = ctx.Process(target=_worker_main, args=(f"{tag} worker {w}", specs, root, threads, str(log), progress,
                                                       records, frozen, tolerate_data_errors), daemon=False)
            p.start()
            procs.append((w, p, log))
            _say(progress, f"{tag}: worker {w}/{workers} (pid {p.pid}, {threads} thread(s)) logs to {log}")
        torch.set_num_threads(threads)
        out = _pretrain_and_finetune(tag, specs, root, progress, frozen=frozen,
                                     tolerate_data_errors=tolerate_data_errors, records=records)
    except BaseException:
        for _, p, _ in procs:  # stop the workers now rather than after their rows (they resume on a rerun)
            p.terminate()
        raise
    finally:
        torch.set_num_threads(threads_before)
        for _, p, _ in procs:
            p.join()
    # This process visits every row, so every row is finished now whatever became of the workers: a failed worker
    # is reported, and its rows were completed here.
    for w, p, log in procs:
        if p.exitcode != 0:
            _say(True, f"{tag}: worker {w} failed (exit code {p.exitcode}); see {log}. Its rows were finished by this "
                       f"process")
    return out
