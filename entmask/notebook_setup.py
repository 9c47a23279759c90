"""The settings cell every numbered notebook runs after its `parameters` cell: `setup(...)`.

    cfg, dev, root = notebooks.setup(profile, data_dir=data_dir, runs_dir=runs_dir, seeds=seeds, tasks=tasks,
                                     device=device, overrides=overrides, progress=progress)

One call in place of the settings and configuration cells each notebook used to carry a copy of: inline plots and
pandas display options, the versions line (python, torch, transformers, entmask and its commit) and the device,
the runs folder (absolute, exported), the config (the profile plus the parameters as dotted config keys, then the
"key=value" `overrides` on top), the device of the notebook's own passes, progress bars on or off, and a summary
of the config. The parameters stay in each notebook's `parameters` cell, so papermill (`entmask reproduce`,
`papermill -p ...`) overrides every one of them; setup only receives their values.

`use_runs_dir`, `set_progress` and `pick_device` are the steps setup takes, usable alone. Everything here is
importable from `entmask.notebooks` too (where the notebooks call it).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

from entmask import __version__, runs

REPO = Path(__file__).resolve().parent.parent
# The parameters that are config keys, as setup's keyword -> dotted config key (None values are left out: the
# profile's value stands).
PARAMETER_KEYS = {"data_dir": "data.data_dir", "seeds": "finetune.seeds", "tasks": "finetune.tasks"}


class Setup(NamedTuple):
    """What `setup` returns; unpacks as `cfg, dev, root = notebooks.setup(...)`."""

    cfg: object  # entmask.config.PretrainConfig
    device: str  # device of the notebook's own entropy passes and widgets
    root: Path  # the runs folder (also $ENTMASK_RUNS_DIR)


def use_runs_dir(runs_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Path:
    """Where this notebook's runs go, as an absolute path, exported as $ENTMASK_RUNS_DIR (and `data_dir`, if given,
    as $ENTMASK_DATA_DIR) so every entmask call in the kernel agrees. Default: $ENTMASK_RUNS_DIR, else the
    repository's runs/ (not notebooks/runs/: notebooks execute with notebooks/ as their working directory)."""
    root = Path(runs_dir or os.environ.get(runs.ENV_RUNS) or REPO / "runs").expanduser().resolve()
    os.environ[runs.ENV_RUNS] = str(root)
    if data_dir:
        os.environ["ENTMASK_DATA_DIR"] = str(Path(data_dir).expanduser().resolve())
    return root


def set_progress(progress: bool) -> None:
    """progress=False: no progress bars from transformers and datasets in this kernel (the executed notebooks and
    their HTML exports stay readable); training prints one line per run either way (entmask.run_log), its log dicts
    going to the run folder. `reproduce` also sets TQDM_DISABLE=1."""
    if progress:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        import datasets

        datasets.disable_progress_bars()
    except ImportError:  # pragma: no cover - a dependency
        pass


def pick_device(device: str | None = None) -> str:
    """The device of a notebook's own entropy passes and widgets: `device`, else cuda when there is one."""
    if device:
        return str(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


AUTO_WORKERS_MAX = 4  # one experiment trains at most 8 rows; past 4 processes, start-up outweighs the split


def pick_workers(workers: int | None = None) -> int:
    """Processes that split an experiment's rows (experiment.workers): `workers`, else one per torch thread on a
    CPU (at most AUTO_WORKERS_MAX), and 1 on a GPU."""
    if workers is not None:
        return int(workers)
    import torch

    return 1 if torch.cuda.is_available() else max(1, min(torch.get_num_threads(), AUTO_WORKERS_MAX))


def versions() -> str:
    """One line: python, torch, transformers, entmask and the git commit it runs from."""
    import torch
    import transformers

    return (f"python {sys.version.split()[0]} · torch {torch.__version__} · transformers {transformers.__version__} · "
            f"entmask {__version__} (commit {runs.git_commit() or 'unknown'})")


def _display_settings() -> None:
    """Inline matplotlib figures (in an IPython kernel) and wide pandas tables."""
    import pandas as pd

    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - ipykernel is a dependency
        get_ipython = None
    shell = get_ipython() if get_ipython else None
    if shell is not None and getattr(shell, "kernel", None) is not None:
        shell.run_line_magic("matplotlib", "inline")
    pd.set_option("display.max_columns", 40)
    pd.set_option("display.width", 200)


def setup(profile: str = "tiny", *, data_dir: str | Path | None = None, runs_dir: str | Path | None = None,
          seeds: Sequence[int] | None = None, tasks: Sequence[str] | str | None = None, device: str | None = None,
          overrides: Sequence[str] | None = (), progress: bool = True, quiet: bool = False,
          workers: int | None = None) -> Setup:
    """A notebook's settings from its parameters: display settings, the runs folder, the resolved config, the
    device and progress bars; prints versions, device and a summary of the config unless `quiet`. Returns
    Setup(cfg, device, root).

    The config is `config.resolve(profile, dotted)`, where dotted holds the parameters that are config keys
    (PARAMETER_KEYS: data_dir, seeds, tasks; a None one keeps the profile's value) and then `overrides`, a list of
    "dotted.key=value" strings (what `entmask reproduce --set` passes), on top. `workers` is experiment.workers
    (pick_workers: None is one per core on a CPU, at most 4; 1 on a GPU), below `overrides` too."""
    from entmask import config
    from entmask.pretrain import device_name

    _display_settings()
    if not quiet:
        print(versions())
        print(f"device: {device_name()}")
    root = use_runs_dir(runs_dir, data_dir)  # absolute, and exported so every entmask call agrees
    values = {"data_dir": data_dir, "seeds": seeds, "tasks": tasks}
    dotted = {PARAMETER_KEYS[k]: v for k, v in values.items() if v is not None}
    dotted["experiment.workers"] = pick_workers(workers)
    dotted.update(config.parse_set_args(list(overrides or [])))
    cfg = config.resolve(profile, dotted)
    dev = pick_device(device)
    set_progress(progress)
    if not quiet:
        print(f"profile {cfg.profile}: students {cfg.model.preset}, teacher {cfg.teacher}, corpus "
              f"{cfg.data.corpus}/{cfg.data.corpus_config} {cfg.data.splits}")
        print(f"fine-tuning {cfg.finetune.tasks} x seeds {cfg.finetune.seeds} · config hash {cfg.short_hash()}")
        print(f"runs in {root} · this notebook's own passes on {dev} · rows split between "
              f"{cfg.experiment.workers} process(es) when they train")
    return Setup(cfg, dev, root)
