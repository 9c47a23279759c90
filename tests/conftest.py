"""Shared fixtures: the offline mirror beside the checkout, and one session-scoped runs folder so the smoke
corpus, reference teacher and runs are prepared once and shared by every test that needs them."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = Path(os.environ.get("ENTMASK_DATA_DIR") or REPO.parent / "shared" / "data").resolve()
VOCAB = MIRROR.parent / "models" / "bert-base-uncased-vocab"

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
