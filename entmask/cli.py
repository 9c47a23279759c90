"""The `entmask` command line: a thin argparse front for the library.

What it is: subcommands `pretrain`, `reference`, `finetune`, `experiment`, `reproduce`, `info`, `runs` (and
`bench`), each mapping flags onto a resolved config and one library call. Every expected failure (bad flag, bad
value, missing data offline, unusable teacher, foreign run folder) prints one line `entmask: error: ...` and exits
with code 2, without a traceback (set ENTMASK_DEBUG=1 to see one).

What it is not: no logic of its own beyond turning flags into config overrides.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from entmask import __version__
from entmask.config import default_name  # noqa: F401 - one naming rule, re-exported for callers of the CLI


class CLIError(Exception):
    """A usage error, reported in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _expected_errors() -> tuple:
    from entmask.config import ConfigError
    from entmask.data import DataError
    from entmask.entropy import EntropyError
    from entmask.models import ModelError
    from entmask.runs import RunError

    from entmask.notebooks import NotebookError

    errs = [CLIError, ConfigError, DataError, ModelError, RunError, EntropyError, NotebookError, ValueError, OSError]
    try:
        from safetensors import SafetensorError  # a failed weights write (a full disk) or read

        errs.append(SafetensorError)
    except ImportError:
        pass
    try:
        from entmask.experiments import ExperimentError

        errs.append(ExperimentError)
    except ImportError:
        pass
    return tuple(errs)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="tiny", help="smoke | tiny | cpu-long | bertlet | bert (default tiny)")
    p.add_argument("--data-dir", help="offline mirror laid out like ../shared/data (or set ENTMASK_DATA_DIR)")
    p.add_argument("--runs-dir", help="where run folders go (default ./runs, or ENTMASK_RUNS_DIR)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set train.lr=1e-3 (repeatable; see `entmask info`)")
    p.add_argument("--config", help="a config.json to start from instead of the profile")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model or tokenizer folder / hub name to run its own Python code (off: refused)")


def _masking_flags(p: argparse.ArgumentParser) -> None:
    from entmask.masking import ALIASES, SELECTORS  # the registry: a registered selector shows here too

    p.add_argument("--strategy", help="; ".join(f"{n}: {s.help}" for n, s in SELECTORS.items()).replace("%", "%%")
                   + f" (aliases {', '.join(f'{a}={b}' for a, b in ALIASES.items())})")
    p.add_argument("--source", choices=["teacher", "self"], help="entropy from the teacher or the model itself")
    p.add_argument("--self-start", choices=["cold", "init"], help="self-masking from step 0, or after "
                                                                  "masking.teacher_epochs of teacher-masking")
    p.add_argument("--scorer", help="what the strategy ranks: entropy (the paper) | masked_entropy | loss | "
                                    "excess_loss (student - teacher masked loss; needs --source self)")
    p.add_argument("--whole-word", choices=["none", "max", "mean"], help="pick whole words, scored by the max or "
                                                                        "mean of their pieces (default none)")
    p.add_argument("--ratio", type=float, help="share of each row's candidates to mask (default 0.15)")
    p.add_argument("--num-tokens", type=int, help="mask exactly this many tokens per row")
    p.add_argument("--seed", type=int, help="training seed")
    p.add_argument("--teacher", help="'reference' (built offline) or a BertForMaskedLM folder / hub name")
    p.add_argument("--kd", choices=["none", "kd-only", "complete", "after-init"], help="knowledge distillation")
    p.add_argument("--kd-alpha", type=float, help="weight of the KD term (default 0.5)")
    p.add_argument("--kd-temperature", type=float, help="KD temperature (default 1)")
    p.add_argument("--name", help="run name (default: derived from the strategy)")
    p.add_argument("--force", action="store_true", help="retrain even if a finished run with this config exists")


FLAG_KEYS = {"strategy": "masking.strategy", "source": "masking.source", "self_start": "masking.self_start",
             "scorer": "masking.scorer", "whole_word": "masking.whole_word",
             "ratio": "masking.ratio", "num_tokens": "masking.num_tokens", "seed": "train.seed",
             "teacher": "teacher", "kd": "kd.mode", "kd_alpha": "kd.alpha", "kd_temperature": "kd.temperature"}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="entmask", description="Entropy-aware masking for MLM pretraining (a research workbench).")
    p.add_argument("--version", action="version", version=f"entmask {__version__}")
    sub = p.add_subparsers(dest="cmd", parser_class=_Parser)

    s = sub.add_parser("pretrain", help="pretrain one model (found by its config hash and reused)")
    _common(s)
    _masking_flags(s)
    s.add_argument("--stop-after", type=int, help=argparse.SUPPRESS)  # tests: interrupt after a checkpoint

    s = sub.add_parser("reference", help="build the offline teacher (an encoder adapted with MLM)")
    _common(s)
    s.add_argument("--force", action="store_true")

    s = sub.add_parser("info", help="the resolved config, where data come from, the device")
    _common(s)
    _masking_flags(s)
    s.add_argument("--keys", action="store_true", help="list every overridable key")

    s = sub.add_parser("finetune", help="fine-tune a pretraining run (or any BERT folder) on GLUE")
    _common(s)
    s.add_argument("model", help="a pretraining run folder or a save_pretrained folder")
    s.add_argument("--tasks", help="comma-separated GLUE tasks (default: the profile's)")
    s.add_argument("--frozen", action="store_true", help="frozen-encoder probe: train the classifier only")
    s.add_argument("--force", action="store_true")

    s = sub.add_parser("blimp", help="BLiMP zero-shot accuracy of a pretraining run (pseudo-log-likelihood), "
                                     "written to its blimp.json and reused")
    s.add_argument("run", help="a finished pretraining run folder (runs/<profile>/pretrain/<name>-<hash>)")
    s.add_argument("--data-dir", help="offline mirror with blimp/ (default: $ENTMASK_DATA_DIR)")
    s.add_argument("--per-paradigm", type=int, default=None,
                   help="pairs per paradigm, a fixed seeded subsample (default: entmask.blimp.DEFAULT_PER_PARADIGM; "
                        "0 = all 1,000)")
    s.add_argument("--within-word", action="store_true",
                   help="Kauf & Ivanova's within-word-l2r PLL (also mask a word's later pieces)")
    s.add_argument("--force", action="store_true", help="score again even if blimp.json matches")
    s.add_argument("--quiet", action="store_true")

    s = sub.add_parser("experiment", help="run one of the paper's experiments and write its table")
    _common(s)
    s.add_argument("name", help="table1 | table2 | kd | mask-rate | frozen | weights | corpus | plateau | verdicts "
                                "(the paper's claims judged on finished table1/table2 results) | beyond | static | "
                                "memorisation (each finished student on the masks it trained with, seen vs held-out "
                                "rows); several poolable ones comma-separated, e.g. table1,table2, share their rows")
    s.add_argument("--workers", type=int, default=1,
                   help="split the rows between N processes with cores/N torch threads each (small models on a "
                        "CPU: 2 one-thread workers beat one two-thread process); the same command started twice "
                        "splits the rows too")
    s.add_argument("--corpus", help="for `corpus`: another corpus by hub name (e.g. bookcorpus)")
    s.add_argument("--recipes", help="for `plateau`: comma-separated recipe labels (default: all of them)")
    s.add_argument("--records", metavar="DIR",
                   help="after each row, export the records of every finished run (no weights) to DIR, to commit: "
                        "a new machine imports them with `entmask runs import DIR` and reuses them")
    s.add_argument("--nice", type=int, default=0, metavar="N",
                   help="lower the priority of this command and its workers by N (1-19) so it yields the CPU; "
                        "started without a terminal (setsid, nohup setsid) its whole session too, as Linux "
                        "autogroups apply nice only within a session (default 0: unchanged)")
    s.add_argument("--report-only", action="store_true",
                   help="train nothing: write the table(s) from the runs that have finished (rows not finished "
                        "at every pretraining seed are left out and named; for `plateau`: finished, stopped, not "
                        "run), without waiting for a matrix that is training them")

    s = sub.add_parser("runs", help="export the records of finished runs (no weights) to a folder you can commit, "
                                    "or import such a folder so that its runs are reused")
    s.add_argument("action", choices=["export", "import"])
    s.add_argument("folder", help="export: where the records go (e.g. docs/records/cpu-long); import: a folder "
                                  "that `entmask runs export` wrote")
    s.add_argument("--profile", default=None, help="export: the profile whose finished runs to export (required)")
    s.add_argument("--runs-dir", help="the runs root (default ./runs, or ENTMASK_RUNS_DIR)")

    s = sub.add_parser("reproduce", help="execute the numbered notebooks with papermill")
    _common(s)
    s.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,03")

    s = sub.add_parser("bench", help="training-step and entropy-pass throughput")
    s.add_argument("--preset", default="bertlet")
    s.add_argument("--seq-len", type=int, default=128)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--repeats", type=int, default=5)
    s.add_argument("--device", default=None)
    return p


def resolve_from_args(a: argparse.Namespace):
    from entmask import config

    overrides = {}
    if getattr(a, "data_dir", None):
        overrides["data.data_dir"] = a.data_dir
    for flag, key in FLAG_KEYS.items():
        v = getattr(a, flag, None)
        if v is not None:
            overrides[key] = v
    overrides.update(config.parse_set_args(a.set))
    if getattr(a, "trust_remote_code", False):
        overrides["trust_remote_code"] = True
    if a.config:
        base = config.load_json(a.config, strict=True)
        cfg = config.validate(config.apply_overrides(base, overrides))
    else:
        cfg = config.resolve(a.profile, overrides)
    cfg.name = getattr(a, "name", None) or default_name(cfg)
    return cfg


def _setup_env(a) -> None:
    if getattr(a, "runs_dir", None):
        os.environ["ENTMASK_RUNS_DIR"] = a.runs_dir
    if getattr(a, "data_dir", None):
        os.environ["ENTMASK_DATA_DIR"] = a.data_dir


def cmd_pretrain(a) -> int:
    from entmask import pretrain

    cfg = resolve_from_args(a)
    run = pretrain.pretrain(cfg, force=a.force, progress=not a.quiet, stop_after=a.stop_after)
    _print_run(run)
    return 0


def cmd_reference(a) -> int:
    from entmask import pretrain

    cfg = resolve_from_args(a)
    run = pretrain.build_reference(cfg, force=a.force, progress=not a.quiet)
    _print_run(run)
    return 0


def _print_run(run: Path) -> None:
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    m = run / "metrics.json"
    if not m.exists():
        print(f"entmask: {run} (unfinished: rerun the same command to resume)")
        return
    from entmask import runs, schemas

    d = runs.read_json(m, schemas.METRICS)  # a damaged file: one line naming it, not a traceback
    keys = ["heldout_loss", "heldout_accuracy", "unigram_accuracy", "entropy_mean", "entropy_sd",
            "entropy_masked_mean", "entropy_maskable_mean", "left_plateau", "train_seconds", "train_seconds_total"]
    print(f"entmask: {run}")
    print("  " + ", ".join(f"{k}={_fmt(d.get(k))}" for k in keys if k in d))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_info(a) -> int:
    import torch

    from entmask import config, data, runs

    cfg = resolve_from_args(a)
    if a.keys:
        print("\n".join(config.all_keys(cfg)))
        return 0
    print(cfg.to_json())
    from entmask.runs import safe_name

    print(f"# config hash: {cfg.short_hash()}  (run folder: runs/{cfg.profile}/pretrain/{safe_name(cfg.name)}-"
          f"{cfg.short_hash()})")
    print(f"# data: {cfg.data.corpus}/{cfg.data.corpus_config} {cfg.data.splits} from {data.data_source(cfg.data.data_dir)}")
    print(f"# tokenizer: {data.resolve_tokenizer_path(cfg.data.tokenizer, cfg.data.data_dir)}")
    print(f"# teacher: {_teacher_info(cfg)}")
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    print(f"# device: {dev}; runs dir: {runs.runs_root().resolve()}")
    return 0


def _teacher_info(cfg) -> str:
    """Which teacher this config would use, and how strong it is when it is a built reference."""
    from entmask import pretrain

    used = "" if cfg.uses_teacher() else " (not used by this run)"
    if cfg.teacher != "reference":
        return f"{cfg.teacher}{used}"
    r = cfg.reference
    run = pretrain.run_folder(cfg, "reference")
    recipe = (f"reference from {r.init}, up to {r.steps} steps of batch {r.batch_size} at lr {r.lr}"
              + (f", early stopping every {r.eval_steps} steps" if r.eval_steps else ""))
    m = pretrain.teacher_metrics(run / "model")
    state = (f"built: held-out masked accuracy {m['heldout_accuracy']:.1%}, loss {m['heldout_loss']:.2f}"
             if m else "not built yet (built automatically on first use, or `entmask reference`)")
    return f"{recipe}{used}; {run}: {state}"


def cmd_finetune(a) -> int:
    from entmask import finetune

    if a.tasks is not None:
        tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
        if not tasks:
            raise CLIError(f"--tasks {a.tasks!r} names no task; give a comma-separated list, e.g. --tasks cola,mrpc")
        a.set = list(a.set) + [f"finetune.tasks={json.dumps(tasks)}"]
    cfg = resolve_from_args(a)
    model = Path(a.model)
    if not model.exists():
        raise CLIError(f"{a.model} does not exist; give a pretraining run folder (runs/<profile>/pretrain/...) or a "
                       f"save_pretrained folder")
    _refuse_unfinished_run(model)
    if (model / "model").is_dir():
        model = model / "model"
    if not (model / "config.json").exists():
        raise CLIError(f"{a.model} is neither a pretraining run folder nor a save_pretrained folder")
    if a.tasks is not None:
        _refuse_tasks_without_data(cfg.finetune.tasks, cfg.data.data_dir)
    rows = finetune.finetune_all(model, cfg.finetune, profile=cfg.profile, name=model.parent.name,
                                 data_dir=cfg.data.data_dir, frozen=a.frozen, progress=not a.quiet)
    for r in rows:
        print(json.dumps({k: r.get(k) for k in ("task", "seed", "status", "paper_score", "glue_score", "collapsed")}))
    return 0


def _refuse_tasks_without_data(tasks, data_dir: str | None) -> None:
    """A task named by --tasks that has no data here is an error before anything trains (exit 2). Experiments
    and a profile's own task list keep reporting such a task as 'absent' instead (QQP and MNLI offline)."""
    from entmask import finetune
    from entmask.data import mirror_dir

    for task in tasks:
        reason = finetune.absent_reason(task, data_dir)
        if reason is None:
            continue
        root = mirror_dir(data_dir)
        where = f"the mirror {root} (see its MANIFEST.md)" if root else f"the Hugging Face hub ({reason})"
        raise CLIError(f"--tasks names {task}, which has no data in {where}; drop {task} from --tasks or point "
                       f"--data-dir at a mirror that has it")


def _refuse_unfinished_run(folder: Path) -> None:
    """A pretraining run folder without metrics.json was interrupted: say so and how to resume, rather than
    'not a model' (its checkpoints are kept for exactly that)."""
    cfg_file = folder / "config.json"
    metrics = folder / "metrics.json"
    is_run = (folder / "entmask.json").exists() or (folder / "checkpoints").is_dir()
    from entmask import schemas

    if metrics.exists():
        try:
            schemas.load(metrics, schemas.METRICS)  # JSON of the wrong shape is as damaged as broken JSON
            return
        except (OSError, ValueError):
            raise CLIError(f"{metrics} is corrupt, so this run may not have finished; rerun its pretraining "
                           f"(`entmask pretrain --config {cfg_file}`) to check and redo it") from None
    if not cfg_file.exists():
        return
    try:
        d = schemas.load(cfg_file)  # size and nesting limited: a hostile file is a ValueError, not a RecursionError
    except (OSError, ValueError):
        if is_run:
            raise CLIError(f"{folder} is an unfinished pretraining run whose config.json is unreadable; rerun "
                           f"its pretraining command to rebuild it") from None
        return
    if not isinstance(d, dict) or "masking" not in d:
        return  # a save_pretrained folder, not a run folder
    here = folder.resolve()
    ckpt = sorted((folder / "checkpoints").glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[-1])
                  if c.name.split("-")[-1].isdigit() else -1) if (folder / "checkpoints").is_dir() else []
    where = f"its last checkpoint is {ckpt[-1].name}" if ckpt else "it has no checkpoint yet"
    if here.parent.name == "pretrain" and len(here.parents) > 2:
        how = f"`entmask pretrain --config {cfg_file} --runs-dir {here.parents[2]}`"
    else:
        how = (f"`entmask pretrain --config {cfg_file}` after moving the folder back under "
               f"<runs>/{d.get('profile', '<profile>')}/pretrain/ (a run resumes only where it was made)")
    raise CLIError(f"{folder} is an unfinished pretraining run ({where}); resume it with {how}, then fine-tune it")


def cmd_experiment(a) -> int:
    from entmask import experiments, runs

    cfg = resolve_from_args(a)
    kwargs = {"corpus": a.corpus} if a.corpus else {}
    if a.recipes is not None:
        kwargs["recipes"] = [r.strip() for r in a.recipes.split(",") if r.strip()]
        if not kwargs["recipes"]:
            raise CLIError(f"--recipes {a.recipes!r} names no recipe; give a comma-separated list, e.g. seq32")
    names = experiments.parse_names(a.name)
    if not 0 <= a.nice <= 19:
        raise CLIError(f"--nice {a.nice} is out of range: give 1 (a little lower) to 19 (the lowest), or leave it out")
    if a.nice:
        print(f"entmask: {runs.lower_priority(a.nice)}", file=sys.stderr)
    if a.report_only:
        if a.workers != 1:
            raise CLIError("--report-only trains nothing, so it has no rows to split: drop --workers")
        if a.records:
            raise CLIError("--report-only trains nothing, so it has nothing new to record: drop --records (or run "
                           "`entmask runs export DIR --profile P`)")
        if kwargs and len(names) > 1:
            raise CLIError("--corpus and --recipes apply to one experiment; name only that one")
        failed = 0
        for name in names:  # one table each, from what has finished; nothing is trained or locked
            try:
                print(f"entmask: wrote {experiments.run(name, cfg, progress=not a.quiet, train=False, **kwargs)}")
            except experiments.ExperimentError as e:  # the other tables are still worth writing
                print(f"entmask: error: {str(e).splitlines()[0]}", file=sys.stderr)
                failed += 1
        return 2 if failed else 0
    if len(names) > 1 or a.workers != 1 or a.records:
        if kwargs:
            raise CLIError("--corpus and --recipes apply to one experiment without --workers or --records")
        for out in experiments.run_many(names, cfg, workers=a.workers, progress=not a.quiet, records=a.records):
            print(f"entmask: wrote {out}")
        return 0
    out = experiments.run(names[0], cfg, progress=not a.quiet, **kwargs)
    print(f"entmask: wrote {out}")
    return 0


def cmd_runs(a) -> int:
    from entmask import records, runs

    if a.action == "export":
        if not a.profile:
            raise CLIError("runs export needs --profile, e.g. `entmask runs export docs/records/cpu-long "
                           "--profile cpu-long`")
        r = records.export_records(a.profile, a.folder)
        print(f"entmask runs: exported {len(r['exported'])} finished run(s) of {a.profile} to {a.folder} "
              f"({r['bytes'] / 1e6:.1f} MB; {r['left_out_files']} files left out: weights, checkpoints, tokenizer, "
              f"event logs, links); "
              f"{r['total_in_dest']} run(s) recorded there")
        for what, why in (("failed", "not exported"), ("teacher_changed", "the teacher here is not the recorded one "
                                                                          "(its old record is kept)"),
                          ("no_key", "recorded without a weights key (its weights are not here)")):
            for line in r[what]:
                print(f"  {why}: {line}")
        return 2 if r["failed"] else 0
    if a.profile:
        raise CLIError("runs import takes the profile from the records folder; drop --profile")
    try:
        r = records.import_records(a.folder)
    except records.RecordsRefused as e:  # several refused: one line each, then the error line that sums them up
        for line in e.refused if len(e.refused) > 1 else ():
            print(f"  refused: {line}", file=sys.stderr)
        raise
    print(f"entmask runs: imported {len(r['imported'])} run(s) of profile {r['profile']} into "
          f"{runs.profile_dir(r['profile'])}; kept {len(r['kept'])} already here; {len(r['busy'])} being "
          f"written by another process")
    for line in r["not_imported"]:
        print(f"  not imported: {line}")
    return 0


def cmd_reproduce(a) -> int:
    from entmask import notebooks

    # --only as given (None when absent): `select` refuses an empty name rather than reading "" as all notebooks.
    ok = notebooks.reproduce(a.profile, only=a.only, data_dir=a.data_dir, overrides=a.set, progress=not a.quiet)
    return 0 if ok else 1


def cmd_blimp(a) -> int:
    from entmask import blimp

    run = Path(a.run)
    if not run.is_dir():
        raise CLIError(f"{a.run} is not a folder; give a finished pretraining run folder "
                       f"(runs/<profile>/pretrain/<name>-<hash>)")
    _refuse_unfinished_run(run)
    if a.per_paradigm is not None and not 0 <= a.per_paradigm <= 1000:
        raise CLIError(f"--per-paradigm {a.per_paradigm} must be between 1 and 1000 (0 = all)")
    per = blimp.DEFAULT_PER_PARADIGM if a.per_paradigm is None else (a.per_paradigm or None)
    d = blimp.score_run(run, data_dir=a.data_dir, per_paradigm=per, within_word_l2r=a.within_word, force=a.force,
                        progress=not a.quiet)
    print(json.dumps({"accuracy": d["accuracy"], "n": d["scoring"]["n"], "variant": d["scoring"]["variant"],
                      "by_field": d["by_field"], "file": str(run / blimp.RESULT_FILE)}))
    return 0


def cmd_bench(a) -> int:
    from entmask import bench
    from entmask.models import PRESETS

    if a.preset not in PRESETS:
        raise CLIError(f"--preset {a.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    for flag, v, lo in (("--seq-len", a.seq_len, 8), ("--batch-size", a.batch_size, 1), ("--repeats", a.repeats, 1)):
        if v < lo:
            raise CLIError(f"{flag} {v} must be at least {lo}")
    if a.seq_len > 512:
        raise CLIError(f"--seq-len {a.seq_len} exceeds BERT's 512 positions; use at most 512")
    if a.device is not None:
        import torch

        try:
            dev = torch.device(a.device)
        except RuntimeError:
            raise CLIError(f"--device {a.device!r} is not a device; use cpu or cuda[:N]") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise CLIError(f"--device {a.device} asked for, but this machine has no CUDA GPU; use --device cpu")
        if dev.type not in ("cpu", "cuda"):
            raise CLIError(f"--device {a.device!r}: entmask bench runs on cpu or cuda")

    bench.main(preset=a.preset, seq_len=a.seq_len, batch_size=a.batch_size, repeats=a.repeats, device=a.device)
    return 0


def _one_line(e: BaseException) -> str:
    """The message of an expected error; an OS error names its file and what to check."""
    if isinstance(e, OSError) and not type(e).__module__.startswith("entmask") and e.filename:
        what = e.strerror or type(e).__name__
        return (f"{e.filename}: {what}; check that the path exists, is the right kind (file or folder), is "
                f"writable and that the disk has room (--runs-dir chooses where runs go)")
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if type(e).__name__ == "SafetensorError":
        return (f"a weights file could not be written or read ({msg}); check that the disk has room, then rerun "
                f"the same command (finished work is kept, the damaged file is rebuilt)")
    return msg


COMMANDS = {"pretrain": cmd_pretrain, "reference": cmd_reference, "info": cmd_info, "finetune": cmd_finetune,
            "experiment": cmd_experiment, "reproduce": cmd_reproduce, "bench": cmd_bench,
            "runs": cmd_runs, "blimp": cmd_blimp}


def main(argv: list[str] | None = None) -> int:
    saved = {k: os.environ.get(k) for k in ("ENTMASK_RUNS_DIR", "ENTMASK_DATA_DIR")}
    try:
        return _main(argv)
    finally:  # --runs-dir/--data-dir hold for this call only (main() is also called in process, e.g. by tests)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _main(argv: list[str] | None) -> int:
    errors: tuple = (CLIError,)
    try:
        a = build_parser().parse_args(argv)
        if not a.cmd:
            raise CLIError("a command is needed: pretrain, reference, finetune, experiment, blimp, reproduce, info, "
                           "runs, bench (see `entmask --help`)")
        _setup_env(a)
        errors = _expected_errors()
        return COMMANDS[a.cmd](a)
    except errors as e:
        if os.environ.get("ENTMASK_DEBUG"):
            raise
        print(f"entmask: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("entmask: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
