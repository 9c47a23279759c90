"""The speed work's correctness (no timing assertions): the sparse MLM head gives the dense head's loss and
gradients, chunked entropy equals unchunked, and the benchmark runs end to end at a toy size."""
import math
from pathlib import Path

import pytest
import torch

from entmask import bench
from entmask.entropy import model_entropy, token_entropy
from entmask.models import build_model


def _batch(vocab: int, b: int = 3, t: int = 24, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (b, t), generator=g)
    sel = torch.rand(b, t, generator=g) < 0.2
    sel[0, 3] = True  # at least one masked position
    return ids, torch.ones_like(ids), ids.masked_fill(~sel, -100)


def test_sparse_head_loss_and_grads_equal_dense():
    from transformers import BertForMaskedLM

    vocab = 1000
    model = build_model("bert-micro", vocab, seed=0).eval()  # eval: no dropout, so both passes see the same net
    plain = BertForMaskedLM(model.config).eval()
    plain.load_state_dict(model.state_dict())
    ids, attn, labels = _batch(vocab)
    sel = labels != -100

    sparse = model(input_ids=ids, attention_mask=attn, labels=labels)  # sparse=True by default
    assert sparse.logits.shape == (int(sel.sum()), vocab)  # [M, V]: the head ran at masked positions only
    sparse.loss.backward()
    g_sparse = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    dense = model(input_ids=ids, attention_mask=attn, labels=labels, sparse=False)
    dense.loss.backward()
    ref = plain(input_ids=ids, attention_mask=attn, labels=labels)  # stock HF forward with labels

    torch.testing.assert_close(sparse.loss, dense.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse.loss, ref.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(sparse.logits, ref.logits[sel], rtol=1e-5, atol=1e-5)
    for n, p in model.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(g_sparse[n], p.grad, rtol=1e-4, atol=1e-6, msg=n)


def test_sparse_head_with_no_masked_position_is_zero_and_differentiable():
    model = build_model("bert-micro", 200, seed=0)
    ids = torch.randint(5, 200, (2, 8))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.full_like(ids, -100))
    assert float(out.loss.detach()) == 0.0 and out.logits.shape == (0, 200)
    out.loss.backward()


def _naive(logits):
    logp = torch.log_softmax(logits.double(), dim=-1)
    return -(logp.exp() * logp).sum(-1).float()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_entropy_equals_unchunked(dtype):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(3, 17, 501, generator=g) * 4).to(dtype)  # 51 positions
    logits[0, 0] = 0.0  # uniform row: entropy log V
    logits[1, 2, :-1] = -float("inf")  # one-hot row: entropy 0
    full = token_entropy(logits)
    assert full.shape == (3, 17) and full.dtype == torch.float32
    for chunk in (1, 4, 7, 50, 51, 1000):
        torch.testing.assert_close(token_entropy(logits, chunk_size=chunk), full, rtol=0, atol=1e-6)
    torch.testing.assert_close(full, _naive(logits.float()).nan_to_num(0.0), rtol=1e-5, atol=1e-5)
    assert math.isclose(float(full[0, 0]), math.log(501), rel_tol=1e-5)
    assert float(full[1, 2]) == 0.0


def test_chunked_model_entropy_equals_unchunked():
    model = build_model("bert-micro", 300, seed=0)
    ids, attn, _ = _batch(300, b=2, t=10)
    full = model_entropy(model, ids, attn, chunk_size=None)
    for chunk in (1, 3, 64):
        torch.testing.assert_close(model_entropy(model, ids, attn, chunk_size=chunk), full, rtol=1e-5, atol=1e-5)
    assert model.training  # model_entropy restores the training mode


def test_flop_bounds_match_the_issue():
    f = {k: bench.step_flops(k, "bertlet", bench.VOCAB, 16, 128)["flops"] for k in ("stock", "teacher", "self")}
    assert 1.85 < f["stock"] / f["teacher"] < 1.95  # "the FLOP bound is about 1.9x"
    assert 1.12 < f["stock"] / f["self"] < 1.18  # "FLOP bound about 1.15x"


# step_flops's numbers before it was rebuilt on models.forward_flops (computed from the old formula, hard-coded):
# (kind, preset, vocab, batch, seq_len) -> (flops, masked positions)
OLD_STEP_FLOPS = {
    ("stock", "bert", 30522, 16, 128): (1367957569536.0, 302),
    ("self", "bert", 30528, 8, 64): (387719626752.0, 72),
    ("stock", "bertlet", 30522, 16, 128): (356310319104.0, 302),
    ("random", "bertlet", 30522, 16, 128): (190043553792.0, 304),
    ("teacher", "bertlet", 30528, 8, 64): (46325563392.0, 72),
    ("self", "bertlet", 30522, 16, 128): (308813660160.0, 304),
    ("random", "bert-mini", 30528, 8, 64): (13470793728.0, 72),
    ("stock", "bert-tiny", 30528, 8, 64): (13363052544.0, 74),
    ("self", "bert-tiny", 30522, 16, 128): (30741536768.0, 304),
    ("teacher", "bert-micro", 30522, 16, 128): (5181100032.0, 304),
}


@pytest.mark.parametrize("key", list(OLD_STEP_FLOPS), ids=lambda k: "-".join(map(str, k)))
def test_step_flops_unchanged(key):
    assert bench.step_flops(*key) == {"flops": OLD_STEP_FLOPS[key][0], "masked": OLD_STEP_FLOPS[key][1]}


def test_variant_names_round_trip():
    for precision, cuda in (("fp32", False), ("bf16", True)):
        for s in bench.default_specs(precision, ablations=True, compile_=True, cpu_bf16=True, cuda=cuda):
            assert bench.parse_variant(s.name, precision) == s
    with pytest.raises(ValueError):
        bench.parse_variant("teacher-masked · turbo", "fp32")


def test_entr_kernel_matches_token_entropy():
    logits = torch.randn(40, 300) * 5
    logits[0, 1:] = -float("inf")  # one-hot
    logits[1] = -float("inf")  # all -inf: NaN, as token_entropy
    logits[2, 7] = float("nan")
    a, b = token_entropy(logits), bench.entr_rows(logits)
    assert torch.isnan(b[1]) and torch.isnan(b[2]) and float(b[0]) == 0.0
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5, equal_nan=True)


def test_bench_main_toy_size(capsys):
    res = bench.main(preset="bert-micro", seq_len=16, batch_size=2, repeats=1, warmup=1, device="cpu",
                     memory=False, entropy_chunks=(8,), threads=1, progress=False)
    assert res["errors"] == {}
    assert set(bench.MAIN) <= set(res["steps"])
    for name in bench.MAIN:
        r = res["steps"][name]
        assert r["tokens_per_s"] > 0 and math.isfinite(r["last_loss"]), name
    assert {"teacher_vs_stock", "self_vs_stock", "self_overhead_vs_random"} <= set(res["targets"])
    assert [r["chunk"] for r in res["entropy"]] == [None, None, 8, None, 8]
    assert all(r["max_abs_diff"] < 1e-4 for r in res["entropy"])
    assert res["teacher_cache"]["passes_run"] == 1 and res["teacher_cache"]["identical"]
    assert all(r["tokens_per_s"] > 0 for r in res["teacher_pass"])
    out = capsys.readouterr().out
    assert "| stock HF |" in out and "teacher-masked" in out


def test_bf16_self_pass_variant_keeps_the_training_forward_in_its_precision(tmp_path):
    from entmask import pretrain

    tok = bench.synthetic_tokenizer()
    spec = bench.parse_variant("self-masked cold · bf16 self pass", "fp32")
    r = bench.Runner(spec, "bert-micro", 16, 2, torch.device("cpu"), tok, str(tmp_path))
    seen: dict = {}
    layer = r.trainer.model.bert.encoder.layer[0].attention.self.query
    layer.register_forward_hook(lambda m, i, o: seen.setdefault(torch.is_grad_enabled(), set()).add(o.dtype))
    original = pretrain.model_entropy
    r.step()
    assert seen == {True: {torch.float32}, False: {torch.bfloat16}}  # training forward fp32, self pass bf16
    assert pretrain.model_entropy is original


def test_cli_help_keeps_the_package_description(capsys):
    from entmask.bench import cli

    assert bench.__doc__.split("\n\n")[0] == cli.DESCRIPTION  # --help's description is the docstring's first line
    with pytest.raises(SystemExit) as e:
        bench._cli(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and out.startswith("usage: python -m entmask.bench")
    assert "--ablations" in out and "--render JSON" in out and "--scorers" in out


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_cpu_memory_probe_subprocess_imports_the_package():
    # The probe runs `python -c` importing entmask.bench.memory by module path; one MiB figure per entropy method.
    out = bench.cpu_memory_probe([], "bert-micro", 16, 2, {"rows": 8, "vocab": 50, "chunks": [4]})
    assert out is not None and out["steps"] == {}
    assert len(out["entropy"]) == len(bench.entropy_methods((4,))) and all(m >= 0 for m in out["entropy"])


def test_bench_modules_are_small_and_say_what_they_are():
    import ast

    for p in sorted(Path(bench.__file__).parent.glob("*.py")):
        text = p.read_text()
        assert len(text.splitlines()) <= 400, p.name
        doc = ast.get_docstring(ast.parse(text))
        assert doc, f"{p.name} opens without a docstring"
        if p.name != "__main__.py":
            assert "What it is not" in doc, p.name
