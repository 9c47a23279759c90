"""Typed configuration for every entmask stage, its named profiles, JSON round-trip and the config hash.

What it is: dataclasses (model, data, masking, KD, training, reference, fine-tuning), the presets called
profiles (`smoke`, `tiny`, `cpu-long`, `cpu-wiki`, `bertlet`, `bert`), dotted-key overrides (`train.lr=1e-3`) from the
CLI, Python or a notebook, and a stable short hash of the parts of a config that change a run's result.

What it is not: it does no I/O beyond reading and writing config files, and knows nothing of training.

This package's own module only re-exports: import from `entmask.config` as before. Its modules, bottom up:
    dotted      ConfigError; dotted keys: get, set with type coercion, --set parsing, apply_overrides
    hashing     what a run's hash covers (UNHASHED, OMIT_AT_DEFAULT, inert fields) and the hash itself
    sections    the dataclasses, PretrainConfig among them
    loading     a config from a JSON dict or file, lenient or strict
    profiles    the PROFILES table and the reasons for each value
    validation  validate: every value and combination checked, one line per failure
    build       resolve (profile + overrides -> validated config), default_name, overrides_of, set_args, all_keys
"""
from __future__ import annotations

from entmask import CONFIG_VERSION
from entmask.config.build import all_keys, default_name, overrides_of, resolve, set_args
from entmask.config.dotted import ConfigError, apply_overrides, coerce, get_dotted, parse_set_args, set_dotted
from entmask.config.hashing import needs_scores, stable_hash
from entmask.config.loading import from_dict, load_json
from entmask.config.profiles import PROFILES
from entmask.config.sections import (
    DataConfig,
    ExperimentConfig,
    FinetuneConfig,
    KDConfig,
    MaskingConfig,
    ModelConfig,
    PretrainConfig,
    ReferenceConfig,
    TrainConfig,
)
from entmask.config.validation import CHOICES, bert_fields, validate

# Private names of the single module this package was, kept importable from here for older callers.
from entmask.config.dotted import _field_type, _pop_dotted  # noqa: F401
from entmask.config.hashing import _omit_defaults  # noqa: F401
from entmask.config.loading import _coerce_json  # noqa: F401
from entmask.config.profiles import _OFFLINE_DATA, _STRONG_REFERENCE  # noqa: F401
from entmask.config.validation import (  # noqa: F401
    _RANGES,
    _check,
    _check_beyond,
    _check_overrides,
    _check_scheduler,
    _finite,
)

__all__ = [
    "CHOICES", "CONFIG_VERSION", "PROFILES", "ConfigError", "DataConfig", "ExperimentConfig", "FinetuneConfig",
    "KDConfig", "MaskingConfig", "ModelConfig", "PretrainConfig", "ReferenceConfig", "TrainConfig", "all_keys",
    "apply_overrides", "bert_fields", "coerce", "default_name", "from_dict", "get_dotted", "load_json", "needs_scores",
    "overrides_of", "parse_set_args", "resolve", "set_args", "set_dotted", "stable_hash", "validate",
]
