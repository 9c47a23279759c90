"""The tokenizer: found as a folder, in the mirror's models/ (`<name>-vocab`), or on the hub, and checked.

What it is: `resolve_tokenizer_path`, `load_tokenizer` (always AutoTokenizer; a folder asking for custom code is
refused without --trust-remote-code, a tokenizer mapping ordinary words to [UNK] is refused) and
`tokenizer_fingerprint` (its files by content, for the corpus cache key).

What it is not: no corpus and no model loading. transformers is imported in `load_tokenizer` only: it costs about a
second, which the CLI and config validation (they import `entmask.data`) should not pay.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from entmask.data_sources import ENV_DATA, ENV_MODELS, DataError, file_digest, hub_reachable, mirror_dir, mirror_name
from entmask.runs import stable_hash


def _models_dirs(data_dir: str | None) -> list[Path]:
    out = []
    if os.environ.get(ENV_MODELS):
        out.append(Path(os.environ[ENV_MODELS]))
    root = mirror_dir(data_dir)
    if root is not None:
        out.append(root.parent / "models")
    return out


def resolve_tokenizer_path(name: str, data_dir: str | None = None) -> str:
    """A folder if `name` is one, else `<models>/<name>-vocab` from the mirror, else the hub name itself."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    short = mirror_name(name)
    for d in _models_dirs(data_dir):
        for cand in (d / f"{short}-vocab", d / short):
            if cand.is_dir():
                return str(cand)
    return name


def load_tokenizer(name: str = "bert-base-uncased", data_dir: str | None = None, trust_remote_code: bool = False):
    """The tokenizer by folder, mirror or hub name.

    Always through AutoTokenizer.from_pretrained: in transformers 5, BertTokenizer(vocab_file=...) silently maps
    every word to [UNK].
    """
    from transformers import AutoTokenizer

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # no "tokenizer class mismatch" chatter on every load
    path = resolve_tokenizer_path(name, data_dir)
    looked = ", ".join(str(d) for d in _models_dirs(data_dir)) or "no mirror"
    if not Path(path).is_dir() and not hub_reachable():
        raise DataError(f"tokenizer {name!r} is not a local folder (looked in {looked}) and the hub is unreachable; "
                        f"set --data-dir or {ENV_DATA} to a mirror with models/{mirror_name(name)}-vocab")
    if Path(path).is_dir():
        _check_tokenizer_folder(Path(path), trust_remote_code)
    try:
        # trust_remote_code=False explicitly: never a [y/N] prompt on stdin, never code from a folder.
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise DataError(f"tokenizer {name!r} not found (looked in {looked} and the hub: "
                        f"{str(e).splitlines()[0][:80] if str(e) else type(e).__name__}); set {ENV_MODELS} or "
                        f"--data-dir to a mirror with models/{mirror_name(name)}-vocab") from None
    probe = tok("the cat sat")["input_ids"]
    if tok.unk_token_id is not None and probe.count(tok.unk_token_id) == len(probe) - 2:
        raise DataError(f"tokenizer {path} maps ordinary words to [UNK]; load it from a folder with "
                        f"AutoTokenizer (vocab.txt + tokenizer_config.json)")
    return tok


def _check_tokenizer_folder(folder: Path, trust_remote_code: bool) -> None:
    """A tokenizer folder whose tokenizer_config.json or config.json names custom code is refused in one line."""
    for name in ("tokenizer_config.json", "config.json"):
        f = folder / name
        if not f.is_file():
            continue
        try:
            d = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DataError(f"tokenizer file {f} is unreadable or not JSON ({type(e).__name__}); restore it") from None
        if isinstance(d, dict) and "auto_map" in d and not trust_remote_code:
            raise DataError(f"tokenizer folder {folder}: {name} asks to run custom code (auto_map); entmask never "
                            f"executes code from a folder unless you pass --trust-remote-code")
        if name == "config.json" and isinstance(d, dict) and d.get("model_type") not in (None, "bert"):
            raise DataError(f"{f} has model_type {d.get('model_type')!r}; entmask loads BERT tokenizers and models "
                            f"only (model_type 'bert')")


def tokenizer_fingerprint(name: str, data_dir: str | None = None) -> str:
    """The tokenizer's files (vocab, config) by content when it is a local folder, else its hub name."""
    path = Path(resolve_tokenizer_path(name, data_dir))
    if not path.is_dir():
        return f"hub:{name}"
    return stable_hash({f.name: file_digest(f) for f in sorted(path.iterdir()) if f.is_file()
                        and not f.name.startswith(".")}, 12)
