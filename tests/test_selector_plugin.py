"""Issue 32: a new masking idea is one decorated function + this test. Registered at runtime, it resolves through
config.resolve (validation, run name, hash) and pretrains end to end through `entmask pretrain --profile smoke`."""
import json

import pytest
import torch

from entmask import config, masking
from entmask.cli import main


@pytest.fixture
def leftmost():
    @masking.register_selector("leftmost", help="the k leftmost candidates (a toy idea for this test)")
    def _leftmost(ent, candidates, k, generator=None, temperature=None):
        pos = torch.arange(ent.shape[1], device=ent.device).expand_as(ent).float()  # [B, T]
        return masking._first_k(pos, candidates, torch.zeros_like(k), k)

    yield "leftmost"
    masking.SELECTORS.pop("leftmost")


def test_a_registered_selector_resolves_and_names_its_runs(leftmost):
    cfg = config.resolve("smoke", {"masking.strategy": leftmost})
    assert cfg.masking.strategy == "leftmost" and cfg.uses_teacher()  # it ranks scores: the teacher is needed
    assert config.default_name(cfg) == "leftmost-teacher"
    assert cfg.short_hash() != config.resolve("smoke", {"masking.strategy": "high"}).short_hash()


@pytest.mark.slow
def test_a_registered_selector_pretrains_through_the_cli(leftmost, session_runs, capsys):
    code = main(["pretrain", "--profile", "smoke", "--strategy", leftmost, "--quiet", "--set", "train.max_steps=4"])
    out = capsys.readouterr().out
    assert code == 0, out
    runs_dir = [p for p in (session_runs / "smoke" / "pretrain").glob("leftmost-teacher-*") if p.is_dir()]
    assert len(runs_dir) == 1
    m = json.loads((runs_dir[0] / "metrics.json").read_text())
    assert m["strategy"] == "leftmost" and m["steps"] == 4
    assert m["masked_per_row_mean"] == pytest.approx(0.15 * m["candidates_per_row_mean"], abs=0.6)
