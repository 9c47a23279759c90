"""Run folders for the records tests, crafted here (nothing committed): each is named by the hash of the config it
holds, as the stages name theirs, so that its record verifies on import (records.verify_record) unless a test spoils it.
"""
import dataclasses
import json
from pathlib import Path

from entmask import config, runs


def pretrain_config(name: str = "high-teacher", seed: int = 0, profile: str = "smoke") -> config.PretrainConfig:
    """A pretraining config as a run folder holds it (not validated: no mirror needed to hash it)."""
    cfg = config.PretrainConfig(profile=profile, name=name)
    cfg.masking.strategy = "high" if name.startswith("high") else "random"
    cfg.train.seed = seed
    return cfg


def finetune_config(pre_name: str, key: str, task: str = "cola", seed: int = 0, profile: str = "smoke") -> dict:
    """A fine-tuning run's config.json, as finetune.finetune_task writes it, with its hash."""
    from entmask.finetune import finetune_hash_dict

    ft = config.FinetuneConfig()
    hd = finetune_hash_dict(ft, task, seed, False, key)
    h = runs.stable_hash(hd)
    return {"finetune": dataclasses.asdict(ft), "task": task, "seed": seed, "frozen": False, "name": pre_name,
            "profile": profile, "model_dir": None, "pretrained_key": key, "hash": h, "hash_dict": hd,
            "data_dir": None, "bf16": False, "device": "cpu"}


REFERENCE_CONFIG = {"reference": {"init": "minilm", "steps": 4}, "data": {"seq_len": 32}, "train": {},
                    "version": config.CONFIG_VERSION}


def fill_run(folder: Path, cfg_json: dict, metrics: dict | None, extra_files: bool = True) -> Path:
    """A run folder as the stages leave it: model weights, tokenizer, checkpoints, logs, predictions."""
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text('{"model_type": "bert"}')
    (folder / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    (folder / "config.json").write_text(json.dumps(cfg_json))
    if extra_files:
        (folder / "model" / "vocab.txt").write_text("[PAD]\n")
        (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
        (folder / "checkpoints" / "checkpoint-2" / "trainer_state.json").write_text("{}")
        (folder / "logs").mkdir()
        (folder / "logs" / "log_history.json").write_text("[]")
        (folder / "logs" / "tensorboard").mkdir()
        (folder / "logs" / "tensorboard" / "events.out.tfevents.1.host.2.0").write_bytes(b"\1")
        (folder / "predictions.json").write_text('{"pred": [1, 0]}')
        (folder / "huge.json").write_bytes(b" " * (runs.RECORD_MAX_BYTES + 1))
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def pretrain_run(profile_dir: Path, name: str = "high-teacher", seed: int = 0, metrics: dict | None = None,
                 finished: bool = True, **kw) -> Path:
    cfg = pretrain_config(name, seed, profile_dir.name)
    h = cfg.short_hash()
    m = {"steps": 4, "hash": h, "name": name, **(metrics or {})} if finished else None
    return fill_run(profile_dir / "pretrain" / f"{name}-{h}", cfg.to_dict(), m, **kw)


def finetune_run(profile_dir: Path, pre: Path, task: str = "cola", seed: int = 0, **kw) -> Path:
    d = finetune_config(pre.name, runs.weights_key(pre / "model"), task, seed, profile_dir.name)
    m = {"task": task, "seed": seed, "frozen": False, "hash": d["hash"], "status": "ok", "paper_score": 50.0}
    return fill_run(profile_dir / "finetune" / task / f"{pre.name}-{d['hash']}", d, m, **kw)


def reference_run(profile_dir: Path, **kw) -> Path:
    h = runs.stable_hash(REFERENCE_CONFIG)
    return fill_run(profile_dir / "reference" / f"reference-{h}", REFERENCE_CONFIG, {"steps": 4, "kind": "reference"},
                    **kw)
