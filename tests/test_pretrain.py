"""Smoke pretraining end to end on the mirror's WikiText: runs, reuse, --force, resume, teacher cache, self-masking."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from entmask import config, entropy, pretrain
from entmask.data import prepare_corpus

pytestmark = pytest.mark.slow


def smoke(**over):
    """The smoke profile on 8 of its 16 articles (55 steps a student instead of 110: this file's students, teacher
    and teacher passes in half the time; the loss still falls by more than 2 nats)."""
    name = over.pop("name", "run")
    return config.resolve("smoke", {"data.max_articles": 8, **over}, name=name)


@pytest.fixture(scope="session")
def smoke_runs(session_runs):
    """random, high-teacher and high-self-init at the smoke profile, trained once for the whole session."""
    out = {}
    for name, over in {"random": {"train.eval_steps": 5}, "high": {"masking.strategy": "high"},
                       "low": {"masking.strategy": "low"},
                       "high-self-init": {"masking.strategy": "high", "masking.source": "self",
                                          "masking.self_start": "init"}}.items():
        out[name] = pretrain.pretrain(smoke(name=name, **over), progress=False)
    return out


def metrics(run):
    return json.loads((run / "metrics.json").read_text())


def test_runs_complete_and_loss_falls(smoke_runs):
    for name, run in smoke_runs.items():
        m = metrics(run)
        assert (run / "config.json").exists() and (run / "model" / "model.safetensors").exists()
        assert (run / "logs" / "log_history.json").exists()
        assert m["final_train_loss"] < m["first_train_loss"] - 1.0, name
        # the live progress file `entmask runs status` reads: the last step, by this process
        prog = json.loads((run / "logs" / "progress.json").read_text())
        assert prog["step"] == prog["max_steps"] == m["steps"] and prog["pid"] == os.getpid(), name
        assert 0 <= m["heldout_accuracy"] <= 1 and m["heldout_loss"] > 0
        assert m["heldout_masked_tokens"] > 100
        assert run.name.endswith(config.load_json(run / "config.json").short_hash())
        # the precision actually trained at (smoke's `auto`: bf16 where the CPU runs it natively, else fp32)
        assert m["precision"] == ("bf16" if pretrain.use_bf16(config.load_json(run / "config.json").train.precision)
                                  else "fp32"), name


def test_entropy_figures_high_above_low(smoke_runs):
    hi, lo = metrics(smoke_runs["high"]), metrics(smoke_runs["low"])
    assert hi["entropy_masked_mean"] > hi["entropy_maskable_mean"] > lo["entropy_masked_mean"]
    assert metrics(smoke_runs["random"])["entropy_masked_mean"] is None  # random uses no entropy


def test_heldout_masking_identical_across_runs(smoke_runs):
    n = {metrics(r)["heldout_masked_tokens"] for r in smoke_runs.values()}
    u = {metrics(r)["unigram_accuracy"] for r in smoke_runs.values()}
    assert len(n) == 1 and len(u) == 1


def test_heldout_by_frequency_splits_the_same_targets(smoke_runs, capsys):
    """`entmask heldout RUN`: the held-out targets of metrics.json in bands of type frequency; the bands add up to
    the run's held-out accuracy and the unigram plateau scores nothing outside the first band."""
    from entmask import cli

    run = smoke_runs["high"]
    assert cli.main(["heldout", str(run), "--quiet"]) == 0
    d = json.loads((run / "heldout_bands.json").read_text())
    m = metrics(run)
    assert d["masked_tokens"] == m["heldout_masked_tokens"]
    assert abs(d["heldout_accuracy"] - m["heldout_accuracy"]) < 1e-6
    bands = d["bands"]
    assert [b["band"] for b in bands] == ["types 1-10", "types 11-100", "types 101-1,000", "types 1,001 and rarer"]
    assert sum(b["targets"] for b in bands) == d["masked_tokens"]
    assert bands[0]["unigram_accuracy"] > 0 and d["model"]
    out, err = capsys.readouterr()
    assert "by how frequent the target's type is" in out and "types 1,001 and rarer" in out
    assert "Loading weights" not in err, err  # --quiet silences transformers' own bars too
    assert cli.main(["heldout", str(run / "nope")]) == 2


def test_frequency_bins_rank_ties_together_and_unseen_types_last():
    from entmask.heldout import frequency_bins

    # specials 0, 1; train counts: 5 x3, 6 x2, 7 x2 (tied with 6), 9 x1; 8 never seen
    train = torch.tensor([[0, 5, 5, 5, 6, 6, 7, 7, 9, 1]])
    targets = torch.tensor([5, 6, 7, 9, 8, 5])
    correct = torch.tensor([True, False, True, True, True, False])
    b = frequency_bins(train, targets, correct, [0, 1], edges=(1, 2))
    assert [x["band"] for x in b] == ["types 1-1", "types 2-2", "types 3 and rarer"]
    assert [x["targets"] for x in b] == [2, 2, 2]  # 6 and 7 share rank 2; 9 (rank 4) and unseen 8 are rarer
    assert [x["accuracy"] for x in b] == [0.5, 0.5, 1.0]
    assert [x["unigram_accuracy"] for x in b] == [1.0, 0.0, 0.0]
    empty = frequency_bins(train, torch.tensor([5]), torch.tensor([True]), [0, 1], edges=(1,))
    assert empty[1] == {"band": "types 2 and rarer", "targets": 0, "share": 0.0, "accuracy": None,
                        "unigram_accuracy": None}


def test_score_masked_per_target_is_in_label_order(tiny_mlm):
    """`correct` lines up with labels[labels != -100] across batches and rows with different numbers of targets."""
    from entmask.models import load_masked_lm, score_masked

    model = load_masked_lm(tiny_mlm, role="student")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 3000, (5, 12), generator=g)
    labels = torch.full_like(ids, -100)
    for row, cols in enumerate([[1], [2, 3, 4], [], [5, 6], [1, 2, 3, 4, 5]]):
        labels[row, cols] = ids[row, cols]
    masked = ids.clone()
    masked[labels != -100] = 103
    sc = score_masked(model, masked, labels, batch_size=2, per_target=True)
    with torch.no_grad():
        direct = model(input_ids=masked).logits.argmax(-1)[labels != -100] == labels[labels != -100]
    assert sc["correct"].shape == (11,) and torch.equal(sc["correct"], direct)
    assert sc["accuracy"] == pytest.approx(direct.float().mean().item())


def test_learning_curve_points(smoke_runs):
    m = metrics(smoke_runs["random"])
    steps = [c["step"] for c in m["curve"]]
    assert steps == [1] + list(range(5, m["steps"] + 1, 5))
    first, last = m["curve"][0], m["curve"][-1]
    assert last["heldout_loss"] < first["heldout_loss"]
    # The smoke test split fits in one curve evaluation, so the last point is the final evaluation itself.
    assert last["heldout_accuracy"] == pytest.approx(m["heldout_accuracy"], abs=1e-9)
    assert last["unigram_accuracy"] == m["unigram_accuracy"]
    assert metrics(smoke_runs["high"])["curve"] == []  # eval_steps=0: no curve, no cost


def test_self_init_switches_at_configured_epoch(smoke_runs):
    m = metrics(smoke_runs["high-self-init"])
    # epoch 0 = the untrained student (recorded before the first step), then each epoch end
    assert [(e["epoch"], e["source"]) for e in m["epoch_entropy"]] == [(0, "teacher"), (1, "teacher"), (2, "self")]
    assert m["epoch_entropy"][0]["step"] == 0
    hist = json.loads((smoke_runs["high-self-init"] / "logs" / "log_history.json").read_text())
    spe = m["steps_per_epoch"]
    src = [(h["step"], h["self_source"]) for h in hist if "self_source" in h]
    assert all(s == 0.0 for step, s in src if step < spe) and all(s == 1.0 for step, s in src if step > spe + 5)
    assert (smoke_runs["high-self-init"] / "epochs" / "epoch-1" / "model.safetensors").exists()


def test_rerun_reuses_and_force_retrains(smoke_runs):
    run = smoke_runs["random"]
    mtime = (run / "metrics.json").stat().st_mtime_ns
    assert pretrain.pretrain(smoke(name="other-name"), progress=False) == run  # found by hash, whatever the name
    assert (run / "metrics.json").stat().st_mtime_ns == mtime
    cfg = smoke(name="random", **{"train.max_steps": 5})
    r1 = pretrain.pretrain(cfg, progress=False)
    t1 = (r1 / "metrics.json").stat().st_mtime_ns
    r2 = pretrain.pretrain(cfg, force=True, progress=False)
    assert r2 == r1 and (r2 / "metrics.json").stat().st_mtime_ns > t1 and metrics(r2)["steps"] == 5


def test_teacher_cache_computed_once_and_invalidated(session_runs, smoke_runs, tmp_path):
    cfg = smoke(**{"masking.strategy": "high"})
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    tdir = pretrain.resolve_teacher(cfg, progress=False)
    before = entropy.STATS["passes"]
    e1 = entropy.teacher_entropies(tdir, corpus.dir, "train", corpus.train_ids, progress=False)
    assert entropy.STATS["passes"] == before  # hit: the smoke runs already computed it
    assert e1.shape == corpus.train_ids.shape
    # the misses on a corpus of 4 articles (a pass over the smoke corpus is ~20 s on the AVX2 CPU): computed once,
    # then read
    small = prepare_corpus(smoke(**{"data.max_articles": 4}).data, session_runs, progress=False)
    assert small.dir != corpus.dir
    entropy.teacher_entropies(tdir, small.dir, "train", small.train_ids, progress=False)
    entropy.teacher_entropies(tdir, small.dir, "train", small.train_ids, progress=False)
    assert entropy.STATS["passes"] == before + 1
    # a changed teacher (one weight) invalidates it
    from transformers import BertForMaskedLM

    t2 = BertForMaskedLM.from_pretrained(str(tdir))
    with torch.no_grad():
        t2.cls.predictions.bias[5] += 1.0
    t2.save_pretrained(str(tmp_path / "t2"))
    entropy.teacher_entropies(tmp_path / "t2", small.dir, "train", small.train_ids, progress=False)
    assert entropy.STATS["passes"] == before + 2
    # a changed length is a different corpus folder, so a different cache
    c2 = prepare_corpus(smoke(**{"data.max_articles": 4, "data.seq_len": 32}).data, session_runs, progress=False)
    assert c2.dir not in (corpus.dir, small.dir)
    entropy.teacher_entropies(tdir, c2.dir, "train", c2.train_ids, progress=False)
    assert entropy.STATS["passes"] == before + 3


def test_self_masks_follow_the_model(session_runs, tmp_path):
    cfg = smoke(**{"masking.strategy": "high", "masking.source": "self"})
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    from entmask.models import build_model

    batch = {"input_ids": corpus.train_ids[:8]}
    masks = []
    for seed in (0, 1):
        model = build_model(cfg.model.preset, len(corpus.tokenizer), seed=seed)
        tr = pretrain.make_trainer(cfg, tmp_path / f"r{seed}", model, corpus, teacher_dir=None, progress=False)
        tr.compute_loss(model, batch)
        assert tr.last_source == "self" and tr.calls["self_entropy"] == 1
        amp = torch.bfloat16 if tr.args.bf16 else None  # the self pass runs at the training precision (auto)
        ent = entropy.model_entropy(model, batch["input_ids"], torch.ones_like(batch["input_ids"]),
                                    cfg.train.entropy_chunk, autocast_dtype=amp)
        from entmask.masking import candidate_mask, select_mask

        cand = candidate_mask(batch["input_ids"], corpus.special_ids, corpus.tokenizer.unk_token_id)
        assert torch.equal(tr.last_mask, select_mask(ent, cand, "high"))  # exactly the model's own high set
        masks.append(tr.last_mask)
    assert not torch.equal(masks[0], masks[1])  # another model, other masks


def test_static_random_masks_repeat_every_epoch_and_dynamic_ones_do_not(session_runs, tmp_path):
    """masking.static: a row gets the same random k-subset at every step (here: two steps, rows in another order)
    and another subset under another seed; plain random masking redraws it."""
    from entmask.exploration import fit_masks
    from entmask.masking import candidate_mask, num_to_mask
    from entmask.models import build_model

    corpus = prepare_corpus(smoke().data, session_runs, progress=False)
    ids = corpus.train_ids[:8]
    cand = candidate_mask(ids, corpus.special_ids, corpus.tokenizer.unk_token_id)
    got = {}
    for static, seed in ((True, 0), (True, 1), (False, 0)):
        cfg = smoke(**{"masking.strategy": "random", "masking.static": static, "train.seed": seed})
        model = build_model(cfg.model.preset, len(corpus.tokenizer), seed=0)
        tr = pretrain.make_trainer(cfg, tmp_path / f"s{static}{seed}", model, corpus, teacher_dir=None,
                                   progress=False)
        tr.compute_loss(model, {"input_ids": ids})
        first = tr.last_mask.clone()
        tr.state.global_step = 7  # a later step, the rows shuffled
        order = torch.randperm(8, generator=torch.Generator().manual_seed(3))
        tr.compute_loss(model, {"input_ids": ids[order]})
        again = torch.empty_like(first)
        again[order] = tr.last_mask
        assert (first <= cand).all() and (first.sum(1) == num_to_mask(cand, 0.15)).all()
        got[(static, seed)] = (first, again)
        if static:  # exploration.mask_fit scores a static student on exactly these masks
            fit = fit_masks(ids, torch.zeros(ids.shape), cand, ["random-static"], 0.15, static_seed=seed)
            assert torch.equal(fit["random-static"], first)
    assert torch.equal(*got[(True, 0)])  # static: the same positions of the same row
    assert not torch.equal(got[(True, 0)][0], got[(True, 1)][0])  # another seed, another static subset
    assert not torch.equal(*got[(False, 0)])  # random: redrawn
    assert config.default_name(config.resolve("smoke", {"masking.static": True})).startswith("random-static")


def test_static_needs_random_and_leaves_hashes_alone():
    base = config.resolve("cpu-long")
    assert base.short_hash() == config.resolve("cpu-long", {"masking.static": False}).short_hash()
    assert base.short_hash() != config.resolve("cpu-long", {"masking.static": True}).short_hash()
    with pytest.raises(config.ConfigError, match="masking.static draws random masks once per row"):
        config.resolve("cpu-long", {"masking.static": True, "masking.strategy": "high"})


def test_resume_reaches_same_weights(session_runs, seed_root, tmp_path):
    over = {"train.max_steps": 24, "train.save_steps": 8, "masking.strategy": "alternating"}
    # the uninterrupted run in the session's root (its teacher and scores are there); the interrupted one, of the
    # same hash, in a root of its own seeded with them
    full = pretrain.pretrain(smoke(name="full", **over), progress=False)
    seed_root(tmp_path / "b")
    part = pretrain.pretrain(smoke(name="part", **over), root=tmp_path / "b", progress=False, stop_after=8)
    assert not (part / "metrics.json").exists() and (part / "checkpoints" / "checkpoint-8").is_dir()
    # a copy whose checkpoint predates the wall clock (an older entmask wrote it): it must resume, save again and
    # say its total is unknown
    shutil.copytree(tmp_path / "b", tmp_path / "c")
    state_file = next((tmp_path / "c").rglob("checkpoint-8/trainer_state.json"))
    state = json.loads(state_file.read_text())
    del state["stateful_callbacks"]["WallClock"]
    state_file.write_text(json.dumps(state))
    old = metrics(pretrain.pretrain(smoke(name="part", **over), root=tmp_path / "c", progress=False))
    assert old["steps"] == 24 and old["train_seconds_total"] is None
    assert [(s["from_step"], s["to_step"]) for s in old["wallclock_segments"]] == [(8, 24)]
    done = pretrain.pretrain(smoke(name="part", **over), root=tmp_path / "b", progress=False)
    m = metrics(done)
    assert m["resumed_from"] == "checkpoint-8"
    # the wall clock survives the resume: the first process's seconds up to checkpoint-8, then this one's
    seg = m["wallclock_segments"]
    assert [(s["from_step"], s["to_step"]) for s in seg] == [(0, 8), (8, 24)], seg
    assert all(s["seconds"] > 0 for s in seg)
    assert m["train_seconds_total"] == pytest.approx(sum(s["seconds"] for s in seg))
    # this process's segment runs from on_train_begin to on_train_end, inside the timed trainer.train() call (which
    # also loads the checkpoint: under a loaded CI machine that took 0.6 s, so no tolerance on their difference)
    assert 0 < seg[-1]["seconds"] <= m["train_seconds"]
    # throughput counts only the steps this process trained (16 of 24), not the whole run over its seconds
    t = smoke().train
    per_step = t.batch_size * t.grad_accum * smoke().data.seq_len
    assert m["tokens_per_s"] == pytest.approx(16 * per_step / m["train_seconds"], rel=1e-6)
    assert metrics(full)["wallclock_segments"][0]["from_step"] == 0 and metrics(full)["train_seconds_total"] > 0
    wa = load_file(str(full / "model" / "model.safetensors"))
    wb = load_file(str(done / "model" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-6), k


def torchrun(tmp_path, *args, port: int, name: str) -> tuple[subprocess.CompletedProcess, Path]:
    """`torchrun --nproc_per_node 2 -m entmask pretrain ...`, each rank's own output kept under logs/ (a failure
    on one rank is then diagnosable from the test's message, not only torchrun's summary)."""
    logs = tmp_path / f"logs-{name}"
    env = dict(os.environ, ENTMASK_RUNS_DIR=str(tmp_path / "runs"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "--redirects", "3", "--tee", "3", "--log-dir", str(logs), "-m", "entmask", "pretrain", "--profile", "smoke",
           "--quiet", "--name", name, *args]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return out, logs


def rank_logs(logs: Path) -> str:
    parts = []
    for f in sorted(logs.rglob("*.log")):
        parts.append(f"--- {f.relative_to(logs)} ---\n{f.read_text()[-3000:]}")
    return "\n".join(parts)


def test_torchrun_teacher_and_self_masking(session_runs, tmp_path):
    """Two ranks, a teacher strategy (the reference teacher and entropy cache are built by rank 0 alone while rank
    1 waits) and then self-masking `init`; both finish, only rank 0 prints the result line, nobody says
    'unfinished', and the reference exists once."""
    small = ["--set", "data.max_articles=8", "--set", "reference.steps=6", "--set", "train.max_steps=6"]
    for i, (name, extra) in enumerate((("high", ["--strategy", "high"]),
                                       ("self", ["--strategy", "high", "--source", "self", "--self-start", "init",
                                                 "--set", "train.max_steps=-1", "--set", "train.epochs=2"]))):
        out, logs = torchrun(tmp_path, *small, *extra, port=29533 + i, name=name)
        detail = f"torchrun exit {out.returncode}\n{out.stderr[-1500:]}\n{rank_logs(logs)}"
        assert out.returncode == 0, detail
        assert "unfinished" not in out.stdout + out.stderr, detail
        # the run folder, not its `<run>.lock` file beside it (glob order is the directory's, not sorted)
        run = next(p for p in (tmp_path / "runs" / "smoke" / "pretrain").glob(f"{name}-*") if p.is_dir())
        result_lines = [ln for ln in out.stdout.splitlines() if ln.rstrip().endswith(f"entmask: {run}")]
        assert len(result_lines) == 1 and result_lines[0].startswith("[default0]"), detail  # rank 0 only
        m = json.loads((run / "metrics.json").read_text())
        assert m["steps"] >= 6 and m["strategy"] == "high", detail
        # throughput counts both ranks' rows: steps x per-device batch x 2 ranks x length
        c = config.resolve("smoke")
        assert m["tokens_per_s"] * m["train_seconds"] == pytest.approx(
            m["steps"] * c.train.batch_size * c.train.grad_accum * 2 * c.data.seq_len, rel=1e-6), detail
        if name == "self":
            assert m["source"] == "self" and m["self_start"] == "init"
    refs = [p for p in (tmp_path / "runs" / "smoke" / "reference").iterdir() if p.is_dir()]
    assert len(refs) == 1 and (refs[0] / "metrics.json").exists()
    # the reference trains with reference.batch_size (not the students' train.batch_size), in one process
    r = json.loads((refs[0] / "metrics.json").read_text())
    c = config.resolve("smoke")
    assert r["tokens_per_s"] * r["train_seconds"] == pytest.approx(
        r["steps"] * c.reference.batch_size * c.data.seq_len, rel=1e-6)


@pytest.mark.parametrize("rows,batch,accum", [(1100, 128, 4), (1024, 128, 4), (100, 16, 1), (17, 16, 3), (5, 16, 2)])
def test_steps_per_epoch_match_the_trainer(rows, batch, accum, tmp_path):
    """entmask's updates per epoch (which end the teacher phase) equal the Trainer's own count."""
    from torch.utils.data import DataLoader
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=batch,
                             gradient_accumulation_steps=accum, num_train_epochs=1, use_cpu=True, report_to=[])
    model = torch.nn.Linear(1, 1)
    trainer = Trainer(model=model, args=args)
    loader = DataLoader(list(range(rows)), batch_size=batch)
    theirs = trainer.set_initial_training_values(args, loader)[1]
    assert pretrain._steps_per_epoch(rows, batch, accum, world=1) == theirs
    if (rows, batch, accum) == (1100, 128, 4):
        assert theirs == 3  # the case that used to give 2


def test_saved_model_is_a_standard_bert_for_masked_lm(smoke_runs):
    """A run's model/ says BertForMaskedLM and works in transformers' own fill-mask pipeline."""
    from transformers import pipeline

    model_dir = smoke_runs["random"] / "model"
    assert json.loads((model_dir / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    fill = pipeline("fill-mask", model=str(model_dir), tokenizer=str(model_dir), device="cpu")
    out = fill("the cat sat on the [MASK] .")
    assert len(out) == 5 and all(0 <= o["score"] <= 1 for o in out)


def test_the_teachers_scores_travel_in_its_record(session_runs, smoke_runs, tmp_path):
    """A reference record holds the teacher's score caches (byte for byte, sha256-listed), so a machine without the
    teacher's weights trains a teacher-masked student exactly as the machine that built it; what needs the weights
    (KD) says so in one line; a changed score file is refused and nothing is imported."""
    from entmask import runs
    from entmask.records import RecordsRefused, export_records, import_records

    from entmask.teacher_scores import score_views

    cfg = smoke(**{"train.short_rows": 2})  # a profile whose students also train on a short view of the rows
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    teacher = pretrain.resolve_teacher(cfg, progress=False)
    assert score_views(cfg, teacher, corpus, False) == ["train", "train-short2"]
    rec = tmp_path / "records"
    out = export_records("smoke", rec, session_runs)
    # this teacher's record (the session's root may hold other tests' teachers, of other corpora, and their scores)
    ref = f"reference/{teacher.parent.name}"  # resolve_teacher gives its model/ folder
    assert ref in out["exported"]
    every_score = sum(len(json.loads((rec / r / "scores.json").read_text())["files"]) for r in out["exported"]
                      if r.startswith("reference/") and (rec / r / "scores.json").is_file())
    listed = json.loads((rec / ref / "scores.json").read_text())
    key = json.loads((rec / ref / "weights.json").read_text())["model_key"]
    assert listed["teacher_key"] == key
    assert {Path(f["path"]).name for f in listed["files"]} >= {f"entropy-train-{key}.safetensors",
                                                               f"entropy-train-short2-{key}.safetensors"}
    assert all(f["path"].startswith("scores/") and f"-{key}" in f["path"] for f in listed["files"])

    fresh = tmp_path / "fresh"
    got = import_records(rec, fresh)
    assert ref in got["imported"] and got["scores"] == every_score
    # trained by no other test; 12 steps: the check is that both machines train the same student, not a good one
    cfg = smoke(name="mid", **{"masking.strategy": "mid", "train.seed": 7, "train.max_steps": 12})
    tdir = pretrain.resolve_teacher(cfg, fresh, progress=False)
    assert runs.weightless_teacher(tdir) and entropy.teacher_key(tdir) == key
    passes = entropy.STATS["passes"]
    there = metrics(pretrain.pretrain(cfg, fresh, progress=False))
    assert entropy.STATS["passes"] == passes  # no teacher pass: the recorded scores were used
    here = metrics(pretrain.pretrain(cfg, session_runs, progress=False))  # where the teacher has its weights
    for k in ("first_train_loss", "final_train_loss", "heldout_accuracy", "heldout_loss"):
        assert there[k] == here[k], k

    cache = next((fresh / "cache" / "corpus").glob(f"*/entropy-train-{key}.safetensors"))
    before = cache.read_bytes()
    again = metrics(pretrain.pretrain(cfg, fresh, force=True, progress=False))  # --force keeps the recorded scores
    assert cache.read_bytes() == before and again["final_train_loss"] == there["final_train_loss"]

    kd = smoke(name="kd", **{"masking.strategy": "high", "kd.mode": "complete"})
    with pytest.raises(runs.RunError, match=r"^knowledge distillation needs the weights of the teacher reference-"
                                            r".*entmask reference --profile smoke --set data.max_articles=8 --force"):
        pretrain.pretrain(kd, fresh, progress=False)
    assert not [p for p in (fresh / "smoke" / "pretrain").glob("kd-*") if p.is_dir()]  # refused before its folder

    # exported again from where the teacher has no weights: the same record, scores and all
    snap = {p: p.read_bytes() for p in (rec / ref).rglob("*") if p.is_file()}
    assert ref in export_records("smoke", rec, fresh)["exported"]
    assert {p: p.read_bytes() for p in (rec / ref).rglob("*") if p.is_file()} == snap
    for f in (fresh / "cache" / "corpus").glob(f"*/entropy-*-{key}*.safetensors"):
        f.unlink()  # and once its caches are gone there, the record that holds them is kept
    assert export_records("smoke", rec, fresh)["scores_kept"] == [ref]
    assert {p: p.read_bytes() for p in (rec / ref).rglob("*") if p.is_file()} == snap

    f = rec / ref / listed["files"][0]["path"]
    f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1]))
    with pytest.raises(RecordsRefused, match="changed after the export"):
        import_records(rec, tmp_path / "other")
    assert not (tmp_path / "other" / "smoke").exists() and not (tmp_path / "other" / "cache").exists()
