"""Weight analysis (a known perturbation is found exactly) and the bootstrap statistics (known deltas, pairing,
seed intervals, vectorised metrics equal to scikit-learn's)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from entmask.analysis import (aggregate_deltas, bootstrap_total_delta, classify_parameter, mean_sd,
                              most_moved_component, paired_bootstrap_delta, weight_deltas)

TARGET = "bert.encoder.layer.1.intermediate.dense.weight"


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory):
    from transformers import BertConfig, BertForMaskedLM

    d = tmp_path_factory.mktemp("mlm")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertForMaskedLM(cfg).save_pretrained(str(d))
    return d


def _perturbed(mlm_dir):
    from transformers import BertForSequenceClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    model = BertForSequenceClassification.from_pretrained(str(mlm_dir), num_labels=2)
    with torch.no_grad():
        dict(model.named_parameters())[TARGET].add_(0.1)
    return model


def test_classify_parameter():
    assert classify_parameter("bert.embeddings.word_embeddings.weight") == (-1, "embeddings")
    assert classify_parameter("bert.embeddings.LayerNorm.bias") == (-1, "layernorm")
    assert classify_parameter("bert.encoder.layer.3.attention.self.query.weight") == (3, "attention_q")
    assert classify_parameter("bert.encoder.layer.0.attention.self.key.bias") == (0, "attention_k")
    assert classify_parameter("bert.encoder.layer.0.attention.self.value.weight") == (0, "attention_v")
    assert classify_parameter("bert.encoder.layer.0.attention.output.dense.weight") == (0, "attention_out")
    assert classify_parameter("bert.encoder.layer.0.attention.output.LayerNorm.weight") == (0, "layernorm")
    assert classify_parameter("bert.encoder.layer.11.intermediate.dense.weight") == (11, "ffn_in")
    assert classify_parameter("bert.encoder.layer.1.output.dense.bias") == (1, "ffn_out")
    assert classify_parameter("bert.encoder.layer.1.output.LayerNorm.weight") == (1, "layernorm")
    assert classify_parameter("bert.pooler.dense.weight") == (-1, "pooler")
    assert classify_parameter("classifier.bias") == (-1, "classifier")


def test_weight_deltas_find_the_one_perturbed_tensor(mlm_dir, tmp_path):
    from safetensors.torch import load_file

    model = _perturbed(mlm_dir)
    df = weight_deltas(mlm_dir, model, head_init=None)
    pre = load_file(str(mlm_dir / "model.safetensors"))
    compared = df[df["reference"] == "pretrained"]
    assert set(compared["name"]) == {k for k in pre if k.startswith("bert.")}  # every encoder tensor, no cls.*
    moved = compared[compared["delta_norm"] > 0]
    assert moved["name"].tolist() == [TARGET]
    row = moved.iloc[0]
    w = pre[TARGET].double()
    w_ft = dict(model.named_parameters())[TARGET].detach().double()
    assert row["rel_norm_change"] == (w_ft - w).norm().item() / w.norm().item()  # exactly, in float64
    assert row["rel_norm_change"] == pytest.approx(0.1 * math.sqrt(w.numel()) / w.norm().item(), rel=1e-5)
    assert row["mean_rel_elementwise"] == pytest.approx(((w_ft - w).abs() / (w.abs() + 1e-8)).mean().item(),
                                                        rel=1e-12)
    assert (row["layer"], row["component"], row["numel"]) == (1, "ffn_in", 64 * 32)
    assert (compared.loc[compared["name"] != TARGET, ["rel_norm_change", "mean_rel_elementwise"]] == 0).all().all()
    heads = df[df["reference"] == "none"]  # pooler and classifier: no pretrained counterpart, no init given
    assert set(heads["component"]) == {"pooler", "classifier"} and heads["rel_norm_change"].isna().all()
    assert (heads["finetuned_norm"] > 0).any()

    # The same from files: a saved model folder reads like the live model.
    model.save_pretrained(str(tmp_path / "ft"))
    df2 = weight_deltas(mlm_dir, tmp_path / "ft", head_init=None)
    assert df2.set_index("name")["delta_norm"].equals(df.set_index("name")["delta_norm"])


def test_aggregate_and_most_moved(mlm_dir):
    from safetensors.torch import load_file

    df = weight_deltas(mlm_dir, _perturbed(mlm_dir), head_init=None)
    agg = aggregate_deltas(df)
    cell = agg[(agg["layer"] == 1) & (agg["component"] == "ffn_in")].iloc[0]
    pre = load_file(str(mlm_dir / "model.safetensors"))
    w2 = pre[TARGET].double().norm() ** 2 + pre[TARGET.replace("weight", "bias")].double().norm() ** 2
    d = df.set_index("name").loc[TARGET, "delta_norm"]
    assert cell["rel_norm_change"] == pytest.approx(d / math.sqrt(w2), rel=1e-12)  # weight and bias pooled
    others = agg.drop(cell.name)
    assert (others["rel_norm_change"] == 0).all()
    assert set(agg["component"]) == {"embeddings", "attention_q", "attention_k", "attention_v", "attention_out",
                                     "ffn_in", "ffn_out", "layernorm"}
    wide = aggregate_deltas(df, wide=True)
    assert wide.loc[1, "ffn_in"] == cell["rel_norm_change"] and wide.loc[0, "ffn_in"] == 0
    assert most_moved_component(df) == "ffn_in"


def test_weight_deltas_use_head_init(mlm_dir, tmp_path):
    from safetensors.torch import save_file

    model = _perturbed(mlm_dir)
    heads = {k: v.detach().clone() for k, v in model.named_parameters()
             if k.startswith(("classifier.", "bert.pooler."))}
    save_file(heads, str(tmp_path / "head_init.safetensors"))
    with torch.no_grad():
        model.classifier.weight.mul_(2.0)
    model.save_pretrained(str(tmp_path / "model"))
    df = weight_deltas(mlm_dir, tmp_path, head_init="auto").set_index("name")  # a run folder: model/ + head_init
    assert df.loc["classifier.weight", "reference"] == "init"
    assert df.loc["classifier.weight", "rel_norm_change"] == pytest.approx(1.0, rel=1e-12)  # 2W - W = W
    assert df.loc["bert.pooler.dense.weight", "rel_norm_change"] == 0
    assert most_moved_component(df.reset_index()) == "ffn_in"  # init-referenced heads do not count


# ---- bootstrap -----------------------------------------------------------------------------------------------
def test_paired_bootstrap_identical_and_shift():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 500)
    assert paired_bootstrap_delta(a, a.copy(), n=300) == (0.0, 0.0, 0.0)
    b = a.copy()
    wrong = np.flatnonzero(a == 0)[:50]
    b2 = a.copy()
    b2[wrong] = 1  # model b2 gets 50 more of 500 right
    delta, lo, hi = paired_bootstrap_delta(b2, b, n=1000, seed=1)
    assert delta == pytest.approx(0.1, abs=1e-15) and 0 < lo < delta < hi < 0.2
    assert paired_bootstrap_delta(b2, b, n=1000, seed=1) == (delta, lo, hi)  # seeded


def _fixed_preds(rng, n=300, acc=0.8, tasks=("cola", "mrpc", "rte")):
    out = {}
    for t in tasks:
        y = rng.integers(0, 2, n)
        out[t] = (y, np.where(rng.random(n) < acc, y, 1 - y))
    return out


def test_bootstrap_total_identical_is_zero():
    p = _fixed_preds(np.random.default_rng(0))
    r = bootstrap_total_delta(p, p, n=200)
    assert (r["delta"], r["lo"], r["hi"]) == (0.0, 0.0, 0.0)
    assert r["t_interval"] is None and "1 seed" in r["t_interval_note"]


def test_bootstrap_total_known_shift_equals_sklearn():
    from sklearn.metrics import accuracy_score, f1_score

    rng = np.random.default_rng(1)
    base = _fixed_preds(rng, acc=0.7)
    model = {}
    for t, (y, p) in base.items():
        q = p.copy()
        q[np.flatnonzero(q != y)[:30]] = y[np.flatnonzero(q != y)[:30]]  # 30 more right per task
        model[t] = (y, q)
    r = bootstrap_total_delta(model, base, n=500, seed=0)
    expect = {"cola": accuracy_score, "rte": accuracy_score, "mrpc": f1_score}
    per = {t: 100 * (expect[t](*model[t]) - expect[t](*base[t])) for t in base}
    assert r["per_task"]["cola"]["delta"] == pytest.approx(10.0)  # 30 of 300 accuracy points
    for t in base:
        assert r["per_task"][t]["delta"] == pytest.approx(per[t], abs=1e-9)
    assert r["delta"] == pytest.approx(np.mean(list(per.values())), abs=1e-9)
    assert r["lo"] < r["delta"] < r["hi"] and r["lo"] > 0
    assert r["metrics"] == {"cola": "accuracy", "mrpc": "f1", "rte": "accuracy"}

    # The vectorised resampled metrics equal scikit-learn's on every resample: same draws, same CI.
    slow = bootstrap_total_delta(model, base, metric=expect, n=60, seed=3)
    fast = bootstrap_total_delta(model, base, n=60, seed=3)
    assert (slow["lo"], slow["hi"]) == pytest.approx((fast["lo"], fast["hi"]), abs=1e-9)


def test_bootstrap_total_mcc_glue_metric_matches_sklearn():
    from sklearn.metrics import matthews_corrcoef

    rng = np.random.default_rng(2)
    a, b = _fixed_preds(rng, acc=0.8, tasks=("cola",)), _fixed_preds(rng, acc=0.6, tasks=("cola",))
    b = {"cola": (a["cola"][0], b["cola"][1])}
    fast = bootstrap_total_delta(a, b, metric="glue", n=80, seed=5)
    slow = bootstrap_total_delta(a, b, metric={"cola": matthews_corrcoef}, n=80, seed=5)
    assert fast["metrics"] == {"cola": "mcc"}
    assert fast["delta"] == pytest.approx(100 * (matthews_corrcoef(*a["cola"]) - matthews_corrcoef(*b["cola"])))
    assert (slow["lo"], slow["hi"]) == pytest.approx((fast["lo"], fast["hi"]), abs=1e-9)


def test_bootstrap_total_seed_intervals():
    from scipy import stats

    rng = np.random.default_rng(3)
    base = _fixed_preds(rng, acc=0.7)
    seeds = []
    for k in (10, 20, 45):  # three seeds, each k more right examples per task
        s = {}
        for t, (y, p) in base.items():
            q = p.copy()
            q[np.flatnonzero(q != y)[:k]] = y[np.flatnonzero(q != y)[:k]]
            s[t] = (y, q)
        seeds.append(s)
    two = bootstrap_total_delta(seeds[:2], base, n=100)
    d2 = np.array(two["seed_deltas"])
    half2 = stats.t.ppf(0.975, 1) * d2.std(ddof=1) / math.sqrt(2)  # t = 12.71: wide unless the seeds agree closely
    assert two["t_interval"] == pytest.approx([d2.mean() - half2, d2.mean() + half2])
    assert "2 seeds" in two["t_interval_note"] and "12.71" in two["t_interval_note"]
    # the interval a verdict uses is the wider of the two, end by end
    assert two["judged"] == [min(two["lo"], two["t_interval"][0]), max(two["hi"], two["t_interval"][1])]
    assert two["judged"][0] < two["lo"]  # here the t-interval is the wider
    three = bootstrap_total_delta(seeds, [base, base, base], n=100)
    d = np.array(three["seed_deltas"])
    assert len(d) == 3 and three["delta"] == pytest.approx(d.mean())
    half = stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert three["t_interval"] == pytest.approx([d.mean() - half, d.mean() + half])
    assert three["t_interval_note"] is None
    # with groups the t-interval's units are the pretraining seeds, each the mean of its fine-tuning seeds
    grouped = bootstrap_total_delta(seeds + seeds[:1], [base] * 4, n=100, groups=[0, 0, 1, 1])
    units = [np.mean(d[:2]), np.mean([d[2], d[0]])]
    assert grouped["unit_deltas"] == pytest.approx(units)
    h = stats.t.ppf(0.975, 1) * np.std(units, ddof=1) / math.sqrt(2)
    assert grouped["t_interval"] == pytest.approx([np.mean(units) - h, np.mean(units) + h])


def _shifted(base: dict, k: int) -> dict:
    """base's predictions with k more right (k > 0) or k more wrong (k < 0) examples in every task."""
    out = {}
    for t, (y, p) in base.items():
        q = p.copy()
        if k > 0:
            wrong = np.flatnonzero(q != y)[:k]
            q[wrong] = y[wrong]
        else:
            right = np.flatnonzero(q == y)[:-k]
            q[right] = 1 - y[right]
        out[t] = (y, q)
    return out


def test_two_level_bootstrap_widens_when_seeds_disagree():
    """Two seeds, one +10 points and one -10: the mean delta is ~0, and resampling seeds makes the CI span both
    (about [-10, +10]); the example-only CI is narrow around 0 and would hide that the seeds disagree."""
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, size=400)
    base = {"rte": (y, np.where(rng.random(400) < 0.7, y, 1 - y))}
    up, down = _shifted(base, 40), _shifted(base, -40)  # 40 of 400 examples = 10 points each way
    both = bootstrap_total_delta([up, down], [base, base], metric="accuracy", n=2000, seed=0)
    assert both["seed_deltas"] == pytest.approx([10.0, -10.0])
    assert both["delta"] == pytest.approx(0.0, abs=1e-9) and both["ci_kind"] == "seeds and examples"
    assert both["lo"] < -8 and both["hi"] > 8  # wide: the seeds disagree
    flat = bootstrap_total_delta([up, down], [base, base], metric="accuracy", n=2000, seed=0, resample_seeds=False)
    assert flat["hi"] - flat["lo"] < 8 and flat["ci_kind"] == "examples"  # example noise alone: narrow
    # seeds that agree (+10 and +10) keep a CI that excludes 0
    agree = bootstrap_total_delta([up, _shifted(base, 40)], [base, base], metric="accuracy", n=2000, seed=0)
    assert agree["lo"] > 0 and agree["judged"] == [agree["lo"], agree["hi"]]  # identical seeds: t-interval of 0 width
    # seeds that share a sign but not a size (+2.5 and +10): the bootstrap excludes 0, the verdict's interval not
    apart = bootstrap_total_delta([up, _shifted(base, 10)], [base, base], metric="accuracy", n=2000, seed=0)
    assert apart["seed_deltas"] == pytest.approx([10.0, 2.5])
    assert apart["lo"] > 0 and apart["judged"][0] < 0


def test_two_level_bootstrap_groups_by_pretraining_seed():
    """With groups, whole pretraining seeds are drawn first: two pretraining seeds (+10, -10), two fine-tuning
    seeds each, give the same wide CI as two flat seeds; one group behaves as a flat draw."""
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, size=400)
    base = {"rte": (y, np.where(rng.random(400) < 0.7, y, 1 - y))}
    up, down = _shifted(base, 40), _shifted(base, -40)
    r = bootstrap_total_delta([up, up, down, down], [base] * 4, metric="accuracy", n=1000, seed=1,
                              groups=[0, 0, 1, 1])
    assert r["lo"] < -8 and r["hi"] > 8
    with pytest.raises(ValueError, match="groups has 3 labels for 4 seeds"):
        bootstrap_total_delta([up, up, down, down], [base] * 4, metric="accuracy", n=10, groups=[0, 0, 1])


def test_bootstrap_total_refuses_unpaired():
    rng = np.random.default_rng(4)
    a, b = _fixed_preds(rng), _fixed_preds(rng)  # different gold labels: not the same examples
    with pytest.raises(ValueError, match="not paired"):
        bootstrap_total_delta(a, b, n=10)
    with pytest.raises(ValueError, match="same tasks"):
        bootstrap_total_delta(a, {"cola": a["cola"]}, n=10)


def test_mean_sd():
    assert mean_sd([2.0, 4.0]) == (3.0, pytest.approx(math.sqrt(2)))
    m, s = mean_sd([5.0])
    assert m == 5.0 and math.isnan(s)
    assert all(math.isnan(x) for x in mean_sd([]))


def test_verdict_interval_keeps_false_verdicts_near_5_percent_at_two_seeds():
    """No true difference, two seeds that differ by 8 points s.d. (300 examples): the percentile bootstrap alone
    excludes 0 far more often than 5% (its seed draw has three outcomes), the interval verdicts use does not. With no
    seed noise both are within 5%; a true difference of 10 points is found by the bootstrap always, by the verdicts'
    interval often."""
    from entmask.analysis import interval_calibration

    noisy = interval_calibration(n_seeds=2, seed_sd=8.0, n_examples=300, reps=150, n_boot=300, seed=0)
    assert noisy["bootstrap"] > 0.12 and noisy["judged"] <= 0.09, noisy
    assert noisy["judged"] <= min(noisy["bootstrap"], noisy["t_interval"])  # the wider interval of the two
    quiet = interval_calibration(n_seeds=2, seed_sd=0.0, n_examples=300, reps=60, n_boot=300, seed=1)
    assert quiet["bootstrap"] <= 0.05 and quiet["judged"] <= 0.05, quiet
    real = interval_calibration(n_seeds=2, seed_sd=0.5, effect=10.0, n_examples=300, reps=30, n_boot=300, seed=2)
    # the price of 2 seeds: t = 12.71 finds even 10 points in under half the draws (43% here)
    assert real["bootstrap"] == 1.0 and 0.3 <= real["judged"] < 1.0, real
