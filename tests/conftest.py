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


@pytest.fixture(scope="session")
def group_picture(shared: Path, tmp_path_factory) -> Path:
    """A group photo of three ``../shared`` portraits of different sizes, 1040x480: s6
    (largest, left), s0 (middle) and s5 (smallest, right, lowest)."""
    from media import face_tile, group_canvas
    from portrait_animate.face.mesh import FaceMesh
    from portrait_animate.io.images import read_image_rgb, write_image_rgb

    with FaceMesh() as mesh:
        tiles = [(face_tile(read_image_rgb(shared / f"assets/source/{name}.jpg"), side, mesh),
                  x, y) for name, side, x, y in (("s6", 400, 20, 40), ("s0", 320, 440, 100),
                                                 ("s5", 240, 780, 160))]
    return write_image_rgb(tmp_path_factory.mktemp("group") / "group.png",
                           group_canvas(tiles, (480, 1040)))
