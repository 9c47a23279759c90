"""The `entmask` command line's flags: the argparse parser of every subcommand, and flags -> a resolved config.

What it is: `build_parser` (the subcommands and their flags; `--strategy`'s help read from the selector registry),
`FLAG_KEYS` (which flag sets which config key), `resolve_from_args` (profile or --config, flags, --set -> a
validated config), `_setup_env` (--runs-dir / --data-dir into the environment) and `CLIError`, the one-line usage
error that every part of the CLI raises.

What it is not: no command is run here (the handlers are `entmask.cli_commands`, the entry point and its error
reporting `entmask.cli`).
"""
from __future__ import annotations

import argparse
import os

from entmask import __version__, config
from entmask.config import default_name
from entmask.config.profiles import PROFILES  # the registry: a new profile shows in --profile's help
from entmask.masking import ALIASES, SELECTORS  # the registry: a registered selector shows in --strategy's help
from entmask.token_scores import SCORERS  # likewise a registered scorer in --scorer's help


class CLIError(Exception):
    """A usage error, reported in one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="tiny", help=f"{' | '.join(PROFILES)} (default tiny)")
    p.add_argument("--data-dir", help="offline mirror laid out like ../shared/data (or set ENTMASK_DATA_DIR)")
    p.add_argument("--runs-dir", help="where run folders go (default ./runs, or ENTMASK_RUNS_DIR)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config field, e.g. --set train.lr=1e-3 (repeatable; `entmask info --keys` "
                        "lists them)")
    p.add_argument("--config", help="a config.json to start from instead of the profile")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow a model or tokenizer folder / hub name to run its own Python code (off: refused)")


def _masking_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strategy", help="; ".join(f"{n}: {s.help}" for n, s in SELECTORS.items()).replace("%", "%%")
                   + f" (aliases {', '.join(f'{a}={b}' for a, b in ALIASES.items())})")
    p.add_argument("--source", choices=["teacher", "self"], help="entropy from the teacher or the model itself")
    p.add_argument("--self-start", choices=["cold", "init"], help="self-masking from step 0, or after "
                                                                  "masking.teacher_epochs of teacher-masking")
    p.add_argument("--scorer", help="what the strategy ranks: " + "; ".join(
        f"{n}: {s.doc.rstrip('.')}{' (needs --source self)' if s.uses_reference else ''}"
        for n, s in SCORERS.items()).replace("%", "%%"))
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


class _ExperimentParser(argparse.ArgumentParser):
    """`entmask experiment --help`: the experiments are read from their registry when the help is shown."""

    def format_help(self) -> str:
        # here, not at the top: the experiments import pandas and matplotlib, which no other command's help needs
        from entmask.experiments import REGISTRY

        width = max(map(len, REGISTRY)) + 2
        self.description = "experiments (entmask/experiments/sections/, one module each):\n" + "\n".join(
            f"  {n:<{width}}{e.section}: {e.doc}" + (" [poolable]" if e.poolable else "")
            for n, e in REGISTRY.items())
        return super().format_help()


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
    s.add_argument("--scores", action="store_true",
                   help="also score the profile's train rows (every view its students train on), so that `entmask "
                        "runs export` records the scores with the teacher and another machine needs no teacher")

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
                   help="pairs per paradigm, a fixed seeded subsample (default: the run's "
                        "experiment.blimp_per_paradigm, what its tables show, else entmask.blimp.DEFAULT_PER_PARADIGM; "
                        "0 = all 1,000)")
    s.add_argument("--within-word", action="store_true",
                   help="Kauf & Ivanova's within-word-l2r PLL (also mask a word's later pieces)")
    s.add_argument("--force", action="store_true", help="score again even if blimp.json matches")
    s.add_argument("--quiet", action="store_true")

    s = sub.add_parser("heldout", help="held-out masked accuracy of a pretraining run by how frequent the target "
                                       "token is (what a strategy-masked student learned), written to its "
                                       "heldout_bands.json")
    s.add_argument("run", help="a finished pretraining run folder (runs/<profile>/pretrain/<name>-<hash>)")
    s.add_argument("--data-dir", help="offline mirror (default: $ENTMASK_DATA_DIR)")
    s.add_argument("--quiet", action="store_true")

    s = sub.add_parser("experiment", help="run one of the paper's experiments and write its table")
    s.__class__ = _ExperimentParser  # its --help lists the registered experiments
    s.formatter_class = argparse.RawDescriptionHelpFormatter
    _common(s)
    s.add_argument("name", help="an experiment (listed above), or several poolable ones comma-separated, e.g. "
                                "table1,table2, which share their rows")
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

    s = sub.add_parser("runs", help="status: how far each run has got (a background matrix: step, pace, time "
                                    "left); export the records of finished runs (no weights) to a folder you can "
                                    "commit, or import such a folder so that its runs are reused")
    s.add_argument("action", choices=["status", "export", "import"])
    s.add_argument("folder", nargs="?", default=None,
                   help="export: where the records go (e.g. docs/records/cpu-long); import: a folder that `entmask "
                        "runs export` wrote; status: none")
    s.add_argument("--profile", default=None, help="export: the profile whose finished runs to export (required); "
                                                   "status: one profile (default: every profile with runs here)")
    s.add_argument("--runs-dir", help="the runs root (default ./runs, or ENTMASK_RUNS_DIR)")

    s = sub.add_parser("reproduce", help="execute the numbered notebooks with papermill")
    _common(s)
    s.add_argument("--only", help="comma-separated notebook numbers, e.g. 01,03")
    s.add_argument("--shared-kernel", action="store_true",
                   help="one kernel for all the notebooks, reset between them (names and figures gone, modules "
                        "kept): saves the imports and the kernel's start per notebook (~10 s each on 2 cores); "
                        "by default each notebook gets a fresh kernel")

    s = sub.add_parser("bench", help="training-step and entropy-pass throughput")
    s.add_argument("--preset", default="bertlet")
    s.add_argument("--seq-len", type=int, default=128)
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--repeats", type=int, default=5)
    s.add_argument("--device", default=None)
    return p


def resolve_from_args(a: argparse.Namespace):
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
