"""The shared real PANOPTES files: found through PANOPTES_TEST_DATA, never copied here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def data_root() -> Path:
    return Path(os.environ.get("PANOPTES_TEST_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def test_data() -> Path:
    """The shared data folder; skipped when absent, but a failure in CI (CI must have it)."""
    root = data_root()
    if not (root / "panoptes" / "unsolved.fits").is_file():
        reason = f"shared PANOPTES test data not found at {root} (set PANOPTES_TEST_DATA)"
        if os.environ.get("CI"):
            pytest.fail(reason + ": CI must provide it")
        pytest.skip(reason)
    return root
