"""The `entmask` command line: a thin argparse front for the library.

What it is: subcommands `pretrain`, `reference`, `finetune`, `experiment`, `reproduce`, `info` (and `bench`), each
mapping flags onto a resolved config and one library call. Every expected failure (bad flag, bad value, missing
data offline, unusable teacher, foreign run folder) prints one line `entmask: error: ...` and exits with code 2,
without a traceback (set ENTMASK_DEBUG=1 to see one).

What it is not: no logic of its own beyond turning flags into config overrides.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from entmask import __version__


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

    errs = [CLIError, ConfigError, DataError, ModelError, RunError, EntropyError, ValueError, FileNotFoundError]
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


def _masking_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", help="high | low | mid | marginal | alternating | random | bernoulli "
                                      "(aliases max, min, marg, alt)")
    p.add_argument("--source", choices=["teacher", "self"], help="entropy from the teacher or the model itself")
    p.add_argument("--self-start", choices=["cold", "init"], help="self-masking from step 0, or after "
                                                                  "masking.teacher_epochs of teacher-masking")
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

    s = sub.add_parser("experiment", help="run one of the paper's experiments and write its table")
    _common(s)
    s.add_argument("name", help="table1 | table2 | kd | mask-rate | frozen | weights | corpus | plateau")
    s.add_argument("--corpus", help="for `corpus`: another corpus by hub name (e.g. bookcorpus)")
    s.add_argument("--recipes", help="for `plateau`: comma-separated recipe labels (default: all of them)")
    s.add_argument("--report-only", action="store_true",
                   help="for `plateau`: train nothing, report the runs as they are (finished, stopped, not run)")

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
    if a.config:
        base = config.load_json(a.config)
        cfg = config.validate(config.apply_overrides(base, overrides))
    else:
        cfg = config.resolve(a.profile, overrides)
    cfg.name = getattr(a, "name", None) or default_name(cfg)
    return cfg


def default_name(cfg) -> str:
    m = cfg.masking
    if cfg.kd.mode != "none":
        return f"kd-{cfg.kd.mode}"
    if m.strategy in ("random", "bernoulli"):
        name = m.strategy
    elif m.source == "self":
        name = f"{m.strategy}-self-{m.self_start}"
    else:
        name = f"{m.strategy}-teacher"
    if m.num_tokens is not None:
        name += f"-n{m.num_tokens}"
    elif m.ratio != 0.15:
        name += f"-r{int(round(m.ratio * 100))}"
    return name


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
    m = run / "metrics.json"
    if not m.exists():
        print(f"entmask: {run} (unfinished: rerun the same command to resume)")
        return
    d = json.loads(m.read_text())
    keys = ["heldout_loss", "heldout_accuracy", "unigram_accuracy", "entropy_mean", "entropy_sd",
            "entropy_masked_mean", "entropy_maskable_mean", "left_plateau", "train_seconds"]
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
    print(f"# config hash: {cfg.short_hash()}  (run folder: runs/{cfg.profile}/pretrain/{cfg.name}-{cfg.short_hash()})")
    print(f"# data: {cfg.data.corpus}/{cfg.data.corpus_config} {cfg.data.splits} from {data.data_source(cfg.data.data_dir)}")
    print(f"# tokenizer: {data.resolve_tokenizer_path(cfg.data.tokenizer, cfg.data.data_dir)}")
    print(f"# teacher: {cfg.teacher if cfg.uses_teacher() else '(not used)'}")
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu, {torch.get_num_threads()} threads"
    print(f"# device: {dev}; runs dir: {runs.runs_root().resolve()}")
    return 0


def cmd_finetune(a) -> int:
    from entmask import finetune

    cfg = resolve_from_args(a)
    model = Path(a.model)
    if (model / "model").is_dir():
        model = model / "model"
    if not (model / "config.json").exists():
        raise CLIError(f"{a.model} is neither a pretraining run folder nor a save_pretrained folder")
    if a.tasks:
        cfg.finetune.tasks = [t.strip() for t in a.tasks.split(",") if t.strip()]
    rows = finetune.finetune_all(model, cfg.finetune, profile=cfg.profile, name=model.parent.name,
                                 data_dir=cfg.data.data_dir, frozen=a.frozen, progress=not a.quiet)
    for r in rows:
        print(json.dumps({k: r.get(k) for k in ("task", "seed", "status", "paper_score", "glue_score", "collapsed")}))
    return 0


def cmd_experiment(a) -> int:
    from entmask import experiments

    cfg = resolve_from_args(a)
    kwargs = {"corpus": a.corpus} if a.corpus else {}
    if a.recipes:
        kwargs["recipes"] = [r.strip() for r in a.recipes.split(",") if r.strip()]
    if a.report_only:
        if a.name != "plateau":
            raise CLIError("--report-only applies to the plateau experiment only")
        kwargs["train"] = False
    out = experiments.run(a.name, cfg, progress=not a.quiet, **kwargs)
    print(f"entmask: wrote {out}")
    return 0


def cmd_reproduce(a) -> int:
    from entmask import notebooks

    only = [s.strip() for s in a.only.split(",")] if a.only else None
    ok = notebooks.reproduce(a.profile, only=only, data_dir=a.data_dir, overrides=a.set, progress=not a.quiet)
    return 0 if ok else 1


def cmd_bench(a) -> int:
    from entmask import bench

    bench.main(preset=a.preset, seq_len=a.seq_len, batch_size=a.batch_size, repeats=a.repeats, device=a.device)
    return 0


COMMANDS = {"pretrain": cmd_pretrain, "reference": cmd_reference, "info": cmd_info, "finetune": cmd_finetune,
            "experiment": cmd_experiment, "reproduce": cmd_reproduce, "bench": cmd_bench}


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
            raise CLIError("a command is needed: pretrain, reference, finetune, experiment, reproduce, info, bench "
                           "(see `entmask --help`)")
        _setup_env(a)
        errors = _expected_errors()
        return COMMANDS[a.cmd](a)
    except errors as e:
        if os.environ.get("ENTMASK_DEBUG"):
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"entmask: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("entmask: interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
