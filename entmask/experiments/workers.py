"""Several experiments, several processes: `run_many(names, cfg, workers=N)`
(`entmask experiment table1,table2 --workers N`) pools the rows of the named experiments and splits them, seed-major,
between N processes; then writes each table.

What it is: the pooled row list split between worker processes (running.train_rows: each with threads/N torch threads,
logs under results/workers/), and parse_names.
What it is not: what a row does (running)."""
from __future__ import annotations

from pathlib import Path

from entmask import runs
from entmask.records import check_records_dest
from entmask.config import PretrainConfig, apply_overrides
from entmask.experiments.core import ExperimentError
from entmask.experiments.record import get
from entmask.experiments.registry import EXPERIMENTS, run
from entmask.experiments.running import _exit_with_parent, _say, _worker_main, train_rows  # noqa: F401
from entmask.experiments.specs import POOLABLE, _pooled_specs, pretrain_seeds


def parse_names(spec: str) -> list[str]:
    """'table1,table2' -> ['table1', 'table2'], refusing unknown names, repeats and experiments that cannot pool."""
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    if not names:
        raise ExperimentError(f"experiment {spec!r} names nothing; give one, e.g. table1, or several: table1,table2")
    for n in names:
        if n not in EXPERIMENTS:
            raise ExperimentError(f"unknown experiment {n!r}; choose one of {', '.join(EXPERIMENTS)}")
    if len(set(names)) != len(names):
        raise ExperimentError(f"experiment {spec!r} names an experiment twice; name each once")
    return names


def run_many(names: list[str], cfg: PretrainConfig, *, workers: int = 1, progress: bool = True, root=None,
             records=None) -> list[Path]:
    """Run several experiments (`entmask experiment table1,table2 --workers N`) with their rows pooled; returns the
    paths of their .md tables.

    Seed-major as one experiment is: the rows of every named experiment at the first pretraining seed are claimed
    first, then those at the next seed, split between `workers` processes (this one and N-1 spawned ones, each with
    threads/N torch threads, logs under results/workers/); a process that finds nothing left at one seed starts
    the next seed's rows while the other finishes; the tables are written at the end (`--report-only` writes them
    from what has finished at any time). On a 2-core CPU two
    one-thread workers train small students ~1.1-1.2x faster than one two-thread process (bert-tiny, cpu-long
    batch: 1.39 + 1.39 steps/s against 2.36 in an A/B; 1.34 + 1.36 against ~2.4 in the matrix), because a tiny
    model's ops are too small to keep two threads busy.

    `records` (a folder, `--records`): after each row the records of every finished run of the profile are
    exported there (entmask.records.export_records), to commit, so that a new machine reuses them
    (entmask.records.import_records)."""
    import torch

    if workers < 1:
        raise ExperimentError(f"--workers {workers}: give 1 or more worker processes")
    bad = [n for n in names if n not in POOLABLE]
    if bad and len(names) > 1:
        raise ExperimentError(f"{', '.join(bad)} cannot be pooled with other experiments; run it on its own "
                              f"(poolable: {', '.join(POOLABLE)})")
    own = [n for n in bad if not get(n).rows or n == "plateau"]  # no rows to split (plateau trains its own way)
    if own and workers > 1:
        raise ExperimentError(f"{own[0]} has no rows to split between workers; run it without --workers")
    if workers > 1 and runs.world_size() > 1:
        raise ExperimentError("--workers starts processes of its own; do not combine it with torchrun")
    if records is not None:
        if bad:
            raise ExperimentError(f"--records exports after each row of a pooled matrix; {', '.join(bad)} is not "
                                  f"one (poolable: {', '.join(POOLABLE)}): run it, then `entmask runs export`")
        records = str(check_records_dest(cfg.profile, records, root))
    elif len(names) == 1 and (workers == 1 or bad):
        # one experiment on its own splits its rows itself (experiment.workers: running.train_rows)
        one = apply_overrides(cfg, {"experiment.workers": workers}) if workers > 1 else cfg
        return [run(names[0], one, progress=progress, root=root)]
    threads_before = torch.get_num_threads()  # the cores torch may use here (affinity, OMP_NUM_THREADS)
    if workers > max(1, threads_before):
        raise ExperimentError(f"--workers {workers} with {threads_before} torch thread(s) here: each worker needs a "
                              f"core of its own; give at most {max(1, threads_before)}")
    seeds = pretrain_seeds(cfg)
    tag = "+".join(names)
    logs = runs.results_dir(cfg.profile, root) / "workers"
    specs = _pooled_specs(names, cfg)
    # All seeds in one list, claimed seed-major: a process with nothing left at one seed starts the next instead of
    # idling until the other finishes the seed's last row (a per-seed barrier left a core idle for a whole student).
    _say(progress, f"{tag}: {len(specs)} rows x {len(seeds)} pretraining seed(s), seed-major"
                   + (f", split between {workers} workers" if workers > 1 else ""))
    train_rows(tag, specs, root, progress, workers=workers, logs=logs, records=records)
    # Every run is found by hash now, so this only writes the tables.
    return [run(n, cfg, progress=progress, root=root) for n in names]
