"""The runs each experiment needs: named row specs (overrides on a profile), the experiments' rows, titles and Δ
references, and `matrix(name, cfg)`.

What it is: the definitions a row of a table stands for, and how a row becomes a config at a pretraining seed.
What it is not: training, tables or statistics."""
from __future__ import annotations

import copy

from entmask.config import PretrainConfig, apply_overrides, default_name, validate
from entmask.experiments.core import ExperimentError
from entmask.experiments.record import REGISTRY, ROW_SPECS, field_of, get, names

_PLAIN = {"masking.source": "teacher", "masking.self_start": "cold", "kd.mode": "none"}
_SELF_INIT = {"masking.strategy": "high", "masking.source": "self", "masking.self_start": "init"}
# label -> (overrides on the base config, row text). Every masking/KD field a run depends on is set, so the same
# label gives the same config hash (and so the same run folder) in every experiment. The registry's ROW_SPECS itself:
# an experiment registered with rows of its own adds them here.
RUN_SPECS: dict[str, tuple[dict, str]] = ROW_SPECS
RUN_SPECS.update({
    "baseline": ({"masking.strategy": "random", **_PLAIN}, "random"),
    "teacher-high": ({"masking.strategy": "high", **_PLAIN}, "high (teacher)"),
    "teacher-low": ({"masking.strategy": "low", **_PLAIN}, "low (teacher)"),
    "teacher-mid": ({"masking.strategy": "mid", **_PLAIN}, "mid (teacher)"),
    "teacher-marginal": ({"masking.strategy": "marginal", **_PLAIN}, "marginal (teacher)"),
    "teacher-alternating": ({"masking.strategy": "alternating", **_PLAIN}, "alternating (teacher)"),
    "self-high-cold": ({**_PLAIN, "masking.strategy": "high", "masking.source": "self"}, "high (self, cold)"),
    "self-high-init": ({**_PLAIN, **_SELF_INIT}, "high (self, init)"),
    "kd-only": ({"masking.strategy": "random", **_PLAIN, "kd.mode": "kd-only"}, "random + KD"),
    "kd-complete": ({**_SELF_INIT, "kd.mode": "complete"}, "high (self, init) + KD"),
    "kd-after-init": ({**_SELF_INIT, "kd.mode": "after-init"}, "high (teacher, then self) + KD after init"),
})


# Beyond the paper (issue 14; notebook 06). `baseline-2x` is random masking for twice the steps: with `baseline`
# it draws the line of random masking against compute that a costlier strategy has to beat.
_SELF_COLD = {**_PLAIN, "masking.strategy": "high", "masking.source": "self"}


for _s in ("high", "low"):
    for _suffix, _over, _text in (("r15", {"masking.ratio": 0.15, "masking.num_tokens": None}, "15%"),
                                  ("r40", {"masking.ratio": 0.40, "masking.num_tokens": None}, "40%"),
                                  ("n1", {"masking.num_tokens": 1}, "one token")):
        RUN_SPECS[f"{_s}-{_suffix}"] = ({"masking.strategy": _s, **_PLAIN, **_over}, f"{_s} (teacher), {_text}")

RUN_SPECS.update({
    "baseline-2x": ({"masking.strategy": "random", **_PLAIN, "train.epochs": lambda c: 2 * c.train.epochs,
                     "train.max_steps": lambda c: 2 * c.train.max_steps if c.train.max_steps > 0 else -1},
                    "random, 2x steps"),
    "teacher-high-masked": ({"masking.strategy": "high", **_PLAIN, "masking.scorer": "masked_entropy"},
                            "high masked-view entropy (teacher)"),
    "teacher-sampled": ({"masking.strategy": "sampled", **_PLAIN, "masking.temperature": 1.0},
                        "sampled T=1 (teacher)"),
    "self-high-cold-bert": ({**_SELF_COLD, "masking.policy": "bert"}, "high (self, cold), 80/10/10 student"),
    # Rho-1 scores its reference once; so does this row: each row's mask groups fixed, the teacher's masked loss
    # cached (`excess_loss_fixed`; the online `excess_loss` ran 7 teacher passes a step: 430 of 06's 473 s at tiny)
    "self-excess-cold": ({**_SELF_COLD, "masking.scorer": "excess_loss_fixed"}, "high excess loss (self − teacher)"),
    "random-static": ({"masking.strategy": "random", **_PLAIN, "masking.static": True}, "random (static masks)"),
})


# The old name-keyed tables, now read live from each experiment's record (record.Experiment; the experiments are in
# sections/): rows, the row a Δ is measured against (mask-rate: the same strategy at 15%), titles, figures, pooling.
EXPERIMENT_RUNS = field_of(lambda e: e.rows or None)
DELTA_BASE = field_of(lambda e: e.delta_base)
TITLES = field_of(lambda e: e.title)
ENTROPY_PLOTS = names(lambda e: e.entropy_plot)
COMPUTE_PLOTS = names(lambda e: e.compute_plot)
# plain pretrain + fine-tune rows that can share workers: frozen fine-tunes differently and corpus trains on another
# corpus; plateau, verdicts and beyond have their own drivers.
POOLABLE = names(lambda e: e.poolable)


def reference_row(name: str, label: str) -> str | None:
    """The row `label`'s Δ is taken against in experiment `name` (the baseline; mask-rate: the same strategy at
    15%), or None for a reference row itself."""
    if name in DELTA_BASE:
        return DELTA_BASE[name].get(label)
    return None if label == "baseline" else "baseline"


DEFAULT_OTHER_CORPUS = "bookcorpus/bookcorpus:plain_text:train"  # NAME[:CONFIG[:SPLIT+SPLIT]]


def parse_corpus(spec: str) -> tuple[str, str, list[str]]:
    """'NAME[:CONFIG[:SPLIT+SPLIT]]' -> (name, config, splits); config defaults to 'default', splits to train."""
    parts = spec.split(":")
    if not parts[0] or len(parts) > 3:
        raise ExperimentError(f"corpus {spec!r} must look like NAME[:CONFIG[:SPLIT+SPLIT]], e.g. "
                              f"{DEFAULT_OTHER_CORPUS}")
    name = parts[0]
    cfg_name = parts[1] if len(parts) > 1 and parts[1] else "default"
    splits = [s for s in parts[2].split("+") if s] if len(parts) > 2 else ["train"]
    return name, cfg_name, splits or ["train"]


def _default_name(cfg: PretrainConfig) -> str:
    return default_name(cfg)  # one naming rule for CLI runs and experiment runs


def matrix(name: str, cfg: PretrainConfig, corpus: str | None = None) -> list[tuple[str, PretrainConfig]]:
    """The pretraining runs experiment `name` needs, as (label, config), derived from the resolved `cfg`.

    For `corpus`, `corpus` ('NAME[:CONFIG[:SPLITS]]', default DEFAULT_OTHER_CORPUS) replaces cfg.data's corpus.
    """
    exp = get(name)
    if not exp.rows:
        raise ExperimentError(f"experiment {name!r} has no rows of its own; choose one of "
                              f"{', '.join(n for n, e in REGISTRY.items() if e.rows)}")
    data_over = exp.data_overrides(cfg, corpus=corpus) if exp.data_overrides else {}
    out = []
    for label in exp.rows:
        over, _ = RUN_SPECS[label]
        over = {k: v(cfg) if callable(v) else v for k, v in over.items()}  # values relative to the profile
        c = validate(apply_overrides(cfg, {**over, **data_over}))
        c.name = _default_name(c)
        out.append((label, c))
    return out


def pretrain_seeds(cfg: PretrainConfig) -> list[int]:
    """The pretraining seeds an experiment runs every row with (experiment.pretrain_seeds, else train.seed)."""
    ps = cfg.experiment.pretrain_seeds
    return list(ps) if ps else [cfg.train.seed]


def at_seed(c: PretrainConfig, seed: int) -> PretrainConfig:
    """A copy of row config `c` at pretraining seed `seed` (what every per-seed run of a row is keyed by)."""
    cs = copy.deepcopy(c)
    cs.train.seed = seed
    return cs


def _pooled_specs(names: list[str], cfg: PretrainConfig) -> list[tuple[str, PretrainConfig]]:
    """The union of the experiments' rows, in order, each config once (rows shared between tables, like random and
    high in tables 1 and 2, are one run); a label reused for another config is prefixed with its experiment."""
    out, seen, labels = [], set(), set()
    for name in names:
        for label, c in matrix(name, cfg):
            h = c.short_hash()
            if h in seen:
                continue
            seen.add(h)
            lab = label if label not in labels else f"{name}:{label}"
            labels.add(lab)
            out.append((lab, c))
    return out


def expected_hashes(names, cfg: PretrainConfig, seeds) -> set[str]:
    """The short hashes of the pretraining runs that experiments `names` read at `cfg` and pretraining `seeds`
    (experiments without rows of their own add none): a committed run outside this set is in none of their tables,
    e.g. a student of an earlier recipe of the profile."""
    out = set()
    for name in names:
        if not get(name).rows:
            continue
        for _, c in matrix(name, cfg):
            out.update(at_seed(c, s).short_hash() for s in seeds)
    return out
