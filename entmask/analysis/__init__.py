"""Statistics over fine-tuning results and the fine-tuned-vs-pretrained weight analysis (the paper's §3.7).

What it is:
    weight_deltas / aggregate_deltas / most_moved_component   how far fine-tuning moved each tensor, by layer and
                                                              component, from safetensors files (never pickle)
    paired_bootstrap_delta                                    paired bootstrap CI of a difference of means
    bootstrap_total_delta                                     paired bootstrap CI of the difference of the GLUE
                                                              "Total" (mean of per-task paper metrics) between two
                                                              models, a t-interval over seeds, and the wider
                                                              of the two, which verdicts use
    interval_calibration                                      how often those intervals exclude 0, by simulation
                                                              (false verdicts with no effect; power with one)
    mean_sd                                                   mean and sample standard deviation

What it is not: no plotting and no styles (notebooks draw), and no training.

The modules, each saying what it is and is not:
    weights       weight_deltas, aggregate_deltas, most_moved_component, classify_parameter, load_weights,
                  COMPONENTS, EPS, HEAD_INIT_FILE (and what each column means)
    bootstrap     bootstrap_total_delta, paired_bootstrap_delta, mean_sd, predictions_of
    calibration   interval_calibration
"""
from __future__ import annotations

# The package re-exports every name the single-module analysis.py defined, so `from entmask.analysis import
# bootstrap_total_delta`, entmask.experiments and the tests keep working; new code may import from the submodules.
from entmask.analysis.weights import (  # noqa: F401
    _IN_LAYER, _LAYER, COMPONENTS, EPS, HEAD_INIT_FILE, _auto_head_init, _canonical, _weights_files,
    aggregate_deltas, classify_parameter, load_weights, most_moved_component, weight_deltas,
)
from entmask.analysis.bootstrap import (  # noqa: F401
    _as_seed_list, _confusion_metric, _seed_draws, _task_metrics, bootstrap_total_delta, mean_sd,
    paired_bootstrap_delta, predictions_of,
)
from entmask.analysis.calibration import (  # noqa: F401
    interval_calibration,
)
