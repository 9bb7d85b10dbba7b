"""From renders to what is shown: the result alone is the result of the (result, view) pair,
and a whole frame pasted back makes no crop view for it (live shows no view)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from portrait_animate.face.crop import axis_aligned_crop_matrix
from portrait_animate.pipeline import compositing
from portrait_animate.pipeline.compositing import Compositor

CROP = 512


@pytest.mark.parametrize("full_frame", [True, False])
@pytest.mark.parametrize("paste", [True, False])
@pytest.mark.parametrize("still", [False, True])
def test_the_result_alone_is_the_result_of_the_pair(full_frame: bool, paste: bool,
                                                    still: bool):
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (360, 480, 3), np.uint8)
    M_c2o = np.linalg.inv(axis_aligned_crop_matrix(np.array([100.0, 60, 300, 260]), CROP))
    rendered = rng.integers(0, 256, frame.shape if full_frame else (CROP, CROP, 3), np.uint8)
    faces = [np.array([[380.0, 40], [460, 40], [420, 120]])] if still else []
    engine = SimpleNamespace(renders_full_frame=full_frame)
    result, view = Compositor(engine, paste).group([rendered], frame, [M_c2o], faces)
    alone = Compositor(engine, paste).result([rendered], frame, [M_c2o], faces)
    assert view.shape == (CROP, CROP, 3)
    np.testing.assert_array_equal(alone, result)
    if paste:  # the whole frame, the still face kept as it was
        assert alone.shape == frame.shape
        if still:
            np.testing.assert_array_equal(alone[70:90, 410:430], frame[70:90, 410:430])


def test_a_whole_frame_pasted_back_makes_no_crop_view(monkeypatch):
    def no_view(*_):
        raise AssertionError("a crop view was made")

    monkeypatch.setattr(compositing, "crop_view", no_view)
    frame = np.zeros((360, 480, 3), np.uint8)
    M_c2o = np.linalg.inv(axis_aligned_crop_matrix(np.array([100.0, 60, 300, 260]), CROP))
    engine = SimpleNamespace(renders_full_frame=True)
    assert Compositor(engine, True).result([frame + 1], frame, [M_c2o])[0, 0, 0] == 1
