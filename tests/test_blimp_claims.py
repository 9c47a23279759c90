"""The claims on BLiMP (entmask.blimp_claims): students' blimp.json files as units of the pooled model."""
import numpy as np
import pytest

from entmask import config, runs
from entmask.blimp_claims import blimp_claim, blimp_fit
from entmask.experiments import at_seed, matrix
from entmask.pretrain import run_folder

N = 4000  # pairs per student (binomial s.d. ~0.8 points)


def _write(root, label_acc: dict, seeds, per_paradigm=9, odd=None):
    cfg = config.resolve("smoke")
    rng = np.random.default_rng(0)
    for label, c in matrix("static", cfg):
        for ps in seeds:
            acc = label_acc[label] + rng.normal(0, 0.01)  # a student's own noise, ~1 point
            correct = "".join("1" if x else "0" for x in rng.random(N) < acc)
            per = 3 if odd == (label, ps) else per_paradigm
            d = run_folder(at_seed(c, ps), "pretrain", root)
            d.mkdir(parents=True, exist_ok=True)
            runs.write_json(d / "blimp.json", {"accuracy": correct.count("1") / N, "correct": correct,
                                               "scoring": {"per_paradigm": per, "variant": "within_word_l2r"}})
    return cfg


def test_a_clear_blimp_gain_is_supported_and_a_null_one_is_not(mirror, tmp_path):
    acc = {"baseline": 0.60, "random-static": 0.60, "teacher-high": 0.70, "teacher-low": 0.60}
    cfg = _write(tmp_path, acc, seeds=(0, 1, 2), odd=("teacher-low", 2))
    bf = blimp_fit({"static": {"pretrain_seeds": [0, 1, 2]}}, cfg, tmp_path)
    assert bf["fit"] is not None and len(bf["docs"]) == 11  # 12 students, one scored on other pairs
    assert "scored with other pairs than the rest, left out: teacher-low seed 2" in bf["text"]
    hi = blimp_claim(bf, "teacher-high", "baseline", +1, plateau=False)
    assert hi["BLiMP verdict"] == "supported" and hi["BLiMP Δ"] == pytest.approx(10, abs=3)
    lo, up = (float(x) for x in hi["BLiMP 95% CI"].strip("[]").split(","))
    assert 0 < lo < hi["BLiMP Δ"] < up
    assert "on " in hi["BLiMP why"] and "seeds 0, 1, 2" in hi["BLiMP why"]
    null = blimp_claim(bf, "teacher-low", "baseline", +1, plateau=False)
    assert null["BLiMP verdict"] == "unresolved" and abs(null["BLiMP Δ"]) < 3
    assert "seeds 0, 1" in null["BLiMP why"]  # the seeds both were scored alike at
    assert blimp_claim(bf, "teacher-high", "baseline", +1, plateau=True)["BLiMP verdict"] == "unresolved"


def test_no_scores_say_so(mirror, tmp_path):
    bf = blimp_fit({"static": {"pretrain_seeds": [0, 1]}}, config.resolve("smoke"), tmp_path)
    assert bf["fit"] is None and "no BLiMP score: random seed 0" in bf["text"]
    assert blimp_claim(bf, "teacher-high", "baseline", +1, False)["BLiMP verdict"] == "unresolved"
