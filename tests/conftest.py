"""Shared fixtures: one cached protocol dataset for the whole session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# A cache inside the checkout (git-ignored) so repeated local runs skip generation.
os.environ.setdefault("SSCBENCH_CACHE", str(Path(__file__).resolve().parent.parent / ".cache" / "sscbench"))


@pytest.fixture(scope="session")
def dataset():
    from sscbench import data
    from sscbench.spec import DataSpec

    return data.load(DataSpec())
