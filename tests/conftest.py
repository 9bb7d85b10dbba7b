"""Shared fixtures: the ``../shared`` reference folder and cached synthetic weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` beside the checkout; tests that need it skip when it is absent."""
    if not (SHARED / "reference").is_dir():
        pytest.skip(f"reference material not found at {SHARED} (../shared beside the checkout)")
    return SHARED


@pytest.fixture(scope="session")
def manifest(shared: Path) -> dict:
    return json.loads((shared / "reference/liveportrait_state_dict_manifest.json").read_text())


@pytest.fixture(scope="session")
def parity_fixture(shared: Path) -> dict[str, np.ndarray]:
    with np.load(shared / "reference/parity_s0_d30.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def synthetic_weights() -> Path:
    """The synthetic weights, generated once into the user cache (outside the checkout)."""
    from portrait_animate.engines.neural import cached_synthetic_weights

    return cached_synthetic_weights()


@pytest.fixture(scope="session")
def networks(synthetic_weights: Path):
    from portrait_animate.engines.neural import LivePortraitNetworks

    return LivePortraitNetworks.from_pretrained(synthetic_weights, force_cpu=True)
