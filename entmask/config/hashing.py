"""What a config's hash covers: the fields that change a run's result, and the stable short hash of them.

`hash_dict(cfg)` is the config less what cannot change the run: the fields in UNHASHED (names, logging, how fast
an evaluation runs), the ones in OMIT_AT_DEFAULT while at their default (added after runs already existed), the
teacher and reference recipe when the run uses no teacher, and the fields that are inert given the others
(`inert_fields`: kd.alpha without KD, the entropy source of random masking). `short_hash` is `stable_hash` of it:
the `-<hash>` of every run folder, by which a finished run is found again. PretrainConfig's methods of the same
names call these. A change here renames finished runs (tests/test_golden.py holds every experiment row's hash).

What it is not: it holds no field (entmask.config.sections) and validates nothing (entmask.config.validation);
stable_hash itself is entmask.runs's (caches use it too).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from entmask.config.dotted import _pop_dotted, get_dotted
from entmask.runs import stable_hash

# Fields that never change a run's result, so they are left out of its hash.
UNHASHED: tuple = (
    "name", "profile", "data.data_dir", "train.logging_steps", "train.save_steps", "train.save_total_limit",
    "train.eval_batch_size", "train.eval_steps", "train.eval_rows", "train.entropy_chunk",
    "train.entropy_block_rows", "train.num_workers", "finetune", "trust_remote_code", "experiment",
)

# Fields added after config version 2 whose default reproduces the behaviour from before they existed: left
# out of every hash while at that default, so adding a feature does not orphan finished runs (hours of CPU).
OMIT_AT_DEFAULT: tuple = ("masking.temperature", "masking.scorer", "masking.whole_word",
                          "masking.schedule", "masking.ratio_end", "masking.temperature_end",
                          "masking.static",
                          "train.short_rows", "train.short_fraction", "data.max_words", "train.compile",
                          "train.short_positions", "train.length_ramp")


def needs_scores(strategy: str) -> bool:
    """Whether a strategy ranks scores (masking.SELECTORS' needs_scores); an unregistered name (a config read
    before validation) as the two built-in score-free strategies are named."""
    from entmask.masking import needs_entropy  # local: masking imports torch, and a config import stays light

    try:
        return needs_entropy(strategy)
    except ValueError:
        return strategy not in ("random", "bernoulli")


def uses_teacher(cfg: Any) -> bool:
    """Whether this run needs the teacher at all (entropy or KD)."""
    m = cfg.masking
    needs_entropy = needs_scores(m.strategy)
    teacher_entropy = needs_entropy and (m.source == "teacher" or m.self_start == "init")
    from entmask.entropy import SCORERS  # local: entropy imports torch, and a config import stays light

    reference_scorer = needs_entropy and m.scorer in SCORERS and SCORERS[m.scorer].uses_reference
    return teacher_entropy or cfg.kd.mode != "none" or reference_scorer


def hash_dict(cfg: Any) -> dict:
    """The config as a dict, less every field that cannot change this run's result (see the module's docstring)."""
    d = cfg.to_dict()
    for key in cfg.UNHASHED:
        _pop_dotted(d, key)
    _omit_defaults(d, cfg.OMIT_AT_DEFAULT, type(cfg)().to_dict())
    if not cfg.uses_teacher():
        d.pop("teacher")
        d.pop("reference")
    for key in cfg.inert_fields():
        _pop_dotted(d, key)
    return d


def inert_fields(cfg: Any) -> list[str]:
    """Fields that cannot change this run's result, given the others (e.g. kd.alpha without KD, the entropy
    source of random masking): left out of the hash, so setting them does not retrain an identical run."""
    m, kd = cfg.masking, cfg.kd
    out = []
    if kd.mode == "none":
        out += ["kd.alpha", "kd.temperature"]
    uses_entropy = needs_scores(m.strategy) and kd.mode != "kd-only"
    teacher_phase = kd.mode == "after-init" or (uses_entropy and m.source == "self" and m.self_start == "init")
    if not uses_entropy or kd.mode == "after-init":
        out += ["masking.source", "masking.self_start"]
    elif m.source == "teacher":
        out += ["masking.self_start"]
    if not teacher_phase:
        out += ["masking.teacher_epochs"]
    # with num_tokens, the ratio picks no mask; but a masked-view scorer's passes are ceil(1/ratio) groups, so there
    # it still changes the scores and stays in the hash
    masked_view = uses_entropy and _scorer_view(m.scorer) == "masked"
    if m.num_tokens is not None and not masked_view:
        out += ["masking.ratio"]
    if m.strategy != "sampled":
        out += ["masking.temperature", "masking.temperature_end"]
    if not uses_entropy:
        out += ["masking.scorer"]
    if m.schedule == "constant":
        out += ["masking.ratio_end", "masking.temperature_end"]
    return out


def _scorer_view(name: str) -> str | None:
    from entmask.entropy import SCORERS  # local: entropy imports torch, and a config import stays light

    return SCORERS[name].view if name in SCORERS else None


def short_hash(cfg: Any) -> str:
    """The run's hash: the `<hash>` of its folder `<name>-<hash>`."""
    return stable_hash(cfg.hash_dict())


def reference_hash_dict(cfg: Any) -> dict:
    """What identifies the reference teacher: its recipe and the data it was adapted on."""
    t = cfg.train  # the optimiser settings the adaptation inherits from the profile
    out = {"reference": dataclasses.asdict(cfg.reference), "data": cfg.data.cache_fields(),
           "train": {k: getattr(t, k) for k in ("weight_decay", "adam_beta2", "max_grad_norm", "precision",
                                                "grad_accum")},
           "version": cfg.version}
    _omit_defaults(out, cfg.OMIT_AT_DEFAULT, type(cfg)().to_dict())
    return out


def _omit_defaults(d: dict, keys: tuple, default: dict) -> None:
    """Drop each dotted key of `keys` from `d` where its value equals the one in `default` (the dataclass
    defaults as a dict)."""
    for key in keys:
        try:
            value, base = get_dotted(d, key), get_dotted(default, key)
        except (KeyError, AttributeError):
            continue
        if value == base:
            _pop_dotted(d, key)
