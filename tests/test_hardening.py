"""Crash safety, bad input and safe loading: kill -9 and resume, corrupt caches rebuilt, locks, pickles refused."""
import json
import re
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from entmask import config, entropy, pretrain, runs
from entmask.data import prepare_corpus
from entmask.models import ModelError, load_masked_lm

pytestmark = pytest.mark.slow


class Boom:
    def __reduce__(self):  # what a malicious checkpoint would do on unpickling
        return (os.system, ("touch /tmp/entmask-pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    d = tmp_path / "teacher"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 100}))
    with open(d / "pytorch_model.bin", "wb") as f:
        pickle.dump(Boom(), f)
    with pytest.raises(ModelError, match="no .safetensors weights; entmask never unpickles"):
        load_masked_lm(d)
    assert not os.path.exists("/tmp/entmask-pwned")


def test_atomic_write_survives_disk_full(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    runs.write_json(target, {"a": 1})

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError, match="No space left"):
        runs.write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_corrupt_metrics_detected_and_run_redone(session_runs):
    cfg = config.resolve("smoke", {"train.max_steps": 3}, name="corrupt")
    run = pretrain.pretrain(cfg, progress=False)
    (run / "metrics.json").write_text('{"heldout_loss": 1.2, "trunc')
    again = pretrain.pretrain(cfg, progress=False)
    assert again == run and json.loads((run / "metrics.json").read_text())["steps"] == 3
    assert list(run.glob("metrics.corrupt-*.json"))  # the damaged file is kept, not deleted


def test_partial_entropy_cache_is_rebuilt(session_runs, capsys):
    # 5 articles: two passes (the first may be a hit), each ~20 s over smoke's 16 on the AVX2 CPU
    cfg = config.resolve("smoke", {"masking.strategy": "high", "data.max_articles": 5})
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    tdir = pretrain.resolve_teacher(cfg, progress=False)
    entropy.teacher_entropies(tdir, corpus.dir, "train", corpus.train_ids, progress=False)
    e1 = entropy.teacher_entropies(tdir, corpus.dir, "train", corpus.train_ids, progress=False)  # read from the cache
    path = entropy.cache_path(corpus.dir, "train", entropy.teacher_key(tdir))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a half-written file (as if a non-atomic writer was killed)
    total = float(e1.sum())  # the tensor read before the rewrite is a copy: a mapped one would SIGBUS here
    before = entropy.STATS["passes"]
    e2 = entropy.teacher_entropies(tdir, corpus.dir, "train", corpus.train_ids, progress=False)
    assert entropy.STATS["passes"] == before + 1 and "incomplete or corrupt; rebuilding" in capsys.readouterr().out
    assert torch.allclose(e1, e2) and total == float(e2.sum())


def test_a_cache_rewritten_in_place_cannot_kill_its_reader(tmp_path):
    """safetensors' load_file maps the file; runs.read_tensors copies it. Run in a child, since SIGBUS kills."""
    script = (
        "import sys, torch\n"
        "from safetensors.torch import save_file, load_file\n"
        "from entmask.runs import read_tensors\n"
        "p = sys.argv[1]; save_file({'e': torch.arange(1_000_000, dtype=torch.float32)}, p)\n"
        "t = (read_tensors if sys.argv[2] == 'copy' else load_file)(p)['e']\n"
        "open(p, 'wb').close()\n"  # truncated in place, as `cp` over it or a killed non-atomic writer would
        "print(float(t.sum()))\n"
    )
    out = {}
    for how in ("copy", "map"):
        r = subprocess.run([sys.executable, "-c", script, str(tmp_path / f"{how}.safetensors"), how],
                           capture_output=True, text=True, timeout=120)
        out[how] = (r.returncode, r.stdout.strip())
    assert out["copy"] == (0, str(float(torch.arange(1_000_000, dtype=torch.float32).sum())))
    # the hazard the copy avoids (if a later safetensors stops mapping, this says so and the copy can go)
    assert out["map"][0] == -signal.SIGBUS


def test_foreign_version_run_folder_refused(session_runs, capsys):
    from entmask.cli import main

    cfg = config.resolve("smoke", {"train.max_steps": 2}, name="old")
    run = pretrain.pretrain(cfg, progress=False)
    runs.write_json(run / "entmask.json", {"entmask_version": "0.0.1", "config_version": 0})
    code = main(["pretrain", "--profile", "smoke", "--set", "train.max_steps=2", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "was written by entmask 0.0.1" in err and "--force" in err


def test_non_finite_entropy_stops_the_step(session_runs, tmp_path):
    cfg = config.resolve("smoke", {"masking.strategy": "high", "masking.source": "self"})
    corpus = prepare_corpus(cfg.data, session_runs, progress=False)
    from entmask.models import build_model

    model = build_model(cfg.model.preset, len(corpus.tokenizer))
    with torch.no_grad():
        model.cls.predictions.bias[7] = float("nan")
    tr = pretrain.make_trainer(cfg, tmp_path / "nan", model, corpus, teacher_dir=None, progress=False)
    with pytest.raises(entropy.EntropyError, match="non-finite entropy .* not trained on"):
        tr.compute_loss(model, {"input_ids": corpus.train_ids[:4]})


def test_wrong_type_parameter_is_one_line():
    with pytest.raises(config.ConfigError, match="train.batch_size='big' must be an integer"):
        config.resolve("smoke", {"train.batch_size": "big"})
    with pytest.raises(config.ConfigError, match="data.max_articles=2.5 must be an integer"):
        config.resolve("smoke", {"data.max_articles": 2.5})


def _cli(args, env):
    return subprocess.Popen([sys.executable, "-m", "entmask", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_processes_same_run_do_not_corrupt_it(session_runs, tmp_path):
    env = dict(os.environ, ENTMASK_RUNS_DIR=str(tmp_path), OMP_NUM_THREADS="1")
    args = ["pretrain", "--profile", "smoke", "--quiet", "--set", "train.max_steps=8", "--set", "data.max_articles=8"]
    a, b = _cli(args, env), _cli(args, env)
    outs = [p.communicate(timeout=300)[0] for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    folders = [p for p in (tmp_path / "smoke" / "pretrain").iterdir() if p.is_dir()]
    assert len(folders) == 1 and json.loads((folders[0] / "metrics.json").read_text())["steps"] == 8
    trained = [o for o in outs if re.search(r"entmask: pretrain \S+ trained: 8 steps", o)]
    reused = [o for o in outs if re.search(r"entmask: pretrain \S+ reused: 8 steps", o)]
    assert len(trained) == 1 and len(reused) == 1, outs  # the second waited on the lock, then reused the run


def test_kill_9_during_pretraining_then_resume(session_runs, tmp_path):
    """kill -9 once a checkpoint exists; the rerun resumes from it and ends with the same weights as an
    uninterrupted run (tolerance 1e-5: the same ops in the same order; only thread scheduling could differ)."""
    from safetensors.torch import load_file

    over = ["--set", "train.max_steps=30", "--set", "train.save_steps=5", "--set", "data.max_articles=8"]
    env_a = dict(os.environ, ENTMASK_RUNS_DIR=str(tmp_path / "a"), OMP_NUM_THREADS="1")
    env_b = dict(os.environ, ENTMASK_RUNS_DIR=str(tmp_path / "b"), OMP_NUM_THREADS="1")
    args = ["pretrain", "--profile", "smoke", "--quiet", "--strategy", "random", *over]
    ref = _cli(args, env_a)
    ref.communicate(timeout=300)
    victim = _cli(args, env_b)
    ckpts = tmp_path / "b" / "smoke" / "pretrain"
    deadline = time.time() + 240
    while time.time() < deadline and not list(ckpts.glob("*/checkpoints/checkpoint-10/trainer_state.json")):
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    run = next(p for p in ckpts.iterdir() if p.is_dir())
    assert not (run / "metrics.json").exists()
    again = _cli(args, env_b)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    m = json.loads((run / "metrics.json").read_text())
    assert m["resumed_from"] is not None and m["steps"] == 30
    ra = next(p for p in (tmp_path / "a" / "smoke" / "pretrain").iterdir() if p.is_dir())
    wa = load_file(str(ra / "model" / "model.safetensors"))
    wb = load_file(str(run / "model" / "model.safetensors"))
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
