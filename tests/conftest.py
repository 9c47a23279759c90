"""Shared fixtures: the offline mirror beside the checkout, and one session-scoped runs folder so the smoke
corpus, reference teacher and runs are prepared once and shared by every test that needs them."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("ENTMASK_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
VOCAB = MIRROR.parent / "models" / "bert-base-uncased-vocab"

# Under pytest-xdist (`make test` runs two workers on two cores) each worker gets one torch thread, and so does every
# process it starts (CLI subprocesses, torchrun ranks, notebook kernels): two workers of two threads each would fight
# for the cores, and torch's waiting threads spin. Set before torch is imported anywhere in the worker.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

# Config hashes fingerprint the data source they resolve to: without the variable, a test run alone (pytest
# tests/test_phases.py::test_config_checks_and_hashes) resolved another source than under `make test` (which
# exports it) and saw other hashes. Set once here, before any test resolves a config.
if (MIRROR / "wikitext").is_dir():
    os.environ.setdefault("ENTMASK_DATA_DIR", str(MIRROR))

needs_mirror = pytest.mark.skipif(not (MIRROR / "wikitext").is_dir(),
                                  reason=f"offline mirror not found at {MIRROR} (set ENTMASK_DATA_DIR)")


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not (MIRROR / "wikitext").is_dir():
        pytest.skip(f"offline mirror not found at {MIRROR}")
    return MIRROR


@pytest.fixture(scope="session")
def session_runs(tmp_path_factory, mirror) -> Path:
    """One runs root for the whole session (smoke corpus, reference and runs are built once)."""
    root = tmp_path_factory.mktemp("runs")
    os.environ["ENTMASK_RUNS_DIR"] = str(root)
    os.environ["ENTMASK_DATA_DIR"] = str(mirror)
    return root


@pytest.fixture(scope="session")
def tokenizer(mirror):
    from entmask.data import load_tokenizer

    return load_tokenizer(str(VOCAB))


@pytest.fixture(scope="session")
def tiny_mlm(tmp_path_factory) -> Path:
    """A random BertForMaskedLM (hidden 32, 2 layers) on the BERT vocabulary, saved with its tokenizer."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from entmask.data import load_tokenizer

    if not VOCAB.is_dir():
        pytest.skip(f"BERT vocabulary not found at {VOCAB}")
    d = tmp_path_factory.mktemp("mlm")
    tok = load_tokenizer(str(VOCAB))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)
    BertForMaskedLM(cfg).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


# Seconds per test file on the AVX2 CPU (session 29's quiet fresh-clone run, fixtures included; the summary below
# prints them after every run). `make test` sends whole files to its two workers (`--dist loadfile`, with xdist's
# own reordering by test count turned off) in this order, longest first, so that the last file to finish is a
# short one: with the files in name order the workers ended 739 s and 851 s in. Unlisted files go last, in name
# order; a stale figure only costs balance, never a test.
FILE_SECONDS = {"test_notebooks.py": 276, "test_faults.py": 260, "test_experiments.py": 237, "test_pretrain.py": 201,
                "test_hardening.py": 116, "test_browser.py": 85, "test_phases.py": 70, "test_reliability.py": 62,
                "test_allocator.py": 45, "test_cli.py": 33, "test_golden.py": 27, "test_stats.py": 25,
                "test_selector_plugin.py": 23, "test_gpu_check.py": 18, "test_experiment_plugin.py": 14,
                "test_html_and_edges.py": 13, "test_beyond.py": 12}


def pytest_collection_modifyitems(session, config, items):
    """Longest files first (see FILE_SECONDS); the order of tests inside a file is kept (sorted() is stable)."""
    items[:] = sorted(items, key=lambda it: -FILE_SECONDS.get(Path(str(it.fspath)).name, 0))


def pytest_terminal_summary(terminalreporter):
    """The per-part table of issue 33: seconds per test file (setup + call + teardown of its tests, fixtures
    included) and per xdist worker, so a slow run says where its time went and whether the workers were balanced
    (`--dist loadfile` sends each file to one worker)."""
    per_file: dict[str, float] = {}
    per_worker: dict[str, float] = {}
    for reports in terminalreporter.stats.values():
        for r in reports:
            d, nodeid = getattr(r, "duration", None), getattr(r, "nodeid", "")
            if not isinstance(d, float) or not nodeid:
                continue
            per_file[nodeid.split("::")[0]] = per_file.get(nodeid.split("::")[0], 0.0) + d
            node = getattr(r, "node", None)  # the worker that ran it, under xdist
            w = getattr(getattr(node, "gateway", None), "id", "main")
            per_worker[w] = per_worker.get(w, 0.0) + d
    if not per_file:
        return
    tw = terminalreporter
    tw.write_sep("=", "seconds per test file (setup + call + teardown)")
    for f, s in sorted(per_file.items(), key=lambda kv: -kv[1]):
        tw.write_line(f"{s:8.1f}  {f}")
    tw.write_line(f"{sum(per_file.values()):8.1f}  in all; per worker: "
                  + ", ".join(f"{w} {s:.0f} s" for w, s in sorted(per_worker.items())))



@pytest.fixture(scope="session")
def seed_root(session_runs):
    """`seed_root(root)`: copy the session's built teachers and corpus caches (teacher entropies included) into a
    fresh runs root, so a test that needs a root of its own finds them by hash instead of building them again (a
    smoke reference and its pass over the corpus: ~30 s on the AVX2 CPU). Only what exists is copied."""
    import shutil

    def seed(root: Path, profile: str = "smoke") -> Path:
        for sub in (Path("cache") / "corpus", Path(profile) / "reference"):
            if (session_runs / sub).is_dir():
                shutil.copytree(session_runs / sub, root / sub, dirs_exist_ok=True)
        return root
    return seed
