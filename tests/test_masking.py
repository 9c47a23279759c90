"""select_mask on crafted entropies: exact masks, exact counts, candidates only; apply_mask policies."""
import pytest
import torch

from entmask.masking import STRATEGIES, apply_mask, candidate_mask, num_to_mask, select_mask

E = torch.tensor([[0.5, 3.0, 1.0, 2.0, 4.0, 0.1, 5.0, 2.5, 0.0, 9.0]])  # position 8 and 9 are not candidates
C = torch.tensor([[True, True, True, True, True, True, True, True, False, False]])


def idx(mask):
    return mask[0].nonzero().flatten().tolist()


def test_strategy_names():
    assert STRATEGIES == ("high", "low", "mid", "marginal", "alternating", "random")


@pytest.mark.parametrize("strategy,ratio,num,expected", [
    ("high", 0.5, None, [1, 4, 6, 7]),  # n=8, k=4: entropies 5.0, 4.0, 3.0, 2.5
    ("low", 0.5, None, [0, 2, 3, 5]),  # 0.1, 0.5, 1.0, 2.0
    ("high", 0.15, None, [6]),  # k = floor(0.15*8 + 0.5) = 1
    ("low", 0.15, None, [5]),
    ("mid", 0.25, None, [3, 7]),  # ascending: 5,0,2,3,7,1,4,6; k=2 from rank (8-2)//2=3 -> positions 3, 7
    ("mid", None, 3, [2, 3, 7]),  # k=3 from rank 2
    ("marginal", 0.5, None, [0, 4, 5, 6]),  # 2 highest (6, 4) + 2 lowest (5, 0)
    ("marginal", None, 3, [4, 5, 6]),  # ceil(3/2)=2 highest, 1 lowest
    ("max", 0.5, None, [1, 4, 6, 7]),  # paper aliases
    ("min", 0.5, None, [0, 2, 3, 5]),
    ("marg", 0.5, None, [0, 4, 5, 6]),
])
def test_exact_masks(strategy, ratio, num, expected):
    m = select_mask(E, C, strategy, ratio=ratio or 0.15, num_tokens=num)
    assert idx(m) == expected
    assert not (m & ~C).any()


def test_ties_broken_by_position():
    e = torch.zeros(1, 6)
    c = torch.ones(1, 6, dtype=torch.bool)
    assert idx(select_mask(e, c, "high", num_tokens=2)) == [0, 1]
    assert idx(select_mask(e, c, "low", num_tokens=2)) == [0, 1]
    # marginal stays disjoint on ties: exactly k tokens
    assert select_mask(e, c, "marginal", num_tokens=4).sum() == 4


def test_k_rule_and_clipping():
    c = torch.zeros(4, 50, dtype=torch.bool)
    c[0, :40] = True  # 0.15*40 = 6.0 -> 6
    c[1, :10] = True  # 1.5 + 0.5 -> 2
    c[2, :3] = True  # 0.45 + 0.5 -> 0 -> clipped to 1
    # row 3: no candidates -> 0
    assert num_to_mask(c, 0.15).tolist() == [6, 2, 1, 0]
    assert num_to_mask(c, 0.15, num_tokens=5).tolist() == [5, 5, 3, 0]
    e = torch.rand(4, 50)
    for s in ["high", "low", "mid", "marginal", "random", "alternating"]:
        m = select_mask(e, c, s, generator=torch.Generator().manual_seed(0))
        assert m.sum(1).tolist() == [6, 2, 1, 0], s
        assert not (m & ~c).any(), s


def test_batch_rows_independent():
    e = torch.stack([E[0], E[0].flip(0)])
    c = torch.stack([C[0], C[0].flip(0)])
    m = select_mask(e, c, "high", ratio=0.5)
    assert m[1].flip(0).tolist() == m[0].tolist()


def test_alternating_is_one_coin_per_batch_about_half():
    g = torch.Generator().manual_seed(123)
    high = select_mask(E, C, "high", ratio=0.5)
    low = select_mask(E, C, "low", ratio=0.5)
    e2 = E.repeat(3, 1)
    c2 = C.repeat(3, 1)
    n_high = 0
    for _ in range(400):
        m = select_mask(e2, c2, "alternating", ratio=0.5, generator=g)
        assert torch.equal(m[0], m[1]) and torch.equal(m[1], m[2])  # whole batch follows one coin
        assert torch.equal(m[:1], high) or torch.equal(m[:1], low)
        n_high += int(torch.equal(m[:1], high))
    assert 160 < n_high < 240  # fair coin: 200 +- 4 sd


def test_random_uniform_over_candidates():
    g = torch.Generator().manual_seed(0)
    c = torch.tensor([[False, True, True, True, True, False]])
    counts = torch.zeros(6)
    for _ in range(4000):
        m = select_mask(torch.zeros(1, 6), c, "random", num_tokens=1, generator=g)
        counts += m[0].float()
    assert counts[0] == 0 and counts[5] == 0
    assert ((counts[1:5] / 4000 - 0.25).abs() < 0.03).all()


def test_bernoulli_rate():
    g = torch.Generator().manual_seed(0)
    c = torch.ones(64, 128, dtype=torch.bool)
    c[:, 0] = False
    m = select_mask(torch.zeros(64, 128), c, "bernoulli", generator=g)
    assert abs(m.float().mean().item() - 0.15 * 127 / 128) < 0.01
    assert not m[:, 0].any()


@pytest.mark.parametrize("kwargs,match", [
    ({"strategy": "bogus"}, "high, low, mid, marginal, alternating, random"),
    ({"strategy": "high", "ratio": 0.0}, r"\(0, 1\]"),
    ({"strategy": "high", "ratio": 1.5}, r"\(0, 1\]"),
    ({"strategy": "high", "num_tokens": 0}, "positive integer"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        select_mask(E, C, **kwargs)


def test_candidates_and_apply_mask():
    ids = torch.tensor([[101, 2023, 100, 2003, 102, 0]])
    c = candidate_mask(ids, [0, 100, 101, 102, 103], unk_id=100)
    assert c.tolist() == [[False, True, False, True, False, False]]
    c2 = candidate_mask(ids, [0, 101, 102, 103], unk_id=100, include_unk=True)
    assert c2.tolist() == [[False, True, True, True, False, False]]
    mask = torch.tensor([[False, True, False, False, False, False]])
    inp, lab = apply_mask(ids, mask, 103)
    assert inp.tolist() == [[101, 103, 100, 2003, 102, 0]]
    assert lab.tolist() == [[-100, 2023, -100, -100, -100, -100]]


def test_bert_policy_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.full((200, 100), 5000)
    mask = torch.ones_like(ids, dtype=torch.bool)
    inp, lab = apply_mask(ids, mask, 103, "bert", vocab_size=30522, generator=g, special_ids=[0, 100, 101, 102, 103])
    n = ids.numel()
    assert abs((inp == 103).sum().item() / n - 0.8) < 0.01
    assert abs((inp == 5000).sum().item() / n - 0.1) < 0.01  # kept (random hits 5000 with negligible chance)
    rand = (inp != 103) & (inp != 5000)
    assert abs(rand.sum().item() / n - 0.1) < 0.01
    assert (inp[rand] > 103).all()  # random replacements are never special tokens
    assert (lab == 5000).all()


def test_include_unk_with_the_real_tokenizer(tokenizer):
    """[UNK] is among the BERT tokenizer's special ids; include_unk must still make it a candidate."""
    unk = tokenizer.unk_token_id
    assert unk in tokenizer.all_special_ids
    ids = torch.tensor([[tokenizer.cls_token_id, 2003, unk, 1996, unk, tokenizer.sep_token_id]])
    special = list(tokenizer.all_special_ids)
    off = candidate_mask(ids, special, unk, include_unk=False)
    on = candidate_mask(ids, special, unk, include_unk=True)
    assert off.tolist() == [[False, True, False, True, False, False]]
    assert on.tolist() == [[False, True, True, True, True, False]]


# ---- beyond the paper: the selector registry and soft selection ------------------------------------------------
def test_sampled_at_the_limits_is_high_and_random_exactly():
    """Temperature 0 is hard top-k (= high); infinity is `random` with the same generator state, bitwise (the
    Gumbel transform keeps the order of the uniforms)."""
    g = torch.Generator().manual_seed(0)
    ent = torch.rand(6, 20, generator=g)
    cand = torch.rand(6, 20, generator=g) > 0.2
    assert torch.equal(select_mask(ent, cand, "sampled", 0.3, temperature=0.0), select_mask(ent, cand, "high", 0.3))
    a = select_mask(ent, cand, "sampled", 0.3, generator=torch.Generator().manual_seed(5), temperature=float("inf"))
    b = select_mask(ent, cand, "random", 0.3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_sampled_prefers_high_entropy_and_keeps_k():
    """Finite temperature: exactly k per row, and over many draws a high-entropy token is picked more often than
    a low one, the more so the lower the temperature."""
    ent = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]]).repeat(400, 1)
    cand = torch.ones_like(ent, dtype=torch.bool)
    freq = {}
    for t in (0.5, 5.0):
        m = select_mask(ent, cand, "sampled", 0.2, generator=torch.Generator().manual_seed(1), temperature=t)
        assert (m.sum(1) == 2).all()
        freq[t] = m.float().mean(0)
    assert freq[0.5][9] > 0.9 and freq[0.5][0] < 0.01  # near hard top-k
    assert freq[5.0][9] > freq[5.0][0] > 0  # softer: the low end is picked sometimes
    assert freq[0.5][9] > freq[5.0][9]


def test_register_a_selector_is_one_function():
    """A new selector is usable by name through select_mask, canonical_strategy and the registry's views as soon as
    it is registered; its metadata says whether it needs scores."""
    from entmask import masking

    @masking.register_selector("_test-first", needs_scores=False, help="the first k candidates")
    def first(ent, candidates, k, generator=None, temperature=None):
        return masking._first_k(torch.arange(ent.shape[1]).expand_as(ent).float(), candidates, torch.zeros_like(k), k)

    try:
        cand = torch.ones(1, 10, dtype=torch.bool)
        m = select_mask(torch.zeros(1, 10), cand, "_test-first", 0.3)
        assert m.tolist() == [[True] * 3 + [False] * 7]
        assert masking.canonical_strategy("_test-first") == "_test-first" and not masking.needs_entropy("_test-first")
        assert masking.strategies(paper=False)[-1] == "_test-first"
        assert masking.SELECTORS["_test-first"].help == "the first k candidates"
    finally:
        masking.SELECTORS.pop("_test-first")
    with pytest.raises(ValueError, match="unknown masking strategy '_test-first'"):
        masking.canonical_strategy("_test-first")
    with pytest.raises(ValueError, match="must be letters"):
        masking.register_selector("max")  # an alias


def test_the_registry_knows_what_needs_scores():
    from entmask import masking

    assert [n for n in masking.SELECTORS if not masking.needs_entropy(n)] == ["random", "bernoulli"]
    assert masking.strategies(paper=True) == STRATEGIES and masking.strategies(paper=False) == ("bernoulli", "sampled")


def test_temperature_is_checked():
    with pytest.raises(ValueError, match="temperature=-1 must be >= 0"):
        select_mask(torch.zeros(1, 4), torch.ones(1, 4, dtype=torch.bool), "sampled", 0.5, temperature=-1)
