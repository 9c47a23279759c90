"""Where data come from: the offline mirror (parquet files laid out like ../shared/data) or the Hugging Face hub.

What it is: `mirror_dir` (--data-dir, else $ENTMASK_DATA_DIR, else the hub), `hub_reachable` (one cached
connection test, so an offline machine fails at once), `load_split` (a dataset split as a DataFrame, from the
mirror or the hub), `file_digest` (a file's sha256, memoised per process), `data_source` (for `entmask info`) and
`DataError`, the one-line error of everything that reads data.

What it is not: no tokenizer (`entmask.data_tokenizer`), no GLUE task table (`entmask.data_glue`), no corpus
(`entmask.data`). pandas and datasets are imported where a split is read: config validation and every `entmask`
command import this module, and should not pay for them (about two seconds).
"""
from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

ENV_DATA = "ENTMASK_DATA_DIR"
ENV_MODELS = "ENTMASK_MODELS_DIR"


class DataError(RuntimeError):
    """Data that cannot be had; the message is one line saying where it looked and how to point elsewhere."""


# ---- where data comes from -----------------------------------------------------------------------------------
def mirror_dir(data_dir: str | None = None) -> Path | None:
    """The offline mirror: --data-dir, else $ENTMASK_DATA_DIR, else None (the hub)."""
    d = data_dir or os.environ.get(ENV_DATA)
    if not d:
        return None
    p = Path(d).expanduser()
    if p.exists() and not p.is_dir():
        raise DataError(f"data dir {p} is a file, not a folder; point --data-dir or {ENV_DATA} at a mirror folder "
                        f"laid out like ../shared/data")
    if not p.is_dir():
        raise DataError(f"data dir {p} does not exist; point --data-dir or {ENV_DATA} at a mirror laid out like "
                        f"../shared/data")
    return p


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")


_HUB_OK: dict = {}


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick connection test, cached, so an offline machine fails at once instead of after minutes of retries."""
    if hub_offline():
        return False
    if "ok" not in _HUB_OK:
        host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            _HUB_OK["ok"] = True
        except OSError:
            _HUB_OK["ok"] = False
    return _HUB_OK["ok"]


def mirror_name(hub_name: str) -> str:
    """The mirror keeps a hub dataset under its last name part: Salesforce/wikitext -> wikitext."""
    return hub_name.rstrip("/").split("/")[-1]


def mirror_folder(root: Path, dataset: str, config: str) -> Path:
    """Where the mirror keeps a dataset's config: <root>/<name>/<config>, or <root>/<name> for a corpus of one config
    asked for as `default` (wikipedia-good/train.parquet, gutenberg/train.parquet)."""
    folder = root / mirror_name(dataset) / config
    if config == "default" and not folder.is_dir():
        folder = root / mirror_name(dataset)
    return folder


def read_mirror_split(root: Path, dataset: str, config: str, split: str):
    """A split of the mirror as a pandas DataFrame, or a DataError naming what the mirror does have."""
    import pandas as pd

    folder = mirror_folder(root, dataset, config)
    f = folder / f"{split}.parquet"
    if not f.exists():
        have = sorted(p.stem for p in folder.glob("*.parquet")) if folder.is_dir() else []
        mdir = root / mirror_name(dataset)
        configs = sorted(p.name for p in mdir.glob("*")) if mdir.is_dir() else []
        what = f"it has {config}/{{{','.join(have)}}}" if have else f"it has configs {configs or 'none'}"
        raise DataError(f"{dataset}/{config} split {split!r} is not in the mirror {root} ({what}; see its "
                        f"MANIFEST.md): choose available splits or another data dir")
    try:
        return pd.read_parquet(f)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a damaged file; all mean the same
        first = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
        raise DataError(f"mirror file {f} is damaged ({first}); restore it (MANIFEST.md beside it lists each "
                        f"file's sha256) or point --data-dir at an intact mirror") from None


def load_hub_split(dataset: str, config: str, split: str):
    """A split from the Hugging Face hub as a DataFrame; offline, a one-line DataError."""
    if not hub_reachable():
        raise DataError(f"{dataset}/{config} split {split!r}: the Hugging Face hub is unreachable from here and no "
                        f"mirror is set; point --data-dir or {ENV_DATA} at a mirror such as ../shared/data")
    try:
        import datasets

        ds = datasets.load_dataset(dataset, config, split=split)
    except Exception as e:  # noqa: BLE001 - the hub raises many types when unreachable; all mean the same here
        msg = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise DataError(f"could not load {dataset}/{config} split {split!r} from the hub ({msg}); offline, point "
                        f"--data-dir or {ENV_DATA} at a mirror such as ../shared/data") from None
    return ds.to_pandas()


def load_split(dataset: str, config: str, split: str, data_dir: str | None = None):
    root = mirror_dir(data_dir)
    if root is not None:
        return read_mirror_split(root, dataset, config, split)
    return load_hub_split(dataset, config, split)


def data_source(data_dir: str | None = None) -> str:
    root = mirror_dir(data_dir)
    return f"mirror {root}" if root else ("hub (offline mode!)" if hub_offline() else "hub")


# ---- content fingerprints -------------------------------------------------------------------------------------
_DIGESTS: dict = {}  # (path, size, mtime_ns, inode) -> sha256, so one process hashes each file once


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (memoised per process on its identity, recomputed when the file is replaced)."""
    st = path.stat()
    ident = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    if ident not in _DIGESTS:
        h = hashlib.sha256()
        try:
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
        except OSError as e:
            raise DataError(f"cannot read {path} ({e.strerror}); check its permissions or restore it") from None
        _DIGESTS[ident] = h.hexdigest()
    return _DIGESTS[ident]

