"""Exploration: descriptive analyses of entropies and masks that the notebooks show (00 and 02).

What it is: small, tested functions that turn per-token entropies and masks into DataFrames a notebook can plot:
    teacher_view                 the teacher's cached entropies over a seeded sample of corpus rows (EntropyView)
    token_table                  one row per maskable token: entropy, train-split frequency, wordpiece kind
    piece_kinds                  'word' | 'first' | 'continuation' for each wordpiece ('##' handling)
    frequency_bins               log-scale (decade) bins of token counts
    entropy_by_frequency / entropy_by_position / entropy_by_piece / frequency_correlation
    extreme_tokens               the highest- or lowest-entropy tokens, each shown in its context
    strategy_masks               every strategy's mask over the same rows (through `entmask.masking.select_mask`)
    jaccard / jaccard_rows / jaccard_matrix / chance_jaccard / mask_profile
    corpus_sentences             readable snippets of corpus rows (for the mask widgets)
    epoch_entropy_frame          the per-epoch entropy spread that self-masking runs record (metrics.json)
    self_mask_overlap            how a self-masking run's masks overlap the teacher's, epoch by epoch
    view_check / teacher_check   masked vs unmasked view of a model's entropies on the held-out split
    mask_fit / mask_fit_rows     a student's accuracy under each strategy's masks on train vs held-out rows
                                 (has a static-mask student memorised its training rows? "self-high": a
                                 self-masking student on the masks its own entropies pick)

What it is not: it trains nothing and selects masks only through `entmask.masking.select_mask` and scores tokens
only through `entmask.entropy` (so what it shows is what training does). No plotting: notebooks draw.
Frequencies are counts in the *train* split of the prepared corpus (special tokens excluded).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from entmask.masking import STRATEGIES, candidate_mask, canonical_strategy, num_to_mask, select_mask

PIECE_KINDS = ("word", "first", "continuation")  # whole word | first piece of a split word | a '##' piece


# ---- the teacher's view of the corpus ------------------------------------------------------------------------
@dataclass
class EntropyView:
    """Teacher entropies over a sample of corpus rows, and what the analyses need beside them."""

    ids: torch.Tensor  # [N, T] int64, the sampled rows
    entropy: torch.Tensor  # [N, T] float32, nats (the teacher's, on unmasked text: what training caches)
    candidates: torch.Tensor  # [N, T] bool, maskable positions
    rows: torch.Tensor  # [N] the sampled rows' indices in the split
    counts: torch.Tensor  # [V] token counts in the train split (specials zeroed)
    tokenizer: object
    teacher_dir: Path
    split: str
    corpus: object  # entmask.data.Corpus

    def __len__(self) -> int:
        return self.ids.shape[0]


def sample_rows(n: int, k: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a seeded sample of k of n rows (all rows when k is None or >= n)."""
    if k is None or k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(int(seed))
    return torch.sort(torch.randperm(n, generator=g)[: int(k)]).values


def token_counts(ids: torch.Tensor, vocab_size: int, special_ids: Sequence[int] = ()) -> torch.Tensor:
    """Occurrences of every token id in `ids` (special tokens set to 0). [V] int64"""
    counts = torch.bincount(ids.reshape(-1), minlength=vocab_size)
    if len(special_ids):
        counts[torch.as_tensor(list(special_ids))] = 0
    return counts


def teacher_view(cfg, split: str = "train", max_rows: int | None = 256, seed: int = 0, root=None,
                 device: str | None = None, progress: bool = True, teacher_dir=None) -> EntropyView:
    """The teacher's per-token entropies over `max_rows` seeded rows of a split of the prepared corpus.

    The entropies come from `entmask.entropy.teacher_entropies` over the whole split, the same cached file that
    teacher-masking runs read, so on the train split this costs nothing once a teacher-masked run exists.
    `teacher_dir`: the teacher's model folder; by default `cfg.teacher`, building the reference if it is missing.
    """
    from entmask.data import prepare_corpus
    from entmask.entropy import teacher_entropies
    from entmask.pretrain import check_teacher, resolve_teacher

    corpus = prepare_corpus(cfg.data, root, progress)
    teacher_dir = Path(teacher_dir) if teacher_dir else resolve_teacher(cfg, root, progress)  # builds a missing one
    check_teacher(teacher_dir, corpus)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r}: choose train or test")
    all_ids = corpus.train_ids if split == "train" else corpus.test_ids
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    ent = teacher_entropies(teacher_dir, corpus.dir, split, all_ids, device=dev, batch_size=cfg.train.eval_batch_size,
                            chunk_size=cfg.train.entropy_chunk, progress=progress)
    rows = sample_rows(all_ids.shape[0], max_rows, seed)
    tok = corpus.tokenizer
    ids = all_ids[rows]
    cand = candidate_mask(ids, corpus.special_ids, tok.unk_token_id, cfg.masking.include_unk)
    counts = token_counts(corpus.train_ids, len(tok), corpus.special_ids)
    return EntropyView(ids=ids, entropy=ent[rows].float(), candidates=cand, rows=rows, counts=counts, tokenizer=tok,
                       teacher_dir=Path(teacher_dir), split=split, corpus=corpus)


# ---- per-token table -------------------------------------------------------------------------------------------
def piece_kinds(tokens: Sequence[str]) -> list[str]:
    """The kind of each wordpiece in a row: 'continuation' ('##x'), 'first' (followed by a '##' piece), else 'word'."""
    out = []
    for i, t in enumerate(tokens):
        if t.startswith("##"):
            out.append("continuation")
        elif i + 1 < len(tokens) and tokens[i + 1].startswith("##"):
            out.append("first")
        else:
            out.append("word")
    return out


def token_table(ids: torch.Tensor, entropy: torch.Tensor, candidates: torch.Tensor, tokenizer,
                counts: torch.Tensor | None = None):
    """One row per candidate position: row, pos, token_id, token, entropy, count (train frequency), piece.

    `pos` is the position in the packed row (packed rows run across sentence boundaries). [N, T] inputs.
    """
    import pandas as pd

    ids, entropy, candidates = ids.cpu(), entropy.float().cpu(), candidates.bool().cpu()
    recs = []
    for r in range(ids.shape[0]):
        toks = tokenizer.convert_ids_to_tokens(ids[r].tolist())
        kinds = piece_kinds(toks)
        for p in torch.nonzero(candidates[r]).flatten().tolist():
            tid = int(ids[r, p])
            recs.append((r, p, tid, toks[p], float(entropy[r, p]),
                         int(counts[tid]) if counts is not None else -1, kinds[p]))
    return pd.DataFrame.from_records(recs, columns=["row", "pos", "token_id", "token", "entropy", "count", "piece"])


def view_table(view: EntropyView):
    """`token_table` of an EntropyView."""
    return token_table(view.ids, view.entropy, view.candidates, view.tokenizer, view.counts)


# ---- frequency, position, subword pieces ----------------------------------------------------------------------
def frequency_bins(counts, base: int = 10) -> np.ndarray:
    """Bin of each count on a log scale: floor(log_base(count)); 0 for counts 1..base-1, 1 for base..base^2-1, ...
    A count of 0 (unseen in the train split) gets -1."""
    c = np.asarray(counts, dtype=np.int64)
    out = np.full(c.shape, -1, dtype=np.int64)
    pos = c > 0
    b = np.floor(np.log(c[pos]) / math.log(base)).astype(np.int64)
    # guard floating error at exact powers (log(1000)/log(10) = 2.9999999999999996)
    b = b + (base ** (b + 1) <= c[pos]) - (base ** b > c[pos])
    out[pos] = b
    return out


def _bin_label(b: int, base: int) -> str:
    return "unseen" if b < 0 else f"{base ** b}-{base ** (b + 1) - 1}"


def _summary(df, by: str):
    g = df.groupby(by, sort=True)["entropy"]
    out = g.agg(tokens="size", entropy_mean="mean", entropy_sd="std", entropy_median="median").reset_index()
    return out


def entropy_by_frequency(table, base: int = 10):
    """Entropy by log-frequency bin: freq_bin, label ('10-99'), tokens, types, entropy mean/sd/median."""
    df = table.assign(freq_bin=frequency_bins(table["count"].to_numpy(), base))
    out = _summary(df, "freq_bin")
    out["types"] = df.groupby("freq_bin", sort=True)["token_id"].nunique().to_numpy()
    out.insert(1, "label", [_bin_label(int(b), base) for b in out["freq_bin"]])
    return out


def frequency_correlation(table) -> float:
    """Spearman correlation between a token's train frequency and its entropy (NaN if either is constant)."""
    from scipy.stats import spearmanr

    if len(table) < 3 or table["count"].nunique() < 2 or table["entropy"].nunique() < 2:
        return float("nan")
    return float(spearmanr(table["count"], table["entropy"]).statistic)


def entropy_by_position(table, width: int = 1):
    """Entropy by position in the packed row, in bins of `width` positions (pos_bin = first position of the bin)."""
    df = table.assign(pos_bin=(table["pos"] // width) * width)
    return _summary(df, "pos_bin")


def entropy_by_piece(table):
    """Entropy of whole words, first pieces of split words, and '##' continuation pieces (in PIECE_KINDS order)."""
    out = _summary(table, "piece").set_index("piece")
    out = out.reindex([k for k in PIECE_KINDS if k in out.index]).reset_index()
    out["share"] = out["tokens"] / out["tokens"].sum()
    return out


# ---- tokens in context -----------------------------------------------------------------------------------------
def detokenize(tokens: Sequence[str]) -> str:
    """Join wordpieces into text: '##' pieces attach to the previous piece."""
    out = ""
    for t in tokens:
        if t.startswith("##"):
            out += t[2:]
        else:
            out += (" " if out else "") + t
    return out


def in_context(ids: torch.Tensor, pos: int, tokenizer, window: int = 6, mark: tuple[str, str] = ("[[", "]]")) -> str:
    """The text around position `pos` of one row, `window` pieces each side, with the token marked [[like this]]."""
    toks = tokenizer.convert_ids_to_tokens(ids.tolist())
    specials = set(tokenizer.all_special_tokens) - {tokenizer.unk_token}
    lo, hi = max(0, pos - window), min(len(toks), pos + window + 1)
    left = [t for t in toks[lo:pos] if t not in specials]
    right = [t for t in toks[pos + 1:hi] if t not in specials]
    target = toks[pos][2:] if toks[pos].startswith("##") else toks[pos]
    l_txt, r_txt = detokenize(left), detokenize(right)
    glue_l = "" if toks[pos].startswith("##") or not l_txt else " "
    glue_r = "" if right and right[0].startswith("##") else " "
    return (f"{'…' if lo > 0 else ''}{l_txt}{glue_l}{mark[0]}{target}{mark[1]}{glue_r if r_txt else ''}{r_txt}"
            f"{'…' if hi < len(toks) else ''}").strip()


def extreme_tokens(table, ids: torch.Tensor, tokenizer, n: int = 10, highest: bool = True, window: int = 6,
                   unique: bool = True):
    """The n highest- (or lowest-) entropy tokens of `table` (from token_table over `ids`), each with its context.

    unique=True keeps one occurrence per token id (its most extreme), so frequent words do not fill the list.
    """
    df = table.sort_values("entropy", ascending=not highest, kind="stable")
    if unique:
        df = df.drop_duplicates("token_id", keep="first")
    df = df.head(n).copy()
    df["context"] = [in_context(ids[r], p, tokenizer, window) for r, p in zip(df["row"], df["pos"])]
    return df[["token", "entropy", "count", "piece", "context"]].reset_index(drop=True)


def corpus_sentences(view: EntropyView, n: int = 3, max_pieces: int = 40, start: int = 1) -> list[str]:
    """Readable snippets (max_pieces wordpieces from `start`) of the first n sampled rows, for the mask widgets."""
    out = []
    for r in range(min(n, len(view))):
        toks = view.tokenizer.convert_ids_to_tokens(view.ids[r, start:start + max_pieces].tolist())
        while toks and toks[0].startswith("##"):  # do not start mid-word
            toks = toks[1:]
        out.append(detokenize([t for t in toks if t not in (view.tokenizer.cls_token, view.tokenizer.sep_token)]))
    return out


# ---- masks and their overlap -----------------------------------------------------------------------------------
def strategy_masks(entropy: torch.Tensor, candidates: torch.Tensor, strategies: Sequence[str] = STRATEGIES,
                   ratio: float = 0.15, seed: int = 0, batch_size: int = 1, num_tokens: int | None = None
                   ) -> dict[str, torch.Tensor]:
    """Each strategy's mask over the same rows, from `select_mask` with a generator seeded by `seed`.

    `alternating` flips one coin per call of select_mask; training calls it once per batch, so here the rows are
    cut into batches of `batch_size` (default 1: a coin per row), which is what the strategy does over training.
    """
    out = {}
    for s in strategies:
        name = canonical_strategy(s)
        gen = torch.Generator().manual_seed(int(seed))
        if name == "alternating":
            parts = [select_mask(entropy[i:i + batch_size], candidates[i:i + batch_size], name, ratio, num_tokens,
                                 generator=gen) for i in range(0, entropy.shape[0], batch_size)]
            out[name] = torch.cat(parts) if parts else torch.zeros_like(candidates, dtype=torch.bool)
        else:
            out[name] = select_mask(entropy, candidates, name, ratio, num_tokens, generator=gen)
    return out


def jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a ∧ b| / |a ∨ b| over all positions (pooled over rows). Two empty masks are identical: 1.0."""
    a, b = torch.as_tensor(a).bool(), torch.as_tensor(b).bool()
    if a.shape != b.shape:
        raise ValueError(f"masks of shapes {tuple(a.shape)} and {tuple(b.shape)} cannot be compared")
    union = int((a | b).sum())
    return 1.0 if union == 0 else int((a & b).sum()) / union


def jaccard_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jaccard per row of two [N, T] masks (1.0 where both rows are empty). [N] float64"""
    a, b = torch.as_tensor(a).bool(), torch.as_tensor(b).bool()
    inter = (a & b).sum(1).double()
    union = (a | b).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def jaccard_matrix(masks: Mapping[str, torch.Tensor], per_row: bool = False):
    """Pairwise Jaccard of named masks as a square DataFrame (pooled over rows; per_row=True: mean of rows)."""
    import pandas as pd

    names = list(masks)
    m = np.ones((len(names), len(names)))
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if j > i:
                v = float(jaccard_rows(masks[a], masks[b]).mean()) if per_row else jaccard(masks[a], masks[b])
                m[i, j] = m[j, i] = v
    return pd.DataFrame(m, index=names, columns=names)


def chance_jaccard(candidates: torch.Tensor, ratio: float = 0.15, num_tokens: int | None = None) -> float:
    """Jaccard expected (to first order) between two independent random masks of the same k per row: pooled
    E|A∧B| / E|A∨B| with E|A∧B| = k²/n per row."""
    cand = torch.as_tensor(candidates).bool()
    n = cand.sum(1).double()
    k = num_to_mask(cand, ratio, num_tokens).double()
    inter = torch.where(n > 0, k * k / n.clamp(min=1), torch.zeros_like(n))
    union = 2 * k - inter
    return float(inter.sum() / union.sum()) if float(union.sum()) > 0 else 1.0


def mask_profile(masks: Mapping[str, torch.Tensor], view: EntropyView):
    """What each strategy masks: masked tokens, their mean entropy, share of '##' pieces, median train count."""
    import pandas as pd

    ids, ent = view.ids, view.entropy
    cont = torch.zeros_like(view.candidates)
    for r in range(ids.shape[0]):
        kinds = piece_kinds(view.tokenizer.convert_ids_to_tokens(ids[r].tolist()))
        cont[r] = torch.tensor([k == "continuation" for k in kinds])
    counts = view.counts[ids]  # [N, T]
    recs = []
    for name, m in masks.items():
        m = m.bool()
        k = int(m.sum())
        recs.append({"strategy": name, "masked": k,
                     "entropy_mean": float(ent[m].double().mean()) if k else float("nan"),
                     "continuation_share": float(cont[m].double().mean()) if k else float("nan"),
                     "median_count": float(counts[m].double().median()) if k else float("nan")})
    recs.append({"strategy": "(all candidates)", "masked": int(view.candidates.sum()),
                 "entropy_mean": float(ent[view.candidates].double().mean()),
                 "continuation_share": float(cont[view.candidates].double().mean()),
                 "median_count": float(counts[view.candidates].double().median())})
    return pd.DataFrame(recs)


# ---- self-masking over training --------------------------------------------------------------------------------
def runs_with_epochs(runs: Mapping[str, Path]) -> dict[str, Path]:
    """The runs (label -> folder) that kept per-epoch models (self-masking and KD-with-self runs)."""
    return {k: Path(v) for k, v in runs.items() if any((Path(v) / "epochs").glob("epoch-*/config.json"))}


def _epoch_history(run: Path) -> list[dict]:
    import json

    m = Path(run) / "metrics.json"
    if m.exists():
        hist = json.loads(m.read_text()).get("epoch_entropy") or []
        if hist:
            return hist
    e = Path(run) / "logs" / "epochs.json"
    return json.loads(e.read_text()) if e.exists() else []


def epoch_entropy_frame(runs: Mapping[str, Path]):
    """The student's entropy spread at each epoch end, as each run recorded it (metrics.json 'epoch_entropy'):
    label, epoch, step, source (where masks came from during that epoch), entropy_mean, entropy_sd."""
    import pandas as pd

    recs = []
    for label, run in runs.items():
        for h in _epoch_history(Path(run)):
            recs.append({"label": label, "epoch": h.get("epoch"), "step": h.get("step"), "source": h.get("source"),
                         "entropy_mean": h.get("entropy_mean"), "entropy_sd": h.get("entropy_sd")})
    return pd.DataFrame(recs, columns=["label", "epoch", "step", "source", "entropy_mean", "entropy_sd"])


def _epoch_dirs(run: Path) -> list[tuple[int, Path]]:
    from entmask.widgets import sources_from_run

    out = []
    for name, d in sources_from_run(run).items():
        out.append((int(name.split()[-1]), Path(d)))
    return out


@torch.no_grad()
def self_mask_overlap(run: str | Path, view: EntropyView, strategy: str | None = None, ratio: float | None = None,
                      rows: int | None = 64, device: str | None = None, chunk: int = 1024):
    """For a fixed sample of rows: the Jaccard between the mask a run's model would pick from its *own* entropy at
    each epoch end (its kept `epochs/epoch-N` models) and the mask the teacher's entropy gives on the same rows.

    strategy/ratio default to the run's own (config.json); rows: the first `rows` rows of `view`.
    Columns: epoch, source (mask source during that epoch), jaccard (pooled), jaccard_row_mean, chance (random
    masks' expected Jaccard), spearman (self vs teacher entropy, pooled over candidates), entropy_mean/sd (self).
    """
    import json

    import pandas as pd

    from entmask.entropy import model_entropy
    from entmask.models import load_teacher

    run = Path(run)
    cfg = json.loads((run / "config.json").read_text()) if (run / "config.json").exists() else {}
    strategy = canonical_strategy(strategy or cfg.get("masking", {}).get("strategy", "high"))
    if strategy in ("random", "bernoulli"):
        raise ValueError(f"strategy {strategy!r} ignores entropy; self vs teacher overlap needs an entropy strategy")
    ratio = ratio or cfg.get("masking", {}).get("ratio", 0.15)
    ids, cand, t_ent = view.ids[:rows], view.candidates[:rows], view.entropy[:rows]
    gen = torch.Generator().manual_seed(0)
    t_mask = select_mask(t_ent, cand, strategy, ratio, generator=gen)
    sources = {h.get("epoch"): h.get("source") for h in _epoch_history(run)}
    chance = chance_jaccard(cand, ratio)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    recs = []
    for epoch, d in _epoch_dirs(run):
        model = load_teacher(d, device=dev)
        ent = model_entropy(model, ids.to(dev), torch.ones_like(ids).to(dev), chunk).float().cpu()
        gen = torch.Generator().manual_seed(0)
        s_mask = select_mask(ent, cand, strategy, ratio, generator=gen)
        e = ent[cand]
        rho = _spearman(e, t_ent[cand])
        recs.append({"epoch": epoch, "source": sources.get(epoch), "strategy": strategy,
                     "jaccard": jaccard(s_mask, t_mask), "jaccard_row_mean": float(jaccard_rows(s_mask, t_mask).mean()),
                     "chance": chance, "spearman": rho, "entropy_mean": float(e.double().mean()),
                     "entropy_sd": float(e.double().std())})
        del model
    return pd.DataFrame(recs, columns=["epoch", "source", "strategy", "jaccard", "jaccard_row_mean", "chance",
                                       "spearman", "entropy_mean", "entropy_sd"])


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    from scipy.stats import spearmanr

    a, b = a.double().numpy(), b.double().numpy()
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


__all__ = ["EntropyView", "PIECE_KINDS", "sample_rows", "token_counts", "teacher_view", "piece_kinds", "token_table",
           "view_table", "frequency_bins", "entropy_by_frequency", "frequency_correlation", "entropy_by_position",
           "entropy_by_piece", "detokenize", "in_context", "extreme_tokens", "corpus_sentences", "strategy_masks",
           "jaccard", "jaccard_rows", "jaccard_matrix", "chance_jaccard", "mask_profile", "runs_with_epochs",
           "epoch_entropy_frame", "self_mask_overlap"]


def self_mask_overlaps(runs: Mapping[str, Path], view: EntropyView, **kw):
    """`self_mask_overlap` of several runs (label -> folder) in one frame, with a `label` column first."""
    import pandas as pd

    frames = []
    for label, run in runs.items():
        df = self_mask_overlap(run, view, **kw)
        df.insert(0, "label", label)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["label", "epoch", "source", "strategy", "jaccard", "jaccard_row_mean", "chance", "spearman",
                 "entropy_mean", "entropy_sd"])


__all__ += ["self_mask_overlaps"]


# ---- does the teacher's entropy rank what it does not know? -----------------------------------------------------
def view_check(cfg, model_dir, max_rows: int | None = 512, seed: int = 0, root=None, progress: bool = True,
               cache_dir=None) -> dict:
    """Masked vs unmasked view of any BertForMaskedLM folder (the teacher or a student) on the held-out split.

    `entropy.entropy_rank_check` over `max_rows` seeded test rows: Spearman between each position's
    unmasked-view entropy (what the strategies rank) and the model's own loss (and entropy) there when masked,
    and the top-15% overlap. Arrays `unmasked`, `masked_loss`, `masked_entropy` come back for plots. Cached as
    `<cache_dir>/entropy_check-<rows>-<seed>.npz/.json` when cache_dir is given (a model's check is computed once).
    """
    from entmask import runs
    from entmask.data import prepare_corpus
    from entmask.entropy import entropy_rank_check
    from entmask.models import load_teacher, transformers_bars

    corpus = prepare_corpus(cfg.data, root, progress)
    rows = sample_rows(corpus.test_ids.shape[0], max_rows, seed)
    ids = corpus.test_ids[rows]
    tok = corpus.tokenizer
    cand = candidate_mask(ids, corpus.special_ids, tok.unk_token_id)
    cache = Path(cache_dir) / f"entropy_check-{max_rows}-{seed}.npz" if cache_dir is not None else None
    if cache is not None and cache.exists():
        z = np.load(cache)
        arrays = {k: z[k] for k in ("unmasked", "masked_loss", "masked_entropy")}
        summary = runs.read_json(cache.with_suffix(".json"))
    else:
        with transformers_bars(progress):
            model = load_teacher(model_dir)
        r = entropy_rank_check(model, ids, cand, tok.mask_token_id, seed=seed, chunk_size=cfg.train.entropy_chunk)
        arrays = {k: r.pop(k) for k in ("unmasked", "masked_loss", "masked_entropy")}
        summary = r
        if cache is not None:
            import io

            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            runs.atomic_write_bytes(cache, buf.getvalue())
            runs.write_json(cache.with_suffix(".json"), summary)
    return {"model": str(model_dir), "rows": len(rows), **summary, **arrays}


FIT_STRATEGIES = ("random",) + tuple(x for x in STRATEGIES if x != "random")  # the baseline first
STATIC = "random-static"  # mask_fit's name for masking.static's masks: random, drawn once per row, kept every epoch
# mask_fit's prefix for a strategy applied to the scored model's *own* entropies ("self-high"): the masks a
# self-masking student would pick for a row at the end of training. Its training masks moved as it learned, so
# these are its last masks, not all of them.
SELF = "self-"


def fit_masks(ids: torch.Tensor, entropy: torch.Tensor, candidates: torch.Tensor, strategies: Sequence[str],
              ratio: float = 0.15, seed: int = 0, static_seed: int = 0, num_tokens: int | None = None
              ) -> dict[str, torch.Tensor]:
    """The masks mask_fit scores: `strategy_masks`, plus "random-static", the masks a `masking.static` student
    trained on at `static_seed` (the k highest of masking.static_scores, as its training steps draw them)."""
    from entmask.masking import select_mask, static_scores

    masks = strategy_masks(entropy, candidates, [s for s in strategies if s != STATIC], ratio, seed,
                           num_tokens=num_tokens)
    if STATIC in strategies:
        masks[STATIC] = select_mask(static_scores(ids, static_seed), candidates, "high", ratio, num_tokens)  # [N, T]
    return masks


def mask_fit_rows(model, ids: torch.Tensor, entropy: torch.Tensor, candidates: torch.Tensor, mask_id: int,
                  strategies: Sequence[str] = FIT_STRATEGIES, ratio: float = 0.15, seed: int = 0,
                  batch_size: int = 128, static_seed: int = 0, num_tokens: int | None = None) -> list[dict]:
    """A masked LM's accuracy and loss on `ids` [N, T] under each strategy's masks (from `entropy` [N, T], as
    `fit_masks` draws them, or for "self-<strategy>" from the model's own entropies), [MASK] at every selected
    position: one dict per strategy, in the order asked."""
    from entmask.masking import apply_mask
    from entmask.models import score_masked

    strategies = check_fit_strategies(strategies)
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: give a positive number of rows per forward pass")
    if ids.shape[0] == 0:
        raise ValueError("mask_fit_rows got no rows to score: give at least one row")
    own = [s for s in strategies if s.startswith(SELF)]
    masks = fit_masks(ids, entropy, candidates, [s for s in strategies if s not in own], ratio, seed, static_seed,
                      num_tokens)
    if own:
        from entmask.entropy import model_entropy

        with torch.no_grad():
            own_entropy = torch.cat([model_entropy(model, ids[i:i + batch_size].to(model.device)).cpu()
                                     for i in range(0, ids.shape[0], batch_size)])  # [N, T]
        for name in own:
            masks[name] = strategy_masks(own_entropy, candidates, [name[len(SELF):]], ratio, seed,
                                         num_tokens=num_tokens)[canonical_strategy(name[len(SELF):])]  # [N, T]
    out = []
    for name in strategies:
        mask = masks[name if name in own or name == STATIC else canonical_strategy(name)]  # fit_masks keys canonically
        masked, labels = apply_mask(ids, mask, mask_id, "mask")  # [N, T], labels -100 off the mask
        out.append({"strategy": name, **score_masked(model, masked, labels, batch_size)})
    return out


def check_fit_strategies(strategies) -> list[str]:
    """mask_fit's strategy names as a list (one name given as a string is one strategy), each one checked: a
    masking strategy or alias, "random-static", or "self-<strategy>"."""
    names = [strategies] if isinstance(strategies, str) else list(strategies or [])
    valid = f"choose from {', '.join(STRATEGIES)} (or an alias), {STATIC}, or {SELF}<strategy> such as {SELF}high"
    if not names:
        raise ValueError(f"mask_fit needs at least one strategy: {valid}")
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"mask_fit strategy {name!r} is not a name: {valid}")
        if name == STATIC:
            continue
        try:
            canonical_strategy(name[len(SELF):] if name.startswith(SELF) else name)
        except ValueError:
            raise ValueError(f"unknown mask_fit strategy {name!r}: {valid}") from None
    return names


def own_masks(masking) -> str | None:
    """The name mask_fit gives the masks a pretraining row trained on (from its MaskingConfig), or None where
    mask_fit cannot redraw them (a scorer other than entropy, whole words, a schedule, a strategy outside
    masking.STRATEGIES). `alternating` is redrawn with one coin per row where training tossed one per batch and
    epoch: a row trained under both mask sets about half the epochs each, so over many epochs its drawn set is
    one it trained on; after a few epochs some rows may never have seen theirs."""
    m = masking
    strategy = canonical_strategy(m.strategy)
    if m.scorer != "entropy" or m.whole_word != "none" or m.schedule != "constant" or strategy not in STRATEGIES:
        return None
    if m.static:
        return STATIC
    if strategy == "random":
        return "random"
    return SELF + strategy if m.source == "self" else strategy


def mask_fit(cfg, model_dir, strategies: Sequence[str] = FIT_STRATEGIES, max_rows: int | None = 512,
             seed: int = 0, root=None, progress: bool = True, views: Mapping[str, EntropyView] | None = None):
    """Does a student predict its strategy's masked tokens, or has it memorised its training rows' answers?

    Teacher-masking is static (paper §2.2): every epoch masks the same positions of the same row, so over many
    epochs of a small corpus a student can learn each training row's masked answers by heart. This scores the
    model under each strategy's teacher masks on `max_rows` seeded train rows (seen in training) and test rows
    (never seen), [MASK] only. A student that generalises scores alike on both; one that memorised scores high on
    train under its own strategy and near zero on test. Returns a DataFrame: split, strategy, accuracy, loss,
    masked_tokens. (Random masks here are drawn from `seed`, not the held-out evaluation's fixed masks.)
    The masks follow what the student trained with: the masking ratio / number of tokens and, for
    "random-static" (a `masking.static` student's own training masks), the pretraining seed are read from the run's
    config.json beside `model_dir` (else from `cfg`), so a seed-1 run is scored on its seed-1 masks.
    "self-<strategy>" (e.g. "self-high") selects with the model's own entropies instead of the teacher's: for a
    self-masking student, the masks it would pick for each row now (its training masks moved as it learned).
    `views` ({"train": ..., "test": ...} from teacher_view) saves rebuilding them when scoring many models.
    `model_dir` is a pretraining run folder or its model/ folder.
    """
    import pandas as pd

    from entmask.models import load_teacher, transformers_bars
    from entmask.runs import read_json

    strategies = check_fit_strategies(strategies)
    check_max_rows(max_rows)
    model_dir = student_model_dir(model_dir)
    run_cfg = model_dir.parent / "config.json"
    trained = read_json(run_cfg) if run_cfg.is_file() else {}
    tm, tt = trained.get("masking", {}), trained.get("train", {})
    if tm.get("whole_word", "none") != "none":
        raise ValueError(f"{model_dir} was trained with whole-word masking ({tm['whole_word']}); mask_fit scores "
                         f"token-level masks only")
    ratio, num_tokens = tm.get("ratio", cfg.masking.ratio), tm.get("num_tokens", cfg.masking.num_tokens)
    with transformers_bars(progress):
        model = load_teacher(model_dir).eval()
    rows = []
    for split in ("train", "test"):
        v = (views or {}).get(split)
        if v is None:
            v = teacher_view(cfg, split=split, max_rows=max_rows, seed=seed, root=root, progress=progress)
        for r in mask_fit_rows(model, v.ids, v.entropy, v.candidates, v.tokenizer.mask_token_id, strategies,
                               ratio, seed, cfg.train.eval_batch_size, static_seed=tt.get("seed", cfg.train.seed),
                               num_tokens=num_tokens):
            rows.append({"split": split, **r})
    return pd.DataFrame(rows)


def check_max_rows(max_rows) -> None:
    """max_rows is None (every row) or a positive whole number (a seeded sample of that many rows)."""
    import numbers

    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, numbers.Integral)
                                 or max_rows < 1):
        raise ValueError(f"max_rows={max_rows!r}: give a positive number of rows, or None for every row")


def student_model_dir(path) -> Path:
    """The model folder of a pretraining run, given the run folder (which holds model/) or the model folder. A
    run folder's own config.json is entmask's, not a model's: a model folder's names a transformers model_type."""
    p = Path(path).expanduser()

    def is_model(d: Path) -> bool:
        try:
            return "model_type" in json.loads((d / "config.json").read_text())
        except (OSError, ValueError):
            return False

    for cand in (p / "model", p):
        if is_model(cand):
            if not any(cand.glob("*.safetensors")):
                raise ValueError(f"{cand} has no weights (*.safetensors)"
                                 + ("; the run was imported from run records, which leave weights out: retrain it "
                                    "(entmask pretrain ... --force) to score it" if (cand.parent / "weights.json")
                                    .is_file() else ": it is not a saved model"))
            return cand
    unfinished = (p / "checkpoints").is_dir() and not (p / "metrics.json").exists()
    raise ValueError(f"{p} holds no model (no transformers config.json there or in model/): give a pretraining run "
                     f"folder or its model/ folder" + ("; this run has not finished (no model/ yet)" if unfinished
                                                       else ""))


def teacher_check(cfg, max_rows: int | None = 512, seed: int = 0, root=None, progress: bool = True,
                  teacher_dir=None) -> dict:
    """The teacher's strength and the quality of its entropies on the held-out (test) split.

    Returns its held-out masked accuracy/loss (the reference run's metrics, same masking as every student's) and
    `view_check` over `max_rows` seeded test rows: Spearman between each position's unmasked-view entropy (what
    the strategies rank) and the teacher's own loss there when masked. Cached as logs/entropy_check-<rows>-<seed>
    .json in the reference run folder (a reference's check is computed once).
    """
    from entmask.pretrain import resolve_teacher, teacher_metrics

    tdir = Path(teacher_dir) if teacher_dir else resolve_teacher(cfg, root, progress)
    cache_dir = tdir.parent / "logs" if tdir.name == "model" else None
    v = view_check(cfg, tdir, max_rows, seed, root, progress, cache_dir)
    v.pop("model")
    m = teacher_metrics(tdir)
    return {"teacher": str(tdir), "heldout_accuracy": m.get("heldout_accuracy"), "heldout_loss": m.get("heldout_loss"),
            "unigram_accuracy": m.get("unigram_accuracy"), "recipe": m.get("reference"),
            "early_stopping": {k: x for k, x in (m.get("early_stopping") or {}).items() if k != "points"}, **v}
