"""Shared fixtures: named datasets and seeded randomness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import matplotlib

matplotlib.use("Agg")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator; every test that draws random numbers uses it."""
    return np.random.default_rng(20260124)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The bundled data folder."""
    return DATA
