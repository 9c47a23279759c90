"""The corpus on the mirror: tokenizer sanity, [UNK] count, escapes undone, articles split, packing."""
import pandas as pd
import pytest
import torch

from entmask import config, data


def test_articles_and_cleaning():
    lines = [" = A = \n", " text a @-@ b 1 @,@ 000 @.@ 5 <unk>\n", "", " = = Sub = = \n", " more\n",
             " = B = \n", " b\n"]
    arts = data.articles_from_lines(lines)
    assert len(arts) == 2 and arts[0].startswith(" = A =") and "Sub" in arts[0]
    assert data.clean_wikitext(lines[1]) == " text a-b 1,000.5 [UNK]\n"


def test_unk_count_equals_corpus_unk_and_no_escape_pieces(mirror, tokenizer):
    """A silent all-[UNK] tokenizer fails this; so does one that splits `<unk>` or ` @-@ ` into junk pieces."""
    lines = []
    for split in ("validation", "test"):
        lines += pd.read_parquet(mirror / "wikitext" / "wikitext-2-v1" / f"{split}.parquet")["text"].tolist()
    text_unk = sum(line.count("<unk>") for line in lines)
    enc = tokenizer([data.clean_wikitext(t) for t in lines if t.strip()], add_special_tokens=False)["input_ids"]
    flat = torch.tensor([i for ids in enc for i in ids])
    assert flat.numel() == 467_601  # measured on validation+test, all lines
    assert int((flat == tokenizer.unk_token_id).sum()) == text_unk == 26_936
    pieces = set(tokenizer.convert_ids_to_tokens(flat.unique().tolist()))
    assert "@" not in pieces and "unk" not in pieces


def test_prepare_corpus_split_pack_and_cache(session_runs):
    cfg = config.resolve("smoke")
    c = data.prepare_corpus(cfg.data, session_runs, progress=False)
    T = cfg.data.seq_len
    assert c.train_ids.shape[1] == T and c.test_ids.shape[1] == T
    assert (c.train_ids[:, 0] == c.tokenizer.cls_token_id).all()
    assert (c.train_ids[:, -1] == c.tokenizer.sep_token_id).all()
    s = c.stats
    assert s["articles_test"] == max(1, round(16 * 0.05)) and s["articles_train"] == 16 - s["articles_test"]
    assert s["sequences_train"] == s["tokens_train"] // (T - 2)
    again = data.prepare_corpus(cfg.data, session_runs, progress=False)
    assert again.dir == c.dir and torch.equal(again.train_ids, c.train_ids)  # reused from cache


def test_missing_split_offline_is_one_clear_line(mirror):
    # WikiText-2 train joined the mirror on 2026-12-05; QNLI's train split is still missing
    with pytest.raises(data.DataError, match=r"not in the mirror .*it has qnli/\{test,validation\}"):
        data.read_mirror_split(mirror, "nyu-mll/glue", "qnli", "train")
    with pytest.raises(data.DataError, match="MANIFEST"):
        data.load_glue_split("qqp", "train", str(mirror))


def test_empty_corpus_rejected(tmp_path):
    root = tmp_path / "data" / "wikitext" / "wikitext-2-v1"
    root.mkdir(parents=True)
    pd.DataFrame({"text": ["", " \n"]}).to_parquet(root / "validation.parquet")
    pd.DataFrame({"text": [""]}).to_parquet(root / "test.parquet")
    (tmp_path / "models").symlink_to(__import__("tests.conftest", fromlist=["VOCAB"]).VOCAB.parent)
    cfg = config.resolve("smoke", {"data.data_dir": str(tmp_path / "data")})
    with pytest.raises(data.DataError, match="hold no text"):
        data.prepare_corpus(cfg.data, tmp_path / "runs", progress=False)


def test_cut_to_words_keeps_articles_in_order_and_cuts_the_last_one_exactly():
    arts = ["a b c", "d e\nf g", "h i j k", "l"]
    kept, out = data.cut_to_words(arts, [2, 0, 1, 3], 9)
    assert kept == [2, 0, 1] and out[2] == "h i j k" and out[0] == "a b c"
    assert out[1] == "d e" and arts[1] == "d e\nf g"  # cut at its 2nd word, newline kept; the input untouched
    assert sum(len(out[i].split()) for i in kept) == 9
    kept, out = data.cut_to_words(arts, [0, 1], 100)  # fewer words than asked: everything
    assert kept == [0, 1] and out is arts
    kept, out = data.cut_to_words(arts, [0, 1], 3)  # the limit falls on an article's end
    assert kept == [0] and out[0] == "a b c"


@pytest.mark.parametrize("corpus,words", [("wikipedia-good", 6000), ("gutenberg", 100_000)])  # a book: ~70k words
def test_document_corpora_from_the_mirror_at_equal_words(mirror, session_runs, corpus, words):
    """wikipedia-good and gutenberg hold one document per row (a `title` column) at the top of their folder; the
    corpus experiment compares them at equal words (data.max_words)."""
    cfg = config.resolve("smoke", {"data.corpus": corpus, "data.corpus_config": "default", "data.splits": ["train"],
                                   "data.max_words": words, "data.max_articles": None})
    assert cfg.data.fingerprint != config.resolve("smoke").data.fingerprint
    c = data.prepare_corpus(cfg.data, progress=False)
    assert c.stats["source"] == f"{corpus}/default:train" and c.stats["articles_test"] >= 1
    assert c.stats["articles_train"] + c.stats["articles_test"] >= 2
    # English words are 1.05-1.6 wordpieces each, whatever the corpus
    assert 1.05 * words < c.stats["tokens_train"] + c.stats["tokens_test"] < 1.6 * words
    assert c.train_ids.shape[1] == cfg.data.seq_len


def test_max_words_is_validated_and_leaves_every_other_hash_alone():
    with pytest.raises(config.ConfigError, match="data.max_words"):
        config.resolve("smoke", {"data.max_words": 10})
    assert "max_words" not in config.resolve("cpu-wiki").hash_dict()["data"]
