"""Beyond the paper (issue 14): token scorers, whole-word selection, schedules, compute accounting, the `beyond`
experiment's runs. Exact small cases, plus one smoke training run per new training path."""
from __future__ import annotations

import json
import math
import re

import pytest
import torch
from transformers import BertConfig, BertForMaskedLM

from entmask import config as C
from entmask import entropy as E
from entmask.masking import continuation_table, schedule_value, select_mask

V = 50


def _mlm(seed: int) -> BertForMaskedLM:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                     max_position_embeddings=32, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForMaskedLM(cfg).eval()


def _batch():
    ids = torch.randint(5, V, (3, 12), generator=torch.Generator().manual_seed(1))
    ids[:, 0], ids[:, -1] = 1, 2  # [CLS] ... [SEP]
    cand = (ids != 1) & (ids != 2)
    return ids, cand


# ---- scorers --------------------------------------------------------------------------------------------------
def test_registry_holds_the_paper_score_first_and_says_its_cost():
    assert list(E.SCORERS)[:4] == ["entropy", "masked_entropy", "loss", "excess_loss"]
    assert E.SCORERS["entropy"].passes(0.15) == 1
    assert E.SCORERS["masked_entropy"].passes(0.15) == 7 and E.SCORERS["loss"].passes(0.5) == 2
    assert E.SCORERS["excess_loss"].uses_reference and not E.SCORERS["loss"].uses_reference
    with pytest.raises(ValueError, match="unknown scorer 'nope'; choose one of entropy"):
        E.get_scorer("nope")


def test_entropy_scorer_is_the_papers_pass_bitwise():
    m = _mlm(0)
    ids, cand = _batch()
    s = E.score_tokens("entropy", m, ids, cand)
    ref = E.model_entropy(m, ids, torch.ones_like(ids))
    assert torch.equal(s[cand], ref[cand]) and (s[~cand] == 0).all()


def test_masked_scores_at_ratio_one_mask_every_candidate_at_once():
    """ratio 1 = one pass with every candidate masked: the scores are that pass's entropy and loss, exactly."""
    m = _mlm(0)
    ids, cand = _batch()
    masked = ids.masked_fill(cand, 3)
    logits = m(input_ids=masked).logits.float()  # [B, T, V]
    ent = torch.special.entr(torch.softmax(logits, -1)).sum(-1)
    ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids, reduction="none")
    got_e = E.score_tokens("masked_entropy", m, ids, cand, mask_id=3, ratio=1.0)
    got_l = E.score_tokens("loss", m, ids, cand, mask_id=3, ratio=1.0)
    assert torch.allclose(got_e[cand], ent[cand], atol=1e-5) and torch.allclose(got_l[cand], ce[cand], atol=1e-5)
    assert (got_e[~cand] == 0).all()


def test_masked_pass_scores_every_candidate_exactly_once():
    m = _mlm(0)
    ids, cand = _batch()
    g = E.mask_groups(ids.shape, 0.25, torch.Generator().manual_seed(0))
    assert set(g.unique().tolist()) <= {0, 1, 2, 3}
    r = E.masked_pass(m, ids, cand, 3, g)
    assert torch.isfinite(r["loss"][cand]).all() and torch.isnan(r["loss"][~cand]).all()


def test_excess_loss_is_student_minus_reference_on_the_same_masks():
    a, b = _mlm(0), _mlm(1)
    ids, cand = _batch()
    same = E.score_tokens("excess_loss", a, ids, cand, mask_id=3, reference=a, generator=torch.Generator())
    assert torch.equal(same, torch.zeros_like(same))
    ex = E.score_tokens("excess_loss", a, ids, cand, mask_id=3, ratio=0.25, reference=b,
                        generator=torch.Generator().manual_seed(5))
    la = E.score_tokens("loss", a, ids, cand, mask_id=3, ratio=0.25, generator=torch.Generator().manual_seed(5))
    lb = E.score_tokens("loss", b, ids, cand, mask_id=3, ratio=0.25, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(ex, la - lb, atol=1e-6) and ex.abs().sum() > 0
    with pytest.raises(ValueError, match="give reference"):
        E.score_tokens("excess_loss", a, ids, cand, mask_id=3)
    with pytest.raises(ValueError, match="give mask_id"):
        E.score_tokens("loss", a, ids, cand)


def test_excess_loss_fixed_takes_the_reference_half_cached_on_fixed_groups():
    a, b = _mlm(0), _mlm(1)
    ids, cand = _batch()
    g = E.fixed_groups(ids.shape, 0.25, 3)  # [3, 12] uint8, drawn from the seed alone
    assert g.dtype == torch.uint8 and torch.equal(g, E.fixed_groups(ids.shape, 0.25, 3))
    assert not torch.equal(g, E.fixed_groups(ids.shape, 0.25, 4)) and set(g.unique().tolist()) <= {0, 1, 2, 3}
    ref = E.score_tokens("loss", b, ids, cand, mask_id=3, ratio=0.25, group=g)  # the teacher's cached half
    cached = E.score_tokens("excess_loss_fixed", a, ids, cand, mask_id=3, ratio=0.25, group=g, reference_scores=ref)
    online = E.score_tokens("excess_loss", a, ids, cand, mask_id=3, ratio=0.25, group=g, reference=b)
    assert torch.allclose(cached, online, atol=1e-6) and cached.abs().sum() > 0
    # without cached scores it runs the reference itself, on the same groups
    assert torch.allclose(E.score_tokens("excess_loss_fixed", a, ids, cand, mask_id=3, ratio=0.25, group=g,
                                         reference=b), online, atol=1e-6)
    with pytest.raises(ValueError, match="need the groups"):
        E.score_tokens("excess_loss_fixed", a, ids, cand, mask_id=3, reference_scores=ref)
    with pytest.raises(ValueError, match="give reference"):
        E.score_tokens("excess_loss_fixed", a, ids, cand, mask_id=3, group=g)
    sc = E.SCORERS["excess_loss_fixed"]
    assert sc.uses_reference and sc.reference_score == "loss" and E.SCORERS["excess_loss"].reference_score is None


def test_a_new_scorer_is_one_function_and_usable_from_a_config():
    @E.register_scorer("position_test")
    def _pos(model, ids, cand, ctx):
        """Later positions score higher (a test scorer)."""
        return torch.arange(ids.shape[1], dtype=torch.float).expand(ids.shape)

    try:
        ids, cand = _batch()
        s = E.score_tokens("position_test", _mlm(0), ids, cand)
        mask = select_mask(s, cand, "high", ratio=0.2)
        assert mask[:, -3:-1].all() and mask.sum() == 3 * 2  # the last two candidates of each row
        c = C.validate(C.resolve("smoke", {"masking.strategy": "high", "masking.scorer": "position_test"}),
                       fingerprint=False)
        assert c.masking.scorer == "position_test" and "position_test" in c.hash_dict()["masking"]["scorer"]
        from entmask.cli_parser import build_parser  # --scorer's help is read from the registry

        sub = next(a for a in build_parser()._actions if a.choices and "pretrain" in a.choices)
        assert "position_test: Later positions score higher" in " ".join(sub.choices["pretrain"].format_help().split())
    finally:
        E.SCORERS.pop("position_test")


# ---- configuration --------------------------------------------------------------------------------------------
def test_new_fields_leave_existing_run_hashes_alone():
    base = C.validate(C.resolve("cpu-long", {"masking.strategy": "high"}), fingerprint=False)
    explicit = C.validate(C.resolve("cpu-long", {"masking.strategy": "high", "masking.scorer": "entropy",
                                                 "masking.whole_word": "none", "masking.schedule": "constant"}),
                          fingerprint=False)
    assert base.short_hash() == explicit.short_hash()
    for key in ("scorer", "whole_word", "schedule", "ratio_end", "temperature_end"):
        assert key not in base.hash_dict()["masking"]
    other = C.validate(C.resolve("cpu-long", {"masking.strategy": "high", "masking.scorer": "masked_entropy"}),
                       fingerprint=False)
    assert other.short_hash() != base.short_hash()
    # random masking ranks nothing: its scorer cannot change the run
    r1 = C.validate(C.resolve("smoke", {"masking.scorer": "loss"}), fingerprint=False)
    assert r1.short_hash() == C.validate(C.resolve("smoke"), fingerprint=False).short_hash()


@pytest.mark.parametrize("over, msg", [
    ({"masking.strategy": "high", "masking.scorer": "excess_loss"}, "needs the student from step 0"),
    ({"masking.strategy": "high", "masking.source": "self", "masking.self_start": "init",
      "masking.scorer": "excess_loss"}, "--self-start cold"),
    ({"masking.strategy": "high", "masking.scorer": "bogus"}, "is not a scorer"),
    ({"masking.ratio_end": 0.3}, "needs a schedule"),
    ({"masking.schedule": "linear"}, "moves nothing"),
    ({"masking.schedule": "linear", "masking.ratio_end": 1.5}, "must be in \\(0, 1\\]"),
    ({"masking.schedule": "linear", "masking.ratio_end": 0.3, "masking.num_tokens": 1}, "drop one"),
    ({"masking.whole_word": "first"}, "choose one of none, max, mean"),
])
def test_bad_beyond_settings_are_refused_in_one_line(over, msg):
    with pytest.raises(C.ConfigError, match=msg) as e:
        C.validate(C.resolve("smoke", over), fingerprint=False)
    assert "\n" not in str(e.value)


# ---- whole words and schedules --------------------------------------------------------------------------------
def test_whole_word_selection_exact():
    ent = torch.tensor([[0.0, 5, 1, 1, 9, 2, 0]])
    cand = torch.tensor([[0, 1, 1, 1, 1, 1, 0]]).bool()
    cont = torch.tensor([[0, 0, 1, 1, 0, 0, 0]]).bool()  # words: [CLS] | 5 1 1 | 9 | 2 | [SEP]
    hi = select_mask(ent, cand, "high", ratio=0.5, continues=cont, whole_word="max")
    assert hi.int().tolist() == [[0, 1, 1, 1, 1, 0, 0]]  # k = 2 of 3 words: 9 and the word of max 5
    lo_mean = select_mask(ent, cand, "low", ratio=0.3, continues=cont, whole_word="mean")
    assert lo_mean.int().tolist() == [[0, 0, 0, 0, 0, 1, 0]]  # mean 7/3 > 2: the word "2" is the lowest
    lo_max = select_mask(ent, cand, "low", ratio=0.3, continues=cont, whole_word="max")
    assert lo_max.int().tolist() == [[0, 0, 0, 0, 0, 1, 0]]
    with pytest.raises(ValueError, match="needs `continues`"):
        select_mask(ent, cand, "high", whole_word="max")


def test_continuation_table_on_the_real_vocabulary(tokenizer):
    table = continuation_table(tokenizer)
    assert table.shape == (len(tokenizer),)
    ids = tokenizer.convert_tokens_to_ids(["the", "##ing", "[CLS]", "##s"])
    assert table[ids].tolist() == [False, True, False, True]
    enc = tokenizer("embedding violinists", return_tensors="pt")["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(enc[0].tolist())
    assert [p.startswith("##") for p in pieces] == table[enc[0]].tolist()


def test_schedule_values():
    assert schedule_value(0.3, 0.15, "linear", 0.5) == pytest.approx(0.225)
    assert schedule_value(0.3, 0.15, "cosine", 0.0) == pytest.approx(0.3)
    assert schedule_value(0.3, 0.15, "cosine", 1.0) == pytest.approx(0.15)
    assert schedule_value(0.3, 0.15, "cosine", 0.25) == pytest.approx(0.15 + 0.15 * (1 + math.cos(math.pi / 4)) / 2)
    assert schedule_value(0.3, None, "linear", 0.7) == 0.3 and schedule_value(0.3, 0.1, "constant", 0.7) == 0.3


# ---- compute accounting ---------------------------------------------------------------------------------------
def test_run_flops_exact_small_case():
    from entmask.models import forward_flops
    from entmask.pretrain import run_flops

    st = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, intermediate_size=16)
    te = BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, intermediate_size=32)
    f = forward_flops(st, 10)
    assert f == {"body": 2 * 2 * (4 * 64 + 2 * 8 * 16) + 4 * 2 * 10 * 8, "head": 2 * 64 + 2 * 8 * 100}
    ft = forward_flops(te, 10)
    over = {"data.seq_len": 10, "train.batch_size": 4, "train.grad_accum": 1}
    rnd = run_flops(C.resolve("smoke", over), st, None, steps=5, steps_per_epoch=5, train_rows=20,
                    masked_per_row=1.2, candidates_per_row=8)
    assert rnd["flops"]["student_train"] == 3 * 5 * 4 * (10 * f["body"] + 1.2 * f["head"])
    assert rnd["total_flops"] == rnd["flops"]["student_train"]
    hi = run_flops(C.resolve("smoke", {**over, "masking.strategy": "high"}), st, te, 5, 5, 20, 1.2, 8)
    assert hi["flops"]["teacher_scores"] == 20 * 10 * (ft["body"] + ft["head"])
    ex = run_flops(C.resolve("smoke", {**over, "masking.strategy": "high", "masking.source": "self",
                                        "masking.scorer": "excess_loss"}), st, te, 5, 5, 20, 1.2, 8)
    per_row = lambda g: 7 * 10 * g["body"] + 8 * g["head"]  # noqa: E731 - 7 masked passes, head once per candidate
    assert ex["flops"]["self_scoring"] == pytest.approx(5 * 4 * (per_row(f) + per_row(ft)))
    assert ex["flops"]["teacher_scores"] == 0
    fixed = run_flops(C.resolve("smoke", {**over, "masking.strategy": "high", "masking.source": "self",
                                           "masking.scorer": "excess_loss_fixed"}), st, te, 5, 5, 20, 1.2, 8)
    assert fixed["flops"]["self_scoring"] == pytest.approx(5 * 4 * per_row(f))  # the student's passes only
    assert fixed["flops"]["teacher_scores"] == pytest.approx(20 * per_row(ft))  # the teacher's, once per train row
    init = run_flops(C.resolve("smoke", {**over, "masking.strategy": "high", "masking.source": "self",
                                          "masking.self_start": "init", "masking.teacher_epochs": 1}),
                     st, te, 10, 4, 20, 1.2, 8)
    assert init["flops"]["self_scoring"] == 6 * 4 * 10 * (f["body"] + f["head"])  # 10 steps, the first 4 teacher's


# ---- the experiment's runs, and one smoke run per new training path --------------------------------------------
def test_beyond_matrix_doubles_the_random_steps_relative_to_the_profile():
    from entmask.experiments import matrix

    cfg = C.validate(C.resolve("smoke", {"train.max_steps": 6}), fingerprint=False)
    runs = dict(matrix("beyond", cfg))
    assert runs["baseline-2x"].train.max_steps == 12 and runs["baseline"].train.max_steps == 6
    assert runs["baseline-2x"].train.epochs == 2 * cfg.train.epochs
    assert runs["self-excess-cold"].masking.scorer == "excess_loss_fixed"
    assert runs["self-high-cold-bert"].masking.policy == "bert"
    assert runs["teacher-high"].short_hash() == dict(matrix("table1", cfg))["teacher-high"].short_hash()


@pytest.mark.slow
def test_excess_loss_whole_word_and_schedule_train_and_record_compute(session_runs):
    from entmask.pretrain import pretrain

    over = {"train.max_steps": 4, "train.batch_size": 8, "data.max_articles": 8, "reference.steps": 4,
            "masking.strategy": "high", "masking.source": "self", "masking.scorer": "excess_loss",
            "masking.whole_word": "max", "masking.schedule": "linear", "masking.ratio": 0.3, "masking.ratio_end": 0.15,
            "train.logging_steps": 1}
    cfg = C.validate(C.resolve("smoke", over))
    run = pretrain(cfg, progress=False)
    m = json.loads((run / "metrics.json").read_text())
    comp = m["compute"]
    assert comp["flops"]["self_scoring"] > comp["flops"]["student_train"] > 0  # 2 x 4 masked passes per step
    assert comp["total_flops"] == pytest.approx(sum(comp["flops"].values())) and comp["wall_seconds"] > 0
    hist = json.loads((run / "logs" / "log_history.json").read_text())
    ratios = [h["mask_ratio"] for h in hist if "mask_ratio" in h]
    assert ratios[0] == pytest.approx(0.3) and ratios[-1] == pytest.approx(0.15)  # linear over the 4 steps
    assert all(a >= b for a, b in zip(ratios, ratios[1:]))


@pytest.mark.slow
def test_excess_loss_fixed_trains_on_the_teachers_cached_loss_without_its_weights(session_runs, tmp_path,
                                                                                  monkeypatch):
    from entmask import pretrain
    from entmask.data import prepare_corpus
    from entmask.masking import candidate_mask
    from entmask.models import build_model, load_teacher
    from entmask.phases import split_ids

    # both views (a short phase of 2 rows, then whole rows) on 4 articles
    cfg = C.resolve("smoke", {"masking.strategy": "high", "masking.source": "self", "masking.scorer":
                              "excess_loss_fixed", "train.short_rows": 2, "data.max_articles": 4}, name="fixed")
    assert pretrain.needs_teacher_model(cfg) is False and pretrain.uses_teacher_scores(cfg) is False
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    tdir = pretrain.resolve_teacher(cfg, session_runs, progress=False)
    teacher = load_teacher(tdir)
    tok, amp = corpus.tokenizer, (torch.bfloat16 if E._bf16_ok(torch.device("cpu")) else None)
    model = build_model(cfg.model.preset, len(tok), seed=0)
    tr = pretrain.make_trainer(cfg, tmp_path / "r", model, corpus, teacher_dir=tdir, progress=False)
    assert tr.teacher is None  # the teacher's weights stay on disk: its half is the cached `loss` scores
    seen = []

    def spy(*a, **kw):  # what the trainer hands the scorer
        seen.append(kw)
        return E.score_tokens(*a, **kw)

    monkeypatch.setattr("entmask.masking_trainer.score_tokens", spy)
    rows = [4, 9, 0]
    batch = pretrain.collate([tr.train_dataset[i] for i in rows])
    tr.state.max_steps = 10
    for step, k in ((0, 2), (9, 1)):  # the short phase, then the last 10% on whole rows
        tr.state.global_step = step
        ids = split_ids(corpus.train_ids[rows], k, tok.cls_token_id, tok.sep_token_id)  # [3k, t]
        cand = candidate_mask(ids, corpus.special_ids, tok.unk_token_id)
        cache = pretrain.teacher_scores(cfg, tdir, corpus, progress=False, short_rows=k)  # [N*k, t]
        groups = E.fixed_groups(split_ids(corpus.train_ids, k, tok.cls_token_id, tok.sep_token_id).shape,
                                cfg.masking.ratio, cfg.train.seed)
        sel = [r * k + j for r in rows for j in range(k)]
        g, ref = groups[sel], cache[sel]  # [3k, t]
        # the cache is the teacher's masked loss on exactly the groups the trainer hands the student's half
        want_ref = E.score_tokens("loss", teacher, ids, cand, mask_id=tok.mask_token_id, group=g, autocast_dtype=amp)
        assert torch.allclose(ref[cand], want_ref[cand], atol=1e-4) and (ref[~cand] == 0).all()
        own = E.score_tokens("loss", model, ids, cand, mask_id=tok.mask_token_id, group=g,
                             autocast_dtype=torch.bfloat16 if tr.args.bf16 else None)
        tr.compute_loss(model, batch)
        assert torch.equal(seen[-1]["group"], g) and torch.equal(seen[-1]["reference_scores"], ref)
        assert tr.last_mask.shape == ids.shape
        assert torch.equal(tr.last_mask, select_mask(torch.where(cand, own - ref, 0.0), cand, "high"))


# ---- the import graph -----------------------------------------------------------------------------------------
def _import_graph(lazy: bool) -> dict:
    """entmask module -> the entmask modules it imports (top-level statements, or anywhere when lazy). A package's
    modules are dotted ("experiments.core"); its __init__ is the package's own name ("experiments"). Imports under
    `if TYPE_CHECKING:` never run (annotations only), so they are not edges."""
    import ast
    from pathlib import Path

    pkg = Path(__file__).resolve().parents[1] / "entmask"
    mods = {}
    for p in pkg.rglob("*.py"):
        rel = p.relative_to(pkg).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts:
            mods[".".join(parts)] = p

    def target(dotted: str) -> str | None:  # the longest module name that `dotted` (after "entmask.") starts with
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            if ".".join(parts[:i]) in mods:
                return ".".join(parts[:i])
        return None

    graph = {m: set() for m in mods}
    for m, p in mods.items():
        tree = ast.parse(p.read_text())
        typing_only = {id(x) for n in ast.walk(tree)  # what sits under `if TYPE_CHECKING:` (typing.TYPE_CHECKING too)
                       if isinstance(n, ast.If) and ast.unparse(n.test).endswith("TYPE_CHECKING")
                       for s in n.body for x in ast.walk(s)}
        for n in (ast.walk(tree) if lazy else tree.body):
            if id(n) in typing_only:
                continue
            if (isinstance(n, ast.ImportFrom) and n.module
                    and (n.module == "entmask" or n.module.startswith("entmask."))):
                base = n.module[len("entmask."):] if n.module != "entmask" else ""
                for a in n.names:  # `from entmask.pkg import mod` names a module, else the package itself
                    t = target(f"{base}.{a.name}".strip(".")) if f"{base}.{a.name}".strip(".") in mods else None
                    graph[m].add(t or target(base)) if (t or base) else None
            elif isinstance(n, ast.Import):
                graph[m] |= {target(a.name[len("entmask."):]) for a in n.names if a.name.startswith("entmask.")}
        graph[m] -= {m, None}
    return graph


@pytest.mark.parametrize("lazy", [False, True], ids=["top-level", "with-function-level-imports"])
def test_the_import_graph_has_no_cycles(lazy):
    graph = _import_graph(lazy)
    assert graph["cli"] and "config" in graph["experiments.specs"] and "experiments.core" in graph["experiments"]
    state: dict = {}

    def visit(m, path):
        state[m] = "open"
        for n in sorted(graph[m]):
            assert state.get(n) != "open", f"import cycle: {' -> '.join(path + [n])}"
            if n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_bench_scorers_prints_every_scorers_ratio_to_entropy():
    from entmask.bench import bench_scorers, format_scorers

    rows = bench_scorers("bert-micro", seq_len=16, batch_size=2, repeats=1, device="cpu", progress=False)
    assert [r["scorer"] for r in rows] == list(E.SCORERS)
    assert [r["passes"] for r in rows] == [1, 7, 7, 14, 7] and rows[0]["x entropy time"] == 1.0
    assert all(r["seconds_per_batch"] > 0 for r in rows)
    assert "| excess_loss | masked | 14 |" in format_scorers(rows, "test")


# ---- review fixes: caches keyed by what they depend on, refusals, accounting --------------------------------
def test_cached_masked_scores_ignore_batch_size_and_are_keyed_by_candidates(tmp_path):
    tdir = tmp_path / "teacher"
    _mlm(0).save_pretrained(str(tdir))
    ids = torch.randint(5, V, (10, 12), generator=torch.Generator().manual_seed(2))
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, 0] = False
    kw = dict(scorer="loss", candidates=cand, mask_id=3, ratio=0.25, seed=0, progress=False)
    a = E.teacher_entropies(tdir, tmp_path / "c1", "train", ids, batch_size=3, **kw)
    b = E.teacher_entropies(tdir, tmp_path / "c2", "train", ids, batch_size=8, **kw)
    assert torch.allclose(a, b, atol=1e-5)  # the mask groups are drawn for the whole split, not per batch
    (tmp_path / "c1").mkdir(exist_ok=True)
    n = E.STATS["passes"]
    cand2 = cand.clone()
    cand2[:, 5] = False  # e.g. include_unk changed which positions are candidates
    c = E.teacher_entropies(tdir, tmp_path / "c1", "train", ids, batch_size=3, **{**kw, "candidates": cand2})
    assert E.STATS["passes"] == n + 1 and (c[:, 5] == 0).all()  # a new cache, not the old one reused
    E.teacher_entropies(tdir, tmp_path / "c1", "train", ids, batch_size=3, **kw)
    assert E.STATS["passes"] == n + 1  # the first one is still found


def test_reference_scores_records_the_teachers_half_of_excess_loss_fixed(monkeypatch):
    from entmask import teacher_scores as TS

    seen = []
    monkeypatch.setattr(TS, "teacher_scores", lambda c, *a, **k: seen.append((c.masking.source, c.masking.scorer)))
    cfg = C.resolve("smoke", {"masking.strategy": "high", "masking.source": "self",
                              "masking.scorer": "excess_loss_fixed"})
    assert TS.score_views(cfg, None, None, progress=False) == ["train"]
    assert seen == [("teacher", "loss")]  # the cache excess_loss_fixed reads; not a refusal


def test_num_tokens_keeps_the_ratio_in_the_hash_only_where_it_sets_the_masked_view_groups():
    def h(**over):
        return C.resolve("smoke", {"masking.strategy": "high", "masking.num_tokens": 3, **over}).short_hash()

    # the ratio picks no mask with num_tokens, but a masked-view scorer scores in ceil(1/ratio) groups
    assert h(**{"masking.ratio": 0.15}) == h(**{"masking.ratio": 0.25})
    for scorer in ("masked_entropy", "loss"):
        assert h(**{"masking.scorer": scorer, "masking.ratio": 0.15}) != h(**{"masking.scorer": scorer,
                                                                              "masking.ratio": 0.25})


def test_one_masked_view_sweep_caches_masked_entropy_and_loss(tmp_path, monkeypatch, capsys):
    tdir = tmp_path / "teacher"
    _mlm(0).save_pretrained(str(tdir))
    ids = torch.randint(5, V, (10, 12), generator=torch.Generator().manual_seed(2))
    cand = torch.ones_like(ids, dtype=torch.bool)
    cand[:, 0] = False
    kw = dict(candidates=cand, mask_id=3, ratio=0.25, seed=0, progress=False, batch_size=4, block_rows=4)
    n = E.STATS["passes"]
    ent = E.teacher_entropies(tdir, tmp_path / "c", "train", ids, scorer="masked_entropy", **kw)
    loss = E.teacher_entropies(tdir, tmp_path / "c", "train", ids, scorer="loss", **kw)
    assert E.STATS["passes"] == n + 1  # the loss came from the same sweep, cached beside it
    g, m = E.fixed_groups(ids.shape, 0.25, 0), _mlm(0)
    amp = torch.bfloat16 if E._bf16_ok(torch.device("cpu")) else None  # the teacher pass's precision here
    for got, name in ((ent, "masked_entropy"), (loss, "loss")):
        want = E.score_tokens(name, m, ids, cand, mask_id=3, group=g, autocast_dtype=amp)
        assert torch.allclose(got, want, atol=1e-5) and got.abs().sum() > 0, name
    assert not torch.allclose(ent, loss)
    # and the other way round, in a fresh cache folder; an unrelated scorer still sweeps on its own
    E.teacher_entropies(tdir, tmp_path / "d", "train", ids, scorer="loss", **kw)
    assert torch.equal(E.teacher_entropies(tdir, tmp_path / "d", "train", ids, scorer="masked_entropy", **kw), ent)
    assert E.STATS["passes"] == n + 2
    # a sweep interrupted after its first block resumes from it, the sibling's block included
    hits = []

    def interrupt(name):
        hits.append(name)
        if len(hits) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(E.runs, "failpoint", interrupt)
    with pytest.raises(KeyboardInterrupt):
        E.teacher_entropies(tdir, tmp_path / "e", "train", ids, scorer="loss", **kw)
    monkeypatch.undo()
    assert torch.equal(E.teacher_entropies(tdir, tmp_path / "e", "train", ids, scorer="loss", **kw), loss)
    assert torch.equal(E.teacher_entropies(tdir, tmp_path / "e", "train", ids, scorer="masked_entropy", **kw), ent)
    assert E.STATS["passes"] == n + 3 and "resumed 4 of 10 rows" in capsys.readouterr().out
    # --force on one score rebuilds the other too (a sibling from before is never trusted after a forced sweep)
    sib = next((tmp_path / "e").glob("*-masked_entropy-*.safetensors"))
    sib.write_bytes(b"stale")
    E.teacher_entropies(tdir, tmp_path / "e", "train", ids, scorer="loss", force=True, **kw)
    assert torch.equal(E.teacher_entropies(tdir, tmp_path / "e", "train", ids, scorer="masked_entropy", **kw), ent)
    assert E.STATS["passes"] == n + 4  # the forced sweep only: the sibling was rewritten by it


@pytest.mark.parametrize("over, msg", [
    ({"masking.strategy": "sampled", "masking.temperature": float("inf"), "masking.schedule": "linear",
      "masking.temperature_end": 0.5}, "finite start and end"),
    ({"masking.strategy": "high", "masking.schedule": "linear", "masking.temperature_end": 0.1},
     "would change nothing"),
    ({"masking.strategy": "bernoulli", "masking.whole_word": "max"}, "does not apply to bernoulli"),
    ({"masking.strategy": "high", "masking.source": "self", "masking.scorer": "excess_loss_fixed",
      "masking.schedule": "linear", "masking.ratio_end": 0.3}, "groups fixed at masking.ratio"),
])
def test_settings_that_would_do_nothing_or_fail_later_are_refused(over, msg):
    with pytest.raises(C.ConfigError, match=msg):
        C.validate(C.resolve("smoke", over), fingerprint=False)


def test_kd_after_init_flops_start_after_the_teacher_epochs_for_any_strategy():
    from entmask.pretrain import run_flops

    st = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, intermediate_size=16)
    cfg = C.resolve("smoke", {"kd.mode": "after-init", "masking.teacher_epochs": 3, "data.seq_len": 10})
    a = run_flops(cfg, st, st, steps=1000, steps_per_epoch=100, train_rows=20, masked_per_row=1.0,
                  candidates_per_row=8)
    full = run_flops(C.resolve("smoke", {"kd.mode": "kd-only", "data.seq_len": 10}), st, st, 1000, 100, 20, 1.0, 8)
    assert a["flops"]["kd_teacher"] == pytest.approx(0.7 * full["flops"]["kd_teacher"])


def test_explorer_refuses_the_teachers_excess_loss_over_itself(tokenizer):
    from entmask import widgets as W
    from entmask.models import build_model

    m = build_model("bert-micro", len(tokenizer), seed=0).eval()
    ex = W.MaskExplorer({"teacher": m, "student": build_model("bert-micro", len(tokenizer), seed=1).eval()},
                        tokenizer, sentence="The orchestra played a quiet piece.")
    ex.set_scorer("excess_loss")
    ex._run_score()
    assert "teacher against itself" in ex.w_status.value
    ex.set_source("student")
    ex._run_score()
    assert ex.current_scores() is not None and ex.current_scores().scorer == "excess_loss"


# ---- memorisation check (exploration.mask_fit) ------------------------------------------------------------------
def test_mask_fit_rows_scores_each_strategy_on_its_own_masks():
    """A head that always answers token 7: every position holding 7 is the highest-entropy one, so `high` masks
    only 7s (accuracy 1, loss log(e^10 + V - 1) - 10) and `low` masks none (accuracy 0)."""
    from entmask.exploration import mask_fit_rows

    m = _mlm(0)
    with torch.no_grad():
        for p in m.cls.parameters():
            p.zero_()
        m.cls.predictions.bias[7] = 10.0  # logits = bias at every position
    ids = torch.randint(20, V, (4, 20), generator=torch.Generator().manual_seed(2))
    ids[:, 0], ids[:, -1] = 1, 2
    ids[:, 3], ids[:, 9], ids[:, 15] = 7, 7, 7
    cand = (ids != 1) & (ids != 2)
    ent = torch.rand(ids.shape, generator=torch.Generator().manual_seed(3))
    ent[ids == 7] = 5.0  # the 7s are the high-entropy tokens: k = ceil(0.15 * 18) = 3 per row
    rows = {r["strategy"]: r for r in mask_fit_rows(m, ids, ent, cand, mask_id=3, strategies=("high", "low", "random"),
                                                   batch_size=3)}
    assert rows["high"]["masked_tokens"] == 12 and rows["high"]["accuracy"] == 1.0
    assert math.isclose(rows["high"]["loss"], math.log(math.exp(10) + V - 1) - 10, abs_tol=1e-6)
    assert rows["low"]["accuracy"] == 0.0 and rows["low"]["masked_tokens"] == 12
    assert 0.0 <= rows["random"]["accuracy"] < 1.0


def test_mask_fit_rows_self_strategies_select_with_the_models_own_entropy():
    """Given the negated own entropies as the 'teacher', the teacher's high masks are the model's own low ones and
    vice versa: self-low must score exactly as high does, self-high as low. An alias ("max") scores as "high"."""
    from entmask.entropy import model_entropy
    from entmask.exploration import mask_fit_rows

    m = _mlm(4)
    ids = torch.randint(5, V, (6, 20), generator=torch.Generator().manual_seed(5))
    ids[:, 0], ids[:, -1] = 1, 2
    cand = (ids != 1) & (ids != 2)
    with torch.no_grad():
        own = model_entropy(m, ids)  # [6, 20]
    assert all(own[i][cand[i]].unique().numel() == int(cand[i].sum()) for i in range(6))  # no ties within a row
    rows = {r["strategy"]: r for r in mask_fit_rows(m, ids, -own, cand, mask_id=3,
                                                   strategies=("self-high", "high", "self-low", "low", "max"),
                                                   batch_size=4)}
    assert list(rows) == ["self-high", "high", "self-low", "low", "max"]
    for a, b in (("self-low", "high"), ("self-high", "low"), ("max", "high")):
        assert rows[a] == {**rows[b], "strategy": a}
    assert rows["self-high"]["loss"] != rows["self-low"]["loss"]
    with pytest.raises(ValueError, match="'self-bogus'"):
        mask_fit_rows(m, ids, own, cand, mask_id=3, strategies=("self-bogus",))
    # one name as a string is one strategy (not its letters)
    assert [r["strategy"] for r in mask_fit_rows(m, ids, own, cand, mask_id=3, strategies="high")] == ["high"]


@pytest.mark.parametrize("strategies, needle", [
    (("bogus",), "unknown mask_fit strategy 'bogus'"), (("HIGH",), "unknown mask_fit strategy 'HIGH'"),
    (("",), "unknown mask_fit strategy ''"), (("self-",), "unknown mask_fit strategy 'self-'"),
    ((None,), "mask_fit strategy None is not a name"), ((), "needs at least one strategy")])
def test_mask_fit_strategy_names_checked_with_the_valid_ones_listed(strategies, needle):
    from entmask.exploration import check_fit_strategies

    with pytest.raises(ValueError, match=re.escape(needle)) as e:
        check_fit_strategies(strategies)
    assert "random-static" in str(e.value) and "self-<strategy>" in str(e.value)  # mask_fit's own names too


def test_mask_fit_inputs_that_would_give_a_fake_score():
    """No rows, nothing masked, a bad row count: an error or NaN, never a 0% that reads like a score."""
    from entmask.exploration import check_max_rows, mask_fit_rows
    from entmask.models import score_masked

    m = _mlm(1)
    ids = torch.randint(5, V, (2, 10), generator=torch.Generator().manual_seed(0))
    cand = torch.ones_like(ids, dtype=torch.bool)
    with pytest.raises(ValueError, match="no rows to score"):
        mask_fit_rows(m, ids[:0], torch.rand(0, 10), cand[:0], mask_id=3, strategies=("random",))
    with pytest.raises(ValueError, match="batch_size=0"):
        mask_fit_rows(m, ids, torch.rand(2, 10), cand, mask_id=3, strategies=("random",), batch_size=0)
    none = mask_fit_rows(m, ids, torch.rand(2, 10), torch.zeros_like(cand), mask_id=3, strategies=("high",))[0]
    assert none["masked_tokens"] == 0 and math.isnan(none["accuracy"]) and math.isnan(none["loss"])
    assert math.isnan(score_masked(m, ids, torch.full_like(ids, -100))["accuracy"])
    for bad in (0, -1, "10", 2.5, True):
        with pytest.raises(ValueError, match="max_rows="):
            check_max_rows(bad)
    check_max_rows(None), check_max_rows(1)


def test_student_model_dir_takes_a_run_folder_or_its_model(tmp_path):
    from entmask.exploration import student_model_dir

    run = tmp_path / "high-teacher-0123456789"
    (run / "model").mkdir(parents=True)
    (run / "model" / "config.json").write_text('{"model_type": "bert"}')
    (run / "config.json").write_text('{"masking": {}}')  # entmask's config, beside model/
    with pytest.raises(ValueError, match=r"model has no weights \(\*.safetensors\): it is not a saved model"):
        student_model_dir(run)
    (run / "weights.json").write_text('{"model_key": "abc"}')  # a run imported from records: weights left out
    with pytest.raises(ValueError, match="imported from run records, which leave weights out: retrain it"):
        student_model_dir(run / "model")
    (run / "model" / "model.safetensors").write_bytes(b"")
    assert student_model_dir(run) == run / "model" == student_model_dir(run / "model")
    (run / "model").rename(run / "moved")
    with pytest.raises(ValueError, match=r"holds no model \(no transformers config.json there or in model/\)") as e:
        student_model_dir(run)
    assert "not finished" not in str(e.value)
    unfinished = tmp_path / "u"
    (unfinished / "checkpoints").mkdir(parents=True)
    with pytest.raises(ValueError, match="this run has not finished"):
        student_model_dir(unfinished)
