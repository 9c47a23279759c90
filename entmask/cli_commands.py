"""The `entmask` command line's handlers: one function per subcommand, from parsed flags to one library call.

What it is: `cmd_pretrain`, `cmd_reference`, `cmd_info`, `cmd_finetune`, `cmd_experiment`, `cmd_runs`,
`cmd_reproduce`, `cmd_blimp`, `cmd_heldout`, `cmd_bench` (each takes the parsed flags and returns the exit code),
what they print about a run (`_print_run`, `_teacher_info`), and the checks that refuse an input before any work starts
(`_refuse_unfinished_run`, `_refuse_tasks_without_data`), each raising `CLIError` with one line.

What it is not: no parser (`entmask.cli_parser`) and no error reporting or entry point (`entmask.cli`).
Modules that load torch, transformers or datasets are imported in the handlers that use them (seconds), which
`entmask --help`, `runs status` and every refused flag would otherwise pay (tests/test_cli.py checks it).
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from entmask import config, runs, schemas  # light: no torch, transformers or datasets
from entmask.cli_parser import CLIError, resolve_from_args
from entmask.runs import safe_name

# Everything heavier is imported in the handler that uses it: torch, transformers, datasets and scikit-learn cost
# ~6 s of the 8.7 s that `entmask --help` took when they were imported here (AVX2 CPU, 2026-12-07), and `--help`,
# `runs status`, `runs export` and every refused flag need none of them.


def cmd_pretrain(a) -> int:
    cfg = resolve_from_args(a)  # refused flags first: a refusal need not load the training stack
    from entmask import pretrain

    run = pretrain.pretrain(cfg, force=a.force, progress=not a.quiet, stop_after=a.stop_after)
    _print_run(run)
    return 0


def cmd_reference(a) -> int:
    cfg = resolve_from_args(a)  # refused flags first: a refusal need not load the training stack
    from entmask import pretrain

    run = pretrain.build_reference(cfg, force=a.force, progress=not a.quiet)
    _print_run(run)
    if a.scores:
        from entmask.data import prepare_corpus
        from entmask.teacher_scores import check_teacher, score_views

        corpus = prepare_corpus(cfg.data, progress=not a.quiet, trust_remote_code=cfg.trust_remote_code)
        check_teacher(run / "model", corpus, cfg.trust_remote_code)
        views = score_views(cfg, run / "model", corpus, progress=not a.quiet)
        print(f"entmask: the teacher's scores of {', '.join(views)} are cached beside corpus {corpus.dir.name}; "
              f"`entmask runs export --profile {cfg.profile} <folder>` records them with the teacher")
    return 0


def _print_run(run: Path) -> None:
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun only rank 0 reports
    m = run / "metrics.json"
    if not m.exists():
        print(f"entmask: {run} (unfinished: rerun the same command to resume)")
        return
    d = runs.read_json(m, schemas.METRICS)  # a damaged file: one line naming it, not a traceback
    keys = ["heldout_loss", "heldout_accuracy", "unigram_accuracy", "entropy_mean", "entropy_sd",
            "entropy_masked_mean", "entropy_maskable_mean", "left_plateau", "train_seconds", "train_seconds_total"]
    print(f"entmask: {run}")
    print("  " + ", ".join(f"{k}={_fmt(d.get(k))}" for k in keys if k in d))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def cmd_info(a) -> int:
    import torch

    from entmask import allocator, data
    from entmask.phases import describe_schedule

    cfg = resolve_from_args(a)
    if a.keys:
        print("\n".join(config.all_keys(cfg)))
        return 0
    print(cfg.to_json())
    print(f"# config hash: {cfg.short_hash()}  (run folder: runs/{cfg.profile}/pretrain/{safe_name(cfg.name)}-"
          f"{cfg.short_hash()})")
    print(f"# data: {cfg.data.corpus}/{cfg.data.corpus_config} {cfg.data.splits} from "
          f"{data.data_source(cfg.data.data_dir)}")
    print(f"# tokenizer: {data.resolve_tokenizer_path(cfg.data.tokenizer, cfg.data.data_dir)}")
    print(f"# teacher: {_teacher_info(cfg)}")
    if cfg.train.short_rows > 1:
        print(f"# row lengths: {describe_schedule(cfg)}")
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    print(f"# device: {dev}; runs dir: {runs.runs_root().resolve()}")
    print(f"# malloc: {allocator.describe()}")
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


def _runs_status(a) -> int:
    from entmask.runs import status

    if a.folder:
        raise CLIError(f"runs status takes no folder ({a.folder!r}); give --profile NAME, or nothing for every "
                       f"profile under {runs.runs_root()}")
    here = status.profiles_here()
    if a.profile and a.profile not in here:
        raise CLIError(f"no runs of profile {a.profile!r} under {runs.runs_root()}; give the runs folder with "
                       f"--runs-dir (or ENTMASK_RUNS_DIR), or a profile that has runs: "
                       f"{', '.join(here) or 'none here'}")
    profiles = [a.profile] if a.profile else here
    if not profiles:
        print(f"entmask runs: no runs under {runs.runs_root()}")
        return 0
    print("\n\n".join(status.format_status(p, status.profile_status(p)) for p in profiles))
    return 0


def cmd_experiment(a) -> int:
    from entmask import experiments

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
            except experiments.ExperimentError as e:  # the other tables are still worth writing: a line each
                who = f"{name}: " if len(names) > 1 else ""
                print(f"entmask: error: {who}{str(e).splitlines()[0]}", file=sys.stderr)
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
    from entmask import records

    if a.action == "status":
        return _runs_status(a)
    if not a.folder:
        raise CLIError(f"runs {a.action} needs a folder, e.g. `entmask runs {a.action} docs/records/cpu-wiki"
                       + (" --profile cpu-wiki`" if a.action == "export" else "`"))
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
                          ("no_key", "recorded without a weights key (its weights are not here)"),
                          ("scores_left_out", "a teacher's score file left out of its record"),
                          ("scores_kept", "the teacher's scores are not here; its record that holds them is kept")):
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
          f"written by another process" + (f"; {r['scores']} teacher score file(s) put beside their corpus, so "
                                           f"teacher-masked students train without the teacher's weights"
                                           if r["scores"] else ""))
    for line in r["not_imported"]:
        print(f"  not imported: {line}")
    return 0


def cmd_reproduce(a) -> int:
    from entmask import notebooks

    # --only as given (None when absent): `select` refuses an empty name rather than reading "" as all notebooks.
    ok = notebooks.reproduce(a.profile, only=a.only, data_dir=a.data_dir, overrides=a.set, progress=not a.quiet,
                             shared_kernel=a.shared_kernel)
    return 0 if ok else 1


def _finished_run(arg: str) -> Path:
    """The folder of a finished pretraining run named on the command line, or one line that says what it is not."""
    run = Path(arg)
    if not run.is_dir():
        raise CLIError(f"{arg} is not a folder; give a finished pretraining run folder "
                       f"(runs/<profile>/pretrain/<name>-<hash>)")
    _refuse_unfinished_run(run)
    return run


def cmd_blimp(a) -> int:
    from entmask import blimp

    run = _finished_run(a.run)
    if a.per_paradigm is not None and not 0 <= a.per_paradigm <= 1000:
        raise CLIError(f"--per-paradigm {a.per_paradigm} must be between 1 and 1000 (0 = all)")
    per = blimp.run_per_paradigm(run) if a.per_paradigm is None else (a.per_paradigm or None)
    d = blimp.score_run(run, data_dir=a.data_dir, per_paradigm=per, within_word_l2r=a.within_word, force=a.force,
                        progress=not a.quiet)
    print(json.dumps({"accuracy": d["accuracy"], "n": d["scoring"]["n"], "variant": d["scoring"]["variant"],
                      "by_field": d["by_field"], "file": str(run / blimp.RESULT_FILE)}))
    return 0


def cmd_heldout(a) -> int:
    from entmask.heldout import BANDS_FILE, bands_of_run

    run = _finished_run(a.run)
    d = bands_of_run(run, data_dir=a.data_dir, progress=not a.quiet)
    print(f"{run.name}: held-out masked accuracy {d['heldout_accuracy']:.1%} over {d['masked_tokens']:,} targets "
          f"(the fixed random masks of the test split), by how frequent the target's type is in the train split:")
    for b in d["bands"]:
        if not b["targets"]:
            print(f"  {b['band']:>24}  no targets")
            continue
        print(f"  {b['band']:>24}  {b['share']:6.1%} of targets  accuracy {b['accuracy']:6.1%}  "
              f"(unigram plateau {b['unigram_accuracy']:.1%})")
    print(f"written to {run / BANDS_FILE}")
    return 0


def cmd_bench(a) -> int:
    import torch

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
