"""Shared fixtures: where the real-data fixtures live. Keep this small and generic."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES_REAL = TESTS / "data" / "real"  # committed copies (see PROVENANCE.md)
# The full curated set (157 SDSS files, ...) beside the checkout; absent in a fresh clone.
SHARED_REAL = Path(os.environ.get("FNET_REAL_DATA", REPO.parent / "shared" / "data" / "real"))


@pytest.fixture(scope="session")
def real_dir() -> Path:
    """tests/data/real: the committed real fixtures."""
    return FIXTURES_REAL


@pytest.fixture(scope="session")
def real_manifest() -> pd.DataFrame:
    """tests/data/real/manifest.csv indexed by `file` (e.g. 'sdss/spec-0266-51602-0013.fits')."""
    return pd.read_csv(FIXTURES_REAL / "manifest.csv", dtype=str).set_index("file")


@pytest.fixture(scope="session")
def shared_real_dir() -> Path:
    """../shared/data/real (override with FNET_REAL_DATA); skips the test when it is absent."""
    if not (SHARED_REAL / "manifest.csv").exists():
        pytest.skip(f"full real-data set not found at {SHARED_REAL} (fresh clone?)")
    return SHARED_REAL


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a test module (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):
    on a shared 2-core machine two OpenMP threads stall in barriers, and the reproducibility tests
    need a fixed thread count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def mock_store(tmp_path_factory) -> Path:
    """A 60-spectrum DR16Q-like mock survey (seed 3) ingested into a store, one per test module (tests write
    predictions and triage runs into it)."""
    import warnings

    from inspector.ingest import ingest
    from inspector.mock import make_survey

    tmp = tmp_path_factory.mktemp("mock_store")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_survey(tmp / "s", 60, seed=3, workers=1, progress=False)
        ingest([str(tmp / "s")], tmp / "store", workers=1, progress=False)
    return tmp / "store"


@pytest.fixture
def db_url(tmp_path) -> str:
    """A fresh, migrated, empty inspection database (SQLite file, or PostgreSQL with FNET_TEST_DB_URL);
    a module whose tests need rows defines its own `db_url` on top of `db_helpers.fresh_database`."""
    from db_helpers import fresh_database

    return fresh_database(tmp_path)
