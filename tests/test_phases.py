"""BERT's two-phase length schedule (entmask/phases.py): the row arithmetic, the config, and a trainer that masks
short rows by the teacher's scores of those short rows, then whole rows."""
import json

import pytest
import torch

from entmask import config, heldout, pretrain
from entmask.data import prepare_corpus
from entmask.masking import candidate_mask, select_mask
from entmask.phases import (natural_positions, piece_positions, short_len, short_steps, short_views, split_ids,
                            split_rows, view_rows, view_steps)

CLS, SEP = 101, 102


def test_split_rows_frames_every_piece_and_keeps_the_text():
    body = torch.arange(1000, 1024).reshape(2, 12)  # 2 rows, a body of 12 each
    ids = torch.cat([torch.full((2, 1), CLS), body, torch.full((2, 1), SEP)], 1)  # [2, 14]
    short = split_ids(ids, 3, CLS, SEP)
    assert short.shape == (6, 6) and short_len(14, 3) == 6
    assert (short[:, 0] == CLS).all() and (short[:, -1] == SEP).all()
    assert torch.equal(short[:, 1:-1].reshape(2, 12), body)  # row i's pieces are rows 3i..3i+2, in order
    assert torch.equal(short[3], torch.tensor([CLS, 1012, 1013, 1014, 1015, SEP]))
    mask = torch.zeros(2, 14, dtype=torch.bool)
    mask[1, 5] = True  # body position 4 of row 1 -> piece 1 of row 1 (short row 4), its position 1
    m = split_rows(mask, 3, False, False)
    assert m.nonzero().tolist() == [[4, 1]]
    assert split_ids(ids, 1, CLS, SEP) is ids
    with pytest.raises(ValueError, match="does not split into 5"):
        split_ids(ids, 5, CLS, SEP)


def test_schedule_short_first_then_whole():
    assert short_steps(100, 5, 0.9) == 90 and short_steps(101, 5, 0.9) == 91 and short_steps(100, 1, 0.9) == 0
    views = [view_rows(s, 100, 5, 0.9) for s in range(100)]
    assert views[:90] == [5] * 90 and views[90:] == [1] * 10
    assert all(view_rows(s, 100, 1, 0.9) == 1 for s in range(100))


def test_a_length_ramp_steps_through_its_views_then_whole_rows():
    ramp = [[5, 0.2], [2, 0.1]]  # rows of 12 (k=15) for 50% of the steps, of 32 for 20%, of 77 for 10%, then 152
    views = [view_rows(s, 100, 15, 0.5, ramp) for s in range(100)]
    assert views == [15] * 50 + [5] * 20 + [2] * 10 + [1] * 20
    assert view_steps(100, 15, 0.5, ramp) == {15: 50, 5: 20, 2: 10, 1: 20}
    assert view_steps(100, 15, 0.9) == {15: 90, 1: 10} and view_steps(100, 1, 0.9) == {1: 100}
    assert short_views(15, ramp) == [15, 5, 2] and short_views(1) == []
    assert [view_rows(s, 100, 15, 0.9) for s in (89, 90)] == [15, 1]  # no ramp: the two phases as before


def test_length_ramp_config_checks():
    ok = config.resolve("cpu-wiki", {"train.short_fraction": 0.5, "train.length_ramp": [[5, 0.15], [2, 0.15]]})
    assert ok.train.length_ramp == [[5, 0.15], [2, 0.15]]
    assert config.from_dict(json.loads(ok.to_json())).train.length_ramp == [[5, 0.15], [2, 0.15]]  # JSON round trip
    bad = {"[[7, 0.1]]": "must be an integer below the stage before it \\(15\\), above 1, dividing the 150",
           "[[5, 0.1], [6, 0.1]]": "k=6 must be an integer below the stage before it \\(5\\)",
           "[[5, 0]]": "share=0 of k=5 must be a fraction of the steps above 0",
           "[[5, 0.3], [2, 0.3]]": "= 1.1 leaves no step on whole rows",
           "[5, 2]": "must be a list of \\[k, share\\] pairs"}
    for ramp, msg in bad.items():
        with pytest.raises(config.ConfigError, match=msg):
            config.resolve("cpu-wiki", {"train.short_fraction": 0.5, "train.length_ramp": json.loads(ramp)})
    with pytest.raises(config.ConfigError, match="needs a short phase to ramp from"):
        config.resolve("cpu-long", {"train.length_ramp": [[2, 0.1]]})
    # off by default: no hash moves (cpu-long's committed runs)
    assert config.resolve("cpu-long", {"train.length_ramp": []}).short_hash() == config.resolve("cpu-long").short_hash()


def test_natural_positions_put_each_piece_where_its_tokens_sit_in_the_long_row():
    pos = natural_positions(14, 3)  # a body of 12 in 3 pieces of 4: short rows of 6
    assert pos.tolist() == [[0, 1, 2, 3, 4, 5], [0, 5, 6, 7, 8, 9], [0, 9, 10, 11, 12, 13]]
    body = torch.arange(1000, 1012).reshape(1, 12)
    ids = torch.cat([torch.full((1, 1), CLS), body, torch.full((1, 1), SEP)], 1)  # [1, 14]: body at 1..12
    short = split_ids(ids, 3, CLS, SEP)
    for piece in range(3):  # every body token keeps its long-row position; the last [SEP] is the long row's
        for j in range(1, 5):
            assert ids[0, pos[piece, j]] == short[piece, j]
    assert pos[-1, -1] == 13 and natural_positions(152, 15)[14].tolist()[-3:] == [149, 150, 151]


def _tiny_bert():
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    return BertForMaskedLM(BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=32)).eval()


def test_piece_positions_give_every_pass_the_natural_ids_and_nothing_after():
    model = _tiny_bert()
    ids = torch.randint(5, 60, (2, 14))
    short = split_ids(ids, 3, 1, 2)  # [6, 6]
    explicit = model(input_ids=short, position_ids=natural_positions(14, 3).repeat(2, 1)).logits
    plain = model(input_ids=short).logits
    with piece_positions(model, 14, 3, "natural"):
        hooked = model(input_ids=short).logits
        with pytest.raises(ValueError, match="not whole groups of 3 short rows"):
            model(input_ids=short[:4])  # a batch that cuts a row's pieces apart would get wrong positions
    assert torch.allclose(hooked, explicit) and not torch.allclose(hooked, plain)
    assert torch.allclose(model(input_ids=short).logits, plain)  # the hook is gone after the block
    with piece_positions(model, 14, 3, "own"), piece_positions(model, 14, 1, "natural"):
        assert torch.allclose(model(input_ids=short).logits, plain)  # own positions / whole rows: untouched
    assert not model.bert.embeddings._forward_pre_hooks


def test_config_checks_and_hashes():
    with pytest.raises(config.ConfigError, match="does not divide the 142-token body"):
        config.resolve("cpu-long", {"data.seq_len": 144, "train.short_rows": 5})
    with pytest.raises(config.ConfigError, match="train.short_rows=0 must be >= 1"):
        config.resolve("cpu-long", {"train.short_rows": 0})
    with pytest.raises(config.ConfigError, match="short_fraction=1.0 must be between 0 and 1"):
        config.resolve("cpu-long", {"train.short_fraction": 1.0})
    # off by default: the finished cpu-long runs keep their hashes
    assert config.resolve("cpu-long").short_hash() == "cd9bf413a1"
    wiki = config.resolve("cpu-wiki")
    assert wiki.train.short_rows > 1 and short_len(wiki.data.seq_len, wiki.train.short_rows) == 12  # session 19
    assert wiki.train.short_fraction == 0.4  # session 22: at 0.9 the students ended at 8% on whole rows
    with pytest.raises(config.ConfigError, match="short_positions='middle' must be own or natural"):
        config.resolve("cpu-wiki", {"train.short_positions": "middle"})
    # the teacher has no short phase: its hash (and its committed scores) do not move with the students'
    assert pretrain.reference_hash(wiki) == "f397c5035a"
    assert config.resolve("cpu-wiki", {"train.short_fraction": 0.9}).short_hash() == "cb305246ff"  # the committed
    with pytest.raises(config.ConfigError, match="set train.compile=false"):
        config.resolve("cpu-wiki", {"train.short_positions": "natural", "train.compile": True})


@pytest.mark.slow
def test_trainer_masks_the_short_rows_by_their_own_teacher_scores(session_runs, tmp_path):
    from entmask.models import build_model

    # 4 articles: a teacher and its passes over two views (over smoke's 16: 49 s on the AVX2 CPU)
    cfg = config.resolve("smoke", {"masking.strategy": "high", "train.short_rows": 2, "data.max_articles": 4},
                         name="two-phase")
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    tdir = pretrain.resolve_teacher(cfg, session_runs, progress=False)
    long_ent = pretrain.teacher_scores(cfg, tdir, corpus, progress=False)  # [N, 64]
    short_ent = pretrain.teacher_scores(cfg, tdir, corpus, progress=False, short_rows=2)  # [2N, 33]
    n = corpus.train_ids.shape[0]
    assert long_ent.shape == (n, 64) and short_ent.shape == (2 * n, 33)
    # the teacher saw the short rows: the scores differ from the long view's cut into pieces
    assert not torch.allclose(split_rows(long_ent, 2, 0.0, 0.0), short_ent)

    model = build_model(cfg.model.preset, len(corpus.tokenizer), seed=0)
    tr = pretrain.make_trainer(cfg, tmp_path / "r", model, corpus, teacher_dir=tdir, progress=False)
    rows = [4, 9, 0]
    batch = pretrain.collate([tr.train_dataset[i] for i in rows])
    tr.state.max_steps = 10
    tr.compute_loss(model, batch)  # step 0: the short phase
    ids = split_ids(corpus.train_ids[rows], 2, corpus.tokenizer.cls_token_id, corpus.tokenizer.sep_token_id)
    cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id)
    want = select_mask(short_ent[[8, 9, 18, 19, 0, 1]], cand, "high")  # [6, 33]
    assert tr.last_mask.shape == (6, 33) and torch.equal(tr.last_mask, want)
    tr.state.global_step = 9  # the last 10%: whole rows, the long view's scores
    tr.compute_loss(model, batch)
    cand = candidate_mask(corpus.train_ids[rows], corpus.special_ids, corpus.tokenizer.unk_token_id)
    assert torch.equal(tr.last_mask, select_mask(long_ent[rows], cand, "high"))


@pytest.mark.slow
def test_a_two_phase_run_records_its_phases(session_runs):
    # 20 steps (smoke's 110 took ~60 s on the AVX2 CPU): 10 short, 10 whole, a curve point every 4
    cfg = config.resolve("smoke", {"train.short_rows": 2, "train.short_fraction": 0.5, "train.eval_steps": 4,
                                   "train.max_steps": 20}, name="two-phase-run")
    run = pretrain.pretrain(cfg, progress=False)
    m = json.loads((run / "metrics.json").read_text())
    steps = m["steps"]
    assert m["short_phase"] == {"rows": 2, "rows_len": 33, "steps": short_steps(steps, 2, 0.5), "positions": "own"}
    lens = {p["step"]: p["rows_len"] for p in m["curve"]}
    assert all(v == (33 if s < m["short_phase"]["steps"] else 64) for s, v in lens.items())
    assert set(lens.values()) == {33, 64}
    # short-phase points also measure whole rows (what GLUE and the final evaluation use); whole-row points need not
    assert all(("whole_rows_accuracy" in p) == (p["rows_len"] == 33) for p in m["curve"])
    assert all(0 <= p["whole_rows_accuracy"] <= 1 for p in m["curve"] if p["rows_len"] == 33)
    base = config.resolve("smoke", {"train.short_fraction": 0.5}, name="x")
    assert cfg.short_hash() != base.short_hash()  # the schedule is part of the run's identity


def test_compute_counts_the_short_rows():
    from transformers import BertConfig

    from entmask.models import forward_flops

    cfg = config.resolve("smoke", {"train.short_rows": 2, "train.short_fraction": 0.5})
    stud = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=256, max_position_embeddings=64)
    got = pretrain.run_flops(cfg, stud, None, 10, 5, 100, masked_per_row=9.0)["flops"]["student_train"]
    rows, f64, f33 = cfg.train.batch_size, forward_flops(stud, 64), forward_flops(stud, 33)
    long_step = 3 * rows * (64 * f64["body"] + 9.0 * f64["head"])
    short_step = 3 * rows * 2 * (33 * f33["body"] + 9.0 * 31 / 62 * f33["head"])  # half the targets per piece
    assert got == pytest.approx(5 * short_step + 5 * long_step, rel=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("positions", ["own", "natural"])
def test_natural_positions_train_the_positions_past_a_short_row(session_runs, tmp_path, positions):
    from entmask.models import build_model

    cfg = config.resolve("smoke", {"train.short_rows": 2, "train.short_positions": positions}, name="pos")
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    model = build_model(cfg.model.preset, len(corpus.tokenizer), seed=0)
    tr = pretrain.make_trainer(cfg, tmp_path / "r", model, corpus, teacher_dir=None, progress=False)
    tr.state.max_steps = 10
    batch = pretrain.collate([tr.train_dataset[i] for i in range(4)])
    tr.compute_loss(model, batch).backward()  # step 0: the short phase, rows of 33 from rows of 64
    grad = model.bert.embeddings.position_embeddings.weight.grad  # [max positions, H]
    trained = grad.abs().sum(1) > 0  # [max positions]
    # own: only positions 0-32 (BERT's short phase); natural: every position of the long row, 0-63
    assert trained[:33].all() and bool(trained[33:64].any()) == (positions == "natural")
    if positions == "natural":
        assert trained[:64].all()
    ev = heldout.heldout_eval(model, corpus, batch_size=5, rows=8, short_rows=2, positions=positions)
    assert ev["heldout_masked_tokens"] > 0  # a batch size that is not a multiple of k is rounded to whole rows


@pytest.mark.slow
def test_a_ramped_teacher_masked_run_trains_every_view_on_the_teachers_scores_of_it(session_runs):
    # 4 articles: the teacher scores three views of the corpus (a pass over smoke's 16 is ~20 s on the AVX2 CPU)
    cfg = config.resolve("smoke", {"data.seq_len": 66, "data.max_articles": 4, "masking.strategy": "high",
                                   "train.short_rows": 4,
                                   "train.short_fraction": 0.25, "train.length_ramp": [[2, 0.25]],
                                   "train.max_steps": 8, "train.eval_steps": 2}, name="ramp-run")
    run = pretrain.pretrain(cfg, progress=False)
    m = json.loads((run / "metrics.json").read_text())
    assert m["short_phase"]["ramp"] == [{"rows": 2, "rows_len": 34, "steps": 2}]
    assert m["short_phase"]["steps"] == 2
    lens = {p["step"]: p["rows_len"] for p in m["curve"]}
    assert lens == {1: 18, 2: 34, 4: 66, 6: 66, 8: 66}  # steps 0-1 on rows of 18, 2-3 of 34, then whole rows
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    tdir = pretrain.resolve_teacher(cfg, session_runs, progress=False)
    for k, t in ((4, 18), (2, 34)):  # the teacher scored each view the student trained on, cached
        ent = pretrain.teacher_scores(cfg, tdir, corpus, progress=False, short_rows=k)
        assert ent.shape == (corpus.train_ids.shape[0] * k, t)
