"""Tokens shown in their context: wordpieces joined back into text, a token marked in the text around it, the
highest- and lowest-entropy tokens with their contexts, and readable snippets of corpus rows for the mask widgets.

What it is: `detokenize`, `in_context`, `extreme_tokens` (over a `token_table`) and `corpus_sentences`.

What it is not: a faithful detokenizer (it joins '##' pieces and spaces everything else; punctuation keeps its
spaces), and no scoring: the entropies come from the table or view it is given.
"""
from __future__ import annotations

from typing import Sequence

import torch

from entmask.exploration.view import EntropyView


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
