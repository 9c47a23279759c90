"""The paper's experiments: which pretraining runs each needs, then its GLUE table, figures and records.

Every experiment is one `record.Experiment` in a registry (`register`, `get`, `REGISTRY`), defined by one module
under `sections/`; the name-keyed tables below (`EXPERIMENT_RUNS`, `TITLES`, ...) are views of it.

What it is: `matrix(name, cfg)` (the (label, config) pairs of an experiment, derived from one resolved profile
config by overrides and named as the CLI's `default_name` names them, so run folders are shared between
experiments: runs are found by config hash), one function per experiment (`table1`, `table2`, `kd`, `mask_rate`,
`frozen`, `weights`, `corpus`) returning an `ExperimentResult`, `EXPERIMENTS` and `run(name, cfg)` (what
`entmask experiment NAME` calls), and `run_many(names, cfg, workers=N)` (`entmask experiment table1,table2
--workers N`: the rows of several experiments pooled and split between N processes). Each experiment pretrains (or
finds) every run it needs, fine-tunes each on cfg.finetune.tasks x cfg.finetune.seeds, and writes under
runs/<profile>/results/:
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

# The package re-exports every name its modules define, so `from entmask import experiments as ex; ex.table1(...)`,
# notebooks and other modules keep working; new code may import from the submodules.
from entmask.experiments.core import (  # noqa: F401
    ABSENT, COLLAPSE_MARK, ExperimentError, ExperimentResult, NOT_RUN, PAPER, PAPER_NA, PAPER_NAMES,
    PAPER_SOURCE, PAPER_TOTALS, PAPER_TOTALS_NOT_ROW_MEAN, TASK_LABEL, TASK_ORDER, _ORDER, _num, _paper_row,
    _pct, fmt_cell, md_table, md_text, model_label, parse_cell,
)
from entmask.experiments.specs import (  # noqa: F401
    COMPUTE_PLOTS, DEFAULT_OTHER_CORPUS, DELTA_BASE, ENTROPY_PLOTS, EXPERIMENT_RUNS, RUN_SPECS, TITLES, _PLAIN,
    _SELF_COLD, _SELF_INIT, _default_name, at_seed, matrix, parse_corpus, pretrain_seeds, reference_row,
)
from entmask.experiments.running import (  # noqa: F401
    _Run, _checkpoint_progress, _pretrain_and_finetune, _record, _report_finished, _say, _score_blimp, row_cost,
)
from entmask.experiments.collect import (  # noqa: F401
    _majority, _preds, _row_flops, _seed_mean_metrics, _seed_totals, _task_rows, _unit, blimp_delta, blimp_of,
    covered_tasks, run_compute, wall_minutes,
)
from entmask.experiments.claims import (  # noqa: F401
    CLAIMS, CONTROLS, VERDICT_COLOR, _ci, _fmt_ci, judge, tasks_above_majority, unit_key,
)
from entmask.experiments.table import (  # noqa: F401
    _build, _local_teacher, _notes, _shown, blimp_note, per_seed_frame, plateau_judged, plateau_note,
    random_masked, self_switch_sd, teacher_line, teacher_strength_of, truncation_note,
)
from entmask.experiments.plots import (  # noqa: F401
    WEIGHTS_NOTE, _figure, _save, curves_frame, entropy_frame, layer_component_view, movement_vs_size,
    plot_compute, plot_curves, plot_entropy, plot_totals, plot_weights, weight_movement,
)
from entmask.experiments.record import (  # noqa: F401
    REGISTRY, ROW_SPECS, Experiment, Report, get, register, unregister,
)
from entmask.experiments.experiment import (  # noqa: F401
    _experiment, _finetune_frame, _write,
)
from entmask.experiments.sections import (  # noqa: F401
    beyond, corpus, frozen, kd, mask_rate, static, table1, table2, weights,
)
from entmask.experiments.sections.frozen import _with_frozen_delta  # noqa: F401
from entmask.experiments.plateau_search import (  # noqa: F401
    PLATEAU_COMMON, RECIPES, _NO_DROPOUT, first_exit, plateau, plateau_configs, plot_plateau,
)
from entmask.experiments.pooled import (  # noqa: F401
    _pooled_claim, _pooled_fit, _pooled_units, _power_table,
)
from entmask.experiments.verdicts_report import (  # noqa: F401
    plot_verdicts, verdicts,
)
from entmask.experiments.memorisation_report import (  # noqa: F401
    MEMO_SPLITS, MEMO_TABLES, _built_teacher, memorisation, memorisation_table, plot_memorisation,
)
from entmask.experiments.registry import (  # noqa: F401
    EXPERIMENTS, run,
)
from entmask.experiments.workers import (  # noqa: F401
    _exit_with_parent, _worker_main, parse_names, run_many,
)
from entmask.experiments.specs import (  # noqa: F401
    POOLABLE, _pooled_specs,
)
