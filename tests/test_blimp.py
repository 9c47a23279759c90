"""BLiMP: pseudo-log-likelihood against a one-position-at-a-time loop and against minicons, the mirror's pairs and
their subsample, the paired bootstrap, and score_run's cached blimp.json."""
import copy
import json

import numpy as np
import pytest
import torch

from entmask import blimp
from entmask.blimp import load_blimp, paired_bootstrap_delta, pll, score_pairs, score_run
from entmask.data import DataError

SENTENCES = ["The cat sat on the mat.", "Unbelievably, antidisestablishmentarianism persists.",
             "Who shouldn't Derek hug?", "a", "Lissom xylophonists eulogized the hippopotamus."]


@pytest.fixture(scope="module")
def tiny(tokenizer):
    """A random one-layer BertForMaskedLM over the mirror's bert-base-uncased vocabulary."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=64)).eval()


def direct_pll(model, tok, sentence: str, l2r: bool) -> float:
    """PLL by the definition: mask one piece (and, for l2r, the '##' pieces that continue its word), one plain
    forward per piece, log_softmax in float64 over the whole vocabulary at that position."""
    ids = tok(sentence)["input_ids"]
    pieces = tok.convert_ids_to_tokens(ids)
    total = 0.0
    for i in range(1, len(ids) - 1):  # [CLS] and [SEP] are never masked
        x = torch.tensor([ids])
        x[0, i] = tok.mask_token_id
        j = i + 1
        while l2r and j < len(ids) - 1 and pieces[j].startswith("##"):
            x[0, j] = tok.mask_token_id
            j += 1
        with torch.no_grad():
            logits = model(input_ids=x).logits[0, i].double()
        total += float(torch.log_softmax(logits, -1)[ids[i]])
    return total


@pytest.mark.parametrize("l2r", [False, True])
def test_pll_equals_direct_loop(tiny, tokenizer, l2r):
    got = pll(tiny, tokenizer, SENTENCES, batch_size=3, within_word_l2r=l2r, precision="fp32")
    want = np.array([direct_pll(tiny, tokenizer, s, l2r) for s in SENTENCES])
    assert got.dtype == np.float64 and got.shape == (5,)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert np.array_equal(got, pll(tiny, tokenizer, SENTENCES, batch_size=3, within_word_l2r=l2r, precision="fp32"))
    np.testing.assert_allclose(got, pll(tiny, tokenizer, SENTENCES, batch_size=512, within_word_l2r=l2r,
                                        precision="fp32"), atol=1e-5, rtol=0)


def test_variants_differ_only_on_split_words(tiny, tokenizer):
    std = pll(tiny, tokenizer, SENTENCES, precision="fp32")
    l2r = pll(tiny, tokenizer, SENTENCES, within_word_l2r=True, precision="fp32")
    split = [any(p.startswith("##") for p in tokenizer.tokenize(s)) for s in SENTENCES]
    assert split == [False, True, False, False, True]
    for s, a, b in zip(split, std, l2r):
        assert (a != b) if s else (a == b)
    assert pll(tiny, tokenizer, [], precision="fp32").shape == (0,)


def test_masked_rows_within_word():
    ids = np.array([101, 7, 8, 9, 5, 102])
    special = np.array([1, 0, 0, 0, 0, 1], dtype=bool)
    words = np.array([-1, 0, 0, 0, 1, -1])  # a three-piece word, then a one-piece word
    rows, pos, tgt = blimp.masked_rows(ids, special, words, 0, within_word_l2r=True)
    assert pos.tolist() == [1, 2, 3, 4] and tgt.tolist() == [7, 8, 9, 5]
    assert rows.tolist() == [[101, 0, 0, 0, 5, 102], [101, 7, 0, 0, 5, 102], [101, 7, 8, 0, 5, 102],
                             [101, 7, 8, 9, 0, 102]]
    rows, _, _ = blimp.masked_rows(ids, special, None, 0, within_word_l2r=False)
    assert (rows == 0).sum(1).tolist() == [1, 1, 1, 1]


def _minicons_scorer(model, tok):
    """minicons 0.3.39's scorer; under transformers 5 its LMScorer.encode calls tokenizer.batch_encode_plus, which
    transformers 5 removed (AttributeError), so a copy of the tokenizer gets that name back as plain __call__
    (same arguments, same BatchEncoding). minicons' masking and scoring code runs unchanged."""
    from minicons import scorer

    s = scorer.MaskedLMScorer(model, device="cpu", tokenizer=tok)
    try:
        s.sequence_score(["a"], reduction=lambda x: x.sum(0).item())
    except AttributeError as e:
        assert "batch_encode_plus" in str(e)
        shim = copy.deepcopy(tok)
        shim.batch_encode_plus = shim.__call__
        s.tokenizer = shim
    return s


@pytest.mark.slow
def test_pll_equals_minicons(tiny, tokenizer):
    s = _minicons_scorer(tiny, tokenizer)
    for metric, l2r in (("original", False), ("within_word_l2r", True)):
        theirs = s.sequence_score(SENTENCES, reduction=lambda x: x.sum(0).item(), PLL_metric=metric)
        ours = pll(tiny, tokenizer, SENTENCES, within_word_l2r=l2r, precision="fp32")
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


# ---- data -----------------------------------------------------------------------------------------------------
def test_load_blimp_all_pairs(mirror):
    df = load_blimp(str(mirror))
    assert len(df) == 67_000 and df["UID"].nunique() == 67
    assert (df.groupby("UID").size() == 1000).all()
    assert set(df["field"]) == {"morphology", "syntax", "semantics", "syntax_semantics"}
    assert df["pairID"].iloc[:3].tolist() == ["0", "1", "2"] and df["UID"].is_monotonic_increasing
    assert df.loc[0, "sentence_good"] == "Who should Derek hug after shocking Richard?"


def test_load_blimp_subsample_is_fixed_and_nested(mirror):
    a = load_blimp(str(mirror), per_paradigm=20)
    assert len(a) == 1340 and (a.groupby("UID").size() == 20).all()
    assert a.equals(load_blimp(str(mirror), per_paradigm=20))
    other = load_blimp(str(mirror), per_paradigm=20, seed=1)
    assert not a["pairID"].equals(other["pairID"])
    big = load_blimp(str(mirror), per_paradigm=50)
    key = lambda d: set(zip(d["UID"], d["pairID"]))  # noqa: E731
    assert key(a) < key(big)
    with pytest.raises(ValueError, match="per_paradigm"):
        load_blimp(str(mirror), per_paradigm=0)


def test_load_blimp_reads_the_mirror_once_until_a_file_changes(mirror, tmp_path, monkeypatch):
    """The pairs are parsed once per process (every student an experiment scores asks for them), handed out as
    copies, and read again when a file of the mirror changes."""
    import os
    import shutil

    import pandas as pd

    copy = tmp_path / "mirror"
    shutil.copytree(mirror / "blimp", copy / "blimp")
    reads = []
    real = pd.read_parquet
    monkeypatch.setattr(pd, "read_parquet", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    a = load_blimp(str(copy), per_paradigm=2)
    assert len(reads) == 67 and len(a) == 134
    a.loc[0, "sentence_good"] = "changed by the caller"
    b = load_blimp(str(copy), per_paradigm=2)
    assert len(reads) == 67 and b.loc[0, "sentence_good"] != "changed by the caller"  # no read, a fresh copy
    f = sorted((copy / "blimp").glob("*.parquet"))[0]
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a changed file: read again
    assert load_blimp(str(copy), per_paradigm=2).equals(b) and len(reads) == 134
    f.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="damaged"):
        load_blimp(str(copy), per_paradigm=2)


def test_missing_blimp_is_one_line(tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        load_blimp(str(tmp_path))
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "blimp") in msg and "ENTMASK_DATA_DIR" in msg
    monkeypatch.delenv("ENTMASK_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="no mirror is set"):
        load_blimp()


# ---- scoring --------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_score_pairs_aggregates(tiny, tokenizer, mirror):
    pairs = load_blimp(str(mirror), per_paradigm=2)
    r = score_pairs(tiny, tokenizer, pairs.sample(frac=1, random_state=0), precision="fp32")  # order restored
    assert r["n"] == 134 and r["correct"].dtype == np.uint8 and len(r["correct"]) == 134
    assert r["accuracy"] == pytest.approx(r["correct"].mean())
    want = (pll(tiny, tokenizer, pairs["sentence_good"], precision="fp32")
            > pll(tiny, tokenizer, pairs["sentence_bad"], precision="fp32"))
    assert np.array_equal(r["correct"], want.astype(np.uint8))
    assert len(r["by_paradigm"]) == 67
    assert np.mean(list(r["by_paradigm"].values())) == pytest.approx(r["accuracy"])  # 2 pairs each
    n_field = pairs.groupby("field").size()
    assert sum(r["by_field"][f] * n_field[f] for f in n_field.index) == pytest.approx(r["correct"].sum())
    assert r["variant"] == "original" and r["precision"] == "fp32" and r["seconds"] > 0


def test_bootstrap_identical_is_zero():
    a = np.random.default_rng(0).integers(0, 2, 500)
    r = paired_bootstrap_delta(a, a.copy())
    assert r["delta"] == 0 and r["lo"] == 0 and r["hi"] == 0


def test_bootstrap_recovers_a_known_difference():
    a = np.ones(1000, dtype=np.uint8)
    b = a.copy()
    b[:100] = 0  # a is right on 100 more pairs: delta 0.1, per-pair sd 0.3, standard error 0.0095
    r = paired_bootstrap_delta(a, b, n=4000)
    assert r["delta"] == pytest.approx(0.1) and r["lo"] < 0.1 < r["hi"]
    assert r["hi"] - r["lo"] == pytest.approx(2 * 1.96 * 0.3 / np.sqrt(1000), rel=0.1)
    # the multinomial shortcut against resampling pair indices directly
    rng = np.random.default_rng(1)
    d = a.astype(int) - b
    naive = np.quantile(d[rng.integers(0, 1000, (4000, 1000))].mean(1), [0.025, 0.975])
    assert r["lo"] == pytest.approx(naive[0], abs=0.003) and r["hi"] == pytest.approx(naive[1], abs=0.003)
    s = paired_bootstrap_delta("".join(map(str, a)), "".join(map(str, b)), n=4000)  # blimp.json's bit strings
    assert s == r
    with pytest.raises(ValueError, match="same pairs"):
        paired_bootstrap_delta(a, b[:-1])


@pytest.mark.slow
def test_score_run_writes_and_reuses(tiny, tokenizer, mirror, tmp_path, monkeypatch):
    from entmask.runs import read_json

    run = tmp_path / "run"
    tiny.save_pretrained(str(run / "model"))
    tokenizer.save_pretrained(str(run / "model"))
    r = score_run(run, data_dir=str(mirror), per_paradigm=2, precision="fp32", progress=False)
    saved = read_json(run / "blimp.json")
    assert saved == r
    assert r["scoring"]["n"] == 134 and r["scoring"]["variant"] == "original" and r["scoring"]["per_paradigm"] == 2
    assert len(r["correct"]) == 134 and set(r["correct"]) <= {"0", "1"}
    direct = score_pairs(tiny, tokenizer, load_blimp(str(mirror), per_paradigm=2), precision="fp32")
    assert r["correct"] == "".join(map(str, direct["correct"])) and r["accuracy"] == pytest.approx(direct["accuracy"])

    def boom(*a, **k):
        raise AssertionError("scored again")

    monkeypatch.setattr(blimp, "score_pairs", boom)
    assert score_run(run, data_dir=str(mirror), per_paradigm=2, precision="fp32", progress=False) == r
    with pytest.raises(AssertionError, match="scored again"):  # another variant is another scoring
        score_run(run, data_dir=str(mirror), per_paradigm=2, precision="fp32", within_word_l2r=True, progress=False)
    # a run imported from records has no weights but names their key: its blimp.json still counts
    for f in (run / "model").glob("*.safetensors"):
        f.unlink()
    (run / "weights.json").write_text(json.dumps({"model_key": r["scoring"]["model"]}))
    assert score_run(run, data_dir=str(mirror), per_paradigm=2, precision="fp32", progress=False) == r
    monkeypatch.undo()
    tiny.save_pretrained(str(run / "model"))
    (run / "blimp.json").write_text("{not json")  # a damaged file is scored again, not trusted
    assert score_run(run, data_dir=str(mirror), per_paradigm=2, precision="fp32", progress=False)["correct"] == \
        r["correct"]


def test_the_command_scores_a_run_as_its_tables_do(tmp_path):
    """`entmask blimp RUN` defaults to the run's experiment.blimp_per_paradigm (what its tables show), so asking
    for a run's BLiMP reads its blimp.json instead of replacing it with another subsample."""
    from entmask import config

    run = tmp_path / "run"
    run.mkdir()
    assert blimp.run_per_paradigm(run) == blimp.DEFAULT_PER_PARADIGM  # no config: the module's default
    for profile, want in (("cpu-wiki", 100), ("tiny", 10)):
        (run / "config.json").write_text(json.dumps(config.resolve(profile).hash_dict() | {
            "experiment": {"blimp_per_paradigm": config.resolve(profile).experiment.blimp_per_paradigm}}))
        assert blimp.run_per_paradigm(run) == want
    (run / "config.json").write_text(json.dumps({"experiment": {"blimp_per_paradigm": 0}}))  # 0: no BLiMP there
    assert blimp.run_per_paradigm(run) == blimp.DEFAULT_PER_PARADIGM
    (run / "config.json").write_text("{damaged")
    assert blimp.run_per_paradigm(run) == blimp.DEFAULT_PER_PARADIGM
