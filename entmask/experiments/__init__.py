"""The paper's experiments: which pretraining runs each needs, then its GLUE table, figures and records.

What it is: `matrix(name, cfg)` (the (label, config) pairs of an experiment, derived from one resolved profile
config by overrides and named as the CLI's `default_name` names them, so run folders are shared between
experiments: runs are found by config hash), one function per experiment (`table1`, `table2`, `kd`, `mask_rate`,
`frozen`, `weights`, `corpus`) returning an `ExperimentResult`, `EXPERIMENTS` and `run(name, cfg)` (what
`entmask experiment NAME` calls), and `run_many(names, cfg, workers=N)` (`entmask experiment table1,table2
--workers N`: the rows of several experiments pooled and split between N processes). Each experiment pretrains (or finds) every run it needs, fine-tunes each on
cfg.finetune.tasks x cfg.finetune.seeds, and writes under runs/<profile>/results/:
    <NAME>.csv / .md      the table in the paper's layout: rows model x strategy, columns CoLA, MRPC, QNLI, QQP,
                          RTE, SST-2, MNLI, Total; our rows beside the paper's published rows and a majority row
    <NAME>.json           the table as records, numeric scores, run folders, config hashes, seconds taken
    <NAME>.png / .svg     Total per strategy with seed error bars
    <NAME>-curves.*       pretraining loss and masked accuracy against step
    <NAME>-entropy.*      teacher entropies of masked vs maskable tokens per strategy (table1, table2, kd, mask-rate)
    weights-heatmap.*     weight movement, layer x component, per task (weights only)
`verdicts` (the claims judged on the finished tables) and `memorisation` (each finished run on the masks it trained
with, training vs held-out rows) train nothing and write verdicts.* and memorisation.* beside them.

What it is not: no training loop and no statistics of its own (pretrain, finetune and analysis do those), and no
claims: a table of students still on the unigram plateau says so in its header, in words.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from entmask import paper, runs
from entmask.config import PretrainConfig, apply_overrides, set_args, validate


class ExperimentError(RuntimeError):
    """An experiment that cannot run as asked; the message is one line saying why and what to do."""


@dataclass
class ExperimentResult:
    name: str
    table: object  # pandas DataFrame: the written table (display strings), our rows + majority + paper rows
    paths: dict = field(default_factory=dict)  # 'csv', 'md', 'json', 'png', 'svg', 'curves_png', ... -> Path
    runs: dict = field(default_factory=dict)  # label -> pretraining run folder
    extra: dict = field(default_factory=dict)  # further DataFrames: 'scores' (numeric), 'finetune', 'curves', ...


# ---- tasks and layout ----------------------------------------------------------------------------------------
TASK_ORDER = ("cola", "mrpc", "qnli", "qqp", "rte", "sst2", "mnli")  # the paper's column order
TASK_LABEL = {"cola": "CoLA", "mrpc": "MRPC", "qnli": "QNLI", "qqp": "QQP", "rte": "RTE", "sst2": "SST-2",
              "mnli": "MNLI"}
COLLAPSE_MARK = "†"  # finetune.COLLAPSE_SHARE: a classifier putting >= 95% of its predictions on one class
ABSENT = "absent"  # the task's data cannot be had here (QQP, MNLI offline): never filled in
NOT_RUN = "not run"  # the task is not in finetune.tasks
PAPER_NA = "n/a"  # a paper value not available offline


# ---- the paper's published numbers ---------------------------------------------------------------------------
# Carried as data in entmask.paper (Tables 1-2 as printed, prose-only figures); shaped here for the tables.
PAPER_SOURCE = paper.SOURCE
PAPER_NAMES = {"baseline": "random", "teacher-high": "max", "teacher-low": "min", "teacher-mid": "mid",
               "teacher-marginal": "marg", "teacher-alternating": "alt", "self-high-cold": "max,cold",
               "self-high-init": "max,init"}


def _paper_row(cells, total=None, recomputed=None) -> dict:
    return {"cells": tuple(cells), "total": total, "recomputed": recomputed}


_ORDER = ("baseline", "teacher-high", "teacher-low", "teacher-mid", "teacher-marginal", "teacher-alternating",
          "self-high-cold", "self-high-init")
PAPER: dict = {
    "majority": _paper_row(paper.MAJORITY),
    **{f"table{n}": {(r["model"], r["label"]): _paper_row(r["cells"], r["total"], r["recomputed"])
                     for r in sorted(paper.table(n), key=lambda r: (r["model"] != "BERTlet", _ORDER.index(r["label"])))}
       for n in (1, 2)},
}
PAPER_TOTALS = 16  # Totals printed in Tables 1 and 2
PAPER_TOTALS_NOT_ROW_MEAN = len(paper.totals_not_row_mean())  # 4: BERTlet marg, alt, mid and max,cold


# ---- the runs ------------------------------------------------------------------------------------------------
_PLAIN = {"masking.source": "teacher", "masking.self_start": "cold", "kd.mode": "none"}
_SELF_INIT = {"masking.strategy": "high", "masking.source": "self", "masking.self_start": "init"}
# label -> (overrides on the base config, row text). Every masking/KD field a run depends on is set, so the same
# label gives the same config hash (and so the same run folder) in every experiment.
RUN_SPECS: dict[str, tuple[dict, str]] = {
    "baseline": ({"masking.strategy": "random", **_PLAIN}, "random"),
    "teacher-high": ({"masking.strategy": "high", **_PLAIN}, "high (teacher)"),
    "teacher-low": ({"masking.strategy": "low", **_PLAIN}, "low (teacher)"),
    "teacher-mid": ({"masking.strategy": "mid", **_PLAIN}, "mid (teacher)"),
    "teacher-marginal": ({"masking.strategy": "marginal", **_PLAIN}, "marginal (teacher)"),
    "teacher-alternating": ({"masking.strategy": "alternating", **_PLAIN}, "alternating (teacher)"),
    "self-high-cold": ({**_PLAIN, "masking.strategy": "high", "masking.source": "self"}, "high (self, cold)"),
    "self-high-init": ({**_PLAIN, **_SELF_INIT}, "high (self, init)"),
    "kd-only": ({"masking.strategy": "random", **_PLAIN, "kd.mode": "kd-only"}, "random + KD"),
    "kd-complete": ({**_SELF_INIT, "kd.mode": "complete"}, "high (self, init) + KD"),
    "kd-after-init": ({**_SELF_INIT, "kd.mode": "after-init"}, "high (teacher, then self) + KD after init"),
}
for _s in ("high", "low"):
    for _suffix, _over, _text in (("r15", {"masking.ratio": 0.15, "masking.num_tokens": None}, "15%"),
                                  ("r40", {"masking.ratio": 0.40, "masking.num_tokens": None}, "40%"),
                                  ("n1", {"masking.num_tokens": 1}, "one token")):
        RUN_SPECS[f"{_s}-{_suffix}"] = ({"masking.strategy": _s, **_PLAIN, **_over}, f"{_s} (teacher), {_text}")

# Beyond the paper (issue 14; notebook 06). `baseline-2x` is random masking for twice the steps: with `baseline`
# it draws the line of random masking against compute that a costlier strategy has to beat.
_SELF_COLD = {**_PLAIN, "masking.strategy": "high", "masking.source": "self"}
RUN_SPECS.update({
    "baseline-2x": ({"masking.strategy": "random", **_PLAIN, "train.epochs": lambda c: 2 * c.train.epochs,
                     "train.max_steps": lambda c: 2 * c.train.max_steps if c.train.max_steps > 0 else -1},
                    "random, 2x steps"),
    "teacher-high-masked": ({"masking.strategy": "high", **_PLAIN, "masking.scorer": "masked_entropy"},
                            "high masked-view entropy (teacher)"),
    "teacher-sampled": ({"masking.strategy": "sampled", **_PLAIN, "masking.temperature": 1.0},
                        "sampled T=1 (teacher)"),
    "self-high-cold-bert": ({**_SELF_COLD, "masking.policy": "bert"}, "high (self, cold), 80/10/10 student"),
    "self-excess-cold": ({**_SELF_COLD, "masking.scorer": "excess_loss"}, "high excess loss (self − teacher)"),
    "random-static": ({"masking.strategy": "random", **_PLAIN, "masking.static": True}, "random (static masks)"),
})

EXPERIMENT_RUNS: dict[str, tuple[str, ...]] = {
    "table1": ("baseline", "teacher-high", "teacher-low", "teacher-mid", "teacher-marginal", "teacher-alternating"),
    "table2": ("baseline", "teacher-high", "self-high-cold", "self-high-init"),
    "kd": ("baseline", "self-high-init", "kd-only", "kd-complete", "kd-after-init"),
    "mask-rate": ("high-r15", "low-r15", "high-r40", "low-r40", "high-n1", "low-n1"),
    "frozen": ("baseline", "teacher-high"),
    "weights": ("baseline", "teacher-high", "self-high-init"),  # the paper analyses max,init (§3.7)
    "corpus": ("baseline", "self-high-init"),
    "beyond": ("baseline", "baseline-2x", "teacher-high", "teacher-high-masked", "teacher-sampled", "self-high-cold",
               "self-high-cold-bert", "self-excess-cold"),
    # The control for teacher-masking's static masks: random masks kept every epoch (the same staticness, no
    # entropy). If it moves GLUE as far from random as high does, the difference is staticness, not entropy.
    "static": ("baseline", "random-static", "teacher-high", "teacher-low"),
}
# The row each row's delta of Total is measured against. mask-rate has no random run: each rate is compared with
# the same strategy at 15%, which is the question that ablation asks.
DELTA_BASE = {"mask-rate": {"high-r15": None, "low-r15": None, "high-r40": "high-r15", "low-r40": "low-r15",
                            "high-n1": "high-r15", "low-n1": "low-r15"}}


def reference_row(name: str, label: str) -> str | None:
    """The row `label`'s Δ is taken against in experiment `name` (the baseline; mask-rate: the same strategy at
    15%), or None for a reference row itself."""
    if name in DELTA_BASE:
        return DELTA_BASE[name].get(label)
    return None if label == "baseline" else "baseline"


TITLES = {
    "table1": "Table 1: teacher-masking strategies",
    "table2": "Table 2: self-masking",
    "kd": "Knowledge distillation with entropy masking",
    "mask-rate": "Masking rate: high and low entropy at 15%, 40% and one token",
    "frozen": "Frozen-encoder probe (classifier only)",
    "weights": "How far fine-tuning moves the weights",
    "corpus": "Another pretraining corpus",
    "beyond": "Beyond the paper: other scores, soft selection, 80/10/10 self-masking, equal compute",
    "static": "Static masks: random masks kept every epoch against teacher-masking's static entropy masks",
}
ENTROPY_PLOTS = ("table1", "table2", "kd", "mask-rate")
COMPUTE_PLOTS = ("table1", "table2", "kd", "beyond")  # Total and held-out accuracy against pretraining FLOPs
DEFAULT_OTHER_CORPUS = "bookcorpus/bookcorpus:plain_text:train"  # NAME[:CONFIG[:SPLIT+SPLIT]]


def parse_corpus(spec: str) -> tuple[str, str, list[str]]:
    """'NAME[:CONFIG[:SPLIT+SPLIT]]' -> (name, config, splits); config defaults to 'default', splits to train."""
    parts = spec.split(":")
    if not parts[0] or len(parts) > 3:
        raise ExperimentError(f"corpus {spec!r} must look like NAME[:CONFIG[:SPLIT+SPLIT]], e.g. "
                              f"{DEFAULT_OTHER_CORPUS}")
    name = parts[0]
    cfg_name = parts[1] if len(parts) > 1 and parts[1] else "default"
    splits = [s for s in parts[2].split("+") if s] if len(parts) > 2 else ["train"]
    return name, cfg_name, splits or ["train"]


def _default_name(cfg: PretrainConfig) -> str:
    from entmask.config import default_name  # one naming rule for CLI runs and experiment runs

    return default_name(cfg)


def matrix(name: str, cfg: PretrainConfig, corpus: str | None = None) -> list[tuple[str, PretrainConfig]]:
    """The pretraining runs experiment `name` needs, as (label, config), derived from the resolved `cfg`.

    For `corpus`, `corpus` ('NAME[:CONFIG[:SPLITS]]', default DEFAULT_OTHER_CORPUS) replaces cfg.data's corpus.
    """
    if name not in EXPERIMENT_RUNS:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENT_RUNS)}")
    data_over = {}
    if name == "corpus":
        cname, cconf, splits = parse_corpus(corpus or DEFAULT_OTHER_CORPUS)
        data_over = {"data.corpus": cname, "data.corpus_config": cconf, "data.splits": splits}
    out = []
    for label in EXPERIMENT_RUNS[name]:
        over, _ = RUN_SPECS[label]
        over = {k: v(cfg) if callable(v) else v for k, v in over.items()}  # values relative to the profile
        c = validate(apply_overrides(cfg, {**over, **data_over}))
        c.name = _default_name(c)
        out.append((label, c))
    return out


def model_label(preset: str) -> str:
    """The paper's way of writing a preset: bert-tiny -> BERT-tiny, bertlet -> BERTlet, bert -> BERT."""
    return "BERT" + preset[4:] if preset.lower().startswith("bert") else preset


# ---- formatting ----------------------------------------------------------------------------------------------
def _num(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def fmt_cell(mean, sd=None, collapsed: bool = False) -> str:
    """'62.50 ± 1.20' (sd only when it is a number, i.e. >= 2 seeds), with the collapse mark when flagged."""
    if not _num(mean):
        return PAPER_NA
    s = f"{mean:.2f}" + (f" ± {sd:.2f}" if _num(sd) else "")
    return s + (COLLAPSE_MARK if collapsed else "")


def parse_cell(cell: str) -> float | None:
    """The mean in a formatted cell, or None for absent / not run / n/a (notebooks and tests)."""
    try:
        return float(str(cell).split("±")[0].replace(COLLAPSE_MARK, "").strip())
    except ValueError:
        return None


def md_table(df) -> str:
    """A GitHub-markdown table (pandas' to_markdown needs tabulate, which is not a dependency)."""
    cols = [str(c) for c in df.columns]
    esc = lambda v: ("" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).replace("|", "\\|")
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(esc(v) for v in row) + " |")
    return "\n".join(lines)


def _pct(x) -> str:
    return f"{100 * x:.1f}%" if _num(x) else ""


# ---- pretraining and fine-tuning -----------------------------------------------------------------------------
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


def pretrain_seeds(cfg: PretrainConfig) -> list[int]:
    """The pretraining seeds an experiment runs every row with (experiment.pretrain_seeds, else train.seed)."""
    ps = cfg.experiment.pretrain_seeds
    return list(ps) if ps else [cfg.train.seed]


def at_seed(c: PretrainConfig, seed: int) -> PretrainConfig:
    """A copy of row config `c` at pretraining seed `seed` (what every per-seed run of a row is keyed by)."""
    cs = copy.deepcopy(c)
    cs.train.seed = seed
    return cs


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
            r = runs.export_records(profile, records, root)
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
    wait = lambda p: _say(progress, f"{name}: waiting for {p.name}: another entmask process is training that "
                                    f"row; it will be reused")
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


def blimp_of(r: _Run) -> dict:
    """{pretraining seed: blimp.json} of the row's finished seeds that have BLiMP scores (read, never computed)."""
    from entmask import blimp

    out = {}
    for sr in r.seed_runs:
        f = Path(sr["run_dir"]) / blimp.RESULT_FILE
        if f.is_file():
            try:
                d = runs.read_json(f)
            except runs.RunError:
                continue
            if isinstance(d, dict) and isinstance(d.get("accuracy"), (int, float)) and isinstance(d.get("correct"), str):
                out[sr["pretrain_seed"]] = d
    return out


def blimp_delta(r: _Run, base: _Run, n: int = 1000) -> dict | None:
    """Δ BLiMP accuracy (points) of row r against base over the pretraining seeds both were scored at alike: a paired
    bootstrap over pairs (each seed's pairs, pooled) and the per-seed Δs. None where they share no such seed."""
    from entmask import blimp

    a, b = blimp_of(r), blimp_of(base)
    common = [k for k in sorted(set(a) & set(b)) if a[k].get("scoring", {}).get("per_paradigm") ==
              b[k].get("scoring", {}).get("per_paradigm") and len(a[k]["correct"]) == len(b[k]["correct"])]
    if not common:
        return None
    bt = blimp.paired_bootstrap_delta("".join(a[k]["correct"] for k in common),
                                      "".join(b[k]["correct"] for k in common), n=n, seed=0)
    per_seed = [100 * (a[k]["accuracy"] - b[k]["accuracy"]) for k in common]
    return {"delta": 100 * bt["delta"], "lo": 100 * bt["lo"], "hi": 100 * bt["hi"], "seeds": common,
            "seed_deltas": per_seed, "n_pairs": bt["n_pairs"]}


def _seed_mean_metrics(r: _Run) -> dict:
    """The row's pretraining metrics averaged over its pretraining seeds (left_plateau: all of them left)."""
    ms = [sr["metrics"] for sr in r.seed_runs] or [r.metrics]
    out = dict(ms[0])
    for k in ("heldout_accuracy", "unigram_accuracy", "heldout_loss", "train_seconds"):
        vals = [x.get(k) for x in ms if isinstance(x.get(k), (int, float))]
        out[k] = float(np.mean(vals)) if vals else None
    lps = [x.get("left_plateau") for x in ms]
    out["left_plateau"] = None if any(v is None for v in lps) else all(lps)
    return out


def wall_minutes(metrics: dict | None) -> float | None:
    from entmask.pretrain import wall_seconds

    secs = wall_seconds(metrics) if metrics else None
    return secs / 60 if secs is not None else None


def run_compute(cfg: PretrainConfig, run_dir: Path | None, metrics: dict) -> dict | None:
    """A finished run's compute record (`pretrain.run_flops`): from its metrics.json, or, for runs finished before
    entmask recorded compute, estimated from its config, model and teacher folders and logged masking figures."""
    if metrics.get("compute"):
        return metrics["compute"]
    if run_dir is None or not (Path(run_dir) / "model" / "config.json").exists() or not metrics.get("steps"):
        return None
    from transformers import BertConfig

    from entmask.pretrain import run_flops, wall_seconds

    teacher = metrics.get("teacher")
    tcfg = BertConfig.from_pretrained(teacher) if teacher and (Path(teacher) / "config.json").exists() else None
    corpus = metrics.get("corpus") or {}
    rows = corpus.get("sequences_train") or corpus.get("train_rows") or 0
    out = run_flops(cfg, BertConfig.from_pretrained(Path(run_dir) / "model"), tcfg, int(metrics["steps"]),
                    int(metrics.get("steps_per_epoch") or 1), int(rows))
    return {**out, "wall_seconds": wall_seconds(metrics), "estimated_after_the_run": True}


def _row_flops(r: _Run) -> float | None:
    """Mean pretraining FLOPs over the row's pretraining seeds (None when unknown)."""
    vals = []
    for sr in r.seed_runs or [{"run_dir": r.run_dir, "metrics": r.metrics}]:
        c = run_compute(r.cfg, sr.get("run_dir"), sr.get("metrics") or {})
        if c:
            vals.append(c["total_flops"])
    return float(np.mean(vals)) if vals else None


def _unit(f: dict) -> tuple:
    """The unit of seed statistics: (pretraining seed, fine-tuning seed)."""
    return unit_key(f)


def _task_rows(r: _Run, task: str) -> list[dict]:
    return [f for f in r.ft if f.get("task") == task]


def covered_tasks(rs: list[_Run], tasks) -> list[str]:
    """Tasks (in the paper's order) with a score for every seed of every run: the ones Total averages."""
    out = []
    for t in TASK_ORDER:
        if t not in tasks:
            continue
        have = [r for r in rs if r.error is None]
        if have and all(_task_rows(r, t) and all(f.get("status") == "ok" for f in _task_rows(r, t)) for r in have):
            out.append(t)
    return out


def _seed_totals(r: _Run, tasks: list[str]) -> list[float]:
    """Total (mean over `tasks` of the paper metric) for each seed."""
    if not tasks:
        return []
    by_seed: dict = {}
    for f in r.ft:
        if f.get("task") in tasks and f.get("status") == "ok":
            by_seed.setdefault(_unit(f), {})[f["task"]] = f["paper_score"]
    return [float(np.mean([d[t] for t in tasks])) for s, d in sorted(by_seed.items()) if len(d) == len(tasks)]


def _preds(r: _Run, tasks: list[str]) -> tuple[list[dict], list]:
    """([{task: (y_true, y_pred)}] per (pretraining, fine-tuning) seed unit, from each fine-tuning run's
    predictions.json; the pretraining seed of each unit, the bootstrap's groups)."""
    from entmask.analysis import predictions_of

    by_seed: dict = {}
    for f in r.ft:
        if f.get("task") in tasks and f.get("status") == "ok":
            by_seed.setdefault(_unit(f), {})[f["task"]] = predictions_of(f["run_dir"])
    keys = sorted(by_seed)
    return [by_seed[k] for k in keys], [k[0] for k in keys]


def _majority(cfg: PretrainConfig) -> tuple[dict, str]:
    """{task: score or None (absent)} of the majority-class row, and a note on which examples it scores.

    With the full validation split (finetune.max_eval unset) this is finetune.majority_row, the paper's row; with a
    subsampled split it is the majority class scored on the examples every model was evaluated on.
    """
    from entmask.finetune import TaskAbsent, majority_row, majority_scores, task_data

    fc = cfg.finetune
    out = {}
    if fc.max_eval is None:
        for t in fc.tasks:
            m = majority_row(t, cfg.data.data_dir)
            out[t] = m.get("paper_score") if m.get("status") == "ok" else None
        note = ("Majority row: the most frequent training label scored on the whole reported split "
                "(finetune.majority_row), as the paper's row.")
    else:
        for t in fc.tasks:
            try:
                td = task_data(t, fc, cfg.data.data_dir)  # the very examples every model is trained and scored on
            except TaskAbsent:
                out[t] = None
                continue
            out[t] = majority_scores(td.train["label"], td.eval["label"], t)["majority_paper_score"]
        note = (f"Majority row: the most frequent label of the (subsampled, max_train={fc.max_train}) training set "
                f"scored on the same {fc.max_eval} evaluated examples as every model (finetune.max_eval is set, so "
                f"it differs from the paper's full-split row).")
    return out, note


# ---- the table -----------------------------------------------------------------------------------------------
def random_masked(cfg: PretrainConfig) -> bool:
    """Whether a student trained on the masking its held-out test uses (random 15%): only then does its held-out
    accuracy say whether the recipe left the unigram plateau. A strategy-masked student never saw random masks,
    and a static teacher-masked one can memorise its training rows' answers (exploration.mask_fit: the cpu-long
    high student scores 91% on its training masks and 0.2% on the same strategy's held-out masks), so its
    held-out accuracy near 0 and a loss above log V are no bug and no plateau: GLUE judges it. Static random masks
    (masking.static) are not the held-out test's masks either, and are memorised the same way (the cpu-long
    random-static student: 99.4% of its training masks, 5.4% on the held-out random masks)."""
    return cfg.masking.strategy == "random" and not cfg.masking.static


def plateau_judged(rows: list[dict]) -> list[dict]:
    """The rows whose held-out accuracy tests the recipe: the random-masked ones (`random_masked`, default True),
    or every row of a table that has none (mask-rate), whose accuracies are then under unseen masks."""
    judged = [r for r in rows if r.get("random_masked", True)]
    return judged or rows


def plateau_note(rows: list[dict]) -> str | None:
    """The header warning when a student that tests the recipe (plateau_judged) is still on the unigram plateau;
    None when they all left it.

    rows: dicts with label, left_plateau, heldout_accuracy, unigram_accuracy (from pretraining metrics.json) and
    random_masked (random_masked(cfg); strategy-masked rows are not judged when a random-masked row is present).
    """
    judged = plateau_judged(rows)
    on = [r for r in judged if r.get("left_plateau") is False]
    if not on:
        return None
    figures = "; ".join(f"{r['label']}: held-out masked accuracy {_pct(r.get('heldout_accuracy'))} vs unigram rate "
                        f"{_pct(r.get('unigram_accuracy'))}" for r in on)
    return (f"**Warning: these students are on the unigram plateau.** {len(on)} of {len(judged)} pretrained students "
            f"never left it: they predict little more than the most frequent token ({figures}). Their GLUE scores "
            f"measure classifiers trained on top of near-untrained encoders, so this table is NOT a test of the "
            f"paper's claims; train longer or larger (e.g. --profile cpu-long or bertlet) before reading it as one.")


def self_switch_sd(cfg: PretrainConfig, metrics: dict) -> tuple[float | None, float | None]:
    """The student's per-position entropy s.d. where masking switches to its own entropies (step 0 for `cold`,
    the end of the teacher phase otherwise) and at the end; (None, None) for runs that never self-mask."""
    from entmask.masking import needs_entropy

    m = cfg.masking
    self_masks = needs_entropy(m.strategy) and (m.source == "self" or cfg.kd.mode in ("complete", "after-init"))
    if not self_masks or cfg.kd.mode == "kd-only":
        return None, None
    switch = 0 if (m.source == "self" and m.self_start == "cold" and cfg.kd.mode == "none") else m.teacher_epochs
    hist = {h["epoch"]: h["entropy_sd"] for h in metrics.get("epoch_entropy") or [] if "epoch" in h}
    if not hist:
        return None, None
    return hist.get(switch), hist[max(hist)]


def per_seed_frame(name: str, rs: list[_Run], tasks: list[str]):
    """Each row's cells at each pretraining seed (fine-tuning seeds averaged within it), its Total over `tasks` and
    its Δ Total against its reference row at the same pretraining seed: where the main table shows mean ± s.d.,
    this shows whether the seeds agree (a claim needs them to). Δ here is a plain difference of Totals; its
    interval is in the main table and the verdicts. Empty when no row has a finished fine-tuning."""
    import pandas as pd

    totals: dict = {}  # (label, pretraining seed) -> Total
    out = []
    for r in rs:
        if r.error is not None:
            continue
        held = {sr["pretrain_seed"]: sr["metrics"].get("heldout_accuracy") for sr in r.seed_runs}
        for ps in sorted({_unit(f)[0] for f in r.ft if f.get("status") == "ok"}):
            d = {"label": r.label, "strategy": RUN_SPECS[r.label][1], "pretraining seed": ps,
                 "held-out acc": _pct(held.get(ps))}
            cells = {}
            for t in tasks:
                ok = [f for f in _task_rows(r, t) if f.get("status") == "ok" and _unit(f)[0] == ps]
                if ok:
                    cells[t] = float(np.mean([f["paper_score"] for f in ok]))
                    d[TASK_LABEL[t]] = fmt_cell(cells[t], None, any(f.get("collapsed") for f in ok))
                else:
                    d[TASK_LABEL[t]] = NOT_RUN
            tot = float(np.mean([cells[t] for t in tasks])) if tasks and len(cells) == len(tasks) else math.nan
            totals[(r.label, ps)] = tot
            d["Total"] = fmt_cell(tot) if _num(tot) else "—"  # a task missing at this seed: nothing to average
            out.append(d)
    for d in out:
        base = reference_row(name, d["label"])
        here, there = totals[(d["label"], d["pretraining seed"])], totals.get((base, d["pretraining seed"]))
        d["Δ Total"] = ("(reference)" if base is None else f"{here - there:+.2f}" if _num(here) and _num(there)
                        else "")
    cols = ["strategy", "pretraining seed", "held-out acc"] + [TASK_LABEL[t] for t in tasks] + ["Total", "Δ Total"]
    return pd.DataFrame(out, columns=["label"] + cols)


def _build(name: str, cfg: PretrainConfig, rs: list[_Run], *, paper_key: str | None):
    """(display table, numeric scores, bootstrap details, notes, covered tasks) for the experiment's runs."""
    import pandas as pd

    from entmask.analysis import bootstrap_total_delta, mean_sd

    fc = cfg.finetune
    tasks_req = list(fc.tasks)
    cov = covered_tasks(rs, tasks_req)
    model = model_label(cfg.model.preset)
    texts = {label: RUN_SPECS[label][1] for label in RUN_SPECS}
    by_label = {r.label: r for r in rs}

    disp, nums, boots = [], [], []
    judged = {r["label"] for r in plateau_judged([{"label": r.label, "random_masked": random_masked(r.cfg)}
                                                   for r in rs if r.error is None])}
    for r in rs:
        row_model = model if name != "corpus" else f"{model} on {r.cfg.data.corpus}"
        d = {"model": row_model, "strategy": texts[r.label], "source": "ours"}
        n = {"label": r.label, "model": row_model, "strategy": texts[r.label], "source": "ours",
             "run": str(r.run_dir) if r.run_dir else None, "hash": r.cfg.short_hash()}
        for t in TASK_ORDER:
            col = TASK_LABEL[t]
            rows = _task_rows(r, t)
            ok = [f for f in rows if f.get("status") == "ok"]
            if r.error is not None:
                d[col], n[col] = "unavailable", math.nan
            elif t not in tasks_req or not rows:
                d[col], n[col] = NOT_RUN, math.nan
            elif not ok:
                d[col], n[col] = ABSENT, math.nan
            else:
                mu, sd = mean_sd([f["paper_score"] for f in ok])
                coll = any(f.get("collapsed") for f in ok)
                d[col] = fmt_cell(mu, sd, coll)
                n[col], n[f"{col} sd"], n[f"{col} collapsed"] = mu, sd, coll
                n[f"{col} glue"] = float(np.mean([f["glue_score"] for f in ok]))
        tot = _seed_totals(r, cov)
        mu, sd = mean_sd(tot)
        d["Total"] = fmt_cell(mu, sd) if tot else ("unavailable" if r.error else "—")  # "—": no task to average
        d["row mean (recomputed)"] = ""
        n["Total"], n["Total sd"], n["n_seeds"] = mu, sd, len(tot)
        base_label = reference_row(name, r.label)
        base = by_label.get(base_label) if base_label else None
        d["Δ Total"] = "(reference)" if base_label is None and r.error is None else ""
        d["95% CI (bootstrap)"], d["seed t-interval"], d["per-seed Δ"] = "", "", ""
        if base is not None and cov and r.error is None and base.error is None:
            (pm, groups), (pb, _) = _preds(r, cov), _preds(base, cov)
            b = bootstrap_total_delta(pm, pb, metric="paper", n=fc.bootstrap, seed=0, groups=groups)
            who = "" if base_label == "baseline" else f" vs {texts[base_label]}"
            d["Δ Total"] = f"{b['delta']:+.2f}{who}"
            d["95% CI (bootstrap)"] = f"[{b['lo']:+.2f}, {b['hi']:+.2f}]"
            d["per-seed Δ"] = ", ".join(f"{x:+.2f}" for x in b["seed_deltas"])
            d["seed t-interval"] = (f"[{b['t_interval'][0]:+.2f}, {b['t_interval'][1]:+.2f}]" if b["t_interval"]
                                    else "")
            n.update(delta_base=base_label, delta=b["delta"], delta_lo=b["lo"], delta_hi=b["hi"],
                     delta_t_interval=b["t_interval"])
            boots.append({"label": r.label, "base": base_label, **{k: b[k] for k in (
                "delta", "lo", "hi", "total_model", "total_base", "seed_deltas", "t_interval", "t_interval_note",
                "n_resamples")}, "per_task": b["per_task"]})
        bl = blimp_of(r) if r.error is None else {}
        accs = [100 * x["accuracy"] for x in bl.values()]
        d["BLiMP"] = fmt_cell(*mean_sd(accs)) if accs else ""
        n["BLiMP"], n["BLiMP seeds"] = (float(np.mean(accs)) if accs else math.nan), len(accs)
        d["Δ BLiMP"] = ""
        if base is not None and bl and base.error is None:
            bd = blimp_delta(r, base, n=fc.bootstrap or 1000)
            if bd is not None:
                d["Δ BLiMP"] = f"{bd['delta']:+.2f} [{bd['lo']:+.2f}, {bd['hi']:+.2f}]"
                n.update(blimp_delta=bd["delta"], blimp_delta_lo=bd["lo"], blimp_delta_hi=bd["hi"],
                         blimp_seed_deltas=bd["seed_deltas"])
        m = _seed_mean_metrics(r)
        lp = m.get("left_plateau")
        d["plateau"] = ("" if r.error else "left" if lp else "?" if lp is None else
                        "ON PLATEAU" if r.label in judged else
                        "n/a (static masks)" if r.cfg.masking.static else "n/a (strategy masks)")
        flops = _row_flops(r) if r.error is None else None
        d["PFLOPs"] = f"{flops / 1e15:.3g}" if flops else ""
        n["flops"] = flops
        d["held-out acc"] = _pct(m.get("heldout_accuracy"))
        d["unigram acc"] = _pct(m.get("unigram_accuracy"))
        sw, end = self_switch_sd(r.cfg, m)
        both = sw is not None and end is not None
        d["self entropy s.d. (switch → end)"] = f"{sw:.2f} → {end:.2f}" if both else ""
        d["run"] = r.run_dir.name if r.run_dir else "unavailable"  # the reason is in the header
        n.update(left_plateau=lp, heldout_accuracy=m.get("heldout_accuracy"),
                 unigram_accuracy=m.get("unigram_accuracy"), train_seconds=m.get("train_seconds"),
                 train_seconds_total=m.get("train_seconds_total"),
                 steps=m.get("steps"), error=r.error, self_sd_switch=sw, self_sd_end=end)
        disp.append(d)
        nums.append(n)

    # Majority-class row: ours (same examples as the models) and, where the paper printed one, the paper's.
    maj, maj_note = _majority(cfg)
    d = {"model": "majority class", "strategy": "", "source": "majority"}
    n = {"label": "majority", "model": "majority class", "strategy": "", "source": "majority"}
    for t in TASK_ORDER:
        col = TASK_LABEL[t]
        if t not in tasks_req:
            d[col], n[col] = NOT_RUN, math.nan
        elif maj.get(t) is None:
            d[col], n[col] = ABSENT, math.nan
        else:
            d[col], n[col] = fmt_cell(maj[t]), maj[t]
    mt = float(np.mean([maj[t] for t in cov])) if cov and all(maj.get(t) is not None for t in cov) else math.nan
    d["Total"], n["Total"] = fmt_cell(mt) if _num(mt) else "", mt
    disp.append(d)
    nums.append(n)

    paper_rows = []
    if paper_key:
        paper_rows.append(("majority class", "", PAPER["majority"]))
        entries = [(k, pr, "") for k, pr in PAPER[paper_key].items()]
        if paper_key == "table2":  # Table 2's own rows are self-masking; its baseline and teacher rows are Table 1's
            entries = [((m, lab), PAPER["table1"][(m, lab)], " (paper Table 1)") for m in ("BERTlet", "BERT")
                       for lab in ("baseline", "teacher-high")] + entries
        for (pmodel, label), pr, where in entries:
            paper_rows.append((pmodel, f"{texts[label]} [{PAPER_NAMES[label]}]{where}", pr))
    for pr in paper.PROSE.get(name, []) if name != "weights" else []:
        # Prose-only figures: the paper's words (and its Total where it gives one), beside our rows.
        txt = {"model": pr["model"], "strategy": f"{pr['what']} (§{pr['section']})", "source": "paper"}
        d = {**txt, **{TASK_LABEL[t]: "" for t in TASK_ORDER}, "Total": fmt_cell(pr["total"]) if pr["total"] else
             pr["text"]}
        disp.append(d)
        nums.append({**txt, "label": f"paper:{pr['model']}:{pr['what']}", "Total": pr["total"] or math.nan,
                     "paper_text": pr["text"]})
    for pmodel, strat, pr in paper_rows:
        d = {"model": pmodel, "strategy": strat, "source": "paper"}
        n = {"label": f"paper:{pmodel}:{strat}", "model": pmodel, "strategy": strat, "source": "paper"}
        for t, v in zip(TASK_ORDER, pr["cells"]):
            d[TASK_LABEL[t]] = fmt_cell(v)
            n[TASK_LABEL[t]] = v if v is not None else math.nan
        known = [v for v in pr["cells"] if v is not None]
        rec = float(np.mean(known)) if len(known) == 7 else pr["recomputed"]
        d["Total"] = fmt_cell(pr["total"]) if strat else ""
        d["row mean (recomputed)"] = fmt_cell(rec) if strat else ""
        n["Total"] = pr["total"] if pr["total"] is not None else math.nan
        n["row mean (recomputed)"] = rec if rec is not None else math.nan
        disp.append(d)
        nums.append(n)

    cols = (["model", "strategy", "source"] + [TASK_LABEL[t] for t in TASK_ORDER] +
            ["Total", "row mean (recomputed)", "Δ Total", "95% CI (bootstrap)", "per-seed Δ", "seed t-interval",
             "BLiMP", "Δ BLiMP", "plateau",
             "PFLOPs", "held-out acc", "unigram acc", "self entropy s.d. (switch → end)", "run"])
    table = pd.DataFrame(disp).reindex(columns=cols).fillna("")
    scores = pd.DataFrame(nums)

    notes = _notes(name, cfg, rs, cov, tasks_req, maj, maj_note, paper_key)
    return table, scores, pd.DataFrame(boots), notes, cov


def blimp_note(rs: list[_Run]) -> str:
    """What the BLiMP columns are, and which rows have none."""
    scored = {r.label: blimp_of(r) for r in rs if r.error is None}
    any_doc = next((d for v in scored.values() for d in v.values()), None)
    missing = [RUN_SPECS[k][1] for k, v in scored.items() if not v]
    if any_doc is None:
        return ("BLiMP: no row has BLiMP scores (scored after pretraining by `entmask experiment`, or "
                "`entmask blimp RUN`; a run imported without weights cannot be scored).")
    sc = any_doc.get("scoring", {})
    per = sc.get("per_paradigm")
    return (f"BLiMP: zero-shot accuracy (%) on minimal pairs by pseudo-log-likelihood (Salazar et al. 2020, variant "
            f"{sc.get('variant', '?')}), {per or 'all'} pairs per paradigm x 67 ({sc.get('n', '?')} pairs), mean ± sd "
            f"over pretraining seeds; no fine-tuning, so no fine-tuning noise. Δ BLiMP: against the same reference row "
            f"as Δ Total, with a 95% paired bootstrap over the pairs of every seed both rows were scored at (pair "
            f"noise only, not seed noise)." + (f" Not scored: {', '.join(missing)}." if missing else ""))


def truncation_note(rs: list[_Run], tasks: list[str], max_len: int) -> str:
    """Per task, the share of validation examples that fine-tuning at `max_len` truncated (the records'
    `eval_truncated`; the largest over runs, which share it unless their tokenizers differ). A task truncated a lot
    tests less than its label says: at length 32, 95% of MRPC's pairs lost their ends."""
    got = {}
    for r in rs:
        for f in r.ft:
            if f.get("task") in tasks and _num(f.get("eval_truncated")):
                got[f["task"]] = max(got.get(f["task"], 0.0), float(f["eval_truncated"]))
    parts = [f"{TASK_LABEL[t]} {got[t]:.1%}" if t in got else f"{TASK_LABEL[t]} not recorded" for t in tasks]
    worst = max(got.values()) if got else None
    return (f"Truncated at finetune.max_len={max_len}: share of each task's validation examples longer than that "
            f"(wordpieces with [CLS]/[SEP]): {', '.join(parts) or 'no task'}"
            + (f"; the worst task loses the end of {worst:.0%} of its examples" if worst is not None and worst > 0.10
               else "") + " (runs fine-tuned before 2026-12-05 did not record it).")


def _notes(name, cfg, rs, cov, tasks_req, maj, maj_note, paper_key) -> list[str]:
    fc = cfg.finetune
    absent = [t for t in TASK_ORDER if t in tasks_req and maj.get(t) is None]  # no data here at all
    unscored = [t for t in TASK_ORDER if t in tasks_req and t not in cov and t not in absent]
    not_run = [t for t in TASK_ORDER if t not in tasks_req]
    ps = pretrain_seeds(cfg)
    seeds = len(fc.seeds) * len(ps)
    notes = [
        f"Cells: the paper's metric x 100 (accuracy; F1 for MRPC) on the validation split, mean ± sd over "
        f"{seeds} run(s): pretraining seed(s) {ps} x fine-tuning seed(s) {list(fc.seeds)}"
        + (" (sd needs >= 2 runs, so none is shown)" if seeds < 2 else "") + f"; protocol {fc.protocol!r}"
        + (f", train subsampled to {fc.max_train}" if fc.max_train else "")
        + (f", evaluation subsampled to {fc.max_eval}" if fc.max_eval else "") + ".",
        f"Total = mean of the available tasks: {', '.join(TASK_LABEL[t] for t in cov) or 'none'} "
        f"({len(cov)} of 7 tasks)" + (f"; {', '.join(TASK_LABEL[t] for t in absent)} {ABSENT} (no data here, never "
                                      f"filled in)" if absent else "")
        + (f"; {', '.join(TASK_LABEL[t] for t in unscored)} without a score in every run" if unscored else "")
        + (f"; {', '.join(TASK_LABEL[t] for t in not_run)} {NOT_RUN} (not in finetune.tasks)" if not_run else "")
        + ". The paper's Totals average all 7 tasks, so they compare with ours only when the same tasks are covered.",
        f"{COLLAPSE_MARK} = collapsed: in at least one seed the classifier put >= 95% of its predictions on one "
        f"class (a majority-class guesser, whatever its score).",
        maj_note,
    ]
    notes.append(truncation_note(rs, cov, fc.max_len))
    notes.append(blimp_note(rs))
    eval_notes = sorted({f["eval_note"] for r in rs for f in r.ft if f.get("eval_note")})
    for en in eval_notes:
        notes.append(f"Offline data: {en} (its score is not comparable with the paper's full QNLI).")
    if name in DELTA_BASE:
        notes.append("Δ Total: Total minus that of the same strategy at 15% masking, with a 95% two-level "
                     "paired-bootstrap CI over seeds and validation examples (analysis.bootstrap_total_delta) and a "
                     "t-interval over pretraining seeds (with >= 2).")
    else:
        notes.append("Δ Total: Total minus the random-masking baseline's, with a 95% two-level paired-bootstrap CI "
                     "that resamples seeds (pretraining seeds, then fine-tuning seeds) as well as validation examples "
                     "(analysis.bootstrap_total_delta), so seed-to-seed disagreement widens it; per-seed Δ lists the "
                     "delta of each (pretraining, fine-tuning) seed pair. The seed t-interval is over pretraining "
                     "seeds (with >= 2; at 2 it has 1 degree of freedom, t = 12.71). With 2-3 seeds the bootstrap CI "
                     "is too narrow (two seeds drawn with replacement give three outcomes, so it excludes 0 whenever "
                     "they share a sign); the verdicts use the wider of the two. A CI that contains 0 is no evidence "
                     "of a difference.")
    notes.append("plateau: whether pretraining left the unigram plateau (held-out masked accuracy >= 2x the "
                 "unigram rate and varied entropies); held-out acc / unigram acc are the measured rates. "
                 "self entropy s.d.: the spread of the student's own entropies over positions where masking switches "
                 "to them (step 0 for cold, the end of the teacher phase for init) and at the end; near 0, "
                 "self-masking picks arbitrary tokens.")
    if paper_key:
        notes.append(
            f"Rows marked 'paper' are the published numbers ({PAPER_SOURCE}, entmask/paper.py), strategy names in "
            f"brackets as the paper writes them; the paper's majority-class row is {paper.MAJORITY_NOTE}. "
            f"'Total' is the paper's printed Total; 'row mean (recomputed)' is the mean of its seven cells. "
            f"{PAPER_TOTALS_NOT_ROW_MEAN} of the paper's {PAPER_TOTALS} printed Totals are not the mean of their "
            f"row (BERTlet " + ", ".join(f"{PAPER_NAMES[lab]} {t:.2f} printed vs {m:.2f}"
                                          for _, lab, t, m in paper.totals_not_row_mean()) + "); by the recomputed "
            f"means BERTlet's marg and alt lie above its random baseline (70.93), contrary to the paper's §3.1 text.")
    else:
        for pr in paper.PROSE.get(name, []):
            notes.append(f"Paper §{pr['section']} ({pr['model']}, {pr['what']}): {pr['text']}.")
    return notes


# ---- figures -------------------------------------------------------------------------------------------------
def _figure(w: float, h: float):
    # Object-oriented matplotlib with the Agg canvas: no pyplot state, no global backend switch in notebooks.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, stem: Path) -> dict:
    out = {}
    for ext in ("png", "svg"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=120, bbox_inches="tight")
        path = stem.with_name(stem.name + f".{ext}")
        runs.atomic_write_bytes(path, buf.getvalue())
        out[ext] = path
    return out


def plot_totals(name: str, rs: list[_Run], cov: list[str], majority_total: float, stem: Path) -> dict:
    """Bar per strategy: mean Total over seeds, error bar = sd over seeds, dots = each seed."""
    ok = [r for r in rs if r.error is None]
    if not ok or not cov:
        return {}
    fig = _figure(max(4.0, 1.1 * len(ok) + 1.5), 3.6)
    ax = fig.add_subplot(111)
    for i, r in enumerate(ok):
        tot = _seed_totals(r, cov)
        mu = float(np.mean(tot))
        sd = float(np.std(tot, ddof=1)) if len(tot) > 1 else 0.0
        ax.bar(i, mu, yerr=sd if len(tot) > 1 else None, capsize=4, color="#4C72B0" if r.label != "baseline"
               else "#999999")
        ax.scatter([i] * len(tot), tot, color="black", s=10, zorder=3)
    if _num(majority_total):
        ax.axhline(majority_total, ls="--", color="#C44E52", lw=1, label="majority class")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(len(ok)))
    ax.set_xticklabels([RUN_SPECS[r.label][1] for r in ok], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"Total ({len(cov)} tasks)")
    lo = min(min(_seed_totals(r, cov)) for r in ok)
    ax.set_ylim(max(0.0, lo - 15), None)
    ax.set_title(f"{name}: GLUE Total ({', '.join(TASK_LABEL[t] for t in cov)}), seeds as dots", fontsize=9)
    return _save(fig, stem)


def plot_compute(name: str, rs: list[_Run], cov: list[str], stem: Path) -> dict:
    """Total (left) and held-out masked accuracy (right) against pretraining FLOPs, one point per row and
    pretraining seed: a strategy that costs more compute is read against random masking at the same compute."""
    pts = []
    for r in rs:
        if r.error is not None:
            continue
        for sr in r.seed_runs or [{"run_dir": r.run_dir, "metrics": r.metrics, "pretrain_seed": r.cfg.train.seed}]:
            c = run_compute(r.cfg, sr.get("run_dir"), sr.get("metrics") or {})
            if not c:
                continue
            seed = sr.get("pretrain_seed", r.cfg.train.seed)
            per_task = {}
            for f in r.ft:
                if f.get("status") == "ok" and f.get("pretrain_seed", seed) == seed and f.get("task") in cov:
                    per_task.setdefault(f["task"], []).append(f["paper_score"])
            total = (float(np.mean([np.mean(v) for v in per_task.values()])) if cov and len(per_task) == len(cov)
                     else math.nan)
            pts.append((r.label, c["total_flops"], total, (sr.get("metrics") or {}).get("heldout_accuracy")))
    if not pts:
        return {}
    fig = _figure(9.0, 3.6)
    axes = [fig.add_subplot(121), fig.add_subplot(122)]
    labels = list(dict.fromkeys(p[0] for p in pts))
    colors = {lab: f"C{i % 10}" for i, lab in enumerate(labels)}
    for ax, j, ylab in ((axes[0], 2, f"Total ({len(cov)} tasks)"), (axes[1], 3, "held-out masked accuracy")):
        for lab in labels:
            xs = [p[1] for p in pts if p[0] == lab and p[j] is not None and _num(p[j])]
            ys = [p[j] for p in pts if p[0] == lab and p[j] is not None and _num(p[j])]
            if xs:
                ax.scatter(xs, ys, color=colors[lab], label=RUN_SPECS[lab][1], s=22)
        base = []  # random masking at 1x (and 2x) steps, mean over seeds: the line a costlier strategy has to beat
        for lab in ("baseline", "baseline-2x"):
            got = [(p[1], p[j]) for p in pts if p[0] == lab and p[j] is not None and _num(p[j])]
            if got:
                base.append((float(np.mean([g[0] for g in got])), float(np.mean([g[1] for g in got]))))
        if len(base) > 1:
            ax.plot([b[0] for b in base], [b[1] for b in base], color="#999999", lw=1, ls="--", zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("pretraining FLOPs (log)")
        ax.set_ylabel(ylab)
    axes[1].legend(fontsize=7, loc="best")
    two = any(p[0] == "baseline-2x" for p in pts)
    fig.suptitle(f"{name}: results against pretraining compute" + (" (dashed: random masking at 1x and 2x steps)"
                                                                   if two else ""), fontsize=9)
    fig.subplots_adjust(wspace=0.35)
    return _save(fig, stem)


def curves_frame(rs: list[_Run]):
    """Pretraining log history as a long frame: label, step, loss, masked_accuracy, kd_loss, entropy_*."""
    import pandas as pd

    rows = []
    keys = ("loss", "mlm_loss", "masked_accuracy", "kd_loss", "entropy_masked", "entropy_maskable", "self_source")
    for r in rs:
        if r.run_dir is None or not (r.run_dir / "logs" / "log_history.json").exists():
            continue
        for h in runs.read_json(r.run_dir / "logs" / "log_history.json"):
            if "loss" in h and "step" in h:
                rows.append({"label": r.label, "step": h["step"], **{k: h.get(k) for k in keys}})
    return pd.DataFrame(rows, columns=["label", "step", *keys])


def plot_curves(curves, stem: Path) -> dict:
    if curves.empty:
        return {}
    fig = _figure(9, 3.4)
    axes = [fig.add_subplot(1, 2, i) for i in (1, 2)]
    for label, g in curves.groupby("label", sort=False):
        axes[0].plot(g["step"], g["loss"], label=RUN_SPECS[label][1], lw=1.2)
        axes[1].plot(g["step"], g["masked_accuracy"], label=RUN_SPECS[label][1], lw=1.2)
    axes[0].set(xlabel="step", ylabel="training loss", title="pretraining loss")
    axes[1].set(xlabel="step", ylabel="masked accuracy", title="masked-token accuracy (training masks)")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def entropy_frame(cfg: PretrainConfig, rs: list[_Run], root=None, progress: bool = False, sample_rows: int = 256):
    """Teacher entropies of the tokens each strategy masks vs all maskable tokens, on a seeded sample of rows.

    (summary DataFrame, {label: (masked values, maskable values)}). Masks are drawn batch by batch
    (train.batch_size rows) as in training, so `alternating` mixes high and low batches. Self-masking rows are
    shown on the teacher's entropies (the student's change during training): what the teacher would call
    high-entropy, not what the student picked.
    """
    import pandas as pd
    import torch

    from entmask.data import prepare_corpus
    from entmask.entropy import teacher_entropies
    from entmask.masking import candidate_mask, needs_entropy, select_mask
    from entmask.pretrain import resolve_teacher

    ent_runs = [r for r in rs if r.error is None and needs_entropy(r.cfg.masking.strategy)
                and r.cfg.kd.mode != "kd-only"]
    if not ent_runs:
        return pd.DataFrame(), {}
    c0 = ent_runs[0].cfg
    corpus = prepare_corpus(c0.data, root, progress=False)
    teacher = resolve_teacher(c0, root, progress)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    ent = teacher_entropies(teacher, corpus.dir, "train", corpus.train_ids, device=dev,
                            batch_size=c0.train.eval_batch_size, chunk_size=c0.train.entropy_chunk,
                            progress=progress)  # cached beside the corpus by the teacher-masking runs
    n = corpus.train_ids.shape[0]
    idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:min(sample_rows, n)].sort().values
    ids, e = corpus.train_ids[idx], ent[idx]
    cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id, c0.masking.include_unk)
    rows, values = [], {}
    for r in ent_runs:
        m = r.cfg.masking
        gen = torch.Generator().manual_seed(0)
        bs = max(1, r.cfg.train.batch_size)
        mask = torch.cat([select_mask(e[s:s + bs], cand[s:s + bs], m.strategy, m.ratio, m.num_tokens, generator=gen)
                          for s in range(0, ids.shape[0], bs)])
        masked, maskable = e[mask].double().numpy(), e[cand].double().numpy()
        values[r.label] = (masked, maskable)
        rows.append({"label": r.label, "strategy": m.strategy, "source": m.source, "ratio": m.ratio,
                     "num_tokens": m.num_tokens, "n_rows": int(ids.shape[0]), "n_maskable": int(maskable.size),
                     "n_masked": int(masked.size), "maskable_mean": float(maskable.mean()),
                     "maskable_sd": float(maskable.std()), "masked_mean": float(masked.mean()) if masked.size else
                     math.nan, "masked_sd": float(masked.std()) if masked.size else math.nan,
                     "train_entropy_masked_mean": r.metrics.get("entropy_masked_mean"),
                     "train_entropy_maskable_mean": r.metrics.get("entropy_maskable_mean")})
    return pd.DataFrame(rows), values


def plot_entropy(values: dict, stem: Path) -> dict:
    if not values:
        return {}
    k = len(values)
    cols = min(3, k)
    nrows = math.ceil(k / cols)
    fig = _figure(3.4 * cols, 2.6 * nrows)
    allv = np.concatenate([v[1] for v in values.values()])
    bins = np.linspace(float(allv.min()), float(allv.max()) + 1e-6, 40)
    for i, (label, (masked, maskable)) in enumerate(values.items(), 1):
        ax = fig.add_subplot(nrows, cols, i)
        ax.hist(maskable, bins=bins, density=True, alpha=0.5, color="#999999", label="maskable")
        if masked.size:
            ax.hist(masked, bins=bins, density=True, alpha=0.6, color="#C44E52", label="masked")
        ax.set_title(RUN_SPECS[label][1], fontsize=9)
        ax.set_xlabel("teacher entropy (nats)", fontsize=8)
        ax.ticklabel_format(axis="x", useOffset=False)  # absolute nats, not an offset that hides the scale
        ax.locator_params(axis="x", nbins=4)
        ax.tick_params(labelsize=7)
        if i == 1:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


def weight_movement(rs: list[_Run]):
    """(aggregated deltas: label, task, layer, component, rel_norm_change..., movement table) of fine-tuned models
    against their pretrained start, pooled over seeds; the movement table names each task's most-moved component
    and gives its training-set size."""
    import pandas as pd

    from entmask.analysis import aggregate_deltas, most_moved_component, weight_deltas

    aggs, moves = [], []
    for r in rs:
        if r.error is not None:
            continue
        for t in TASK_ORDER:
            ok = [f for f in _task_rows(r, t) if f.get("status") == "ok" and not f.get("frozen")]
            if not ok:
                continue
            df = pd.concat([weight_deltas(r.run_dir / "model", f["run_dir"]) for f in ok], ignore_index=True)
            pre = df[df["reference"] == "pretrained"]
            agg = aggregate_deltas(pre)  # pooled over seeds: each seed's tensors count once
            agg.insert(0, "task", t)
            agg.insert(0, "label", r.label)
            aggs.append(agg)
            comp = aggregate_deltas(pre, by=("component",))
            top = most_moved_component(df)
            enc = float(np.sqrt((pre["delta_norm"] ** 2).sum()) / np.sqrt((pre["ref_norm"] ** 2).sum()))
            moves.append({"label": r.label, "task": t, "n_train": int(ok[0].get("n_train") or 0),
                          "seeds": len(ok), "most_moved": top,
                          "most_moved_rel_change": float(comp.set_index("component").loc[top, "rel_norm_change"]),
                          "encoder_rel_change": enc})
    return (pd.concat(aggs, ignore_index=True) if aggs else pd.DataFrame()), pd.DataFrame(moves)


WEIGHTS_NOTE = (
    "Two measures per layer x component, pooled over seeds: `rel` = ||W_ft − W_pre|| / ||W_pre|| (the group's "
    "weights as one vector) and `elem` = mean over elements of |w_ft − w_pre| / (|w_pre| + 1e-12), the paper's kind "
    "of number (it reports 7077.23% for the final-layer FFN on MNLI and 167.33% on CoLA for BERTlet max,init). The "
    "element-wise mean is dominated by weights that start near zero: a weight of 1e-6 that moves by 1e-4 counts "
    "10,000%, and biases initialised at zero count without bound, so it reaches thousands of percent while the "
    "weights as a whole moved by a few percent. Trust `rel` to compare how far layers and tasks moved; read `elem` "
    "only as the paper's number, next to it. `final FFN` is the last encoder layer's feed-forward block "
    "(ffn_in + ffn_out) as one cell.")


def layer_component_view(deltas):
    """One row per (run, layer, component) of pretrained tensors plus a `final FFN` row per run; per task, the
    relative Frobenius change (rel %) and the mean element-wise relative change (elem %), both in percent."""
    import pandas as pd

    if deltas.empty:
        return pd.DataFrame()
    rows = []
    last = int(deltas.loc[deltas["layer"] >= 0, "layer"].max()) if (deltas["layer"] >= 0).any() else None
    for label, g in deltas.groupby("label", sort=False):
        for (layer, comp), h in g.groupby(["layer", "component"], sort=True):
            row = {"strategy": RUN_SPECS[label][1], "layer": "emb" if layer == -1 else str(layer), "component": comp}
            for _, t in h.iterrows():
                row[f"{TASK_LABEL[t['task']]} rel %"] = round(100 * t["rel_norm_change"], 3)
                row[f"{TASK_LABEL[t['task']]} elem %"] = round(100 * t["mean_rel_elementwise"], 2)
            rows.append(row)
        if last is not None:
            ffn = g[(g["layer"] == last) & g["component"].isin(["ffn_in", "ffn_out"])]
            row = {"strategy": RUN_SPECS[label][1], "layer": str(last), "component": "final FFN"}
            for t, h in ffn.groupby("task", sort=False):
                d2 = float((h["delta_norm"] ** 2).sum())
                w2 = float((h["ref_norm"] ** 2).sum())
                elem = float((h["mean_rel_elementwise"] * h["numel"]).sum() / h["numel"].sum())
                row[f"{TASK_LABEL[t]} rel %"] = round(100 * math.sqrt(d2 / w2), 3) if w2 > 0 else math.nan
                row[f"{TASK_LABEL[t]} elem %"] = round(100 * elem, 2)
            rows.append(row)
    return pd.DataFrame(rows)


def movement_vs_size(moves) -> dict:
    """Spearman correlation of encoder movement with training-set size, per run (needs >= 3 distinct sizes)."""
    from scipy.stats import spearmanr

    out = {}
    if moves.empty:
        return out
    for label, g in moves.groupby("label", sort=False):
        if g["n_train"].nunique() < 3:
            out[label] = None
        else:
            out[label] = float(spearmanr(g["n_train"], g["encoder_rel_change"]).statistic)
    return out


def plot_weights(deltas, stem: Path) -> dict:
    if deltas.empty:
        return {}
    import seaborn as sns

    from entmask.analysis import COMPONENTS

    labels = list(dict.fromkeys(deltas["label"]))
    tasks = [t for t in TASK_ORDER if t in set(deltas["task"])]
    fig = _figure(3.6 * len(tasks), 2.8 * len(labels))
    vmax = float(np.nanmax(deltas["rel_norm_change"])) or 1.0
    for i, label in enumerate(labels):
        for j, t in enumerate(tasks):
            ax = fig.add_subplot(len(labels), len(tasks), i * len(tasks) + j + 1)
            g = deltas[(deltas["label"] == label) & (deltas["task"] == t)]
            if g.empty:
                ax.axis("off")
                continue
            wide = g.pivot(index="layer", columns="component", values="rel_norm_change")
            wide = wide[[c for c in COMPONENTS if c in wide.columns]]  # the model's order, not the alphabet's
            wide.index = ["emb" if x == -1 else str(x) for x in wide.index]
            sns.heatmap(wide, ax=ax, vmin=0, vmax=vmax, cmap="viridis", cbar=j == len(tasks) - 1,
                        annot=False)
            ax.set_title(f"{RUN_SPECS[label][1]} · {TASK_LABEL[t]}: ||ΔW|| / ||W||", fontsize=8)
            ax.tick_params(labelsize=6)
            ax.set_xlabel("")
            ax.set_ylabel("layer" if j == 0 else "")
    fig.tight_layout()
    return _save(fig, stem)


# ---- the teacher beside its students ------------------------------------------------------------------------
def teacher_strength_of(rs: list[_Run]) -> dict | None:
    """The teacher's held-out masked accuracy and loss (same test split and masking as the students'), the random
    student's, and their ratio: teacher-masking tests the paper's idea only if the teacher knows clearly more."""
    from entmask.pretrain import teacher_metrics

    tdirs = [_local_teacher(sr["metrics"]["teacher"], sr["run_dir"]) for r in rs for sr in r.seed_runs
             if sr["metrics"].get("teacher")]
    if not tdirs:
        return None
    tm = teacher_metrics(tdirs[0])
    base = next((r for r in rs if r.label == "baseline" and r.error is None and r.seed_runs), None)
    out = {"teacher": tdirs[0], "teacher_heldout_accuracy": tm.get("heldout_accuracy"),
           "teacher_heldout_loss": tm.get("heldout_loss")}
    if base is not None:
        bm = _seed_mean_metrics(base)
        out.update(student_heldout_accuracy=bm.get("heldout_accuracy"), student_heldout_loss=bm.get("heldout_loss"))
        if out["teacher_heldout_accuracy"] and out["student_heldout_accuracy"]:
            out["ratio"] = out["teacher_heldout_accuracy"] / out["student_heldout_accuracy"]
    return out


def _local_teacher(recorded: str, run_dir) -> str:
    """The teacher a student's metrics name, found in this runs folder: an entmask reference is recorded by the
    absolute path it had where the student trained (`<root>/<profile>/reference/<name>/model`), which on another
    machine, or for imported records, is the same name under this student's profile folder. Shown relative to the
    runs folder, so a report does not depend on where it was built; any other teacher as recorded."""
    rec = Path(str(recorded))
    if rec.name != "model" or rec.parent.parent.name != "reference":
        return str(recorded)
    profile_dir = Path(run_dir).parents[1]  # <root>/<profile>/pretrain/<run> -> <root>/<profile>
    local = profile_dir / "reference" / rec.parent.name / "model"
    return str(local) if (local.parent / "metrics.json").exists() or not rec.parent.exists() else str(recorded)


def _shown(teacher: str) -> str:
    """A reference teacher as `<profile>/reference/<name>/model` (inside the runs folder); any other as given."""
    p = Path(str(teacher))
    return "/".join(p.parts[-4:]) if p.name == "model" and p.parent.parent.name == "reference" else str(teacher)


def teacher_line(rs: list[_Run]) -> str | None:
    t = teacher_strength_of(rs)
    if t is None:
        return None
    if t.get("teacher_heldout_accuracy") is None:
        return f"Teacher `{_shown(t['teacher'])}`: its held-out accuracy was not measured (not an entmask reference)."
    s = (f"Teacher: held-out masked accuracy {_pct(t['teacher_heldout_accuracy'])}, loss "
         f"{t['teacher_heldout_loss']:.2f}")
    if t.get("ratio"):
        s += (f"; random student {_pct(t['student_heldout_accuracy'])}, loss {t['student_heldout_loss']:.2f}: "
              f"the teacher is {t['ratio']:.2f}x its student" + (" (weaker than 1.25x: its entropies barely know more "
                                                               "than the student's own)" if t["ratio"] < 1.25 else ""))
    return s + "."


# ---- writing -------------------------------------------------------------------------------------------------
def _write(name: str, cfg: PretrainConfig, root, rs, table, scores, notes, header_extra: list[str],
           sections: list[tuple[str, object]], extra: dict, seconds: float, figures: dict,
           report_only: bool = False) -> dict:
    out_dir = runs.results_dir(cfg.profile, root)
    stem = out_dir / name
    paths = {"csv": stem.with_suffix(".csv"), "md": stem.with_suffix(".md"), "json": stem.with_suffix(".json")}
    runs.atomic_write_text(paths["csv"], table.to_csv(index=False))
    # Over every pretraining seed (a row left the plateau only if each seed did), as the table's plateau column.
    sm = {r.label: _seed_mean_metrics(r) for r in rs}
    plateau = plateau_note([{"label": RUN_SPECS[r.label][1], **sm[r.label], "random_masked": random_masked(r.cfg)}
                            for r in rs if r.error is None])
    lines = [f"# {TITLES[name]}", "",
             f"Experiment `{name}`, profile `{cfg.profile}`, students {model_label(cfg.model.preset)}, "
             f"{len(rs)} pretraining run(s), written by entmask.experiments in {seconds:.0f} s.", ""]
    if plateau:
        lines += ["> " + plateau, ""]
    strength = teacher_line(rs)
    if strength:
        lines += ["> " + strength, ""]
    for h in header_extra:
        lines += ["> " + h, ""]
    lines += [md_table(table), ""]
    lines += ["Notes:", ""] + [f"- {n}" for n in notes] + [""]
    for title, body in sections:
        lines += [f"## {title}", "", body if isinstance(body, str) else md_table(body), ""]
    fig_lines = [f"- {k}: `{p.name}`" for k, p in figures.items() if p.suffix == ".png"]
    if fig_lines:
        lines += ["## Figures (PNG and SVG beside this file)", ""] + fig_lines + [""]
    lines += ["## Runs", ""] + [
        f"- {RUN_SPECS[r.label][1]}: `{r.run_dir}` (config hash {r.cfg.short_hash()})" if r.run_dir else
        f"- {RUN_SPECS[r.label][1]}: not available ({r.error})" for r in rs] + [""]
    runs.atomic_write_text(paths["md"], "\n".join(lines))
    runs.write_json(paths["json"], {
        "experiment": name, "title": TITLES[name], "profile": cfg.profile, "model": cfg.model.preset,
        "seconds": seconds, "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": runs.git_commit(),
        "tasks": list(cfg.finetune.tasks), "seeds": list(cfg.finetune.seeds), "pretrain_seeds": pretrain_seeds(cfg),
        "report_only": report_only,  # written by --report-only: unfinished rows are left out (see "header")
        "teacher": teacher_strength_of(rs),
        "runs": {r.label: {"name": r.cfg.name, "hash": r.cfg.short_hash(), "dir": r.run_dir, "error": r.error,
                           "left_plateau": sm[r.label].get("left_plateau"), "random_masked": random_masked(r.cfg),
                           "heldout_accuracy": sm[r.label].get("heldout_accuracy"),
                           "unigram_accuracy": sm[r.label].get("unigram_accuracy")} for r in rs},
        "config_hashes": {r.label: r.cfg.short_hash() for r in rs},
        "plateau_warning": plateau, "notes": notes, "header": header_extra,
        "records": table.to_dict("records"), "scores": scores.to_dict("records"),
        "extra": {k: v.to_dict("records") for k, v in extra.items() if hasattr(v, "to_dict")},
        "paper_source": PAPER_SOURCE,
    })
    for k, p in figures.items():
        paths[k] = p
    return paths


def _experiment(name: str, cfg: PretrainConfig, *, root=None, progress: bool = True, corpus_name: str | None = None,
                train: bool = True) -> ExperimentResult:
    t0 = time.perf_counter()
    specs = matrix(name, cfg, corpus=corpus_name)
    frozen = name == "frozen"
    header, sections = [], []
    if train:
        rs = _pretrain_and_finetune(name, specs, root, progress, frozen=frozen, tolerate_data_errors=name == "corpus")
    else:
        rs = _report_finished(specs, root, frozen)
        seeds = pretrain_seeds(cfg)
        done, left = [r for r in rs if not r.unfinished], [r for r in rs if r.unfinished]
        # the rows others are compared with (the baseline; mask-rate: each strategy at 15%) must all be there
        refs = {b for lab, _ in specs for b in (DELTA_BASE.get(name, {}).get(lab), "baseline") if b} & {
            lab for lab, _ in specs}
        missing = [r for r in rs if r.label in refs and r.unfinished]
        if missing or not done:
            # The seeds a report could show: those at which every reference row and at least one other finished.
            ok = [s for s in seeds if all(s not in r.unfinished for r in rs if r.label in refs)
                  and any(s not in r.unfinished for r in rs if r.label not in refs)]
            what = ("; ".join(f"reference row {RUN_SPECS[r.label][1]} has not finished ({r.how_far()})"
                              for r in missing)
                    if missing else "no row has finished")
            hint = (f"report the seed(s) that did with --set 'experiment.pretrain_seeds=[{','.join(map(str, ok))}]'"
                    if ok else f"no pretraining seed has finished yet; run `entmask experiment {name} --profile "
                    f"{cfg.profile}{set_args(cfg)}` first")
            raise ExperimentError(f"--report-only: {name} at pretraining seed(s) {seeds}: {what}; {hint}")
        rs = done
        if left:
            header.append(f"**Report only: rows not finished at every pretraining seed {seeds} are left out**: "
                          + "; ".join(f"{RUN_SPECS[r.label][1]} ({r.how_far()})" for r in left)
                          + ". Nothing was trained; the rows shown are whole.")
            for r in left:  # said even with --quiet: it is what a report is asked for
                _say(True, f"{name}: not finished: {RUN_SPECS[r.label][1]}: {r.how_far('; ')}")
    paper_key = name if name in ("table1", "table2") else None
    table, scores, boots, notes, cov = _build(name, cfg, rs, paper_key=paper_key)
    extra = {"scores": scores, "bootstrap": boots, "finetune": _finetune_frame(rs)}
    per_seed = per_seed_frame(name, rs, cov)
    if per_seed["pretraining seed"].nunique() > 1:  # with one seed it repeats the main table
        extra["per_seed"] = per_seed
        sections.append(("Per pretraining seed (do the seeds agree?)", per_seed.drop(columns="label")))
    stem = runs.results_dir(cfg.profile, root) / name
    figures: dict = {}

    if name == "corpus":
        bad = [r for r in rs if r.error]
        if bad:
            header.append(f"**The corpus {rs[0].cfg.data.corpus}/{rs[0].cfg.data.corpus_config} "
                          f"{rs[0].cfg.data.splits} is unavailable here**, so nothing was trained on it: "
                          f"{bad[0].error}")
        else:
            header.append(f"Pretraining corpus: {rs[0].cfg.data.corpus}/{rs[0].cfg.data.corpus_config} "
                          f"{rs[0].cfg.data.splits} instead of {cfg.data.corpus}/{cfg.data.corpus_config}.")
    if name == "beyond":
        header.append("Beyond the paper: none of these rows is in the paper. Scores: masked-view entropy (each token "
                      "scored while masked, 1/ratio passes), excess loss = student − teacher masked loss (Rho-1); "
                      "`sampled` draws k with probability ∝ softmax(entropy / T); 80/10/10 = BERT's replacement "
                      "policy for the self-masked student. PFLOPs and the compute figure put each row beside random "
                      "masking trained for 1x and 2x the steps.")
    if frozen:
        table = _with_frozen_delta(table, scores)
        header.append("Frozen probe: the encoder (embeddings, layers, pooler) stays bitwise at its pretrained values; "
                      f"only the classifier trains, for finetune.frozen_epochs={cfg.finetune.frozen_epochs} epoch(s). "
                      "The last row is the per-task difference high − baseline.")

    maj_row = scores[scores["source"] == "majority"]
    maj_total = float(maj_row["Total"].iloc[0]) if len(maj_row) else math.nan
    figures.update({k: v for k, v in plot_totals(name, rs, cov, maj_total, stem).items()})
    if name in COMPUTE_PLOTS:
        figures.update({f"compute_{k}": v for k, v in plot_compute(name, rs, cov, stem.with_name(f"{name}-compute")
                                                                   ).items()})
    curves = curves_frame(rs)
    extra["curves"] = curves
    figures.update({f"curves_{k}": v for k, v in plot_curves(curves, stem.with_name(f"{name}-curves")).items()})
    if name in ENTROPY_PLOTS and not train:
        # prepare_corpus / resolve_teacher / teacher_entropies lock their caches (and would build a missing one):
        # a report beside a running matrix must neither wait for them nor compete.
        header.append("Report only: the section on the teacher entropy of masked tokens is left out (it reads the "
                      "corpus and entropy caches under their locks); the full run writes it.")
    elif name in ENTROPY_PLOTS:
        ent, values = entropy_frame(cfg, rs, root, progress)
        extra["entropy"] = ent
        figures.update({f"entropy_{k}": v for k, v in plot_entropy(values, stem.with_name(f"{name}-entropy")).items()})
        if not ent.empty:
            sections.append(("Teacher entropy of masked vs maskable tokens", ent[[
                "label", "strategy", "source", "ratio", "num_tokens", "n_masked", "n_maskable", "masked_mean",
                "maskable_mean"]].round(3)))
    if name == "weights":
        deltas, moves = weight_movement(rs)
        extra["deltas"], extra["movement"] = deltas, moves
        figures.update({f"heatmap_{k}": v for k, v in plot_weights(deltas, stem.with_name("weights-heatmap")).items()})
        if not moves.empty:
            rho = movement_vs_size(moves)
            shown = moves.assign(strategy=[RUN_SPECS[k][1] for k in moves["label"]])
            shown = shown[["strategy", "task", "n_train", "seeds", "most_moved", "most_moved_rel_change",
                           "encoder_rel_change"]]
            body = md_table(shown.round(4)) + "\n\n" + "\n".join(
                f"- {RUN_SPECS[k][1]}: Spearman ρ(training-set size, encoder movement) = "
                + (f"{v:+.2f}" if v is not None else "n/a (fewer than 3 distinct training-set sizes)")
                for k, v in rho.items())
            body += ("\n\nMovement = ||W_finetuned − W_pretrained|| / ||W_pretrained||, pooled over seeds; "
                     "most_moved pools each component over all layers (pretrained tensors only: the classifier and "
                     "pooler start random and are left out of the heatmaps). n_train is the size of the training "
                     "set each task was fine-tuned on.")
            sections.append(("Most-moved component per task and training-set size", body))
        view = layer_component_view(deltas)
        if not view.empty:
            extra["layer_component"] = view
            sections.append(("Layer x component, the paper's view (§3.7)", md_table(view) + "\n\n" + WEIGHTS_NOTE))
    seconds = time.perf_counter() - t0
    paths = _write(name, cfg, root, rs, table, scores, notes, header, sections, extra, seconds, figures,
                   report_only=not train)
    _say(progress, f"{name}: wrote {paths['md']}")
    return ExperimentResult(name=name, table=table, paths=paths,
                            runs={r.label: r.run_dir for r in rs}, extra=extra)


def _finetune_frame(rs: list[_Run]):
    import pandas as pd

    keys = ("task", "pretrain_seed", "seed", "status", "frozen", "paper_score", "glue_score", "collapsed",
            "majority_paper_score", "n_train", "n_eval", "epochs_run", "eval_note", "run_dir")
    return pd.DataFrame([{"label": r.label, **{k: f.get(k) for k in keys}} for r in rs for f in r.ft],
                        columns=["label", *keys])


def _with_frozen_delta(table, scores):
    """Append the per-task difference high − baseline of the frozen probe."""
    import pandas as pd

    ours = scores[scores["source"] == "ours"].set_index("label")
    if not {"baseline", "teacher-high"} <= set(ours.index):
        return table
    row = {c: "" for c in table.columns}
    row.update(model=ours.loc["baseline", "model"], strategy="Δ high − baseline", source="delta")
    base_disp = table[(table["source"] == "ours") & (table["strategy"] == RUN_SPECS["baseline"][1])].iloc[0]
    for col in [TASK_LABEL[t] for t in TASK_ORDER] + ["Total"]:
        a, b = ours.loc["teacher-high"].get(col), ours.loc["baseline"].get(col)
        # A task without scores keeps its reason (absent / not run) instead of a number.
        row[col] = f"{a - b:+.2f}" if _num(a) and _num(b) else base_disp[col]
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


# ---- the public entry points ---------------------------------------------------------------------------------
def table1(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Teacher-masking: random baseline vs high, low, mid, marginal, alternating (the paper's Table 1)."""
    return _experiment("table1", cfg, root=root, progress=progress, train=train)


def static(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Beyond the paper: random masks kept every epoch (masking.static) beside random, high and low teacher-masking,
    which are static too: separates what the static masks do (memorised on a small corpus) from the entropy."""
    return _experiment("static", cfg, root=root, progress=progress, train=train)


def beyond(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Beyond the paper: masked-view entropy and sampled selection from the teacher, 80/10/10 and excess-loss
    self-masking, against random masking at 1x and 2x steps (the compute figure)."""
    return _experiment("beyond", cfg, root=root, progress=progress, train=train)


def table2(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Self-masking: baseline, teacher-high, self high cold, self high init (the paper's Table 2)."""
    return _experiment("table2", cfg, root=root, progress=progress, train=train)


def kd(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
       ) -> ExperimentResult:
    """KD: baseline, self high init without KD, KD-only (random + KD), complete, after-init."""
    return _experiment("kd", cfg, root=root, progress=progress, train=train)


def mask_rate(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
              ) -> ExperimentResult:
    """High and low teacher-masking at 15%, 40% and one token per row."""
    return _experiment("mask-rate", cfg, root=root, progress=progress, train=train)


def frozen(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
           ) -> ExperimentResult:
    """Frozen-encoder probe of baseline and teacher-high, with the per-task delta high − baseline."""
    return _experiment("frozen", cfg, root=root, progress=progress, train=train)


def weights(cfg: PretrainConfig, *, root=None, progress: bool = True, train: bool = True
            ) -> ExperimentResult:
    """Fine-tuned vs pretrained weights of baseline and teacher-high: heatmaps, most-moved component per task."""
    return _experiment("weights", cfg, root=root, progress=progress, train=train)


def corpus(cfg: PretrainConfig, corpus_name: str | None = None, *, root=None, progress: bool = True,
           train: bool = True) -> ExperimentResult:
    """High self-init vs baseline pretrained on another corpus ('NAME[:CONFIG[:SPLITS]]'); an unavailable corpus
    gives a table that says so instead of an error."""
    return _experiment("corpus", cfg, root=root, progress=progress, corpus_name=corpus_name, train=train)


# ---- the small-scale recipe search (issue 5: students that leave the unigram plateau on a CPU) -------------------
_NO_DROPOUT = {"model.overrides.hidden_dropout_prob": 0, "model.overrides.attention_probs_dropout_prob": 0}
# Every recipe: random masking on the whole offline corpus, a held-out curve point every 250 steps.
PLATEAU_COMMON = {"data.max_articles": None, "masking.strategy": "random", "train.eval_steps": 250,
                  "train.save_steps": 500, "train.logging_steps": 50}
# label -> (overrides on the profile, why it was tried). Order = the order they were measured.
RECIPES: dict[str, tuple[dict, str]] = {
    "profile": ({"train.max_steps": 300}, "the profile's own recipe (tiny: lr 1e-3, beta2 0.98, dropout 0.1)"),
    "no-dropout-2k": ({**_NO_DROPOUT, "train.max_steps": 2000}, "dropout off: a 2x128 model has nothing to regularise"),
    "no-dropout-mask40": ({**_NO_DROPOUT, "masking.ratio": 0.4, "train.max_steps": 2000},
                          "and 40% masking: 2.7x the targets per step (Wettig et al. 2023)"),
    "no-dropout-4k": ({**_NO_DROPOUT, "train.max_steps": 4000}, "dropout off, a 4,000-step schedule"),
    "seq32": ({**_NO_DROPOUT, "data.seq_len": 32, "train.batch_size": 128, "train.max_steps": 3000},
              "32-token rows, batch 128 (same tokens per step): the neighbours are 1/32 of a row, not 1/128"),
    "glue-text": ({**_NO_DROPOUT, "data.extra_text": ["glue-train"], "train.max_steps": 4000},
                  "GLUE training sentences added: 3.6x the text, fewer epochs over it"),
    "seq64": ({**_NO_DROPOUT, "data.seq_len": 64, "train.batch_size": 64, "train.max_steps": 3000},
              "64-token rows, batch 64: between the two"),
    # On cpu-wiki (all of WikiText-2, its 5 x 32 short phase): its own batch (32 rows = 160 short rows) stayed on
    # the plateau to step 2,500 of 5,230, where cpu-long's 128 rows of 32 left it at ~1,000-1,750 (having seen each
    # row 8-15 times; cpu-wiki's 5x larger corpus had been seen 4 times). Adam moves the weights by about lr per
    # update whatever the batch, so smaller batches give more updates for the same compute:
    "wiki-b16": ({"train.batch_size": 16, "train.max_steps": 3000},
                 "cpu-wiki, 16 rows (80 short rows of 32) per step: 2x the updates per epoch"),
    "wiki-b8": ({"train.batch_size": 8, "train.max_steps": 3000},
                "cpu-wiki, 8 rows (40 short rows of 32) per step: 4x the updates per epoch"),
    # Neither left it by step 1,500 / 1,250. Is it the repetition? cpu-long's corpus is the size of 122 articles:
    "wiki-small": ({"data.max_articles": 122, "train.max_steps": 3000},
                   "cpu-wiki on 122 articles (cpu-long's corpus size, ~6x fewer rows): each row seen ~6x as often"),
    "wiki-lr3e-3": ({"train.lr": 3e-3, "train.max_steps": 3000}, "cpu-wiki at 3x the learning rate"),
}


def plateau_configs(cfg: PretrainConfig, labels=None) -> list[tuple[str, PretrainConfig]]:
    """(label, config) of each recipe of the search, derived from the resolved profile config `cfg`."""
    labels = list(RECIPES) if labels is None else list(labels)
    bad = [x for x in labels if x not in RECIPES]
    if bad:
        raise ExperimentError(f"unknown recipe(s) {', '.join(bad)}; choose from {', '.join(RECIPES)}")
    out = []
    for label in labels:
        over = {**PLATEAU_COMMON, **RECIPES[label][0]}
        if "data.seq_len" in over:  # a recipe's own row length is trained whole (a profile's short phase may
            over.setdefault("train.short_rows", 1)  # not divide it); 1 is the default, so no hash moves
        c = validate(apply_overrides(cfg, over))
        c.name = f"plateau-{label}"
        out.append((label, c))
    return out


def first_exit(curve: list[dict]) -> int | None:
    """The first curve step that meets the plateau-exit criterion (twice the unigram rate, entropy s.d. >= 0.5)."""
    for p in curve:
        if p["heldout_accuracy"] >= 2 * p["unigram_accuracy"] and p["entropy_sd"] >= 0.5:
            return int(p["step"])
    return None


def plateau(cfg: PretrainConfig, *, root=None, progress: bool = True, recipes=None,
            train: bool = True) -> ExperimentResult:
    """Pretrain (or find) every recipe of the search with random masking and held-out learning curves; write
    plateau.md/.json (steps, wall time, final held-out accuracy vs unigram, entropy spread, the first step that
    left the plateau) and plateau-curves.png. No fine-tuning: the question is whether the student learns context.

    train=False trains nothing: it reports what exists, including runs still going or stopped early (from their
    logs/curve.json, status 'stopped at step N'), so a search running in the background can be looked at."""
    import pandas as pd

    from entmask.pretrain import pretrain, run_folder

    rows, curves = [], {}
    specs = plateau_configs(cfg, recipes)
    for i, (label, c) in enumerate(specs, 1):
        if train:
            _say(progress, f"plateau: {label} ({i}/{len(specs)}, {c.name}-{c.short_hash()})")
            run = pretrain(c, root=root, progress=progress)
        else:
            run = run_folder(c, "pretrain", root)
        m = runs.read_json(run / "metrics.json") if (run / "metrics.json").exists() else None
        partial = run / "logs" / "curve.json"
        curve = m.get("curve", []) if m else (runs.read_json(partial) if partial.exists() else [])
        curves[label] = curve
        last = m or (curve[-1] if curve else {})
        status = "finished" if m else (f"unfinished, at step {curve[-1]['step']}" if curve else "not run")
        rows.append({"recipe": label, "why": RECIPES[label][1], "status": status, "model": c.model.preset,
                     "lr": c.train.lr, "batch": c.train.batch_size * c.train.grad_accum, "seq_len": c.data.seq_len,
                     "mask_ratio": c.masking.ratio, "steps": m["steps"] if m else last.get("step"),
                     "train_minutes": wall_minutes(m),
                     "heldout_accuracy": last.get("heldout_accuracy"), "unigram_accuracy": last.get("unigram_accuracy"),
                     "entropy_sd": last.get("entropy_sd"), "left_plateau": last.get("left_plateau"),
                     "first_exit_step": first_exit(curve), "run": str(run), "hash": c.short_hash()})
    df = pd.DataFrame(rows)
    out = runs.results_dir(cfg.profile, root) / "plateau"
    shown = df.drop(columns=["run", "hash"]).copy()
    for k in ("heldout_accuracy", "unigram_accuracy"):
        shown[k] = shown[k].map(_pct)
    shown["entropy_sd"] = shown["entropy_sd"].map(lambda x: "" if x is None or x != x else f"{x:.2f}")
    shown["train_minutes"] = shown["train_minutes"].map(lambda x: "" if x is None or x != x else f"{x:.1f}")
    for k in ("steps", "first_exit_step"):
        shown[k] = shown[k].map(lambda x: "" if x is None or x != x else str(int(x)))
    head = (f"# Plateau search ({cfg.profile} profile + recipe overrides)\n\nLeft the plateau = held-out masked "
            f"accuracy >= 2x the unigram rate and per-position entropy s.d. >= 0.5 nats (issue 5). "
            f"`first_exit_step`: first curve point (every {PLATEAU_COMMON['train.eval_steps']} steps, on "
            f"{cfg.train.eval_rows} test rows) meeting it. An unfinished run (still going, or stopped) shows its last curve point.\n\n")
    runs.atomic_write_text(out.with_suffix(".md"), head + md_table(shown) + "\n")
    runs.write_json(out.with_suffix(".json"), {"rows": rows, "curves": curves, "common": PLATEAU_COMMON})
    paths = {"md": out.with_suffix(".md"), "json": out.with_suffix(".json")}
    paths.update({f"curves_{k}": v for k, v in plot_plateau(curves, out.with_name("plateau-curves")).items()})
    return ExperimentResult("plateau", shown, paths, {}, {"scores": df})


def plot_plateau(curves: dict, stem: Path) -> dict:
    """Held-out masked accuracy as a multiple of each run's own unigram rate (left; recipes with other row lengths
    have other rates) and entropy s.d. (right) against step, one line per recipe: a student has left the plateau
    once it is above both dashed lines."""
    if not any(curves.values()):
        return {}
    fig = _figure(10, 3.6)
    ax_acc, ax_sd = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for label, pts in curves.items():
        if not pts:
            continue
        steps = [p["step"] for p in pts]
        ratio = [p["heldout_accuracy"] / p["unigram_accuracy"] if p["unigram_accuracy"] else float("nan")
                 for p in pts]
        ax_acc.plot(steps, ratio, marker=".", lw=1.2, label=label)
        ax_sd.plot(steps, [p["entropy_sd"] for p in pts], marker=".", lw=1.2, label=label)
    ax_acc.axhline(1, color="grey", ls=":", lw=1, label="unigram rate")
    ax_acc.axhline(2, color="black", ls="--", lw=1, label="2 x unigram (criterion)")
    ax_sd.axhline(0.5, color="black", ls="--", lw=1, label="0.5 nats (criterion)")
    ax_acc.set(xlabel="optimizer step", ylabel="held-out masked accuracy / unigram rate", title="context learned?")
    ax_sd.set(xlabel="optimizer step", ylabel="entropy s.d. over positions (nats)", title="entropies vary?")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, stem)


# ---- the paper's claims, judged by GLUE on the runs that finished ----------------------------------------------
# (id, the paper's words, section, results file, model row, reference row, expected sign of Total(model) − Total(ref))
CLAIMS: tuple = (
    ("high>random", "high-entropy teacher masking improves over random masking (2-3 points)", "3.1", "table1",
     "teacher-high", "baseline", +1),
    ("low>random", "low-entropy masking also improves over random", "3.1", "table1", "teacher-low", "baseline", +1),
    ("high>low", "... but not as much as high-entropy masking", "3.1", "table1", "teacher-high", "teacher-low", +1),
    ("marg<random", "marginal masking hurts the smaller model (BERTlet)", "3.1", "table1", "teacher-marginal",
     "baseline", -1),
    ("alt<random", "alternating masking hurts the smaller model (BERTlet)", "3.1", "table1", "teacher-alternating",
     "baseline", -1),
    ("mid<random", "mid-entropy masking deteriorates strongly", "3.1", "table1", "teacher-mid", "baseline", -1),
    ("cold<random", "self-masking from a cold start deteriorates", "3.2", "table2", "self-high-cold", "baseline", -1),
    ("init>random", "self-masking after a teacher epoch improves over the baseline (BERTlet +4)", "3.2", "table2",
     "self-high-init", "baseline", +1),
    ("init>high", "... and by about 1 point over teacher-masked high entropy", "3.2", "table2", "self-high-init",
     "teacher-high", +1),
    # Controls, not claims of the paper: teacher masks are static (§2.2), so "high beats random" mixes the entropy
    # with the staticness; against random masks that are static too, only the entropy differs.
    ("high>static", "control (not in the paper): high-entropy masks beat random masks that are static too", "3.1",
     "static", "teacher-high", "random-static", +1),
    ("low>static", "control (not in the paper): low-entropy masks beat random masks that are static too", "3.1",
     "static", "teacher-low", "random-static", +1),
)


def unit_key(f) -> tuple[int, int]:
    """(pretraining seed, fine-tuning seed) of a fine-tuning record (dict or pandas row); a missing or NaN
    pretraining seed (results written before pretraining seeds were recorded) is seed 0."""
    ps = f.get("pretrain_seed")
    return (0 if ps is None or (isinstance(ps, float) and math.isnan(ps)) else int(ps), int(f["seed"]))


CONTROLS = ("high>static", "low>static")  # rows of CLAIMS that are not claims of the paper


def tasks_above_majority(finetune: list[dict], rows: tuple[str, str], tasks: list[str], units: list[tuple]
                         ) -> list[str]:
    """The tasks of `tasks` on which, in every unit (pretraining seed, fine-tuning seed) of `units`, the mean score
    of the two compared `rows` beats the majority class on the same examples and not both classifiers collapsed.

    Where both classifiers are majority guessers a task tests no pretraining, and a collapsed row can outscore a
    working one (MRPC's F1 rewards always saying "paraphrase"). The rule is symmetric in the two rows, so when they
    do not differ (exchangeable rows) Δ stays symmetric about 0 among the chosen tasks: the choice cannot make a
    difference appear. Choosing by one row's own score would: a reference row that was lucky on a borderline task
    gets it in, which pulls Δ = model − reference down. A sensitivity analysis beside the Total, not the paper's
    measure. finetune: the records of a results file's extra["finetune"] (label, task, pretrain_seed, seed,
    status, paper_score, majority_paper_score, collapsed)."""
    score: dict = {}
    for f in finetune:
        if f.get("label") in rows and f.get("status") == "ok" and f.get("task") in tasks:
            score[(f["label"], f["task"], unit_key(f))] = (f.get("paper_score"), f.get("majority_paper_score"),
                                                           bool(f.get("collapsed")))

    def above(t, k):
        got = [score.get((r, t, k)) for r in rows]
        if any(g is None or not (_num(g[0]) and _num(g[1])) for g in got) or all(g[2] for g in got):
            return False
        return float(np.mean([g[0] for g in got])) > got[0][1]

    return [t for t in tasks if units and all(above(t, k) for k in units)]


def judge(delta: float, lo: float, hi: float, expected: int, plateau: bool = False, n_units: int = 2) -> tuple:
    """(verdict, why) of one claim from the 95% interval of Δ = Total(model) − Total(reference) that
    `bootstrap_total_delta` returns as `judged` (the wider of the two-level bootstrap CI and the t-interval over
    pretraining seeds). n_units: the number of pretraining seeds both rows finished; fine-tuning seeds of one
    pretrained model do not count, as they hold no pretraining noise. Only the sign is tested: a claimed size
    ("2-3 points") is for the reader to compare with Δ."""
    if plateau:
        return "unresolved", "a student on the unigram plateau: its GLUE scores test nothing"
    if n_units < 2:
        return "unresolved", "one pretraining seed only: the CI cannot include pretraining-seed noise"
    if lo > 0 or hi < 0:
        sign = 1 if lo > 0 else -1
        ok = sign == expected
        return ("supported" if ok else "contradicted"), (f"Δ {delta:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}] excludes 0 "
                                                         f"{'in the claimed direction' if ok else 'in the other direction'}")
    return "unresolved", f"Δ {delta:+.2f}, 95% CI [{lo:+.2f}, {hi:+.2f}] contains 0"


def _fmt_ci(ci) -> str:
    return f"[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else ""


VERDICT_COLOR = {"supported": "#55A868", "contradicted": "#C44E52", "unresolved": "#8C8C8C"}


def _ci(text) -> tuple[float, float] | None:
    """'[-0.79, +2.46]' -> (-0.79, 2.46); anything else (no CI) -> None."""
    try:
        lo, hi = str(text).strip("[]").split(",")
        return float(lo), float(hi)
    except ValueError:
        return None


# ---- the pooled mixed model (entmask.stats): the primary verdict ------------------------------------------------
def _pooled_units(name: str, d: dict, cfg: PretrainConfig, root) -> tuple[list[dict], list[str], list[str]]:
    """(records, rows, notes): the fine-tuning records results file `name` gives the pooled model, the rows looked
    at, and what was said. The file's own records, plus every finished unit of its matrix's rows at its pretraining
    and fine-tuning seeds that it left out: a --report-only table drops a row unfinished at any seed whole, but the
    units of it that finished are data. Read only (finished metrics.json; no lock, nothing trained). Only where the
    profile's row hashes are those the file recorded (a file without them, e.g. from an older version: its own
    records only)."""
    from entmask.finetune import finetune_task
    from entmask.pretrain import run_folder

    recs = [f for f in d.get("extra", {}).get("finetune", []) if f.get("status") == "ok"]
    rows = list(d.get("runs", {}))
    hashes = d.get("config_hashes") or {}
    if not hashes:
        return recs, rows, []
    pseeds, fseeds = d.get("pretrain_seeds") or [0], d.get("seeds") or [0]
    try:
        specs = matrix(name, cfg)
    except Exception as e:  # noqa: BLE001 - the file's records are still there
        return recs, rows, [f"the rows of `{name}` could not be listed ({str(e)[:100]}): its records only"]
    if any(h not in {at_seed(c, s).short_hash() for s in pseeds} for label, c in specs
           for h in [hashes.get(label)] if h is not None):
        return recs, rows, [f"`{name}` was written under another configuration than this profile's (row hashes "
                            f"differ): only its own records are pooled"]
    have = {(f["label"], f["task"]) + unit_key(f) for f in recs}
    absent, added = set(), 0
    for label, c in specs:
        rows += [label] if label not in rows else []
        for ps in pseeds:
            run_dir = run_folder(at_seed(c, ps), "pretrain", root)
            if runs.finished_metrics(run_dir) is None:
                continue
            for task in d.get("tasks", []):
                for fs in fseeds:
                    if task in absent or (label, task, ps, fs) in have:
                        continue
                    f = finetune_task(run_dir / "model", task, c.finetune, fs, profile=c.profile, name=run_dir.name,
                                      data_dir=c.data.data_dir, root=root, frozen=name == "frozen", progress=False,
                                      train=False)
                    if f.get("status") == "absent":
                        absent.add(task)
                    elif _num(f.get("paper_score")):
                        recs.append({**f, "label": label, "task": task, "pretrain_seed": ps, "seed": fs,
                                     "status": "ok"})
                        added += 1
    return recs, rows, ([f"{added} finished fine-tuning run(s) `{name}` left out were read from the run folders"]
                        if added else [])


def _pooled_fit(files: dict, cfg: PretrainConfig, root) -> dict:
    """One pooled model over every row of the results files `files` ({name: loaded json}): {"fit": stats.Pooled
    or None, "units": DataFrame, "files": the names pooled, "text": a paragraph for the report (structure chosen
    and why, units missing)}. A row in several files (random and high are in table1, table2 and static) is the same
    run, so its units count once; a file whose row hashes differ from another's for the same row (written under
    another configuration) is left out, with a note. Never raises: a failure is said in "text", and the claims get
    no pooled verdict."""
    from entmask import stats

    notes: list[str] = []
    fit, units, pooled_files = None, None, []
    try:
        recs, rows, want, hashes = [], [], {}, {}
        for name, d in sorted(files.items()):
            own = d.get("config_hashes") or {}
            clash = sorted(label for label, h in own.items() if hashes.get(label, h) != h)
            if clash:
                notes.append(f"`{name}` left out: its {', '.join(clash)} hash differs from another file's")
                continue
            hashes.update(own)
            r, labels, said = _pooled_units(name, d, cfg, root)
            recs += r
            notes += said
            pooled_files.append(name)
            for label in labels:
                rows += [label] if label not in rows else []
                seeds = want.setdefault(label, {})
                for ps in d.get("pretrain_seeds") or [0]:
                    seeds.setdefault(ps, set()).update(d.get("seeds") or [0])
        units, dropped = stats.unit_totals(recs)
        notes += dropped
        for label in rows:  # every unit some file's seeds ask for that did not finish
            u = units[units["row"] == label]
            if not len(u):
                notes.append(f"{RUN_SPECS[label][1]}: no finished unit")
                continue
            for ps, fseeds in sorted(want[label].items()):
                left = sorted(fseeds - set(u[u["pseed"] == ps]["fseed"]))
                if left:
                    notes.append(f"{RUN_SPECS[label][1]} at pretraining seed {ps}: fine-tuning seed(s) "
                                 f"{', '.join(map(str, left))} not finished")
        if units["row"].nunique() >= 2:
            fit = stats.fit(units)
    except Exception as e:  # noqa: BLE001 - the conservative verdicts stand without it
        notes.append(f"the pooled fit failed ({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})")
    names = ", ".join(f"`{n}`" for n in pooled_files) or "no file"
    text = f"{names}: " + (stats.describe(fit) if fit is not None else "no pooled fit (fewer than two rows "
                                                                        "with a finished unit).")
    if notes:
        text += " Units: " + "; ".join(notes) + "."
    elif fit is not None:
        text += " Every unit at its seeds finished."
    return {"fit": fit, "units": units, "text": text, "files": pooled_files}


def _pooled_claim(pf: dict | None, model: str, ref: str, sign: int, plateau: bool) -> dict:
    """The pooled columns of one claim: Δ = β_model − β_ref with its t interval (stats.Pooled.contrast), judged by
    judge's rules (sign, plateau, at least two pretraining seeds in common), and what the interval excludes."""
    fit = (pf or {}).get("fit")
    if fit is None:
        return {"pooled verdict": "unresolved", "pooled why": "no pooled fit of this table"}
    gone = [RUN_SPECS[x][1] for x in (model, ref) if x not in fit.beta.index]
    if gone:
        return {"pooled verdict": "unresolved", "pooled why": f"no finished unit of {', '.join(gone)}"}
    c = fit.contrast(model, ref, sign)
    verdict, why = judge(c["delta"], c["lo"], c["hi"], sign, plateau, len(c["common_seeds"]))
    return {"pooled Δ": round(c["delta"], 2), "pooled 95% CI": _fmt_ci((c["lo"], c["hi"])), "pooled verdict": verdict,
            "excludes": c["excludes"], "pooled why": f"{why}; SE {c['se']:.2f}, t {c['t']:.2f} on {c['df']:.3g} df",
            "pooled df": c["df"]}


def _power_table(pooled: dict):
    """Power to see a 2-point Δ (the paper's 'high > random' is 2-3 points) at 2-8 pretraining seeds, with the
    SD of one seed's Δ each pooled fit estimates: the conservative rule vs the pooled model (stats.power)."""
    import pandas as pd

    from entmask import stats

    out, seen = [], set()
    for name, pf in sorted(pooled.items()):
        if id(pf) in seen:  # one shared fit: one row
            continue
        seen.add(id(pf))
        name = " + ".join(pf.get("files") or [name])
        fit, units = pf.get("fit"), pf.get("units")
        if fit is None or fit.structure not in (stats.HOMO, stats.HETERO):
            continue
        n_ft = max(1, int(units.groupby(["row", "pseed"]).size().median()))
        sd = fit.sd_seed_delta(n_ft)
        row = {"table": name, "SD of one seed's Δ": round(sd, 2), "fine-tuning seeds": n_ft}
        for n in (2, 3, 4, 8):
            p = stats.power(sd, 2.0, n, n_rows=len(fit.beta))
            row[f"{n} seeds"] = f"{p['conservative']:.2f} / {p['pooled']:.2f}"
        out.append(row)
    return pd.DataFrame(out)


def plot_verdicts(table, stem: Path) -> dict:
    """Forest plot of the claims: the pooled model's Δ and 95% CI (filled circle, thick; the primary verdict),
    the conservative per-claim interval on the Total (hollow circle, thin) and on the tasks above majority (hollow
    square, thin), each coloured by its verdict; the arrow at the left says which way the paper claims. Claims
    with no Δ (not run, not finished) are listed with their reason instead of a point."""
    if table is None or not len(table):
        return {}
    n = len(table)
    fig = _figure(8.6, 0.5 * n + 1.3)
    ax = fig.add_subplot(111)
    labels = []
    for i, row in enumerate(table.to_dict("records")):
        y = n - 1 - i
        sign = next(c[6] for c in CLAIMS if c[0] == row["claim"])
        control = row["claim"] in CONTROLS
        labels.append(f"{'control: ' if control else ''}{row['compares']}  ({'↑' if sign > 0 else '↓'} "
                      f"{'expected' if control else 'claimed'})")
        drawn = False
        for off, (dcol, cicol, vcol, marker), primary in (
                ((0.2, ("pooled Δ", "pooled 95% CI", "pooled verdict", "o"), True),
                 (0.0, ("Δ Total", "95% CI", "verdict", "o"), False),
                 (-0.2, ("Δ (tasks above majority)", "95% CI (tasks above majority)",
                         "verdict (tasks above majority)", "s"), False))):
            ci, d = _ci(row.get(cicol)), row.get(dcol)
            if ci is None or not _num(d):
                continue
            color = VERDICT_COLOR.get(row.get(vcol), "#8C8C8C")
            ax.errorbar([d], [y + off], xerr=[[d - ci[0]], [ci[1] - d]], fmt=marker, color=color,
                        ms=6 if primary else 4, capsize=3 if primary else 2, lw=2.2 if primary else 0.8,
                        mfc=color if primary else "white")
            drawn = True
        if not drawn:
            ax.text(0, y, str(row.get("why", "")), ha="center", va="center", fontsize=7, color="#555555",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(labels[::-1], fontsize=8)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlabel("Δ GLUE Total (model row − reference row), points; bars: 95% intervals (pooled mixed model; "
                  "conservative: the wider of the two-level bootstrap and the seed t-interval)", fontsize=8)
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], marker="o", ls="-", lw=2.2, color="black", label="pooled model (primary)"),
               Line2D([], [], marker="o", ls="-", lw=0.8, color="black", mfc="white", label="conservative, Total"),
               Line2D([], [], marker="s", ls="-", lw=0.8, color="black", mfc="white",
                      label="conservative, tasks above majority")]
    handles += [Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in VERDICT_COLOR.items()]
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 0.9 / (n + 3)),
              ncol=3, frameon=False)
    ax.set_title("The paper's claims at this profile: Δ and 95% intervals, coloured by verdict", fontsize=9)
    return _save(fig, stem)


def verdicts(cfg: PretrainConfig, *, root=None, progress: bool = True) -> ExperimentResult:
    """Each of the paper's §3.1-3.2 claims marked supported, contradicted or unresolved from the finished Table 1
    and Table 2 results of this profile (GLUE Totals). Primary ("pooled ..." columns): a linear mixed model fitted
    once over all the rows of every results file (entmask.stats; _pooled_fit), the claim a contrast of two rows.
    Conservative ("verdict", "95% CI", ...): the wider of a two-level bootstrap over seeds and examples and a
    t-interval over pretraining seeds, between the two rows a claim compares. Trains nothing: run
    `entmask experiment table1` / `table2` first."""
    import pandas as pd

    from entmask.analysis import bootstrap_total_delta, predictions_of

    out_dir = runs.results_dir(cfg.profile, root)
    loaded = {}
    for name in sorted({c[3] for c in CLAIMS}):
        f = out_dir / f"{name}.json"
        if f.exists():
            loaded[name] = runs.read_json(f)
    if not loaded:
        raise ExperimentError(f"no table1, table2 or static results in {out_dir}; run `entmask experiment table1 "
                              f"--profile {cfg.profile}` (and table2, static) first")
    inputs = [f"`{n}` (pretraining seeds {d.get('pretrain_seeds', '?')}, written {d.get('created', '?')}"
              + (", **report only**: rows not finished were left out" if d.get("report_only") else "") + ")"
              for n, d in sorted(loaded.items())]
    shared = _pooled_fit(loaded, cfg, root)  # one model over every row of every file
    pooled = {name: shared for name in shared["files"]}
    from entmask.blimp_claims import blimp_claim, blimp_fit

    bfit = blimp_fit(loaded, cfg, root)  # the second endpoint: one unit per scored student
    rows = []
    for cid, words, sec, table, model, ref, sign in CLAIMS:
        row = {"claim": cid, "paper (§)": f"{words} (§{sec})" if cid not in CONTROLS else words,
               "compares": f"{RUN_SPECS[model][1]} vs {RUN_SPECS[ref][1]}"}
        d = loaded.get(table)
        if d is None:
            rows.append({**row, "pooled verdict": "unresolved", "pooled why": f"{table} has not been run",
                         "verdict": "unresolved", "why": f"{table} has not been run",
                         "verdict (tasks above majority)": "unresolved",
                         "why (tasks above majority)": f"{table} has not been run"})
            continue
        ft = pd.DataFrame(d["extra"].get("finetune", []))
        tasks = [t for t in TASK_ORDER if t in d["tasks"]]
        units = {}
        for label in (model, ref):
            g = ft[(ft["label"] == label) & (ft["status"] == "ok")] if len(ft) else ft
            by = {}
            for f in g.to_dict("records"):
                by.setdefault(unit_key(f), {})[f["task"]] = f["run_dir"]
            units[label] = by
        info = d["runs"]
        # The recipe is judged by the random-masked baseline (a strategy-masked row's held-out accuracy is under
        # masks it never trained on: random_masked); tables written before that field judge both rows.
        base = [x for x in ("baseline",) if x in info and info[x].get("random_masked", True)]
        plateau = any(info.get(x, {}).get("left_plateau") is False for x in (base or (model, ref)))
        row.update(_pooled_claim(pooled.get(table), model, ref, sign, plateau))
        row.update(blimp_claim(bfit, model, ref, sign, plateau))
        common = sorted(set(units[model]) & set(units[ref]))
        cov = [t for t in tasks if common and all(t in units[model][k] and t in units[ref][k] for k in common)]
        if not common or not cov:
            empty = [RUN_SPECS[x][1] for x in (model, ref) if not units[x]]
            why = f"not finished: {', '.join(empty)}" if empty else "the rows have no finished fine-tuning in common"
            if empty and d.get("report_only"):  # the row may have finished at some seeds: say which report left it out
                why = (f"not finished at every pretraining seed {d.get('pretrain_seeds')}: {', '.join(empty)} (left "
                       f"out of the report-only {table})")
            rows.append({**row, "verdict": "unresolved", "why": why, "verdict (tasks above majority)": "unresolved",
                         "why (tasks above majority)": why})
            continue
        pm = [{t: predictions_of(units[model][k][t]) for t in cov} for k in common]
        pb = [{t: predictions_of(units[ref][k][t]) for t in cov} for k in common]
        b = bootstrap_total_delta(pm, pb, metric="paper", n=cfg.finetune.bootstrap or 1000, seed=0,
                                  groups=[k[0] for k in common])
        n_pre = len({k[0] for k in common})  # pretraining seeds: the units a claim about pretraining needs
        verdict, why = judge(b["delta"], *b["judged"], sign, plateau, n_pre)
        row.update({"Δ Total": round(b["delta"], 2), "95% CI": _fmt_ci(b["judged"]),
                    "bootstrap CI": _fmt_ci((b["lo"], b["hi"])), "seed t-interval": _fmt_ci(b["t_interval"]),
                    "per-seed Δ": ", ".join(f"{x:+.2f}" for x in b["seed_deltas"]), "pretraining seeds": n_pre,
                    "tasks": ", ".join(TASK_LABEL[t] for t in cov), "verdict": verdict, "why": why})
        # The same claim on the tasks where the two rows together beat the majority class: a Total over tasks where
        # every classifier collapsed measures who collapses most profitably, not the pretraining.
        inf = tasks_above_majority(d["extra"].get("finetune", []), (model, ref), cov, common)
        if not inf:
            row.update({"tasks above majority": "none", "verdict (tasks above majority)": "unresolved",
                        "why (tasks above majority)": "on no task do the two rows' mean scores beat the majority "
                                                      "class (not both collapsed) at every seed"})
        else:
            bi = b if inf == cov else bootstrap_total_delta(
                [{t: p[t] for t in inf} for p in pm], [{t: p[t] for t in inf} for p in pb], metric="paper",
                n=cfg.finetune.bootstrap or 1000, seed=0, groups=[k[0] for k in common])
            vi, wi = judge(bi["delta"], *bi["judged"], sign, plateau, n_pre)
            row.update({"tasks above majority": ", ".join(TASK_LABEL[t] for t in inf),
                        "Δ (tasks above majority)": round(bi["delta"], 2),
                        "95% CI (tasks above majority)": _fmt_ci(bi["judged"]),
                        "verdict (tasks above majority)": vi, "why (tasks above majority)": wi})
        rows.append(row)
    table = pd.DataFrame(rows)
    if "pretraining seeds" in table:
        table["pretraining seeds"] = table["pretraining seeds"].astype("Int64")  # a count, also where a claim has none (NA, not 1.0)
    shown = table.copy()  # signed, two decimals, as the other tables print a Δ (the numeric table stays numeric)
    for col in ("pooled Δ", "Δ Total", "Δ (tasks above majority)", "BLiMP Δ"):
        if col in shown:
            shown[col] = [f"{v:+.2f}" if _num(v) else "" for v in shown[col]]
    power = _power_table(pooled)
    lines = [f"# The paper's claims at profile `{cfg.profile}`", "",
             "Judged by GLUE Totals (the paper's metric x 100, mean over the tasks), twice.", "",
             "Read from: " + "; ".join(inputs) + ".", "",
             "## Primary: one pooled mixed model over every row", "",
             "Every finished unit (row, pretraining seed, fine-tuning seed) of the results files, all their rows at "
             "once (a row that is in several files, such as random, is one run and counts once), "
             "is one GLUE Total in a linear mixed model (REML, statsmodels MixedLM; `entmask.stats`): a fixed "
             "effect per row, a random effect per pretraining seed (shared by every row at that seed), one per "
             "student (row x pretraining seed, shared by its fine-tuning seeds), and the fine-tuning noise as the "
             "residual. A claim is the contrast of two rows' effects, with a t interval whose degrees of freedom "
             "count students, not fine-tunings (students − rows − (seeds − 1)): pooling lends every row's seeds to "
             "the estimate of the student noise, which the per-claim rule below, with two seeds, estimates from one "
             "degree of freedom. It assumes that noise is common to the rows; the variant that gives self-masking "
             "rows their own is fitted where the table has them and chosen only if its REML AIC is lower. "
             "Supported / contradicted: the interval excludes 0 in / against the claimed direction; unresolved "
             "otherwise, or with one pretraining seed or a row on the unigram plateau, as below. `excludes`: the "
             "effects outside the 95% interval, in the claim's direction (a gain for a claimed improvement, a drop "
             "for a claimed deterioration), thresholds rounded outward to 0.1 point.", ""]
    lines += [f"- {t}" for t in dict.fromkeys(pf["text"] for _, pf in sorted(pooled.items()))]
    lines += [f"- {note}" for note in ([] if pooled else [shared["text"]])] + [""]
    lines += [md_table(shown.reindex(columns=["claim", "compares", "pooled Δ", "pooled 95% CI", "pooled verdict",
                                              "excludes", "pooled why"]).astype(object).fillna("")), ""]
    lines += ["## BLiMP: zero-shot minimal pairs, no fine-tuning", "",
              "The same claims on each student's BLiMP accuracy (pseudo-log-likelihood of the grammatical vs the "
              "ungrammatical sentence; `entmask.blimp`, scored after pretraining): one pooled mixed model of the "
              "scored students (a fixed effect per row, a random effect per pretraining seed, the student as the "
              "residual: no fine-tuning noise), judged by the same rule; `pairs CI`: a paired bootstrap over the "
              "minimal pairs of the seeds both rows were scored at (the noise of a fixed subsample of pairs, not "
              "the seed noise).", "", f"- {bfit['text']}", ""]
    if bfit.get("fit") is not None:
        lines += [md_table(shown.reindex(columns=["claim", "compares", "BLiMP Δ", "BLiMP 95% CI", "BLiMP verdict",
                                                  "BLiMP excludes", "BLiMP pairs CI", "BLiMP why"])
                           .astype(object).fillna("")), ""]
    if len(power):
        lines += ["Power to see a true Δ of 2 points (the paper's 'high > random' is 2-3): the probability that "
                  "the 95% interval excludes 0 in its direction, conservative rule / pooled model, with the SD of "
                  "one pretraining seed's Δ each fit estimates (`stats.power`, noncentral t; the conservative "
                  "figure is the seed t-interval's, an upper bound for the rule).", "", md_table(power), ""]
    lines += ["## Conservative: per claim, the wider of a two-level bootstrap and a seed t-interval", "",
             "Judged by GLUE Totals (the paper's metric x 100, mean over the tasks both rows finished), with a "
             "95% interval that is the wider of two: a two-level paired bootstrap over seeds and validation "
             "examples (`bootstrap CI`), and a t-interval over the pretraining seeds (`seed t-interval`; with 2 "
             "seeds it has 1 degree of freedom, t = 12.71). The bootstrap alone is too narrow with few seeds: two "
             "seeds drawn with replacement give three outcomes, so it excludes 0 whenever both seeds' Δ share a "
             "sign, however far apart. Supported / contradicted: the 95% CI "
             "of Δ excludes 0 in / against the claimed direction (only the sign is tested; a claimed size is for "
             "the reader to compare with Δ); unresolved: it contains 0, only one pretraining seed has finished, a "
             "row is on the unigram plateau, or a row has not finished. Held-out MLM loss is not used: a strategy-masked student "
             "is tested on random masks it never trained on (and a static teacher-masked one can memorise its "
             "training rows: `exploration.mask_fit`), so the plateau is judged on the random-masked baseline. "
             "This rule judges each claim twice: on the Total of every task both rows finished (the "
             "paper's measure), and, as a sensitivity analysis, on the tasks where the mean score of the two rows "
             "beats the majority class, and not both collapsed, at every seed (`tasks_above_majority`): where every "
             "classifier collapses, a "
             "Total rewards the most profitable collapse. The rule is symmetric in the two rows, so it does not bias "
             "Δ; it was added after seeing the first seed, and the two judgments are not corrected for being two. "
             "The controls at the end are not claims of the paper.", "",
             "### On the Total of every task both rows finished (the paper's measure)", "",
             md_table(shown.reindex(columns=["claim", "paper (§)", "compares", "Δ Total", "95% CI", "bootstrap CI",
                                             "seed t-interval", "per-seed Δ", "pretraining seeds", "tasks", "verdict", "why"]).astype(object).fillna("")), "",
             "## Sensitivity: on the tasks where the two rows beat the majority class", "",
             md_table(shown.reindex(columns=["claim", "compares", "tasks above majority", "Δ (tasks above majority)",
                                             "95% CI (tasks above majority)", "verdict (tasks above majority)",
                                             "why (tasks above majority)"]).astype(object).fillna("")), "",
             "Teacher-masking rows train on static masks (§2.2); on a corpus small enough to memorise, a difference "
             "from random masking can come from the staticness rather than the entropy: `entmask experiment static` "
             "trains random masks kept every epoch as the control.", ""]
    teacher = next((d.get("teacher") for d in loaded.values() if d.get("teacher")), None)
    if teacher and teacher.get("ratio"):
        lines += [f"Teacher: held-out accuracy {_pct(teacher['teacher_heldout_accuracy'])} vs random student "
                  f"{_pct(teacher['student_heldout_accuracy'])} ({teacher['ratio']:.2f}x).", ""]
    stem = out_dir / "verdicts"
    paths = {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json"), "csv": stem.with_suffix(".csv")}
    paths.update(plot_verdicts(table, stem))
    if "png" in paths:
        lines += ["![The claims: Δ and 95% CI per claim, coloured by verdict](verdicts.png)", ""]
    runs.atomic_write_text(paths["md"], "\n".join(lines))
    runs.atomic_write_text(paths["csv"], table.to_csv(index=False))
    pf = shared  # one fit, keyed by the files it pooled
    fit = {} if pf["fit"] is None else {
        "structure": pf["fit"].structure, "variances": pf["fit"].components, "aic": pf["fit"].aic,
        "df": pf["fit"].df, "notes": pf["fit"].notes, "n_units": pf["fit"].n_units,
        "row_effects": {k: float(x) for k, x in pf["fit"].beta.items()}}
    fits = {" + ".join(pf["files"]) or "none": {"text": pf["text"], "files": pf["files"], **fit}}
    runs.write_json(paths["json"], {"profile": cfg.profile, "claims": rows, "teacher": teacher, "pooled": fits,
                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": runs.git_commit()})
    _say(progress, f"verdicts: wrote {paths['md']}")
    return ExperimentResult(name="verdicts", table=table, paths=paths)


# ---- learned or memorised? ---------------------------------------------------------------------------------------
MEMO_TABLES = ("table1", "table2", "static")  # the rows whose masks mask_fit can redraw (teacher, self, static)
MEMO_SPLITS = {"train": "training rows (seen)", "test": "held-out rows"}


def memorisation(cfg: PretrainConfig, *, root=None, progress: bool = True, tables=MEMO_TABLES,
                 max_rows: int | None = 512) -> ExperimentResult:
    """Each finished pretraining run of `tables`, at every pretraining seed, scored on the masks it trained with
    (`exploration.own_masks`: its teacher strategy, its own entropies for self-masking, its static random masks)
    and on random masks, over `max_rows` seeded training rows it saw and as many held-out rows it did not
    (`exploration.mask_fit`). Trains nothing and needs no GLUE: a run counts once its pretraining has finished.
    Writes runs/<profile>/results/memorisation.{md,csv,json,png,svg}."""
    import pandas as pd

    from entmask import exploration
    from entmask.models import ModelError
    from entmask.pretrain import run_folder

    t0 = time.perf_counter()
    tables = [t.strip() for t in tables.split(",")] if isinstance(tables, str) else list(tables or [])
    tables = [t for t in tables if t]
    bad = [t for t in tables if t not in POOLABLE]
    if bad or not tables:
        raise ExperimentError(f"memorisation scores the rows of {', '.join(POOLABLE)}, not "
                              f"{', '.join(map(repr, bad)) or 'an empty list'}")
    try:
        exploration.check_max_rows(max_rows)
    except ValueError as e:
        raise ExperimentError(f"memorisation: {e}") from None
    specs = _pooled_specs(list(tables), cfg)
    views = None
    rows, left = [], []
    for label, c in specs:
        own = exploration.own_masks(c.masking)
        text = RUN_SPECS[label.split(":")[-1]][1]  # _pooled_specs prefixes a label reused for another config
        for seed in pretrain_seeds(c):
            cs = at_seed(c, seed)
            run_dir = run_folder(cs, "pretrain", root)
            metrics = runs.finished_metrics(run_dir)
            if own is None or metrics is None:
                left.append((f"{text}, seed {seed}",
                             "masks mask_fit cannot redraw" if own is None else "pretraining not finished"))
                continue
            try:  # a finished run a user moved, damaged or wrote with another entmask: say so, score the rest
                runs.check_version(run_dir)
                model_dir = exploration.student_model_dir(run_dir)
            except (runs.RunError, ValueError) as e:
                left.append((f"{text}, seed {seed} ({run_dir.name})", f"finished, not scorable here: {e}"))
                continue
            if views is None:
                tdir = _built_teacher(cfg, root)
                views = {split: exploration.teacher_view(cfg, split=split, max_rows=max_rows, root=root,
                                                         progress=progress, teacher_dir=tdir) for split in MEMO_SPLITS}
            _say(progress, f"memorisation: {text} seed {seed} on {own} masks ({run_dir.name})")
            try:
                fit = exploration.mask_fit(cs, model_dir, strategies=list(dict.fromkeys([own, "random"])),
                                           root=root, progress=False, views=views)
            except (runs.RunError, ModelError, ValueError, OSError) as e:
                left.append((f"{text}, seed {seed} ({run_dir.name})",
                             f"finished but its model could not be scored: {str(e).splitlines()[0]}"))
                continue
            for f in fit.to_dict("records"):
                rows.append({"row": text, "pretrain_seed": seed, "masks": f["strategy"],
                             "own": f["strategy"] == own, "split": f["split"], "accuracy": f["accuracy"],
                             "loss": f["loss"], "masked_tokens": f["masked_tokens"],
                             "heldout_accuracy": metrics.get("heldout_accuracy"), "run": run_dir.name})
    if not rows:
        unreadable = [f"{r}: {w}" for r, w in left if w.startswith("finished but")]
        raise ExperimentError(f"no finished pretraining run of {', '.join(tables)} at profile {cfg.profile} could be "
                              f"scored" + (f" ({'; '.join(unreadable)})" if unreadable else "") + "; run `entmask "
                              f"experiment {','.join(tables)} --profile {cfg.profile}{set_args(cfg)}` first")
    scores = pd.DataFrame(rows)
    table = memorisation_table(scores)
    out_dir = runs.results_dir(cfg.profile, root)
    stem = out_dir / "memorisation"
    paths = {"md": stem.with_suffix(".md"), "json": stem.with_suffix(".json"), "csv": stem.with_suffix(".csv")}
    paths.update(plot_memorisation(scores, stem))
    n = {split: int(v.ids.shape[0]) for split, v in views.items()}
    lines = [f"# Learned or memorised? Each student on the masks it trained with (profile `{cfg.profile}`)", "",
             f"Each finished pretraining run scored on {n['train']:,} seeded training rows it saw and {n['test']:,} "
             "held-out rows it did not, every selected token replaced by [MASK] (`exploration.mask_fit`). **Own "
             "masks** are the ones it trained on: its strategy over the teacher's entropies (teacher-masking, static "
             "across epochs, paper §2.2), its strategy over its *own final* entropies (self-masking: its training "
             "masks moved as it learned, so these are its last ones), or its random masks drawn once per row "
             "(random-static). A student that learned scores alike on both splits; one that memorised its training "
             "rows' answers scores far higher on them. **Random masks** are a fresh random 15% draw (seed 0), not "
             "the held-out evaluation's fixed masks, so they differ from the tables' held-out accuracy by the draw "
             "(shown beside them).", "", md_table(table), ""]
    for why in dict.fromkeys(w for _, w in left):
        lines += [f"Not scored ({why}): " + "; ".join(r for r, w in left if w == why) + ".", ""]
    if "png" in paths:
        lines += ["![Own-mask accuracy on training vs held-out rows](memorisation.png)", ""]
    runs.atomic_write_text(paths["md"], "\n".join(lines))
    runs.atomic_write_text(paths["csv"], scores.to_csv(index=False))
    runs.write_json(paths["json"], {"profile": cfg.profile, "tables": list(tables), "rows": n,
                                    "not_scored": [{"run": r, "why": w} for r, w in left],
                                    "records": table.to_dict("records"), "scores": scores.to_dict("records"),
                                    "seconds": time.perf_counter() - t0,
                                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_commit": runs.git_commit()})
    _say(progress, f"memorisation: wrote {paths['md']}")
    return ExperimentResult(name="memorisation", table=table, paths=paths, extra={"scores": scores})


def _built_teacher(cfg: PretrainConfig, root=None) -> Path:
    """The teacher folder the runs trained with, never trained here: a report must not start a teacher run."""
    from entmask.pretrain import resolve_teacher, run_folder

    if cfg.teacher != "reference":
        return resolve_teacher(cfg, root, progress=False)
    ref = run_folder(cfg, "reference", root)
    if runs.finished_metrics(ref) is None or not (ref / "model" / "config.json").is_file():
        raise ExperimentError(f"memorisation reads the teacher's entropies, and the reference teacher {ref} is not "
                              f"built (or was moved): build it with `entmask reference --profile {cfg.profile}"
                              f"{set_args(cfg)}`")
    return ref / "model"


def memorisation_table(scores):
    """One line per (row, pretraining seed): accuracy (%) and loss on its own masks, training vs held-out rows,
    their gap, and its accuracy on random masks on both splits."""
    import pandas as pd

    out = []
    for (row, seed), g in scores.groupby(["row", "pretrain_seed"], sort=False):
        get = {(f["own"], f["split"]): f for f in g.to_dict("records")}
        own_tr, own_te = get[(True, "train")], get[(True, "test")]
        rnd_tr, rnd_te = get.get((False, "train"), own_tr), get.get((False, "test"), own_te)  # random's own = random
        out.append({"row": row, "pretrain seed": seed, "own masks": own_tr["masks"],
                    "own, training rows": round(100 * own_tr["accuracy"], 1),
                    "own, held-out rows": round(100 * own_te["accuracy"], 1),
                    "gap (points)": round(100 * (own_tr["accuracy"] - own_te["accuracy"]), 1),
                    "own loss, training / held-out": f"{own_tr['loss']:.2f} / {own_te['loss']:.2f}",
                    "random masks, training / held-out": f"{100 * rnd_tr['accuracy']:.1f} / "
                                                         f"{100 * rnd_te['accuracy']:.1f}",
                    "held-out eval (tables)": _pct(own_tr["heldout_accuracy"]), "run": own_tr["run"]})
    return pd.DataFrame(out)


def plot_memorisation(scores, stem: Path) -> dict:
    """Own-mask accuracy on training vs held-out rows, one bar pair per row, one panel per pretraining seed."""
    import seaborn as sns

    own = scores[scores["own"]].assign(accuracy=lambda d: 100 * d["accuracy"],
                                       split=lambda d: d["split"].map(MEMO_SPLITS),
                                       row=lambda d: d["row"].str.replace(" (", "\n(", regex=False))
    seeds = sorted(own["pretrain_seed"].unique())
    n_rows = own["row"].nunique()
    fig = _figure(max(6.0, 1.15 * n_rows + 1.5), 3.0 * len(seeds) + 0.4)
    for i, seed in enumerate(seeds):
        ax = fig.add_subplot(len(seeds), 1, i + 1)
        sns.barplot(data=own[own["pretrain_seed"] == seed], x="row", y="accuracy", hue="split",
                    hue_order=list(MEMO_SPLITS.values()), ax=ax)
        for cont in ax.containers:
            ax.bar_label(cont, fmt="%.1f", fontsize=7)
        # headroom above 100 holds the bar labels and a one-line legend, which otherwise hid the last 99.x label
        ax.set(xlabel="", ylabel="masked-token accuracy, %", ylim=(0, 125))
        ax.set_title(f"pretraining seed {seed}: each student on its own masks", fontsize=9)
        ax.tick_params(axis="x", labelsize=8)
        ax.legend(fontsize=7, loc="upper right", ncol=2)
    fig.tight_layout(h_pad=1.5)  # the two-line row labels of one panel must not run into the next one's title
    return _save(fig, stem)


EXPERIMENTS = {"table1": table1, "table2": table2, "kd": kd, "mask-rate": mask_rate, "frozen": frozen,
               "weights": weights, "corpus": corpus, "plateau": plateau, "verdicts": verdicts, "beyond": beyond,
               "static": static, "memorisation": memorisation}


def run(name: str, cfg: PretrainConfig, progress: bool = True, root=None, **kw) -> Path:
    """Run experiment `name` (what `entmask experiment NAME` calls); returns the path of its .md table."""
    if name not in EXPERIMENTS:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    other = kw.pop("corpus", None)
    recipes = kw.pop("recipes", None)
    train = kw.pop("train", True)
    if kw:
        raise ExperimentError(f"unexpected option(s) {', '.join(sorted(kw))} for experiment {name!r}")
    if other is not None and name != "corpus":
        raise ExperimentError(f"--corpus applies to the corpus experiment only, not {name!r}")
    if recipes is not None and name != "plateau":
        raise ExperimentError(f"--recipes applies to the plateau experiment only, not {name!r}")
    if name == "corpus":
        res = corpus(cfg, other, root=root, progress=progress, train=train)
    elif name == "plateau":
        res = plateau(cfg, root=root, progress=progress, recipes=recipes, train=train)
    elif name in ("verdicts", "memorisation"):
        res = EXPERIMENTS[name](cfg, root=root, progress=progress)  # trains nothing either way
    else:
        res = EXPERIMENTS[name](cfg, root=root, progress=progress, train=train)
    return res.paths["md"]


# ---- several experiments, several worker processes -------------------------------------------------------------
# Experiments whose rows are plain pretrain + fine-tune runs and can be pooled: frozen fine-tunes differently and
# corpus trains on another corpus; plateau, verdicts and beyond have their own drivers.
POOLABLE = ("table1", "table2", "kd", "mask-rate", "weights", "static")


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


def _pooled_specs(names: list[str], cfg: PretrainConfig) -> list[tuple[str, PretrainConfig]]:
    """The union of the experiments' rows, in order, each config once (rows shared between tables, like random and
    high in tables 1 and 2, are one run); a label reused for another config is prefixed with its experiment."""
    out, seen, labels = [], set(), set()
    for name in names:
        for label, c in matrix(name, cfg):
            h = c.short_hash()
            if h in seen:
                continue
            seen.add(h)
            lab = label if label not in labels else f"{name}:{label}"
            labels.add(lab)
            out.append((lab, c))
    return out


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


def _worker_main(tag: str, specs, root, threads: int, log: str, progress: bool, records=None) -> None:
    """A worker process of run_many: its output goes to `log`, and it uses `threads` torch threads."""
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
    _pretrain_and_finetune(tag, specs, root, progress, records=records)
    print(f"entmask worker {tag}: no rows left, {time.strftime('%Y-%m-%d %H:%M:%S')}", flush=True)


def run_many(names: list[str], cfg: PretrainConfig, *, workers: int = 1, progress: bool = True, root=None,
             records=None) -> list[Path]:
    """Run several experiments (`entmask experiment table1,table2 --workers N`) with their rows pooled; returns the
    paths of their .md tables.

    Seed-major as one experiment is: every row of every named experiment at the first pretraining seed, then each
    table is written; then the next seed. Within a seed the rows are split between `workers` processes (this one
    and N-1 spawned ones, each with threads/N torch threads, logs under results/workers/). On a 2-core CPU two
    one-thread workers train small students ~1.1-1.2x faster than one two-thread process (bert-tiny, cpu-long
    batch: 1.39 + 1.39 steps/s against 2.36 in an A/B; 1.34 + 1.36 against ~2.4 in the matrix), because a tiny
    model's ops are too small to keep two threads busy. Each seed ends by waiting for the slowest row.

    `records` (a folder, `--records`): after each row the records of every finished run of the profile are
    exported there (runs.export_records), to commit, so that a new machine reuses them (runs.import_records)."""
    import multiprocessing

    import torch

    if workers < 1:
        raise ExperimentError(f"--workers {workers}: give 1 or more worker processes")
    bad = [n for n in names if n not in POOLABLE]
    if bad and (len(names) > 1 or workers > 1):
        raise ExperimentError(f"{', '.join(bad)} cannot be pooled with other experiments or split between workers; "
                              f"run it on its own without --workers (poolable: {', '.join(POOLABLE)})")
    if workers > 1 and runs.world_size() > 1:
        raise ExperimentError("--workers starts processes of its own; do not combine it with torchrun")
    if records is not None:
        if bad:
            raise ExperimentError(f"--records exports after each row of a pooled matrix; {', '.join(bad)} is not "
                                  f"one (poolable: {', '.join(POOLABLE)}): run it, then `entmask runs export`")
        records = str(runs.check_records_dest(cfg.profile, records, root))
    elif len(names) == 1 and workers == 1:
        return [run(names[0], cfg, progress=progress, root=root)]
    threads_before = torch.get_num_threads()  # the cores torch may use here (affinity, OMP_NUM_THREADS)
    if workers > max(1, threads_before):
        raise ExperimentError(f"--workers {workers} with {threads_before} torch thread(s) here: each worker needs a "
                              f"core of its own; give at most {max(1, threads_before)}")
    seeds = pretrain_seeds(cfg)
    tag = "+".join(names)
    threads = max(1, threads_before // workers)
    logs = runs.results_dir(cfg.profile, root) / "workers"
    paths: list[Path] = []
    for i, seed in enumerate(seeds):
        stage = apply_overrides(cfg, {"experiment.pretrain_seeds": [seed]})
        specs = _pooled_specs(names, stage)
        procs = []
        try:
            if workers > 1:
                logs.mkdir(parents=True, exist_ok=True)
                ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch thread pool inherited
                for w in range(2, workers + 1):
                    log = logs / f"{tag}-worker-{w}.log"
                    p = ctx.Process(target=_worker_main, args=(f"{tag} worker {w}", specs, root, threads, str(log),
                                                               progress, records), daemon=False)
                    p.start()
                    procs.append((w, p, log))
                    _say(progress, f"{tag}: worker {w}/{workers} (pid {p.pid}, {threads} thread(s)) logs to {log}")
                torch.set_num_threads(threads)
            _say(progress, f"{tag}: pretraining seed {seed}: {len(specs)} rows"
                           + (f" split between {workers} workers" if workers > 1 else ""))
            _pretrain_and_finetune(tag, specs, root, progress, records=records)
        except BaseException:
            for _, p, _ in procs:  # stop the workers now rather than after their rows (they resume on a rerun)
                p.terminate()
            raise
        finally:
            torch.set_num_threads(threads_before)
            for _, p, _ in procs:
                p.join()
        # This process visits every row, so when it returns every row of this seed is finished, whatever became
        # of the workers: a failed worker is reported, and its rows were completed here.
        for w, p, log in procs:
            if p.exitcode != 0:
                _say(True, f"{tag}: worker {w} failed (exit code {p.exitcode}); see {log}. Its rows were finished "
                           f"by this process")
        # Each seed ends with whole tables (every run is found by hash now, so this only writes them).
        done = apply_overrides(cfg, {"experiment.pretrain_seeds": seeds[: i + 1]})
        paths = [run(n, done, progress=progress, root=root) for n in names]
    return paths
