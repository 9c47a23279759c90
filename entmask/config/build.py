"""Configs by name, and back: `resolve` builds a profile's config with overrides and validates it; `default_name`
is the run name the CLI and the experiments give it; `overrides_of` / `set_args` are the way back, the dotted
fields (and `--set` options) that rebuild a config from its profile; `all_keys` lists every key a user can set.

What it is not: the profiles themselves (entmask.config.profiles), the checks (entmask.config.validation) or the
dotted-key mechanics (entmask.config.dotted).
"""
from __future__ import annotations

import dataclasses
import json
import shlex
from dataclasses import fields

from entmask.config.dotted import ConfigError, apply_overrides, get_dotted
from entmask.config.hashing import needs_scores
from entmask.config.profiles import PROFILES
from entmask.config.sections import PretrainConfig
from entmask.config.validation import validate


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


def default_name(cfg: PretrainConfig) -> str:
    """The run name the CLI and the experiments give a config (strategy, source, start, KD, ratio)."""
    m = cfg.masking
    if cfg.kd.mode != "none":
        return f"kd-{cfg.kd.mode}"
    if not needs_scores(m.strategy):
        name = m.strategy + ("-static" if m.static else "")
    elif m.source == "self":
        name = f"{m.strategy}-self-{m.self_start}"
    else:
        name = f"{m.strategy}-teacher"
    if m.num_tokens is not None:
        name += f"-n{m.num_tokens}"
    elif m.ratio != 0.15:
        name += f"-r{int(round(m.ratio * 100))}"
    return name


def overrides_of(cfg: PretrainConfig) -> dict:
    """The dotted fields where `cfg` differs from its profile's preset (name aside): what a command that rebuilds
    it must pass with --set."""
    base = resolve(cfg.profile)
    return {k: get_dotted(cfg, k) for k in all_keys(cfg)
            if k not in ("name", "data.fingerprint") and get_dotted(cfg, k) != get_dotted(base, k)}  # computed


def set_args(cfg: PretrainConfig) -> str:
    """`overrides_of(cfg)` as command-line --set options (empty when it is the preset), for messages that name a
    command to run."""

    def show(v):
        return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))

    return "".join(f" --set {shlex.quote(f'{k}={show(v)}')}" for k, v in overrides_of(cfg).items())


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
