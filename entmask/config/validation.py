"""Validation: every value of a config checked before any work starts, each failure one line naming the field, the
value and the fix (ConfigError).

`validate` checks choices and numeric ranges, then the combinations (a schedule with an end, a scorer the source
can compute, a model whose head count divides its width, rows the model has positions for), resolves strategy
aliases and fills in `data.fingerprint` from the source files. The lists a user can pick from come from the modules
that define them (masking.SELECTORS, entropy.SCORERS, models.PRESETS, data.TASKS, transformers' schedulers), read
at call time: those modules import torch or transformers, and a config import stays light.

What it is not: type coercion of single values (entmask.config.dotted) or of JSON files (entmask.config.loading).
"""
from __future__ import annotations

import inspect
import math
from typing import Any

from entmask.config.dotted import ConfigError, get_dotted
from entmask.config.hashing import needs_scores
from entmask.config.profiles import PROFILES
from entmask.config.sections import PretrainConfig

CHOICES = {
    "masking.source": ("teacher", "self"),
    "masking.self_start": ("cold", "init"),
    "masking.policy": ("mask", "bert"),
    "masking.whole_word": ("none", "max", "mean"),
    "masking.schedule": ("constant", "linear", "cosine"),
    "kd.mode": ("none", "kd-only", "complete", "after-init"),
    "train.precision": ("auto", "bf16", "fp32"),
    "finetune.protocol": ("heldout", "paper"),
    "finetune.precision": ("auto", "bf16", "fp32"),
}


def _check(ok: bool, key: str, value: Any, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} {rule}")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# Numeric fields and their ranges: (key, predicate, rule shown to the user). Checked before any work starts.
_RANGES: tuple = (
    ("train.epochs", lambda v: _finite(v) and v > 0, "must be > 0, e.g. 25 (use train.max_steps to cap steps)"),
    ("train.max_steps", lambda v: v == -1 or v > 0, "must be > 0, or -1 to train train.epochs epochs"),
    ("train.lr", lambda v: _finite(v) and v > 0, "must be a finite number > 0, e.g. 1e-4"),
    ("train.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("train.grad_accum", lambda v: v >= 1, "must be >= 1"),
    ("train.warmup_ratio", lambda v: _finite(v) and 0 <= v < 1, "must be in [0, 1), e.g. 0.06"),
    ("train.weight_decay", lambda v: _finite(v) and v >= 0, "must be a finite number >= 0"),
    ("train.adam_beta2", lambda v: _finite(v) and 0 < v < 1, "must be in (0, 1), e.g. 0.999"),
    ("train.max_grad_norm", lambda v: _finite(v) and v > 0, "must be a finite number > 0, e.g. 1.0"),
    ("train.logging_steps", lambda v: v >= 1, "must be >= 1"),
    ("train.save_steps", lambda v: v >= 1, "must be >= 1"),
    ("train.save_total_limit", lambda v: v >= 1, "must be >= 1 (the newest checkpoint is what a resume needs)"),
    ("train.eval_batch_size", lambda v: v >= 1, "must be >= 1"),
    ("train.eval_steps", lambda v: v >= 0, "must be >= 0 (0 = evaluate only at the end)"),
    ("train.eval_rows", lambda v: v >= 1, "must be >= 1"),
    ("train.entropy_chunk", lambda v: v >= 1, "must be >= 1"),
    ("train.entropy_block_rows", lambda v: v >= 1, "must be >= 1"),
    ("train.num_workers", lambda v: v >= 0, "must be >= 0"),
    ("masking.teacher_epochs", lambda v: v >= 0, "must be >= 0"),
    ("data.test_fraction", lambda v: _finite(v) and 0 < v < 1, "must be in (0, 1), e.g. 0.05"),
    ("data.max_articles", lambda v: v is None or v >= 2, "must be >= 2 (one train and one test article), or none"),
    ("data.max_words", lambda v: v is None or v >= 1000, "must be >= 1000 words, or none (the whole corpus)"),
    ("kd.temperature", lambda v: _finite(v) and v > 0, "must be a finite number > 0"),
    ("reference.steps", lambda v: v >= 1, "must be >= 1"),
    ("reference.lr", lambda v: _finite(v) and v > 0, "must be a finite number > 0, e.g. 1e-4"),
    ("reference.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("reference.warmup_ratio", lambda v: _finite(v) and 0 <= v < 1, "must be in [0, 1)"),
    ("reference.eval_steps", lambda v: v >= 0, "must be >= 0 (0 = no early stopping)"),
    ("reference.patience", lambda v: v >= 1, "must be >= 1"),
    ("reference.stop_rows", lambda v: v >= 0, "must be >= 0"),
    ("finetune.epochs", lambda v: v >= 1, "must be >= 1"),
    ("finetune.patience", lambda v: v >= 1, "must be >= 1"),
    ("finetune.lr", lambda v: _finite(v) and v > 0, "must be a finite number > 0, e.g. 5e-5"),
    ("finetune.batch_size", lambda v: v >= 1, "must be >= 1"),
    ("finetune.max_len", lambda v: v >= 8, "must be >= 8 tokens"),
    ("finetune.max_train", lambda v: v is None or v >= 2, "must be >= 2, or none for all"),
    ("finetune.max_eval", lambda v: v is None or v >= 2, "must be >= 2, or none for all"),
    ("finetune.heldout_fraction", lambda v: _finite(v) and 0 < v < 1, "must be in (0, 1), e.g. 0.1"),
    ("finetune.frozen_epochs", lambda v: v >= 1, "must be >= 1"),
    ("finetune.bootstrap", lambda v: v >= 0, "must be >= 0 (0 = no confidence intervals)"),
    ("experiment.blimp_per_paradigm", lambda v: 0 <= v <= 1000, "must be in [0, 1000] (0 = no BLiMP)"),
    ("experiment.workers", lambda v: v >= 1, "must be >= 1 (processes that split an experiment's rows)"),
)


def bert_fields() -> list[str]:
    """The fields a BertConfig accepts (what `model.overrides` may name)."""
    from transformers import BertConfig  # local: transformers is slow to import, and a config import stays light

    names = set(inspect.signature(BertConfig.__init__).parameters) - {"self", "kwargs"}
    names |= set(BertConfig().to_dict())
    return sorted(n for n in names if not n.startswith("_"))


def validate(cfg: PretrainConfig, fingerprint: bool = True) -> PretrainConfig:
    """Raise ConfigError (one line) on the first bad value; return cfg with strategy aliases resolved and
    `data.fingerprint` filled in from the source files (fingerprint=False skips that I/O, for pure checks)."""
    from entmask.masking import canonical_strategy  # local: masking imports torch

    for key, allowed in CHOICES.items():
        value = get_dotted(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of {', '.join(allowed)}")
    if cfg.profile not in PROFILES:
        raise ConfigError(f"profile={cfg.profile!r} is not a profile (it names the runs folder); choose one of "
                          f"{', '.join(PROFILES)}")
    for key in ("train.seed", "reference.seed"):
        _check(0 <= get_dotted(cfg, key) < 2 ** 32, key, get_dotted(cfg, key), "must be in [0, 2**32)")
    for key, ok, rule in _RANGES:
        value = get_dotted(cfg, key)
        _check(ok(value), key, value, rule)
    cfg.masking.strategy = canonical_strategy(cfg.masking.strategy)
    m = cfg.masking
    _check(_finite(m.ratio) and 0 < m.ratio <= 1, "masking.ratio", m.ratio, "must be in (0, 1], e.g. 0.15")
    _check(isinstance(m.temperature, (int, float)) and not isinstance(m.temperature, bool) and m.temperature >= 0,
           "masking.temperature", m.temperature, "must be >= 0 (0 = hard top-k, inf = random)")
    if m.num_tokens is not None and not 1 <= m.num_tokens <= cfg.data.seq_len - 2:
        raise ConfigError(f"masking.num_tokens={m.num_tokens} must be between 1 and the {cfg.data.seq_len - 2} "
                          f"maskable positions of data.seq_len={cfg.data.seq_len}")
    t = cfg.train
    if t.short_rows < 1:
        raise ConfigError(f"train.short_rows={t.short_rows} must be >= 1 (1 = every step on whole rows)")
    if t.short_rows > 1 and (cfg.data.seq_len - 2) % t.short_rows:
        raise ConfigError(f"train.short_rows={t.short_rows} does not divide the {cfg.data.seq_len - 2}-token body of "
                          f"data.seq_len={cfg.data.seq_len}; pick a seq_len with seq_len-2 a multiple of it (e.g. "
                          f"{(cfg.data.seq_len - 2) // t.short_rows * t.short_rows + 2})")
    if not 0 < t.short_fraction < 1:
        raise ConfigError(f"train.short_fraction={t.short_fraction} must be between 0 and 1 (the share of steps on "
                          f"short rows; train.short_rows=1 turns the short phase off)")
    _check_ramp(cfg)
    if t.short_positions not in ("own", "natural"):
        raise ConfigError(f"train.short_positions={t.short_positions!r} must be own or natural (where a short row's "
                          f"tokens sit: positions 0 .. t-1, or those they hold in the long row)")
    if t.short_positions == "natural" and t.short_rows > 1 and t.compile:
        raise ConfigError("train.short_positions=natural sets position ids with a hook that torch.compile would "
                          "trace once; set train.compile=false (nothing is gained on a CPU) or short_positions=own")
    if cfg.data.seq_len < 8:
        raise ConfigError(f"data.seq_len={cfg.data.seq_len} is too short; use at least 8")
    _check(bool(cfg.data.splits) and all(isinstance(x, str) and x for x in cfg.data.splits), "data.splits",
           cfg.data.splits, "must name at least one split, e.g. validation,test")
    bad_extra = [x for x in cfg.data.extra_text if x != "glue-train"]
    if bad_extra:
        raise ConfigError(f"data.extra_text has {bad_extra[0]!r}; the only extra text is glue-train")
    _check(bool(cfg.data.tokenizer), "data.tokenizer", cfg.data.tokenizer, "must name a tokenizer folder or hub name")
    if cfg.kd.mode != "none":
        _check(_finite(cfg.kd.alpha) and 0 <= cfg.kd.alpha <= 1, "kd.alpha", cfg.kd.alpha, "must be in [0, 1]")
    if m.source == "self" and m.self_start == "init" and m.teacher_epochs < 1:
        raise ConfigError("masking.teacher_epochs must be >= 1 for self-masking init")
    _check_beyond(cfg)
    if cfg.kd.mode == "after-init" and m.teacher_epochs < 1:
        raise ConfigError("kd.mode=after-init needs masking.teacher_epochs >= 1 (the teacher-masking epoch it "
                          "transfers after); with 0 it would silently be cold self-masking")
    from entmask.models import PRESETS  # local: models imports transformers

    if cfg.model.preset not in PRESETS:
        raise ConfigError(f"model.preset={cfg.model.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    _check_overrides(cfg.model.overrides)
    dims = {**PRESETS[cfg.model.preset], **{k: v for k, v in cfg.model.overrides.items()
                                           if k in ("hidden_size", "num_attention_heads")}}
    if dims["hidden_size"] % dims["num_attention_heads"]:
        raise ConfigError(f"hidden_size {dims['hidden_size']} is not a multiple of num_attention_heads "
                          f"{dims['num_attention_heads']}; change model.overrides.hidden_size or num_attention_heads")
    positions = int(cfg.model.overrides.get("max_position_embeddings", 512))
    if cfg.data.seq_len > positions:
        raise ConfigError(f"data.seq_len={cfg.data.seq_len} exceeds the model's {positions} positions; use a "
                          f"shorter length or --set model.overrides.max_position_embeddings={cfg.data.seq_len}")
    if cfg.finetune.max_len > positions:
        raise ConfigError(f"finetune.max_len={cfg.finetune.max_len} exceeds the model's {positions} positions; use "
                          f"at most {positions}")
    from entmask.data import TASKS  # local: data imports torch

    ft = cfg.finetune
    _check(isinstance(ft.tasks, list) and bool(ft.tasks), "finetune.tasks", ft.tasks,
           f"is empty; name at least one of {', '.join(TASKS)}")
    bad = [t for t in ft.tasks if t not in TASKS]
    if bad:
        raise ConfigError(f"finetune.tasks has unknown task {bad[0]!r}; choose from {', '.join(TASKS)}")
    _check(bool(ft.seeds) and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 32
                                  for x in ft.seeds) and len(set(ft.seeds)) == len(ft.seeds),
           "finetune.seeds", ft.seeds, "must be a non-empty list of distinct integers in [0, 2**32), e.g. 0,1")
    if len(set(ft.tasks)) != len(ft.tasks):
        raise ConfigError(f"finetune.tasks={ft.tasks!r} names a task twice; list each once")
    ps = cfg.experiment.pretrain_seeds
    if ps is not None:
        _check(bool(ps) and all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2 ** 32 for x in ps)
               and len(set(ps)) == len(ps), "experiment.pretrain_seeds", ps,
               "must be a non-empty list of distinct integers in [0, 2**32), e.g. 0,1 (or none)")
    _check_scheduler(cfg.train.scheduler, "train.scheduler")
    _check_scheduler(cfg.reference.scheduler, "reference.scheduler")
    if fingerprint:
        from entmask.data import source_fingerprint  # local: data imports torch

        cfg.data.fingerprint = source_fingerprint(cfg.data)
    return cfg


def _check_beyond(cfg: PretrainConfig) -> None:
    """The options beyond the paper: a known scorer that the source can compute, and a schedule with an end."""
    from entmask.entropy import SCORERS  # local: entropy imports torch

    m = cfg.masking
    if m.scorer not in SCORERS:
        raise ConfigError(f"masking.scorer={m.scorer!r} is not a scorer; choose one of {', '.join(SCORERS)}")
    uses_entropy = needs_scores(m.strategy) and cfg.kd.mode != "kd-only"
    if uses_entropy and SCORERS[m.scorer].uses_reference:
        teacher_phase = (m.source == "teacher" or cfg.kd.mode == "after-init"
                         or (m.source == "self" and m.self_start == "init"))
        if teacher_phase:
            raise ConfigError(f"masking.scorer={m.scorer} compares the student with the teacher, so it needs the "
                              f"student from step 0: use --source self --self-start cold (and no kd after-init)")
        if SCORERS[m.scorer].reference_score and m.ratio_end is not None:
            raise ConfigError(f"masking.scorer={m.scorer} scores every row on groups fixed at masking.ratio, so a mask-"
                              f"rate schedule would not reach its scoring: drop masking.ratio_end (or use excess_loss)")
    for key in ("masking.ratio_end", "masking.temperature_end"):
        v = get_dotted(cfg, key)
        if v is None:
            continue
        if m.schedule == "constant":
            raise ConfigError(f"{key}={v!r} needs a schedule: --set masking.schedule=linear (or cosine)")
    if m.ratio_end is not None:
        _check(_finite(m.ratio_end) and 0 < m.ratio_end <= 1, "masking.ratio_end", m.ratio_end, "must be in (0, 1]")
        if m.num_tokens is not None:
            raise ConfigError("masking.ratio_end schedules the ratio, but masking.num_tokens fixes k; drop one")
    if m.temperature_end is not None:
        _check(isinstance(m.temperature_end, (int, float)) and m.temperature_end >= 0, "masking.temperature_end",
               m.temperature_end, "must be >= 0")
    if m.temperature_end is not None and (m.strategy != "sampled" or cfg.kd.mode == "kd-only"):
        raise ConfigError(f"masking.temperature_end schedules the temperature of strategy `sampled`; with "
                          f"{m.strategy!r} it would change nothing: drop it or use --strategy sampled")
    if m.temperature_end is not None and not (math.isfinite(m.temperature) and math.isfinite(m.temperature_end)):
        raise ConfigError("a temperature schedule needs finite start and end temperatures (inf = random cannot be "
                          "interpolated): use a large finite value such as 1e3")
    if m.whole_word != "none" and m.strategy == "bernoulli":
        raise ConfigError("masking.whole_word does not apply to bernoulli (each wordpiece is drawn on its own); use "
                          "--strategy random for random whole words")
    if m.static and m.strategy != "random":
        raise ConfigError(f"masking.static draws random masks once per row; with --strategy {m.strategy} it would "
                          f"change nothing (teacher masks are static already, self masks follow the student): use "
                          f"--strategy random or drop masking.static")
    if m.schedule != "constant" and m.ratio_end is None and m.temperature_end is None:
        raise ConfigError(f"masking.schedule={m.schedule} moves nothing: set masking.ratio_end (e.g. 0.15 from "
                          f"ratio 0.3) or masking.temperature_end")


def _check_overrides(overrides: dict) -> None:
    if not isinstance(overrides, dict):
        raise ConfigError(f"model.overrides={overrides!r} must be a JSON object of BertConfig fields")
    valid = bert_fields()
    for k, v in overrides.items():
        if k not in valid:
            raise ConfigError(f"model.overrides has unknown BertConfig field {k!r}; valid fields: {', '.join(valid)}")
        if k in ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
                 "max_position_embeddings") and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise ConfigError(f"model.overrides.{k}={v!r} must be an integer >= 1")
        if k.endswith("dropout_prob") and not (_finite(v) and 0 <= v < 1):
            raise ConfigError(f"model.overrides.{k}={v!r} must be in [0, 1)")
        if k == "vocab_size":
            raise ConfigError("model.overrides.vocab_size is set from the tokenizer; choose the vocabulary with "
                              "data.tokenizer instead")
        if k == "hidden_act":
            from transformers.activations import ACT2FN  # local: as bert_fields' import

            if v not in ACT2FN:
                raise ConfigError(f"model.overrides.hidden_act={v!r} is unknown; "
                                  f"choose one of {', '.join(sorted(ACT2FN))}")


def _check_scheduler(name: str, key: str) -> None:
    from transformers import SchedulerType  # local: as bert_fields' import

    allowed = [s.value for s in SchedulerType]
    if name not in allowed:
        raise ConfigError(f"{key}={name!r} is not a transformers scheduler; choose one of "
                          f"{', '.join(allowed)}")



def _check_ramp(cfg: PretrainConfig) -> None:
    """train.length_ramp: [[k, share], ...] after the short phase, k decreasing and dividing the row's body."""
    t, body = cfg.train, cfg.data.seq_len - 2
    ramp = t.length_ramp
    if not ramp:
        return
    if t.short_rows <= 1:
        raise ConfigError("train.length_ramp needs a short phase to ramp from: set train.short_rows > 1 (or "
                          "train.length_ramp=[])")
    ok = isinstance(ramp, list) and all(isinstance(s, (list, tuple)) and len(s) == 2 for s in ramp)
    if not ok:
        raise ConfigError(f"train.length_ramp={ramp!r} must be a list of [k, share] pairs, e.g. [[5, 0.15], [2, 0.15]]")
    prev = t.short_rows
    for k, share in ramp:
        if not isinstance(k, int) or isinstance(k, bool) or not 1 < k < prev or body % k:
            raise ConfigError(f"train.length_ramp: k={k!r} must be an integer below the stage before it ({prev}), "
                              f"above 1, dividing the {body}-token body of data.seq_len={cfg.data.seq_len}")
        if not isinstance(share, (int, float)) or isinstance(share, bool) or not share > 0:
            raise ConfigError(f"train.length_ramp: share={share!r} of k={k} must be a fraction of the steps above 0")
        prev = k
    total = t.short_fraction + sum(s for _, s in ramp)
    if total >= 1:
        raise ConfigError(f"train.short_fraction + the length_ramp shares = {total:g} leaves no step on whole rows; "
                          f"make them sum below 1")
