"""token_entropy against a float64 reference; chunking; -inf, bf16 and large logits; the self-entropy pass."""
import math

import pytest
import torch

from entmask.entropy import EntropyError, check_finite, model_entropy, token_entropy


def ref_entropy(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    p = torch.softmax(x, -1)
    logp = torch.log_softmax(x, -1)
    return -(torch.where(p > 0, p * logp, torch.zeros((), dtype=torch.float64))).sum(-1)


def test_matches_float64_reference_at_bert_vocab():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 7, 30522, generator=g) * 4
    h = token_entropy(x)
    assert h.dtype == torch.float32 and h.shape == (3, 7)
    assert torch.allclose(h.double(), ref_entropy(x), atol=1e-4)


def test_known_values():
    assert token_entropy(torch.zeros(1, 4))[0].item() == pytest.approx(math.log(4), abs=1e-6)
    assert token_entropy(torch.tensor([[100.0, 0.0, 0.0]]))[0].item() == pytest.approx(0.0, abs=1e-6)


def test_chunked_equals_unchunked():
    x = torch.randn(5, 33, 1000) * 3
    full = token_entropy(x)
    for c in (1, 7, 64, 1000):
        assert torch.equal(token_entropy(x, chunk_size=c), full)


def test_bf16_and_large_magnitudes_and_neg_inf():
    x = torch.randn(4, 30522) * 3
    hb = token_entropy(x.bfloat16())
    assert hb.dtype == torch.float32
    assert torch.allclose(hb.double(), ref_entropy(x.bfloat16().float()), atol=1e-3)
    big = torch.tensor([[1e4, 1e4 - 1.0, -1e4]])
    assert torch.isfinite(token_entropy(big)).all()
    assert token_entropy(big).double().item() == pytest.approx(ref_entropy(big).item(), abs=1e-5)
    neg = torch.tensor([[0.0, 0.0, float("-inf"), float("-inf")]])
    assert token_entropy(neg)[0].item() == pytest.approx(math.log(2), abs=1e-6)


def test_non_finite_rows_are_detected():
    x = torch.tensor([[float("-inf")] * 3, [0.0, float("nan"), 1.0], [0.0, 1.0, 2.0], [0.0, float("inf"), 1.0]])
    h = token_entropy(x)
    assert torch.isnan(h[0]) and torch.isnan(h[1]) and torch.isfinite(h[2]) and torch.isnan(h[3])
    with pytest.raises(EntropyError, match="3 position"):
        check_finite(h, "test")


def test_entropy_has_a_gradient():
    """token_entropy stays differentiable (the CPU kernel clamps in place only when no gradient is needed):
    dH/dx_i = -p_i (log p_i + H)."""
    x = torch.tensor([[0.5, -1.0, 2.0, float("-inf")]], requires_grad=True)
    h = token_entropy(x)
    h.sum().backward()
    p = torch.softmax(x.detach(), -1)
    logp = torch.log(p.clamp_min(1e-30))
    expect = -(p * (logp + h.detach()[:, None]))
    assert torch.allclose(x.grad[:, :3], expect[:, :3], atol=1e-6) and x.grad[0, 3] == 0


def test_model_entropy_equals_dense_and_restores_mode():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    m = BertForMaskedLM(BertConfig(vocab_size=500, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64))
    m.train()
    ids = torch.randint(5, 500, (3, 12))
    h = model_entropy(m, ids, torch.ones_like(ids), chunk_size=5)
    assert m.training
    m.eval()
    with torch.no_grad():
        dense = token_entropy(m(input_ids=ids).logits)
    assert torch.allclose(h, dense, atol=1e-5)


def test_masked_view_scores_every_candidate_once_in_its_own_pass():
    """ceil(1/ratio) disjoint passes cover every candidate exactly once; each position's loss is the model's loss
    there with exactly its pass's positions masked (recomputed by hand for one position)."""
    import math

    from entmask.entropy import masked_view
    from entmask.models import build_model

    torch.manual_seed(0)
    model = build_model("bert-micro", 50).eval()
    ids = torch.randint(5, 50, (3, 12))
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, 0] = cand[:, -1] = False  # [CLS]/[SEP] are never scored
    out = masked_view(model, ids, cand, mask_id=4, ratio=0.25, seed=3)
    assert torch.isfinite(out["loss"][cand]).all() and torch.isnan(out["loss"][~cand]).all()
    assert torch.isfinite(out["entropy"][cand]).all() and (out["entropy"][cand] <= math.log(50) + 1e-4).all()
    # recompute row 1, position 5 by hand: the same group draw, only that group masked
    group = torch.randint(0, 4, ids.shape, generator=torch.Generator().manual_seed(3))
    sel = cand[1] & (group[1] == group[1, 5])
    masked = ids[1:2].masked_fill(sel[None], 4)
    with torch.no_grad():
        logits = model(input_ids=masked).logits[0, 5]
    expect = torch.nn.functional.cross_entropy(logits[None], ids[1, 5:6])
    assert out["loss"][1, 5] == pytest.approx(float(expect), abs=1e-5)


def test_entropy_rank_check_counts_candidates_only_and_matches_scipy():
    """The check scores candidate positions only, and its correlations are scipy's on the arrays it returns."""
    from scipy import stats

    from entmask.entropy import entropy_rank_check, model_entropy
    from entmask.models import build_model

    torch.manual_seed(1)
    model = build_model("bert-micro", 40, {"num_hidden_layers": 1}).eval()
    ids = torch.randint(5, 40, (4, 10))
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, :2] = False
    r = entropy_rank_check(model, ids, cand, mask_id=4, ratio=0.5)
    assert r["positions"] == 32
    assert torch.allclose(torch.as_tensor(r["unmasked"]), model_entropy(model, ids)[cand], atol=1e-5)
    assert r["spearman_entropy_vs_masked_loss"] == pytest.approx(
        stats.spearmanr(r["unmasked"], r["masked_loss"]).statistic)
    assert 0 <= r["top15_overlap_entropy_vs_loss"] <= 1
