"""A turning or nodding head on the classic engine keeps its nose and jaw line whole: the
warp's mesh is unfolded before it is drawn (the far side squeezed, not torn)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import portrait_animate.engines.classic.engine as classic_engine
from portrait_animate.engines.classic.anatomy import FACE_OVAL
from portrait_animate.engines.classic.engine import EXPRESSIVE, HEAD_POINTS, ClassicEngine
from portrait_animate.engines.classic.warp import (
    MIN_AREA_SHARE,
    _inside_map,
    _signed_areas,
    _triangles,
    unfold,
)
from portrait_animate.motion.editing import EditParams
from portrait_animate.motion.retargeting import edited_keypoints
from portrait_animate.pipeline.retargeting import prepare_editable_image, render_edit

NOSE_TIP = 1


@pytest.fixture(scope="module")
def engine():
    return ClassicEngine()


def _mesh_of(shared, engine, name: str, params: EditParams) -> tuple[np.ndarray, np.ndarray]:
    """(468, 2) source and target pixels of an edit of a source image."""
    image = prepare_editable_image(str(shared / f"assets/source/{name}.jpg"), engine)
    with torch.no_grad():
        x_d = edited_keypoints(engine, image.info.motion, engine.layout, params, stitching=True)
    pixels = image.appearance.pixels
    return pixels(image.info.x_s)[:468], pixels(x_d)[:468]


def _skin_area_shares(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Each skin triangle's (eyes and lips left out) target area over its source area."""
    tri = _triangles(np.ascontiguousarray(source, dtype=np.float64).tobytes())
    tri = tri[~np.isin(tri, EXPRESSIVE).any(1)]
    return _signed_areas(target, tri) / _signed_areas(source, tri)


def _outline_drawn(source: np.ndarray, target: np.ndarray) -> float:
    """The share of the face's outline (in the target) that the warp draws from the face: a
    dropped, folded triangle leaves a notch that the smooth extension fills."""
    k, origin = 2, target.min(0) - 10
    shape = tuple(int(v) for v in (np.ptp(target, axis=0)[::-1] + 20) // k)
    _, drawn = _inside_map(origin, k, shape, source, target, np.zeros(len(source)))
    outline = np.zeros(shape, np.uint8)
    cv2.fillPoly(outline, [np.round((target[list(FACE_OVAL)] - origin) / k).astype(np.int32)], 1)
    outline = cv2.erode(outline, np.ones((3, 3), np.uint8)).astype(bool)
    return float(drawn[outline].mean())


@pytest.mark.parametrize("name, params, notched", [("s5", EditParams(yaw=25), False),
                                                   ("s0", EditParams(yaw=-25), True),
                                                   ("s11", EditParams(yaw=-25), True),
                                                   ("s5", EditParams(pitch=15), False)])
def test_a_turn_or_a_nod_folds_no_skin_and_keeps_most_of_its_motion(shared, engine, name,
                                                                     params, notched):
    source, target = _mesh_of(shared, engine, name, params)
    assert (_skin_area_shares(source, target) < 0).sum() > 30  # the far side folds (47-73)
    if notched:  # and the dropped folds left notches in the outline (0.990 and 0.994 drawn)
        assert _outline_drawn(source, target) < 0.997
    out = unfold(source, target, HEAD_POINTS, EXPRESSIVE)
    assert _skin_area_shares(source, out).min() >= MIN_AREA_SHARE
    assert _outline_drawn(source, out) > 0.999
    # The eyes and the lips are where the motion put them, half the points are (51% to 67%),
    # and the nose keeps most of its travel (62% to 74%; a fold of its own holds it back).
    assert np.array_equal(out[list(EXPRESSIVE)], target[list(EXPRESSIVE)])
    assert (np.linalg.norm(out - target, axis=1) < 0.01).mean() > 0.4
    travel, kept = (np.linalg.norm(p[NOSE_TIP] - source[NOSE_TIP]) for p in (target, out))
    assert kept > 0.5 * travel


def test_a_face_that_folds_nowhere_is_left_as_it_is(shared, engine):
    source, target = _mesh_of(shared, engine, "s5", EditParams(smile=0.6, eyebrow=10))
    assert (_skin_area_shares(source, target) >= MIN_AREA_SHARE).all()
    assert np.array_equal(unfold(source, target, HEAD_POINTS, EXPRESSIVE), target)


def test_the_renderer_warps_to_the_unfolded_face(shared, engine, monkeypatch):
    seen = []
    warp_field = classic_engine.warp_field

    def spy(source, target, *args, **kwargs):
        seen.append((source, target))
        return warp_field(source, target, *args, **kwargs)

    monkeypatch.setattr(classic_engine, "warp_field", spy)
    image = prepare_editable_image(str(shared / "assets/source/s5.jpg"), engine)
    render_edit(engine, image, EditParams(yaw=25))
    (source, target), = seen
    assert _skin_area_shares(source[:468], target[:468]).min() >= MIN_AREA_SHARE
