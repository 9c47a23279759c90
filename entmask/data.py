"""Data: the pretraining corpus (hub or offline mirror), its cleaning, 95/5 article split, tokenizing and packing.

What it is: `load_tokenizer`, `load_corpus_lines`, `articles_from_lines` (WikiText's ` = Title = ` headings),
`clean_wikitext` (undo ` @-@ ` escapes, `<unk>` -> [UNK]), `prepare_corpus` (tokenize + pack into [CLS] ... [SEP]
rows of `seq_len` with `datasets.map`, cached under runs/cache/corpus/<key>/ and reused), and `mirror_dir`.
GLUE loading lives in `entmask.finetune`; this module only reads pretraining text (and, on request, GLUE training
sentences as extra pretraining text).

What it is not: no masking and no entropy (they happen in the training step).
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from entmask import runs
from entmask.runs import stable_hash

# DataConfig (entmask.config) is only named in annotations, never imported: data sits below config in the import
# graph, and even a TYPE_CHECKING import would draw the edge data -> config (pyproject exempts data.py from F821).

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
        import socket
        from urllib.parse import urlparse

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


def read_mirror_split(root: Path, dataset: str, config: str, split: str):
    """A split of the mirror as a pandas DataFrame, or a DataError naming what the mirror does have."""
    import pandas as pd

    folder = root / mirror_name(dataset) / config
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


# ---- content fingerprints -------------------------------------------------------------------------------------
_DIGESTS: dict = {}  # (path, size, mtime_ns, inode) -> sha256, so one process hashes each file once


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (memoised per process on its identity, recomputed when the file is replaced)."""
    import hashlib

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


def source_fingerprint(dc: DataConfig) -> str:
    """A short hash of the *content* the corpus is built from: every source parquet file (and GLUE train files
    for extra_text) and the tokenizer's files. Size and mtime are not enough (a copy keeps both); the bytes are.

    From the hub (no mirror) the fingerprint is the dataset name and config: the datasets library keys its own
    cache by content, but the run hash cannot see a new upstream revision before downloading it.
    """
    parts: dict = {"tokenizer": tokenizer_fingerprint(dc.tokenizer, dc.data_dir)}
    root = mirror_dir(dc.data_dir)
    if root is None:
        parts["source"] = f"hub:{dc.corpus}/{dc.corpus_config}"
    else:
        folder = root / mirror_name(dc.corpus) / dc.corpus_config
        parts["source"] = {s: file_digest(folder / f"{s}.parquet") if (folder / f"{s}.parquet").is_file() else None
                           for s in dc.splits}
        if "glue-train" in dc.extra_text:
            parts["glue"] = {t: file_digest(root / "glue" / t / "train.parquet")
                             for t in TASKS if (root / "glue" / t / "train.parquet").is_file()}
    return stable_hash(parts, 12)


def tokenizer_fingerprint(name: str, data_dir: str | None = None) -> str:
    """The tokenizer's files (vocab, config) by content when it is a local folder, else its hub name."""
    path = Path(resolve_tokenizer_path(name, data_dir))
    if not path.is_dir():
        return f"hub:{name}"
    return stable_hash({f.name: file_digest(f) for f in sorted(path.iterdir()) if f.is_file()
                        and not f.name.startswith(".")}, 12)


def data_source(data_dir: str | None = None) -> str:
    root = mirror_dir(data_dir)
    return f"mirror {root}" if root else ("hub (offline mode!)" if hub_offline() else "hub")


# ---- tokenizer -----------------------------------------------------------------------------------------------
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
    import json

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


# ---- WikiText ------------------------------------------------------------------------------------------------
_TITLE = re.compile(r"^ = [^=].* = $")
_ESCAPES = ((" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."))


def articles_from_lines(lines: list[str]) -> list[str]:
    """Group WikiText lines into articles: a line ` = Title = ` (one '=' each side) starts a new one."""
    articles: list[list[str]] = []
    for line in lines:
        if _TITLE.match(line.rstrip("\n")):
            articles.append([])
        if not articles:
            articles.append([])
        if line.strip():
            articles[-1].append(line)
    return ["".join(a) for a in articles if a]


def clean_wikitext(text: str, unk_token: str = "[UNK]") -> str:
    """Undo the tokenized WikiText's number escapes and map `<unk>` to the tokenizer's unknown token."""
    for a, b in _ESCAPES:
        text = text.replace(a, b)
    return text.replace("<unk>", unk_token)


def glue_train_text(data_dir: str | None) -> list[str]:
    """GLUE *training* sentences as extra pretraining text (validation splits are evaluated, so never these)."""
    out = []
    for task, spec in TASKS.items():
        try:
            df = load_glue_split(task, "train", data_dir)
        except DataError:
            continue
        for col in spec["text"]:
            out.extend(df[col].astype(str).tolist())
    return out


# ---- GLUE ----------------------------------------------------------------------------------------------------
GLUE = "nyu-mll/glue"
# text columns, classes, the split reported, the paper's metric (deduced from its majority-class rows) and GLUE's
TASKS: dict[str, dict] = {
    "cola": {"text": ["sentence"], "num_labels": 2, "eval_split": "validation", "paper_metric": "accuracy",
             "glue_metric": "mcc"},
    "mrpc": {"text": ["sentence1", "sentence2"], "num_labels": 2, "eval_split": "validation", "paper_metric": "f1",
             "glue_metric": "f1"},
    "qnli": {"text": ["question", "sentence"], "num_labels": 2, "eval_split": "validation",
             "paper_metric": "accuracy", "glue_metric": "accuracy"},
    "qqp": {"text": ["question1", "question2"], "num_labels": 2, "eval_split": "validation", "paper_metric": "accuracy",
            "glue_metric": "f1"},
    "rte": {"text": ["sentence1", "sentence2"], "num_labels": 2, "eval_split": "validation",
            "paper_metric": "accuracy", "glue_metric": "accuracy"},
    "sst2": {"text": ["sentence"], "num_labels": 2, "eval_split": "validation", "paper_metric": "accuracy",
             "glue_metric": "accuracy"},
    # The paper's MNLI majority row (35.22) is the majority rate of validation_mismatched.
    "mnli": {"text": ["premise", "hypothesis"], "num_labels": 3, "eval_split": "validation_mismatched",
             "paper_metric": "accuracy", "glue_metric": "accuracy"},
}


def load_glue_split(task: str, split: str, data_dir: str | None = None):
    """One GLUE split as a DataFrame (columns per TASKS, `label`, `idx`), from the mirror or the hub."""
    if task not in TASKS:
        raise DataError(f"unknown GLUE task {task!r}; choose one of {', '.join(TASKS)}")
    return load_split(GLUE, task, split, data_dir)


# ---- the prepared corpus -------------------------------------------------------------------------------------
@dataclass
class Corpus:
    """Packed sequences of the train and test articles, plus what a report needs about them."""

    dir: Path  # runs/cache/corpus/<key>/ (teacher entropies are cached here too)
    key: str
    train_ids: torch.Tensor  # [N_train, T] int64
    test_ids: torch.Tensor  # [N_test, T] int64
    tokenizer: object
    stats: dict

    @property
    def special_ids(self) -> list[int]:
        return list(self.tokenizer.all_special_ids)


def corpus_key(dc: DataConfig) -> str:
    """The cache key of a tokenized corpus: its data fields and the content fingerprint of sources + tokenizer."""
    d = dc.cache_fields()
    d["fingerprint"] = d.get("fingerprint") or source_fingerprint(dc)
    return stable_hash({"data": d, "v": 2})


def prepare_corpus(dc: DataConfig, root: str | Path | None = None, progress: bool = True,
                   force: bool = False, trust_remote_code: bool = False) -> Corpus:
    """Load, clean, split by article, tokenize and pack the corpus, or reuse the cached result (keyed by the
    content of its sources; `force` rebuilds it)."""
    from safetensors.torch import load_file

    if mirror_dir(dc.data_dir) is None and not hub_reachable():
        raise DataError(f"corpus {dc.corpus}/{dc.corpus_config}: the Hugging Face hub is unreachable from here and "
                        f"no mirror is set; point --data-dir or {ENV_DATA} at a mirror such as ../shared/data "
                        f"(../shared/data has WikiText-2, wikipedia-good and gutenberg)")
    tok = load_tokenizer(dc.tokenizer, dc.data_dir, trust_remote_code)
    if dc.fingerprint and dc.fingerprint != source_fingerprint(dc):
        raise DataError(f"the corpus sources changed since this config was resolved (fingerprint {dc.fingerprint}, "
                        f"now {source_fingerprint(dc)}); resolve the config again (rerun the command)")
    key = corpus_key(dc)
    d = runs.cache_dir(root) / "corpus" / key
    done = d / "stats.json"  # written last: its presence marks a complete cache
    with runs.locked(d / "build"):
        if force and done.exists():
            print(f"entmask: --force: rebuilding the corpus cache {d}")
            done.unlink()
        if done.exists():
            try:
                t = load_file(str(d / "packed.safetensors"))
                return Corpus(d, key, t["train"], t["test"], tok, runs.read_json(done))
            except Exception:  # noqa: BLE001 - any damage means rebuild
                print(f"entmask: corpus cache {d} is damaged; rebuilding it")
        return _build_corpus(dc, tok, d, key, progress)


def _build_corpus(dc: DataConfig, tok, d: Path, key: str, progress: bool) -> Corpus:
    import datasets
    from safetensors.torch import save

    if not progress:
        datasets.disable_progress_bars()

    lines: list[str] = []
    for split in dc.splits:
        df = load_split(dc.corpus, dc.corpus_config, split, dc.data_dir)
        if "text" not in df.columns:
            raise DataError(f"{dc.corpus}/{dc.corpus_config} split {split!r} has no 'text' column "
                            f"(columns: {', '.join(df.columns)})")
        lines.extend(df["text"].astype(str).tolist())
    articles = articles_from_lines(lines)
    if not articles:
        raise DataError(f"{dc.corpus}/{dc.corpus_config} splits {dc.splits} hold no text; choose other splits")
    rng = random.Random(dc.split_seed)
    order = list(range(len(articles)))
    rng.shuffle(order)
    if dc.max_articles:
        order = order[: dc.max_articles]
    n_test = max(1, round(len(order) * dc.test_fraction))
    if len(order) - n_test < 1:
        raise DataError(f"only {len(order)} article(s): too few for a {dc.test_fraction:.0%} test split; "
                        f"raise data.max_articles or add splits")
    test_articles = [articles[i] for i in order[:n_test]]
    train_articles = [articles[i] for i in order[n_test:]]
    if "glue-train" in dc.extra_text:
        train_articles = train_articles + glue_train_text(dc.data_dir)

    unk = tok.unk_token or "[UNK]"
    body = dc.seq_len - 2

    def tokenize(batch):
        texts = []
        for t in batch["text"]:
            runs.failpoint("tokenize")
            texts.append(clean_wikitext(t, unk))
        enc = tok(texts, add_special_tokens=False)
        return {"ids": enc["input_ids"]}

    def pack(batch):
        flat = [i for ids in batch["ids"] for i in ids]
        rows = [[tok.cls_token_id] + flat[s:s + body] + [tok.sep_token_id]
                for s in range(0, len(flat) - body + 1, body)]
        return {"input_ids": rows}

    packed = {}
    stats: dict = {"articles_train": len(train_articles), "articles_test": len(test_articles),
                   "fingerprint": dc.fingerprint or source_fingerprint(dc),
                   "seq_len": dc.seq_len, "source": f"{dc.corpus}/{dc.corpus_config}:{'+'.join(dc.splits)}",
                   "extra_text": list(dc.extra_text)}
    for name, arts in (("train", train_articles), ("test", test_articles)):
        ds = datasets.Dataset.from_dict({"text": arts})
        ds = ds.map(tokenize, batched=True, remove_columns=["text"], desc=f"tokenize {name}",
                    load_from_cache_file=False)
        n_tokens = sum(len(x) for x in ds["ids"])
        # One batch holds the whole split so packing runs across article boundaries (as run_mlm's group_texts).
        ds = ds.map(pack, batched=True, batch_size=len(ds), remove_columns=["ids"], desc=f"pack {name}",
                    load_from_cache_file=False)
        ids = torch.tensor(ds["input_ids"], dtype=torch.long) if len(ds) else torch.empty(0, dc.seq_len,
                                                                                           dtype=torch.long)
        if ids.shape[0] == 0:
            raise DataError(f"the {name} split has {n_tokens} tokens, fewer than one sequence of {dc.seq_len}; "
                            f"use more data or a shorter data.seq_len")
        packed[name] = ids
        stats[f"tokens_{name}"] = n_tokens
        stats[f"sequences_{name}"] = ids.shape[0]
        stats[f"unk_rate_{name}"] = float((ids == tok.unk_token_id).float().mean())
    runs.atomic_write_bytes(d / "packed.safetensors", save(packed))
    runs.failpoint("corpus-write")  # the tensors written, the completion marker not yet
    runs.write_json(d / "stats.json", stats)
    return Corpus(d, key, packed["train"], packed["test"], tok, stats)


def unigram_baseline(train_ids: torch.Tensor, test_targets: torch.Tensor, special_ids: list[int]) -> dict:
    """Accuracy of always predicting the train split's most frequent maskable token (the unigram plateau)."""
    flat = train_ids.flatten()
    flat = flat[~torch.isin(flat, torch.tensor(special_ids))]
    top = int(torch.bincount(flat).argmax())
    rate = float((test_targets == top).float().mean()) if test_targets.numel() else float("nan")
    return {"unigram_top_token": top, "unigram_accuracy": rate}
