"""Reliability II: no code from data, caches and runs keyed by content, every bad value refused in one line,
an unfinished run named as such. (The torchrun ranks test lives in test_pretrain.py.)"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import recordkit as kit  # tests/recordkit.py: run folders named by their config's hash
import torch

from entmask import config, data, entropy, pretrain, records, runs
from entmask.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip() and "it/s]" not in ln and "examples/s]" not in ln]
    return code, out, lines


def one_line_error(capsys, *args) -> str:
    code, out, lines = run_cli(capsys, *args)
    assert code == 2, (out, lines)
    assert len(lines) == 1 and lines[0].startswith("entmask: error: "), lines
    return lines[0]


# ---- 1. nothing executes code from a folder ------------------------------------------------------------------
def planted_folder(tmp_path: Path, marker: Path) -> Path:
    """A folder that, given the chance, runs `evil.py` (it creates `marker`): config with an unknown model_type and
    an auto_map, tokenizer config with an auto_map, real-looking weights."""
    d = tmp_path / "planted"
    d.mkdir()
    code = f"open({str(marker)!r}, 'w').write('pwned')\n" \
           "from transformers import PretrainedConfig\nclass EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    (d / "evil.py").write_text(code)
    auto = {"AutoConfig": "evil.EvilConfig", "AutoModelForMaskedLM": "evil.EvilModel",
            "AutoModelForSequenceClassification": "evil.EvilModel", "AutoTokenizer": ["evil.EvilTok", None]}
    (d / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto, "vocab_size": 10}))
    (d / "tokenizer_config.json").write_text(json.dumps({"auto_map": {"AutoTokenizer": ["evil.EvilTok", None]}}))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(d / "model.safetensors"))
    return d


@pytest.mark.parametrize("how", ["finetune", "teacher", "tokenizer", "init_from"])
def test_planted_custom_code_never_runs(tmp_path, session_runs, how):
    """`echo y |` on stdin: no prompt is shown, nothing is read from stdin, evil.py never runs; one line, exit 2."""
    marker = tmp_path / "PWNED"
    d = planted_folder(tmp_path, marker)
    base = [sys.executable, "-m", "entmask"]
    cmd = {"finetune": ["finetune", str(d), "--profile", "smoke", "--tasks", "rte"],
           "teacher": ["pretrain", "--profile", "smoke", "--strategy", "high", "--teacher", str(d)],
           "tokenizer": ["pretrain", "--profile", "smoke", "--set", f"data.tokenizer={d}"],
           "init_from": ["pretrain", "--profile", "smoke", "--set", f"model.init_from={d}"]}[how]
    env = dict(os.environ, ENTMASK_RUNS_DIR=str(tmp_path / "runs"))
    out = subprocess.run(base + cmd + ["--quiet"], input="y\ny\n", capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 2, out.stderr[-2000:]
    assert not marker.exists(), "planted code ran"
    assert "[y/N]" not in out.stdout + out.stderr and "custom code" not in out.stdout
    err = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("entmask: error: "), out.stderr
    assert ("auto_map" in err[0] or "model_type 'evil'" in err[0]), err[0]


def test_tokenizer_loader_passes_trust_remote_code_false(tmp_path):
    marker = tmp_path / "PWNED"
    d = planted_folder(tmp_path, marker)
    with pytest.raises(data.DataError, match="auto_map"):
        data.load_tokenizer(str(d))
    assert not marker.exists()


# ---- 2. caches and runs keyed by content ---------------------------------------------------------------------
@pytest.fixture()
def own_mirror(tmp_path, mirror):
    """A writable copy of the mirror's WikiText and vocabulary, to replace files in."""
    m = tmp_path / "mirror" / "data"
    shutil.copytree(mirror / "wikitext", m / "wikitext")
    shutil.copytree(mirror.parent / "models", m.parent / "models")
    return m


def test_replaced_mirror_file_gives_new_corpus_and_run_hash(own_mirror, tmp_path):
    over = {"data.data_dir": str(own_mirror), "data.max_articles": 8}
    a = config.resolve("smoke", over)
    ca = data.prepare_corpus(a.data, tmp_path / "runs", progress=False)
    f = own_mirror / "wikitext" / "wikitext-2-v1" / "validation.parquet"
    df = pd.read_parquet(f)
    df["text"] = df["text"].str.replace(" the ", " a ", regex=False)  # same size class, same shape, new content
    os.chmod(f, 0o644)
    df.to_parquet(f)
    b = config.resolve("smoke", over)
    assert b.data.fingerprint != a.data.fingerprint and b.short_hash() != a.short_hash()
    cb = data.prepare_corpus(b.data, tmp_path / "runs", progress=False)
    assert cb.key != ca.key and cb.dir != ca.dir
    assert not torch.equal(cb.train_ids, ca.train_ids) or not torch.equal(cb.test_ids, ca.test_ids)
    # a config resolved before the change is refused, not trained on the new corpus under the old hash
    with pytest.raises(data.DataError, match="sources changed since this config was resolved"):
        data.prepare_corpus(a.data, tmp_path / "runs", progress=False)


def test_tokenizer_content_is_part_of_the_key(own_mirror):
    over = {"data.data_dir": str(own_mirror)}
    a = config.resolve("smoke", over).data.fingerprint
    vocab = own_mirror.parent / "models" / "bert-base-uncased-vocab" / "vocab.txt"
    os.chmod(vocab, 0o644)
    vocab.write_text(vocab.read_text().replace("\nthe\n", "\nthe\n", 1) + "")  # same bytes: same key
    assert config.resolve("smoke", over).data.fingerprint == a
    lines = vocab.read_text().splitlines()
    lines[2000], lines[2001] = lines[2001], lines[2000]  # a different vocabulary, same size
    vocab.write_text("\n".join(lines) + "\n")
    assert config.resolve("smoke", over).data.fingerprint != a


def test_force_rebuilds_the_corpus_cache(session_runs, capsys):
    cfg = config.resolve("smoke", {"data.max_articles": 6})
    c = data.prepare_corpus(cfg.data, session_runs, progress=False)
    stamp = (c.dir / "stats.json").stat().st_mtime_ns
    data.prepare_corpus(cfg.data, session_runs, progress=False)
    assert (c.dir / "stats.json").stat().st_mtime_ns == stamp  # reused
    again = data.prepare_corpus(cfg.data, session_runs, progress=False, force=True)
    assert "rebuilding the corpus cache" in capsys.readouterr().out
    assert (c.dir / "stats.json").stat().st_mtime_ns != stamp and torch.equal(again.train_ids, c.train_ids)


def test_entropy_cache_checks_what_it_was_built_for(session_runs, tmp_path, capsys):
    cfg = config.resolve("smoke", {"masking.strategy": "high"})
    tdir = pretrain.resolve_teacher(cfg, progress=False)
    ids = torch.randint(1000, 2000, (4, 16))
    ent = entropy.teacher_entropies(tdir, tmp_path, "train", ids, progress=False)
    n = entropy.STATS["passes"]
    assert torch.equal(entropy.teacher_entropies(tdir, tmp_path, "train", ids, progress=False), ent)
    assert entropy.STATS["passes"] == n  # reused
    other = ids.clone()
    other[0, 3] += 1  # same shape, different token ids
    capsys.readouterr()
    ent2 = entropy.teacher_entropies(tdir, tmp_path, "train", other, progress=False)
    assert entropy.STATS["passes"] == n + 1 and "does not match this corpus/teacher" in capsys.readouterr().out
    assert not torch.equal(ent2[0], ent[0]) and torch.equal(ent2[1:], ent[1:])
    entropy.teacher_entropies(tdir, tmp_path, "train", other, progress=False, force=True)
    assert entropy.STATS["passes"] == n + 2


# ---- 4. every bad value refused before any work ------------------------------------------------------------
@pytest.mark.parametrize("over,needle", [
    ({"train.epochs": 0}, "train.epochs=0.0 must be > 0"),
    ({"train.max_steps": 0}, "train.max_steps=0 must be > 0, or -1"),
    ({"train.batch_size": 0}, "train.batch_size=0 must be >= 1"),
    ({"train.grad_accum": 0}, "train.grad_accum=0 must be >= 1"),
    ({"train.lr": "nan"}, "train.lr=nan must be a finite number > 0"),
    ({"train.lr": "-1e-3"}, "train.lr=-0.001 must be a finite number > 0"),
    ({"train.lr": "inf"}, "train.lr=inf must be a finite number > 0"),
    ({"train.warmup_ratio": 1.5}, "train.warmup_ratio=1.5 must be in [0, 1)"),
    ({"train.adam_beta2": 1}, "train.adam_beta2=1.0 must be in (0, 1)"),
    ({"train.scheduler": "wobbly"}, "train.scheduler='wobbly' is not a transformers scheduler"),
    ({"data.seq_len": 1024}, "data.seq_len=1024 exceeds the model's 512 positions"),
    ({"data.seq_len": 4}, "data.seq_len=4 is too short"),
    ({"data.splits": "[]"}, "data.splits=[] must name at least one split"),
    ({"data.max_articles": 1}, "data.max_articles=1 must be >= 2"),
    ({"model.overrides": '{"hiden_size": 64}'}, "unknown BertConfig field 'hiden_size'; valid fields: "),
    ({"model.overrides.hidden_dropout_prob": 1.5}, "model.overrides.hidden_dropout_prob=1.5 must be in [0, 1)"),
    ({"finetune.tasks": "[]"}, "finetune.tasks=[] is empty"),
    ({"finetune.tasks": "cola,glue9"}, "finetune.tasks has unknown task 'glue9'"),
    ({"finetune.max_len": 600}, "finetune.max_len=600 exceeds the model's 512 positions"),
    ({"finetune.seeds": "[]"}, "finetune.seeds=[] must be a non-empty list of distinct integers"),
    ({"finetune.seeds": "[-1]"}, "finetune.seeds=[-1] must be a non-empty list of distinct integers in [0, 2**32)"),
    ({"train.seed": -1}, "train.seed=-1 must be in [0, 2**32)"),
    ({"experiment.pretrain_seeds": "[-1]"}, "experiment.pretrain_seeds=[-1] must be a non-empty list of distinct "
                                            "integers in [0, 2**32)"),
    ({"finetune.tasks": "rte,rte"}, "names a task twice"),
    ({"profile": "../../escaped"}, "is not a profile"),
    ({"model.overrides.vocab_size": 1}, "model.overrides.vocab_size is set from the tokenizer"),
    ({"model.overrides.hidden_act": "bogus"}, "model.overrides.hidden_act='bogus' is unknown"),
    ({"model.overrides.hidden_size": 33}, "hidden_size 33 is not a multiple of num_attention_heads"),
    ({"data.extra_text": "bogus"}, "the only extra text is glue-train"),
    ({"finetune.heldout_fraction": 0}, "finetune.heldout_fraction=0.0 must be in (0, 1)"),
    ({"reference.steps": 0}, "reference.steps=0 must be >= 1"),
    ({"kd.mode": "after-init", "masking.teacher_epochs": 0}, "kd.mode=after-init needs masking.teacher_epochs >= 1"),
    ({"kd.temperature": 0}, "kd.temperature=0.0 must be a finite number > 0"),
    ({"masking.ratio": "nan"}, "masking.ratio=nan must be in (0, 1]"),
])
def test_bad_values_refused(over, needle):
    with pytest.raises(config.ConfigError) as e:
        config.resolve("smoke", over)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_misspelled_override_lists_valid_fields():
    with pytest.raises(config.ConfigError) as e:
        config.resolve("smoke", {"model.overrides.hidden_dropout": 0.0})
    assert "hidden_dropout_prob" in str(e.value)  # the list to pick the right name from


def test_epochs_zero_writes_nothing(capsys, session_runs, tmp_path):
    line = one_line_error(capsys, "pretrain", "--profile", "smoke", "--runs-dir", str(tmp_path),
                          "--set", "train.epochs=0")
    assert "train.epochs=0.0 must be > 0" in line
    assert not (tmp_path / "smoke").exists()


# ---- files: one line naming the file and the fix -------------------------------------------------------------
def test_damaged_teacher_weights_one_line(capsys, session_runs, tmp_path):
    cfg = config.resolve("smoke", {"masking.strategy": "high"})
    tdir = pretrain.resolve_teacher(cfg, progress=False)
    bad = tmp_path / "teacher"
    shutil.copytree(tdir, bad)
    w = bad / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])  # truncated, as by a full disk
    line = one_line_error(capsys, "pretrain", "--profile", "smoke", "--strategy", "high", "--teacher", str(bad),
                          "--runs-dir", str(tmp_path / "runs"))
    assert str(w) in line and "damaged" in line


def test_runs_dir_that_is_a_file_one_line(capsys, session_runs, tmp_path):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    line = one_line_error(capsys, "pretrain", "--profile", "smoke", "--runs-dir", str(f))
    assert str(f) in line


def test_empty_task_list_refused(capsys, session_runs, tmp_path):
    line = one_line_error(capsys, "finetune", str(tmp_path), "--profile", "smoke", "--tasks", ",")
    assert "names no task" in line


# ---- 5. an unfinished run given to finetune -----------------------------------------------------------------
def test_unfinished_run_names_itself_and_how_to_resume(capsys, session_runs, tmp_path):
    cfg = config.resolve("smoke", {"train.max_steps": 12, "train.save_steps": 4}, name="cut")
    run = pretrain.pretrain(cfg, root=tmp_path, progress=False, stop_after=4)
    assert not (run / "metrics.json").exists()
    line = one_line_error(capsys, "finetune", str(run), "--profile", "smoke", "--tasks", "rte")
    assert "unfinished pretraining run" in line and "checkpoint-4" in line
    assert f"entmask pretrain --config {run / 'config.json'} --runs-dir {tmp_path.resolve()}" in line
    # and the command it names does resume it
    assert main(["pretrain", "--config", str(run / "config.json"), "--runs-dir", str(tmp_path), "--quiet"]) == 0
    assert json.loads((run / "metrics.json").read_text())["resumed_from"] == "checkpoint-4"


@pytest.mark.parametrize("base,inert", [
    ({}, {"kd.alpha": 0.9, "kd.temperature": 3.0, "masking.source": "self", "masking.self_start": "init",
          "masking.teacher_epochs": 7}),
    ({"masking.strategy": "high"}, {"masking.self_start": "init", "masking.teacher_epochs": 3, "kd.alpha": 0.2}),
    ({"masking.strategy": "high", "masking.source": "self"}, {"masking.teacher_epochs": 4}),
    ({"masking.num_tokens": 1}, {"masking.ratio": 0.4}),
    ({"masking.strategy": "high", "kd.mode": "after-init"}, {"masking.source": "self", "masking.self_start": "init"}),
])
def test_options_that_change_nothing_do_not_change_the_hash(base, inert):
    a = config.resolve("smoke", base)
    b = config.resolve("smoke", {**base, **inert})
    assert a.short_hash() == b.short_hash()


@pytest.mark.parametrize("base,live", [
    ({"masking.strategy": "high", "masking.source": "self", "masking.self_start": "init"},
     {"masking.teacher_epochs": 2}),
    ({"kd.mode": "kd-only"}, {"kd.alpha": 0.3}),
    ({"masking.strategy": "high", "kd.mode": "after-init"}, {"masking.teacher_epochs": 2}),
    ({}, {"masking.ratio": 0.4}),
])
def test_options_that_matter_change_the_hash(base, live):
    assert config.resolve("smoke", base).short_hash() != config.resolve("smoke", {**base, **live}).short_hash()


# ---- config files handed in with --config -----------------------------------------------------------------
@pytest.mark.parametrize("content,needle", [
    ("", "is not valid JSON"),
    ('{"train": {"lr": ', "is not valid JSON"),
    ("[1, 2, 3]", "holds a JSON list, not a config object"),
    ('"hello"', "holds a JSON str, not a config object"),
    ("null", "holds a JSON NoneType, not a config object"),
    ('{"train": {"batch_size": "16"}}', "train.batch_size='16' must be an integer"),
    ('{"train": {"batch_size": true}}', "train.batch_size=True must be an integer"),
    ('{"train": {"batch_size": 16.5}}', "train.batch_size=16.5 must be an integer"),
    ('{"train": {"max_steps": null}}', "train.max_steps=None must be an integer"),
    ('{"masking": "high"}', "masking must be a JSON object"),
    ('{"train": {"learning_rate": 5}}', "unknown key 'train.learning_rate'"),
    ('{"finetune": {"tasks": "cola"}}', "finetune.tasks='cola' must be a JSON list"),
    ('{"version": 1}', "is config version 1"),
])
def test_bad_config_files_one_line(capsys, tmp_path, content, needle):
    f = tmp_path / "config.json"
    f.write_bytes(content.encode())
    line = one_line_error(capsys, "info", "--config", str(f))
    assert needle in line and str(f) in line


def test_config_file_round_trip_still_works(capsys, tmp_path):
    cfg = config.resolve("smoke", {"masking.strategy": "low", "train.lr": 3e-3})
    f = tmp_path / "config.json"
    f.write_text(cfg.to_json())
    assert main(["info", "--config", str(f)]) == 0
    assert f"# config hash: {cfg.short_hash()}" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["bench", "--seq-len", "0"], "--seq-len 0 must be at least 8"),
    (["bench", "--batch-size", "-1"], "--batch-size -1 must be at least 1"),
    (["bench", "--repeats", "0"], "--repeats 0 must be at least 1"),
    (["bench", "--preset", "nope"], "--preset 'nope' is unknown"),
    (["bench", "--seq-len", "100000"], "exceeds BERT's 512 positions"),
    (["bench", "--device", "banana"], "is not a device"),
    (["bench", "--device", "cuda"], "has no CUDA GPU"),
    (["reproduce", "--profile", "smoke", "--only", "99"], "unknown notebook '99'"),
    (["experiment", "plateau", "--profile", "smoke", "--recipes", ",", "--report-only"], "names no recipe"),
    (["experiment", "table1", "--profile", "smoke", "--nice", "20"], "--nice 20 is out of range"),
    (["pretrain", "--profile", "smoke", "--data-dir", "/etc/hostname"], "is a file, not a folder"),
    (["pretrain", "--profile", "smoke", "--strategy", "high", "--teacher", "/etc/hostname"], "is a file"),
    (["reference", "--profile", "smoke", "--set", "reference.init=nobody/nothing"], "hub is unreachable"),
])
def test_more_bad_inputs_one_line(capsys, session_runs, tmp_path, args, needle):
    line = one_line_error(capsys, *args, *(["--runs-dir", str(tmp_path)] if args[0] != "bench" else []))
    assert needle in line
    assert not [p for p in tmp_path.rglob("reference-*") if p.is_dir()]  # a bad reference.init leaves no folder


def test_finetune_refuses_a_run_with_corrupt_metrics(capsys, session_runs, tmp_path):
    cfg = config.resolve("smoke", {"train.max_steps": 2}, name="broken")
    run = pretrain.pretrain(cfg, root=tmp_path, progress=False)
    (run / "metrics.json").write_text('{"heldout')
    line = one_line_error(capsys, "finetune", str(run), "--profile", "smoke", "--tasks", "rte")
    assert "metrics.json is corrupt" in line


def test_waiting_for_a_lock_says_so(tmp_path, capsys):
    from filelock import FileLock

    from entmask import runs

    target = tmp_path / "run"
    holder = FileLock(str(target) + ".lock")
    holder.acquire()
    try:
        with pytest.raises(runs.RunError, match="is locked by another entmask process"):
            with runs.locked(target, timeout=0.2):
                pass
        out = capsys.readouterr().out
        assert "waiting for" in out and "will reuse its result" in out
        # A lock that guards no run says what it waits for instead (a records export is not reused, it is redone).
        with pytest.raises(runs.RunError):
            with runs.locked(target, timeout=0.2, waiting="another worker is exporting the records"):
                pass
        out = capsys.readouterr().out
        assert "another worker is exporting the records" in out and "reuse" not in out
    finally:
        holder.release()


def test_claim_first_skips_what_another_process_holds(tmp_path):
    """claim_first takes the first free path; when every path is held it waits for the first and says so."""
    import threading

    from filelock import FileLock

    from entmask import runs

    paths = [tmp_path / f"row{i}" for i in range(3)]
    taken, release = threading.Event(), threading.Event()

    def other():  # another holder (another thread here; another process in use: both are a separate lock)
        lk = FileLock(str(paths[0]) + ".lock")
        lk.acquire()
        taken.set()
        release.wait(10)
        lk.release()

    threading.Thread(target=other, daemon=True).start()
    assert taken.wait(10)
    i, mine = runs.claim_first(paths)
    assert i == 1
    j, mine2 = runs.claim_first(paths)
    assert j == 2  # row1 is now held by the first claim
    told = []
    k, mine3 = runs.claim_first(paths, on_wait=lambda p: (told.append(p), release.set()))
    assert k == 0 and told == [paths[0]]  # everything busy: waited for the first
    for lk in (mine, mine2, mine3):
        lk.release()
    i, lk = runs.claim_first(paths[1:])
    assert i == 0
    lk.release()
    with pytest.raises(ValueError):
        runs.claim_first([])


def test_damaged_parquet_one_line(own_mirror, capsys, tmp_path):
    f = own_mirror / "wikitext" / "wikitext-2-v1" / "validation.parquet"
    os.chmod(f, 0o644)
    f.write_bytes(f.read_bytes()[:1000])  # truncated
    line = one_line_error(capsys, "pretrain", "--profile", "smoke", "--data-dir", str(own_mirror),
                          "--runs-dir", str(tmp_path / "runs"))
    assert str(f) in line and "is damaged" in line and "MANIFEST.md" in line


def test_wall_clock_of_a_resumed_run_adds_up_or_says_it_cannot():
    """WallClock reads earlier processes' seconds back from the checkpoint's trainer state; a checkpoint written
    before entmask recorded them gives an unknown total (None), never the last process's seconds as the run's."""
    from transformers import TrainerState

    def begin(step, stored):
        clock = pretrain.WallClock()
        state = TrainerState(global_step=step, stateful_callbacks=stored)
        clock.on_train_begin(None, state, None)
        assert "WallClock" in state.stateful_callbacks  # the Trainer's save indexes it by name
        clock.on_step_end(None, TrainerState(global_step=step + 5), None)
        return clock

    fresh = begin(0, {})
    assert fresh.complete and [(s["from_step"], s["to_step"]) for s in fresh.all_segments()] == [(0, 5)]
    earlier = {"WallClock": {"args": {}, "attributes": {"segments": [{"from_step": 0, "to_step": 500,
                                                                         "seconds": 100.0}], "complete": True}}}
    resumed = begin(500, earlier)
    segs = resumed.all_segments()
    assert [(s["from_step"], s["to_step"]) for s in segs] == [(0, 500), (500, 505)]
    assert resumed.total_seconds(segs) == pytest.approx(100.0 + segs[1]["seconds"])
    assert resumed.state()["attributes"]["segments"][0]["seconds"] == 100.0  # handed on to the next checkpoint
    legacy = begin(500, {})  # resumed from a checkpoint of an older entmask
    assert not legacy.complete and legacy.total_seconds() is None
    assert not begin(900, {"WallClock": {"args": {}, "attributes": {**earlier["WallClock"]["attributes"],
                                                                     "complete": False}}}).complete


def test_a_report_names_an_unfinished_runs_pace_from_its_checkpoint():
    from entmask.experiments import _checkpoint_progress

    def seg(a, b, secs):
        return {"from_step": a, "to_step": b, "seconds": secs}

    state = {"global_step": 1000, "max_steps": 4760,
             "stateful_callbacks": {"WallClock": {"args": {}, "attributes": {
                 "segments": [seg(0, 500, 2000.0), seg(500, 1000, 900.0)], "complete": True}}}}
    assert _checkpoint_progress(state) == ("pretraining, checkpoint at step 1,000 of 4,760 (1.8 s/step: ~1.9 h "
                                           "left at that pace)")  # the last process's pace: 900 s / 500 steps
    state["global_step"] = 4500
    assert _checkpoint_progress(state).endswith("(1.8 s/step: ~8 min left at that pace)")
    assert _checkpoint_progress({"global_step": 500, "max_steps": 4760, "stateful_callbacks": {}}) == \
        "pretraining, checkpoint at step 500 of 4,760"  # written before entmask kept a wall clock


# ---- run records (records.export_records / import_records) --------------------------------------------------------
# run folders named by the hash of the config they hold (tests/recordkit.py), so that their records verify on import
def test_records_keep_what_runs_measured_and_leave_weights_out(tmp_path):
    root, rec = tmp_path / "runs", tmp_path / "rec"
    p = root / "smoke"
    pre = kit.pretrain_run(p)
    ft = kit.finetune_run(p, pre)
    ref = kit.reference_run(p)
    kit.pretrain_run(p, "low-teacher", finished=False)  # unfinished: not a record
    out = records.export_records("smoke", rec, root=root)
    assert out["exported"] == [f"reference/{ref.name}", f"pretrain/{pre.name}", f"finetune/cola/{ft.name}"]
    got = sorted(q.relative_to(rec / "pretrain" / pre.name).as_posix()
                 for q in (rec / "pretrain" / pre.name).rglob("*") if q.is_file())
    assert got == ["config.json", "logs/log_history.json", "metrics.json", "model/config.json", "predictions.json",
                   "weights.json"]
    assert out["left_out_files"] == 3 * 5  # each run: weights, vocab, checkpoint state, events, the oversized file
    assert json.loads((rec / "pretrain" / pre.name / "weights.json").read_text())["model_key"] == \
        runs.weights_key(pre / "model") == entropy.teacher_key(pre / "model")
    man = json.loads((rec / "records.json").read_text())
    assert man["profile"] == "smoke" and len(man["runs"]) == 3

    # a run gone from runs/ keeps its record; another profile or config version in the same folder is refused
    shutil.rmtree(p / "reference")
    assert records.export_records("smoke", rec, root=root)["total_in_dest"] == 3
    kit.pretrain_run(tmp_path / "runs" / "tiny", "r")
    with pytest.raises(runs.RunError, match="holds records of profile 'smoke' at config version"):
        records.export_records("tiny", rec, root=root)

    # import: into an empty root everything but the teacher; a folder that exists is never overwritten
    fresh = tmp_path / "fresh"
    (fresh / "smoke" / "finetune" / "cola" / ft.name).mkdir(parents=True)  # local
    r = records.import_records(rec, root=fresh)
    assert r["imported"] == [f"pretrain/{pre.name}"]
    assert r["kept"] == [f"finetune/cola/{ft.name}"]
    assert len(r["not_imported"]) == 1 and f"reference/{ref.name} (the teacher" in r["not_imported"][0]
    assert not any((fresh / "smoke" / "finetune" / "cola" / ft.name).iterdir())
    imp = fresh / "smoke" / "pretrain" / pre.name
    assert runs.recorded_key(imp / "model") == runs.weights_key(pre / "model") and not runs.has_weights(imp / "model")
    assert records.import_records(rec, root=fresh)["imported"] == []

    man["config_version"] = -1
    (rec / "records.json").write_text(json.dumps(man))
    with pytest.raises(runs.RunError, match="exported with config version -1"):
        records.import_records(rec, root=fresh)
    with pytest.raises(runs.RunError, match="is not a records folder"):
        records.import_records(tmp_path, root=fresh)


def test_records_refuse_what_would_lose_or_leak_anything(tmp_path, capsys):
    """From an adversarial probe: an export into the runs themselves, a manifest that points outside, links, a
    malformed manifest, a leftover of an interrupted export, a rebuilt teacher that is not the recorded one."""
    root, rec = tmp_path / "runs", tmp_path / "rec"
    pre = kit.pretrain_run(root / "smoke")
    ref = kit.reference_run(root / "smoke")
    # into the runs root (it would replace runs by their weightless records), a user's folder, nothing: refused
    for dest, msg in [(root / "smoke", "is inside \\(or holds\\) the runs root"), (root, "inside"),
                      (pre, "inside"), ("", "the records folder is empty")]:
        with pytest.raises(runs.RunError, match=msg):
            records.export_records("smoke", dest, root=root)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(runs.RunError, match="is not empty and holds no records"):
        records.export_records("smoke", tmp_path / "mine", root=root)
    assert runs.has_weights(pre / "model") and (tmp_path / "mine" / "notes.txt").read_text() == "mine"
    with pytest.raises(runs.RunError, match="is not a plain name"):
        records.export_records("../runs/smoke", rec, root=root)

    # a link in a run is not followed into the record (which is committed), nor out of a record on import
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    (pre / "logs" / "link.json").symlink_to(secret)
    (rec / "pretrain" / f".{pre.name}.tmp-1").mkdir(parents=True)  # an interrupted export's leftover
    (rec / "records.json").write_text(json.dumps({"profile": "smoke", "config_version": config.CONFIG_VERSION,
                                                  "runs": []}))
    out = records.export_records("smoke", rec, root=root)
    assert out["failed"] == [] and not list(rec.rglob(".*.tmp-*"))
    assert "SECRET" not in "".join(p.read_text(errors="replace") for p in rec.rglob("*") if p.is_file())
    (rec / "pretrain" / pre.name / "stolen.json").symlink_to(secret)
    fresh = tmp_path / "fresh"
    assert records.import_records(rec, root=fresh)["imported"] == [f"pretrain/{pre.name}"]
    assert not (fresh / "smoke" / "pretrain" / pre.name / "stolen.json").exists()

    # a run of the same hash under another name is this run: kept, not shadowed by the record
    local = tmp_path / "f2" / "smoke" / "pretrain" / f"mine-{pre.name.rsplit('-', 1)[1]}"
    (local / "checkpoints").mkdir(parents=True)
    assert records.import_records(rec, root=tmp_path / "f2")["kept"] == [f"pretrain/{pre.name}"]
    assert not (tmp_path / "f2" / "smoke" / "pretrain" / pre.name).exists()

    # a rebuilt teacher that is not the recorded one keeps the old record and is named
    before = (rec / "reference" / ref.name / "weights.json").read_text()
    (ref / "model" / "model.safetensors").write_bytes(b"\1" * 64)
    out = records.export_records("smoke", rec, root=root)
    assert len(out["teacher_changed"]) == 1 and out["teacher_changed"][0].startswith(f"reference/{ref.name}: recorded")
    assert (rec / "reference" / ref.name / "weights.json").read_text() == before

    # a damaged manifest: one line each, never a traceback, never a path outside the runs root
    man = json.loads((rec / "records.json").read_text())
    for bad, msg in [([1, 2], "not a records manifest"), ({**man, "runs": 5}, "not a records manifest"),
                     ({**man, "runs": ["../payload"]}, "not a run's place"), ({**man, "runs": [7]}, "not a run's"),
                     ({**man, "profile": "/abs"}, "not a plain name"), ({**man, "profile": None}, "plain name")]:
        (rec / "records.json").write_text(json.dumps(bad))
        code, out_, lines = run_cli(capsys, "runs", "import", str(rec), "--runs-dir", str(tmp_path / "f3"))
        assert code == 2 and len(lines) == 1 and msg in lines[0], (bad, lines)
    assert not (tmp_path / "f3").exists() and not (tmp_path / "payload").exists()
    (rec / "records.json").write_text(json.dumps(man))
    code, out_, lines = run_cli(capsys, "runs", "import", str(rec), "--profile", "smoke")
    assert code == 2 and "takes the profile from the records folder" in lines[0]


def test_a_failed_records_export_never_stops_the_matrix(tmp_path, capsys, monkeypatch):
    from entmask import experiments

    def broken(*a, **k):
        raise TypeError("'int' object is not iterable")

    monkeypatch.setattr(records, "export_records", broken)
    experiments._record("smoke", tmp_path / "rec", tmp_path / "runs", progress=False)  # returns: the row is done
    said = capsys.readouterr().out
    assert f"records: exporting to {tmp_path / 'rec'} failed (TypeError: 'int' object is not iterable)" in said


LOWER = """
import os, sys
from pathlib import Path
from entmask import runs
ag = Path(sys.argv[1])
ag.write_text("/autogroup-7 nice 0\\n")
print(runs.lower_priority(3, autogroup=ag, has_tty=lambda: True)); print(ag.read_text().strip())
print(runs.lower_priority(10, autogroup=ag, has_tty=lambda: False)); print(ag.read_text().strip())
ag.write_text("/autogroup-7 nice 15\\n")
print(runs.lower_priority(2, autogroup=ag, has_tty=lambda: False)); print(ag.read_text().strip())
print(os.nice(0))
"""


def test_lower_priority_lowers_the_session_only_when_it_has_no_terminal(tmp_path):
    """`--nice`: the process is reniced; the session's autogroup (which decides the share against other sessions)
    is lowered only without a controlling terminal, never raised back, and from a terminal the line says how.
    In a subprocess: a nice cannot be undone."""
    out = subprocess.run([sys.executable, "-c", LOWER, str(tmp_path / "autogroup")], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[0].startswith("nice +3 (this process only") and "setsid" in out[0]
    assert out[1] == "/autogroup-7 nice 0"  # a terminal's session (the user's shell) is left alone
    assert out[2] == "nice +10, and this session's autogroup to nice 10 (so other sessions' work comes first)"
    assert out[3] == "10"
    assert out[4] == "nice +2; this session's autogroup already at nice 15" and out[5] == "/autogroup-7 nice 15"
    assert int(out[6]) == min(19, os.nice(0) + 15)  # 3 + 10 + 2 on top of the test's own nice
    with pytest.raises(ValueError, match="nice 20 is out of range"):
        runs.lower_priority(20)
    if not Path("/proc/self/autogroup").exists() or not shutil.which("setsid"):
        return  # the real kernel file: only where the kernel has autogroups
    real = subprocess.run(["setsid", "-w", sys.executable, "-c",
                           "from entmask import runs; print(runs.lower_priority(7)); "
                           "print(open('/proc/self/autogroup').read().split()[-1])"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    if "could not lower" in real[0]:  # a container whose /proc refuses the write: the line says so, nothing fails
        pytest.skip(real[0])
    assert real == ["nice +7, and this session's autogroup to nice 7 (so other sessions' work comes first)", "7"]
