"""`make gpu-check` (entmask.bench.gpu_check): its CPU smoke mode end to end, the table's values, its refusals, and
the `train.compile` field it measures.

On the CPU the MFU column is "n/a (CPU)" by decision: a CPU has no peak in bench.PEAK_BF16_TFLOPS, and a number
made up for it would be trusted like the GPU's; with --peak-tflops the user's peak is used and MFU is computed."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from entmask.bench import gpu_check, gpu_report

ROOT = Path(__file__).resolve().parents[1]


def _table(text: str, header: str) -> list[list[str]]:
    """The body rows of the markdown table whose header row starts with `header`, as lists of cells."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows


def _num(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("×%"))


@pytest.mark.slow
def test_cpu_mode_prints_a_table_a_user_can_trust(tmp_path):
    out = tmp_path / "report.md"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "entmask.bench.gpu_check", "--cpu", "--quiet", "--out", str(out)],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    text = p.stdout
    steps = _table(text, "| model | row |")
    models = {r[0] for r in steps}
    assert models == {"bert-micro (2×64×2)", "bert-tiny (2×128×2)"}
    for model in models:
        rows = {r[1]: r for r in steps if r[0] == model}
        assert set(rows) == {"stock HF", "entmask random", "teacher-masked", "self-masked cold"}
        assert all(_num(r[3]) > 0 and _num(r[5]) > 0 and _num(r[6]) > 0 for r in rows.values())  # tokens/s, ms, TF/s
        assert rows["stock HF"][4] == "1.00×" and _num(rows["teacher-masked"][4]) > 0
        assert all(r[7] == gpu_report.NA_CPU for r in rows.values())  # MFU: present, n/a on a CPU (see docstring)
    teacher = _table(text, "| teacher |")
    assert len(teacher) == 2 and all(_num(r[4]) > 0 and r[6] == "1" and r[7] == "True" for r in teacher)
    e2e = dict((r[0], r[1]) for r in _table(text, "| | |"))
    first, last = (float(x) for x in re.findall(r"[\d.]+", e2e["training loss (first → last logged)"]))
    assert last < first  # finite and down over 10 steps at lr 1e-3
    assert e2e["checkpoint at the interruption"].startswith("checkpoint-5 (") and "optimizer.pt" in \
        e2e["checkpoint at the interruption"]
    assert e2e["resume"] == "from checkpoint-5: started at step 5, ended at step 10"
    assert "All 7 checks passed" in text
    doc = out.read_text()
    assert doc.startswith("# Performance on a GPU") and "command: `python -m entmask.bench.gpu_check --cpu" in doc
    assert "torch " in doc and "transformers " in doc and "date: " in doc


@pytest.mark.parametrize("argv, says", [
    (["--cpu", "--out", "docs/performance-gpu.md"], "holds the GPU's numbers"),
    (["--cpu", "--peak-tflops", "0"], "--peak-tflops 0.0: give the device's peak"),
    (["--cpu", "--peak-tflops", "nan"], "--peak-tflops nan"),
    (["--cpu", "--threads", "0"], "--threads 0: give at least 1"),
    (["--cpu", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_a_bad_input_is_one_line_naming_the_fix_and_exit_2(argv, says, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # so docs/performance-gpu.md is the committed page
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err, err


def test_without_a_gpu_it_says_so_and_how_to_run_the_smoke_mode(capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no CUDA device here" in err and "--cpu" in err


def test_mfu_is_defined_on_a_gpu_at_bf16_or_with_the_users_peak():
    row = {"tflops": 98.9, "precision": "bf16"}
    gpu = {"device": "cuda", "peak_tflops": 989.0, "peak_source": "bench.PEAK_BF16_TFLOPS"}
    assert gpu_report.mfu(row, gpu) == pytest.approx(0.1)
    assert gpu_report.mfu({**row, "precision": "fp32"}, gpu) is None  # an fp32 row against a bf16 peak: no
    assert gpu_report.mfu(row, {"device": "cpu", "peak_tflops": None}) is None
    assert gpu_report.mfu(row, {"device": "cpu", "peak_tflops": 9.89, "peak_source": "--peak-tflops"}) == \
        pytest.approx(10.0)


def test_train_compile_is_opt_in_left_out_of_hashes_at_its_default_and_reaches_the_trainer(tmp_path):
    from entmask import config
    from entmask.training_run import _training_args

    cfg = config.resolve("smoke")
    assert cfg.train.compile is False and "compile" not in cfg.hash_dict()["train"]
    on = config.resolve("smoke", {"train.compile": True})
    assert on.short_hash() != cfg.short_hash() and on.hash_dict()["train"]["compile"] is True
    assert _training_args(on, tmp_path, 10, 1, 1e-3, 4, 0.1, False).torch_compile is True
    assert _training_args(cfg, tmp_path, 10, 1, 1e-3, 4, 0.1, False).torch_compile is False


def test_a_failing_train_compile_row_costs_only_itself_and_fails_its_check(monkeypatch):
    from entmask.bench import steps

    calls = []

    def fake(specs, *args):
        calls.append([s.name for s in specs])
        if any(s.compiled for s in specs):
            raise RuntimeError("inductor: no compiler\nmore")
        return {s.name: {"tokens_per_s": 1.0} for s in specs}

    monkeypatch.setattr(steps, "bench_steps", fake)
    rows, err = gpu_check._steps(gpu_check.CPU, "bert-micro", "fp32", True, "cpu", False)
    assert len(calls) == 2 and "teacher-masked · compiled" in calls[0] and len(rows) == 4
    assert err == "RuntimeError: inductor: no compiler"
    res = {"models": [{"label": "m", "steps": rows, "compile": True, "compile_error": err,
                       "teacher": {"pass_tokens_per_s": 1.0, "passes_run": 1, "identical": True,
                                   "precision": "fp32", "cached_call_s": 0.0}}],
           "e2e": {"first_loss": 2.0, "last_loss": 1.0, "steps": 10, "checkpoint": "checkpoint-5",
                   "checkpoint_files": ["model.safetensors", "optimizer.pt"], "resumed_from": "checkpoint-5",
                   "resume_started_at": 5, "final_step": 10, "metrics_written": True, "model_written": True}}
    failed = [c["name"] for c in gpu_check.checks(res) if not c["ok"]]
    assert failed == ["m: the train.compile row ran"]
