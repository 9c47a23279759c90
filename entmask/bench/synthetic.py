"""The benchmark's inputs: bert-base-uncased's vocabulary size and special ids, a tokenizer and packed rows.

What it is: `VOCAB` (30522) and `PAD64` (the same padded to a multiple of 64), `synthetic_tokenizer` (a WordPiece
tokenizer built in memory) and `synthetic_ids` (rows shaped like the packed corpus's).

What it is not: no dataset, no hub, no files; the words are uniform random ids, so nothing here says anything about
convergence. The numbers they give are speed and memory only.
"""
from __future__ import annotations

import torch

VOCAB = 30522  # bert-base-uncased
PAD64 = 30528  # the same vocabulary padded to a multiple of 64


def synthetic_tokenizer(vocab_size: int = VOCAB):
    """A BERT WordPiece tokenizer with bert-base-uncased's special ids ([PAD] 0, [UNK] 100, [CLS] 101, [SEP] 102,
    [MASK] 103) and `vocab_size` entries, built in memory (no hub, no files)."""
    from transformers import BertTokenizer

    from entmask.models import _quiet_transformers

    _quiet_transformers()
    toks = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    toks += [f"w{i}" for i in range(vocab_size - len(toks))]
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(toks)})
    if len(tok) != vocab_size or tok.mask_token_id != 103:
        raise RuntimeError(f"synthetic tokenizer has {len(tok)} entries (wanted {vocab_size}); transformers changed "
                           f"BertTokenizer's constructor")
    return tok


def synthetic_ids(rows: int, seq_len: int, vocab_size: int = VOCAB, seed: int = 0) -> torch.Tensor:
    """Packed rows like the corpus's: [CLS] w ... w [SEP], the words uniform over the non-special ids. [rows, T]"""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(999, vocab_size, (rows, seq_len), generator=g)
    ids[:, 0], ids[:, -1] = 101, 102
    return ids
