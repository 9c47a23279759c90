"""The command line: one clear line and exit code 2 for each bad input; in process (fast), plus one real
subprocess to prove the console script."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from entmask import config
from entmask.cli import default_name, main


def run_cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args,needle", [
    (["pretrain", "--profile", "nope"], "unknown profile 'nope'; choose one of smoke, tiny"),
    (["pretrain", "--profile", "smoke", "--strategy", "biggest"],
     "unknown masking strategy 'biggest'; choose one of high"),
    (["pretrain", "--profile", "smoke", "--ratio", "0"], "masking.ratio=0.0 must be in (0, 1]"),
    (["pretrain", "--profile", "smoke", "--ratio", "1.2"], "masking.ratio=1.2 must be in (0, 1]"),
    (["pretrain", "--profile", "smoke", "--num-tokens", "100"], "masking.num_tokens=100 must be between 1 and the 62"),
    (["pretrain", "--profile", "smoke", "--set", "train.lr=fast"], "train.lr='fast' must be a number, e.g. --set "
                                                                    "train.lr=1e-3"),
    (["pretrain", "--profile", "smoke", "--set", "train.nope=1"], "unknown config key 'train.nope'; `entmask info "
                                                                   "--keys` lists every key"),
    (["pretrain", "--profile", "smoke", "--set", "train.batchsize=8"], "did you mean train.batch_size?"),
    (["pretrain", "--profile", "smoke", "--set", "trian.lr=1e-3"], "did you mean train.lr?"),
    (["pretrain", "--profile", "smoke", "--set", "oops"], "needs the form key=value"),
    (["pretrain", "--bogus"], "unrecognized arguments: --bogus"),
    (["pretrain", "--profile", "smoke", "--source", "both"], "invalid choice: 'both'"),
    ([], "a command is needed"),
    (["pretrain", "--profile", "smoke", "--strategy", "high", "--teacher", "/nonexistent/teacher"],
     "teacher folder '/nonexistent/teacher' does not exist"),
    (["pretrain", "--profile", "smoke", "--set", "data.splits=unsupervised"],
     "split 'unsupervised' is not in the mirror"),
    (["pretrain", "--profile", "smoke", "--data-dir", "/nonexistent/mirror"],
     "data dir /nonexistent/mirror does not exist"),
    (["blimp", "/nonexistent/run"], "/nonexistent/run is not a folder; give a finished pretraining run folder"),
])
def test_bad_inputs_one_line_exit_2(capsys, session_runs, args, needle):
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    # progress bars of work done before the failure (e.g. tokenizing) are not error output
    lines = [line for line in err.splitlines() if line.strip() and "examples/s]" not in line and "it/s]" not in line]
    assert len(lines) == 1 and lines[0].startswith("entmask: error: "), err
    assert needle in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize("profile", list(config.PROFILES))
def test_profiles_fine_tune_within_the_pretraining_length(profile):
    """Position embeddings beyond the pretraining rows were never trained: no profile fine-tunes on them."""
    cfg = config.resolve(profile)
    assert cfg.finetune.max_len <= cfg.data.seq_len


def test_cpu_long_is_the_measured_recipe():
    """cpu-long pretrains with the recipe that left the plateau in docs/small-scale.md (recipe `seq32`)."""
    from entmask import experiments as ex

    long, recipe = config.resolve("cpu-long"), dict(ex.plateau_configs(config.resolve("tiny"), ["seq32"]))["seq32"]
    for key in ("model.preset", "model.overrides", "data.seq_len", "data.max_articles", "train.batch_size",
                "train.lr", "train.adam_beta2", "train.warmup_ratio", "masking.ratio", "masking.policy"):
        assert config.get_dotted(long, key) == config.get_dotted(recipe, key), key


def test_offline_paper_profile_without_mirror(capsys, monkeypatch):
    monkeypatch.delenv("ENTMASK_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = run_cli(capsys, "pretrain", "--profile", "bertlet")
    assert code == 2 and "hub is unreachable" in err and "--data-dir" in err and len(err.strip().splitlines()) == 1


def test_teacher_that_is_not_a_masked_lm(capsys, session_runs, tmp_path, tokenizer):
    from transformers import BertConfig, BertModel

    BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64)).save_pretrained(str(tmp_path / "encoder"))
    code, out, err = run_cli(capsys, "pretrain", "--profile", "smoke", "--strategy", "high", "--teacher",
                             str(tmp_path / "encoder"))
    assert code == 2 and "is not a masked LM" in err and "entmask reference" in err


def test_corpus_without_maskable_tokens(capsys, session_runs, monkeypatch):
    """Text the vocabulary cannot cover tokenizes to [UNK] (e.g. "\U0001F703" does): a corpus of such rows gets
    one line naming the cause, not a run that trains on nothing."""
    import dataclasses

    import torch

    from entmask import pretrain

    real = pretrain.prepare_corpus

    def all_unk(*a, **k):
        c = real(*a, **k)
        unk = c.tokenizer.unk_token_id
        special = torch.isin(c.train_ids, torch.tensor(c.special_ids))
        return dataclasses.replace(c, train_ids=torch.where(special, c.train_ids, unk))

    assert _all_unk("\U0001F703\U0001F704 \u1200")
    monkeypatch.setattr(pretrain, "prepare_corpus", all_unk)
    code, out, err = run_cli(capsys, "pretrain", "--profile", "smoke", "--quiet")
    assert code == 2 and "train split's" in err and "no maskable token after tokenization" in err, err
    assert "data.tokenizer" in err and len([x for x in err.splitlines() if x.strip()]) == 1


def _all_unk(text: str) -> bool:
    from entmask.data import load_tokenizer
    from tests.conftest import VOCAB

    tok = load_tokenizer(str(VOCAB))
    return set(tok.tokenize(text)) == {tok.unk_token}


def test_teacher_vocab_differs_from_tokenizer(capsys, session_runs, tmp_path):
    from transformers import BertConfig, BertForMaskedLM

    BertForMaskedLM(BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64)).save_pretrained(str(tmp_path / "small-vocab"))
    code, out, err = run_cli(capsys, "pretrain", "--profile", "smoke", "--strategy", "high", "--teacher",
                             str(tmp_path / "small-vocab"))
    assert code == 2 and "vocabulary of 1000 but the tokenizer has 30522" in err


def test_info_and_overrides(capsys, session_runs):
    code, out, err = run_cli(capsys, "info", "--profile", "smoke", "--strategy", "marg", "--set", "train.lr=3e-4")
    assert code == 0
    cfg = json.loads(out[: out.index("\n# config hash")])
    assert cfg["masking"]["strategy"] == "marginal" and cfg["train"]["lr"] == 3e-4
    assert "mirror" in out and "# row lengths" not in out  # smoke trains whole rows only
    code, out, _ = run_cli(capsys, "info", "--profile", "cpu-wiki", "--set", "train.short_fraction=0.5",
                           "--set", "train.length_ramp=[[5, 0.25]]")
    assert code == 0 and ("# row lengths: 50% of the steps as 15 rows of 12, 25% of the steps as 5 rows of 32 (own "
                          "positions), then 25% whole rows of 152") in out


def test_profile_help_lists_every_profile():
    """--profile's help is read from the profile registry: a new profile (cpu-wiki was missing from a hand-written
    list) shows in every subcommand's help."""
    from entmask.cli_parser import build_parser
    from entmask.config.profiles import PROFILES

    sub = next(a for a in build_parser()._actions if a.choices and "reference" in a.choices)
    for name in ("info", "pretrain", "reference", "experiment"):
        text = " ".join(sub.choices[name].format_help().split())
        assert all(p in text for p in PROFILES) and "cpu-wiki" in text, name

def test_override_paths_agree():
    """The same override from Python, the CLI syntax and a notebook literal gives the same config and hash."""
    a = config.resolve("tiny", {"train.lr": 3e-4, "masking.strategy": "high"})
    b = config.resolve("tiny", config.parse_set_args(["train.lr=3e-4", "masking.strategy=high"]))
    assert a.short_hash() == b.short_hash() and a.to_dict() == b.to_dict()
    assert config.from_dict(json.loads(a.to_json())).short_hash() == a.short_hash()
    assert default_name(a) == "high-teacher"
    # a list of names: JSON, commas, or brackets without JSON's quotes (`--set finetune.tasks=[rte]` was refused as
    # the unknown task '[rte]')
    for text in ('["rte", "sst2"]', "rte,sst2", "[rte, sst2]", "['rte','sst2']", " [ rte ,sst2 ] "):
        got = config.resolve("tiny", config.parse_set_args([f"finetune.tasks={text}"])).finetune.tasks
        assert got == ["rte", "sst2"], text


def test_name_and_cosmetic_fields_do_not_change_hash():
    a = config.resolve("tiny", {"masking.strategy": "high"}, name="x")
    b = config.resolve("tiny", {"masking.strategy": "high", "train.logging_steps": 7}, name="y")
    c = config.resolve("tiny", {"masking.strategy": "low"})
    assert a.short_hash() == b.short_hash() != c.short_hash()


@pytest.mark.slow
def test_console_script_subprocess(session_runs):
    beside = Path(sys.executable).with_name("entmask")  # the venv's script, also when .venv/bin is not on PATH
    exe = str(beside) if beside.exists() else shutil.which("entmask")
    if exe is None:
        pytest.skip("entmask console script not installed (pip install -e .)")
    out = subprocess.run([exe, "pretrain", "--profile", "smoke", "--strategy", "nope"], capture_output=True,
                         text=True, env=dict(os.environ))
    assert out.returncode == 2 and out.stderr.strip().startswith("entmask: error: unknown masking strategy")
    out = subprocess.run([exe, "info", "--profile", "smoke", "--keys"], capture_output=True, text=True)
    assert out.returncode == 0 and "masking.strategy" in out.stdout.split()


LIGHT_PROBE = """
import sys
from entmask.cli import main
codes = [main(argv) for argv in ({argvs})]
heavy = sorted(m for m in ("transformers", "datasets", "sklearn", "pandas", "scipy") if m in sys.modules)
print(codes, heavy)
"""


def test_light_commands_load_no_training_stack(tmp_path):
    """`entmask --help`, `runs status` and a refused flag start in ~2 s, not ~9: they import neither transformers,
    datasets, scikit-learn nor pandas (torch alone comes with the masking registry that --strategy's help lists).
    An expected error of a module such a command never loads is still one line and exit 2 once a command has
    loaded it (`experiment nope` below, whose ExperimentError lives beside pandas)."""
    env = dict(os.environ, ENTMASK_RUNS_DIR=str(tmp_path))
    argvs = '["runs", "status"], ["pretrain", "--profile", "smoke", "--strategy", "nope"], ["runs", "export"]'
    out = subprocess.run([sys.executable, "-c", LIGHT_PROBE.format(argvs=argvs)], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [f"entmask runs: no runs under {tmp_path}", "[0, 2, 2] []"], out.stdout
    assert "unknown masking strategy" in out.stderr and "runs export needs a folder" in out.stderr
    out = subprocess.run([sys.executable, "-c", LIGHT_PROBE.format(argvs='["experiment", "nope"],')],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("[2] "), out.stderr
    err = out.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("entmask: error: unknown experiment 'nope'"), out.stderr


def test_reference_scores_every_view_its_students_train_on(capsys, session_runs):
    """`entmask reference --scores`: the teacher and its scores of the whole rows and of the short view, cached
    beside the corpus under the teacher's key, ready for `entmask runs export` to record them."""
    from entmask import runs

    # 6 articles: two passes over the corpus (smoke's 16 took ~50 s on the AVX2 CPU)
    code, out, err = run_cli(capsys, "reference", "--profile", "smoke", "--quiet", "--scores",
                             "--set", "train.short_rows=2", "--set", "data.max_articles=6")
    assert code == 0, err
    assert "the teacher's scores of train, train-short2 are cached beside corpus" in out
    assert "entmask runs export --profile smoke" in out
    from entmask.pretrain import run_folder

    ref = run_folder(config.resolve("smoke", {"train.short_rows": 2, "data.max_articles": 6}), "reference")
    key = runs.weights_key(ref / "model")
    names = {p.name for p in (session_runs / "cache" / "corpus").glob(f"*/entropy-*-{key}.safetensors")}
    assert {f"entropy-train-{key}.safetensors", f"entropy-train-short2-{key}.safetensors"} <= names
