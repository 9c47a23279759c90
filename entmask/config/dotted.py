"""Dotted keys into a config (`train.lr`, `model.overrides.hidden_dropout_prob`): reading, setting with the value
coerced to the field's type, `--set key=value` parsing, applying a dict of overrides; and ConfigError, the one-line
error every config check raises.

What it is not: it knows no field, section or profile by name (any dataclass tree will do), does no validation
beyond each value's type (entmask.config.validation) and reads no files (entmask.config.loading). It is the bottom
of the config package: its other modules import it, it imports none of them.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import typing
from dataclasses import fields
from typing import Any, TypeVar

C = TypeVar("C")  # a config (PretrainConfig, or any dataclass tree)


class ConfigError(ValueError):
    """A bad configuration value; its message is one line naming the field and the fix."""


def get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        if isinstance(obj, dict):
            obj = obj[part]
        else:
            obj = getattr(obj, part)
    return obj


def _pop_dotted(d: dict, key: str) -> None:
    *parents, last = key.split(".")
    for p in parents:
        d = d.get(p, {})
    d.pop(last, None)


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
            raise ConfigError(f"{key}={value!r} must be {'an integer' if typ is int else 'a number'}, e.g. "
                              f"--set {key}={'2' if typ is int else '1e-3'}") from None
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
                if base is list:  # rte,sst2 or [rte, sst2]: names without JSON's quotes
                    inner = value.strip()
                    inner = inner[1:-1] if inner.startswith("[") and inner.endswith("]") else inner
                    value = [v.strip().strip("'\"") for v in inner.split(",") if v.strip()]
                else:
                    raise ConfigError(f"{key}={value!r} must be a JSON object, e.g. '{{\"a\": 1}}'") from None
        if not isinstance(value, base):
            raise ConfigError(f"{key}={value!r} must be a {base.__name__}")
        return value
    return value


def _dotted_keys(obj: Any, prefix: str = "") -> list[str]:
    """Every leaf key of a dataclass tree (`train.lr`, ...)."""
    out = []
    for f in fields(obj):
        v = getattr(obj, f.name)
        out += _dotted_keys(v, f"{prefix}{f.name}.") if dataclasses.is_dataclass(v) else [prefix + f.name]
    return out


def _unknown_key(cfg: Any, key: str) -> ConfigError:
    """The one-line error for a key the config lacks, with the closest valid keys (a typo is the usual cause)."""
    import difflib

    near = difflib.get_close_matches(key, _dotted_keys(cfg), n=1, cutoff=0.85) if dataclasses.is_dataclass(cfg) else []
    hint = f"did you mean {near[0]}? " if near else ""
    return ConfigError(f"unknown config key {key!r}; {hint}`entmask info --keys` lists every key")


def set_dotted(cfg: Any, key: str, value: Any) -> None:
    parts = key.split(".")
    obj = cfg
    for part in parts[:-1]:
        if not dataclasses.is_dataclass(obj) or not hasattr(obj, part):
            raise _unknown_key(cfg, key)
        obj = getattr(obj, part)
    last = parts[-1]
    if isinstance(obj, dict):  # e.g. model.overrides.hidden_dropout_prob
        obj[last] = value
        return
    if not dataclasses.is_dataclass(obj) or last not in {f.name for f in fields(obj)}:
        raise _unknown_key(cfg, key)
    setattr(obj, last, coerce(value, _field_type(obj, last), key))


def apply_overrides(cfg: C, overrides: dict | None) -> C:
    """A copy of `cfg` with each dotted key of `overrides` ({'train.lr': 1e-3, ...}) set; not validated."""
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
