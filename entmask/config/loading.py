"""A config from JSON: `from_dict` for a parsed config.json, `load_json` for a file.

Two readings: lenient for run folders this entmask wrote (values taken as written, so a config hashes exactly as
its run did), strict for files a user hands in (every value checked against its field's type, unknown keys and
other config versions refused, one line naming the file and the key).

What it is not: writing configs (PretrainConfig.to_json; run folders are entmask.runs's), or checking the values
themselves (entmask.config.validation): a loaded config is not yet a valid one.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Any

from entmask import CONFIG_VERSION
from entmask.config.dotted import ConfigError
from entmask.config.sections import PretrainConfig


def from_dict(d: dict, strict: bool = False, where: str = "config") -> PretrainConfig:
    """A PretrainConfig from its JSON dict. strict (user-given files): every value coerced to its field's type,
    unknown keys and non-objects refused, one line naming `where` and the key; lenient: values taken as written
    (run folders this version wrote)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} holds a JSON {type(d).__name__}, not a config object; give a config.json written "
                          f"by entmask (a run folder's config.json, or `entmask info > file`)")

    def build(cls, data, prefix):
        kwargs = {}
        hints = typing.get_type_hints(cls)
        names = {f.name for f in fields(cls)}
        if strict:
            unknown = sorted(set(data) - names)
            if unknown:
                raise ConfigError(f"{where}: unknown key {prefix + unknown[0]!r}; valid keys in "
                                  f"{prefix.rstrip('.') or 'the top level'}: {', '.join(sorted(names))}")
        for f in fields(cls):
            if f.name not in data:
                continue
            v = data[f.name]
            t = hints[f.name]
            key = prefix + f.name
            if dataclasses.is_dataclass(t):
                if not isinstance(v, dict):
                    if strict:
                        raise ConfigError(f"{where}: {key} must be a JSON object, not {json.dumps(v)[:40]}")
                    continue
                kwargs[f.name] = build(t, v, key + ".")
            else:
                try:
                    kwargs[f.name] = _coerce_json(v, t, key) if strict else v
                except ConfigError as e:
                    raise ConfigError(f"{where}: {e}") from None
        return cls(**kwargs)

    cfg = build(PretrainConfig, d, "")
    if strict and cfg.version != CONFIG_VERSION:
        raise ConfigError(f"{where} is config version {cfg.version}, this entmask reads version {CONFIG_VERSION}; "
                          f"start from `entmask info --profile ... > config.json` and copy your values over")
    return cfg


def _coerce_json(value: Any, typ: Any, key: str) -> Any:
    """A JSON value checked against the field type: no strings for numbers, no fractions for integers."""
    origin = typing.get_origin(typ)
    args = [a for a in typing.get_args(typ) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None:
            return None
        typ = args[0]
    if typ is bool and not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} must be true or false")
    if typ in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r} must be {'an integer' if typ is int else 'a number'}")
        if typ is int and value != int(value):
            raise ConfigError(f"{key}={value!r} must be an integer")
        return typ(value)
    if typ is str and not isinstance(value, str):
        raise ConfigError(f"{key}={value!r} must be a string")
    base = typing.get_origin(typ) or typ
    if base in (list, dict) and not isinstance(value, base):
        raise ConfigError(f"{key}={value!r} must be a JSON {'list' if base is list else 'object'}")
    return value


def load_json(path: str | Path, strict: bool = False) -> PretrainConfig:
    """A config from a JSON file; strict for files a user hands in (see from_dict)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist; give a config.json (e.g. a run folder's)") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder; give the config.json inside it") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"config file {path} is not valid JSON ({str(e).splitlines()[0][:80]}); give a "
                          f"config.json written by entmask") from None
    return from_dict(d, strict=strict, where=f"config file {path}")

