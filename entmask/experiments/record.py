"""One record per experiment and the registry that holds them: `Experiment`, `register`, `get`, `REGISTRY`.

An experiment is a name, a title, the paper section it reproduces, the rows it trains (labels of
`specs.RUN_SPECS`, or new row specs it brings along), what its table is measured against, which figures it draws,
which options it takes, and hooks for whatever only it does (a header, a table transform, extra sections). Adding one
is one module under `entmask/experiments/sections/` that calls `register(Experiment(...))`, plus a test
(tests/test_experiment_plugin.py shows the whole path through the CLI).

The tables the rest of the package reads by name (`specs.EXPERIMENT_RUNS`, `TITLES`, `DELTA_BASE`, `POOLABLE`, ...)
are live views of this registry, so they can never disagree with it.

What it is not: running rows (running), building tables (table) or the experiments themselves (sections/)."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from entmask.experiments.core import ExperimentError


@dataclass(frozen=True)
class Experiment:
    name: str  # what `entmask experiment NAME` takes
    title: str  # the heading of its .md
    section: str  # the paper section it reproduces ("§3.1"), or "beyond the paper"
    doc: str = ""  # one line for `entmask experiment --help` and the docs
    rows: tuple[str, ...] = ()  # ROW_SPECS labels, in table order; empty for an experiment with its own `runner`
    specs: Mapping[str, tuple[dict, str]] = field(default_factory=dict)  # new row specs (label -> (overrides, text))
    delta_base: Mapping[str, str | None] | None = None  # label -> the row its Δ is taken against (default: baseline)
    paper_table: bool = False  # the paper's published rows of the same name (paper.PAPER) go beside ours
    paper_prose: bool = True  # the paper's prose-only numbers for this name (paper.PROSE) go in the table and notes
    entropy_plot: bool = False  # teacher entropy of masked vs maskable tokens per row
    compute_plot: bool = False  # Total and held-out accuracy against pretraining FLOPs
    poolable: bool = False  # plain pretrain + fine-tune rows: may share workers and runs with other experiments
    frozen: bool = False  # fine-tune the classifier only (the frozen probe)
    tolerate_data_errors: bool = False  # a row whose corpus is missing becomes a table line, not an error
    options: tuple[str, ...] = ()  # extra options it accepts (`corpus`, `recipes`): passed to the hooks / runner
    # hooks (all optional):
    data_overrides: Callable | None = None  # (cfg, **options) -> overrides applied to every row (e.g. the corpus)
    report: Callable | None = None  # (Report) -> None: add header lines, sections, extra frames, figures; may
    #                                 replace report.table
    runner: Callable | None = None  # (cfg, *, root, progress, train, **options) -> ExperimentResult: its own driver
    result_name: Callable | None = None  # (**options) -> the results files' name, when options make another table
    trains: bool = True  # False: reads finished runs only (verdicts, memorisation), so --report-only means nothing


@dataclass
class Report:
    """What an experiment's `report` hook sees and may extend, after its table is built and before it is written."""

    name: str
    cfg: object  # the resolved profile config
    rs: list  # running._Run per row
    table: object  # pandas DataFrame shown (display strings)
    scores: object  # pandas DataFrame of numeric scores
    header: list  # lines put in a quote block above the table
    sections: list  # (title, markdown or DataFrame) after the notes
    extra: dict  # name -> DataFrame, written to the .json
    figures: dict  # name -> Path
    stem: object  # Path: results/<name>, for figures
    train: bool  # False under --report-only
    progress: bool
    root: object


REGISTRY: dict[str, Experiment] = {}
# label -> (overrides on the profile config, row text): every row any experiment trains. specs.RUN_SPECS is this very
# dict (it adds the built-in rows); an experiment's own `specs` join it when it is registered.
ROW_SPECS: dict[str, tuple[dict, str]] = {}


def register(exp: Experiment, *, replace: bool = False) -> Experiment:
    """Add `exp` (and its new row specs) to the registry; a name or row label already taken is refused unless
    `replace`. Returns `exp`, so a module can write `EXPERIMENT = register(Experiment(...))`."""
    if exp.name in REGISTRY and not replace:
        raise ExperimentError(f"experiment {exp.name!r} is registered already; choose another name")
    taken = [k for k, v in exp.specs.items() if k in ROW_SPECS and ROW_SPECS[k] != v]
    if taken and not replace:
        raise ExperimentError(f"experiment {exp.name!r}: row label(s) {', '.join(taken)} already name other rows; "
                              f"choose other labels")
    unknown = [r for r in exp.rows if r not in ROW_SPECS and r not in exp.specs]
    if unknown:
        raise ExperimentError(f"experiment {exp.name!r}: unknown row(s) {', '.join(unknown)}; define them in its "
                              f"`specs` or use labels of specs.RUN_SPECS")
    if not exp.rows and exp.runner is None:
        raise ExperimentError(f"experiment {exp.name!r} has neither rows nor a runner")
    ROW_SPECS.update(exp.specs)
    REGISTRY[exp.name] = exp
    return exp


def unregister(name: str) -> None:
    """Remove experiment `name` and the row specs only it brought (tests use this to clean up)."""
    exp = REGISTRY.pop(name)
    for k in exp.specs:
        if not any(k in e.specs for e in REGISTRY.values()):
            ROW_SPECS.pop(k, None)


def get(name: str) -> Experiment:
    """The registered experiment `name`, or a one-line error listing the names there are."""
    if name not in REGISTRY:
        raise ExperimentError(f"unknown experiment {name!r}; choose one of {', '.join(REGISTRY)}")
    return REGISTRY[name]


class _Names(Sequence):
    """The names of the registered experiments for which `pick(exp)` holds, read live (a tuple in spirit)."""

    def __init__(self, pick: Callable[[Experiment], bool]):
        self._pick = pick

    def _names(self) -> tuple[str, ...]:
        return tuple(n for n, e in REGISTRY.items() if self._pick(e))

    def __getitem__(self, i):
        return self._names()[i]

    def __len__(self) -> int:
        return len(self._names())

    def __contains__(self, x) -> bool:
        return x in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


class _Field(Mapping):
    """name -> `get(exp)` over the registered experiments for which it is not None, read live (a dict in spirit)."""

    def __init__(self, get_: Callable[[Experiment], object]):
        self._get = get_

    def _items(self) -> dict:
        return {n: v for n, e in REGISTRY.items() if (v := self._get(e)) is not None}

    def __getitem__(self, k):
        return self._items()[k]

    def __iter__(self):
        return iter(self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __repr__(self) -> str:
        return repr(self._items())


def names(pick: Callable[[Experiment], bool] = lambda e: True) -> _Names:
    return _Names(pick)


def field_of(get_: Callable[[Experiment], object]) -> _Field:
    return _Field(get_)
