"""Data: the pretraining corpus (hub or offline mirror), its cleaning, 95/5 article split, tokenizing and packing.

What it is: `articles_from_lines` (WikiText's ` = Title = ` headings; a table with a `title` column holds one
document per row instead), `cut_to_words` (`data.max_words`: corpora compared at equal words), `clean_wikitext`
(undo ` @-@ ` escapes, `<unk>` -> [UNK]), `source_fingerprint` (the content the corpus is built from),
`prepare_corpus` (tokenize + pack into [CLS] ... [SEP] rows of `seq_len` with `datasets.map`, cached under
runs/cache/corpus/<key>/ and reused) and `unigram_baseline`. Where data come from (mirror or hub, `mirror_dir`,
`load_split`, `DataError`) is `entmask.data_sources`, the tokenizer `entmask.data_tokenizer`, GLUE's task table and
splits `entmask.data_glue` (GLUE training sentences are extra pretraining text on request); every name of theirs is
re-exported here, so `from entmask.data import ...` keeps working.

What it is not: no masking and no entropy (they happen in the training step), no fine-tuning (`entmask.finetune`).
datasets is imported in `_build_corpus` only: the CLI and config validation import this module and should not
pay for it (over a second).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from entmask import runs
from entmask.data_glue import GLUE, TASKS, glue_train_text, load_glue_split  # noqa: F401 - re-exported
from entmask.data_sources import (  # noqa: F401 - re-exported
    _DIGESTS, _HUB_OK, ENV_DATA, ENV_MODELS, DataError, data_source, file_digest, hub_offline, hub_reachable,
    load_hub_split, load_split, mirror_dir, mirror_folder, mirror_name, read_mirror_split)
from entmask.data_tokenizer import (  # noqa: F401 - re-exported
    _check_tokenizer_folder, _models_dirs, load_tokenizer, resolve_tokenizer_path, tokenizer_fingerprint)
from entmask.runs import stable_hash

# DataConfig (entmask.config) is only named in annotations, never imported: data sits below config in the import
# graph, and even a TYPE_CHECKING import would draw the edge data -> config (pyproject exempts data.py from F821).


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


_WORD = re.compile(r"\S+")


def cut_to_words(articles: list[str], order: list[int], max_words: int) -> tuple[list[int], list[str]]:
    """The articles of `order`, in that order, until `max_words` whitespace words: the last one cut at its
    `max_words`-th word, so two corpora compare at exactly equal words (a Gutenberg book is ~70k words). Returns the
    kept order and the articles (a copy where one was cut)."""
    kept, total = [], 0
    for i in order:
        n = len(_WORD.findall(articles[i]))
        if total + n >= max_words:
            need = max_words - total
            end = [m.end() for m, _ in zip(_WORD.finditer(articles[i]), range(need))][-1] if need else 0
            if end:
                articles = list(articles)
                articles[i] = articles[i][:end]
                kept.append(i)
            return kept, articles
        kept.append(i)
        total += n
    return kept, articles  # the whole corpus has fewer words: all of it


def clean_wikitext(text: str, unk_token: str = "[UNK]") -> str:
    """Undo the tokenized WikiText's number escapes and map `<unk>` to the tokenizer's unknown token."""
    for a, b in _ESCAPES:
        text = text.replace(a, b)
    return text.replace("<unk>", unk_token)


# ---- what the corpus is built from ---------------------------------------------------------------------------
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
        folder = mirror_folder(root, dc.corpus, dc.corpus_config)
        parts["source"] = {s: file_digest(folder / f"{s}.parquet") if (folder / f"{s}.parquet").is_file() else None
                           for s in dc.splits}
        if "glue-train" in dc.extra_text:
            parts["glue"] = {t: file_digest(root / "glue" / t / "train.parquet")
                             for t in TASKS if (root / "glue" / t / "train.parquet").is_file()}
    return stable_hash(parts, 12)


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
                t = runs.read_tensors(d / "packed.safetensors")
                return Corpus(d, key, t["train"], t["test"], tok, runs.read_json(done))
            except Exception:  # noqa: BLE001 - any damage means rebuild
                print(f"entmask: corpus cache {d} is damaged; rebuilding it")
        return _build_corpus(dc, tok, d, key, progress)


def _build_corpus(dc: DataConfig, tok, d: Path, key: str, progress: bool) -> Corpus:
    import datasets  # here, not above: see the module docstring

    if not progress:
        datasets.disable_progress_bars()

    lines: list[str] = []
    documents: list[str] = []
    for split in dc.splits:
        df = load_split(dc.corpus, dc.corpus_config, split, dc.data_dir)
        if "text" not in df.columns:
            raise DataError(f"{dc.corpus}/{dc.corpus_config} split {split!r} has no 'text' column "
                            f"(columns: {', '.join(df.columns)})")
        if "title" in df.columns:  # one document per row (wikipedia-good, gutenberg), not WikiText's lines
            documents.extend(t for t in df["text"].astype(str) if t.strip())
        else:
            lines.extend(df["text"].astype(str).tolist())
    articles = articles_from_lines(lines) + documents
    if not articles:
        raise DataError(f"{dc.corpus}/{dc.corpus_config} splits {dc.splits} hold no text; choose other splits")
    rng = random.Random(dc.split_seed)
    order = list(range(len(articles)))
    rng.shuffle(order)
    if dc.max_articles:
        order = order[: dc.max_articles]
    if dc.max_words:
        order, articles = cut_to_words(articles, order, dc.max_words)
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


def type_counts(train_ids: torch.Tensor, special_ids: list[int], minlength: int = 0) -> torch.Tensor:
    """How often each token type occurs in `train_ids`, special tokens left out: [max(V_seen, minlength)]."""
    flat = train_ids.flatten()
    return torch.bincount(flat[~torch.isin(flat, torch.tensor(special_ids))], minlength=minlength)


def unigram_baseline(train_ids: torch.Tensor, test_targets: torch.Tensor, special_ids: list[int]) -> dict:
    """Accuracy of always predicting the train split's most frequent maskable token (the unigram plateau)."""
    top = int(type_counts(train_ids, special_ids).argmax())
    rate = float((test_targets == top).float().mean()) if test_targets.numel() else float("nan")
    return {"unigram_top_token": top, "unigram_accuracy": rate}
