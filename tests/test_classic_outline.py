"""The classic warp draws the face's outline where its mesh puts it: not on the cells of the
coarse grid it computes the field on (a staircase along an outline the motion stretches), and
not cut short where the face comes near the frame's edge (a hairline cut into blocks)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portrait_animate.engines.classic.anatomy import FACE_OVAL
from portrait_animate.engines.classic.warp import EDGE_REACH, WarpField, _stretch, warp_field
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.io.images import read_image_rgb

FOREHEAD = 10


@pytest.fixture(scope="module")
def landmarks(shared) -> tuple[np.ndarray, np.ndarray]:
    """(468, 2) pixels and (468,) depths of s6's face."""
    with FaceMesh() as mesh:
        points = mesh.landmarks3d(read_image_rgb(shared / "assets/source/s6.jpg"))
    return points[:468, :2].astype(np.float64), points[:468, 2].astype(np.float64)


def _sampled(field: WarpField, at: np.ndarray) -> np.ndarray:
    """(M, 2) source positions the field samples for output points ``at`` (M, 2)."""
    x0, y0 = field.roi[:2]
    xs, ys = (at[:, :1] - x0).astype(np.float32), (at[:, 1:] - y0).astype(np.float32)
    return np.concatenate([cv2.remap(np.ascontiguousarray(field.map[..., c]), xs, ys,
                                     cv2.INTER_LINEAR) for c in (0, 1)], axis=1)


def test_the_head_moves_the_hair_above_it_near_the_frames_top(landmarks):
    """The forehead 40 px under the frame's top, the face moved down 15 px: the hair just
    above it moves with it, and less and less further up (the field's ramp to the frame's
    edge moved it 2 px right above the forehead, and the skin came out cut into the hair in
    blocks), and the strip by the edge samples inside the frame."""
    xy, depth = landmarks
    source = xy - xy.min(axis=0) + [200, 40]
    h, w = (int(v) + 300 for v in source.max(axis=0)[::-1])
    field = warp_field(source, source + [0, 15], depth, (h, w))
    above = source[FOREHEAD] + [0, 15] - np.array([[0.0, d] for d in range(2, 31)])
    moved = (_sampled(field, above) - above)[:, 1]
    assert abs(moved[0] + 15) < 1.5, moved  # 2 px above the forehead
    steps = np.diff(moved)  # going up, one pixel at a time: the motion fades, without a jump
    assert (steps >= -1e-3).all() and steps.max() < 1.0, steps.round(2)
    # by the edge the hair stretches instead of repeating the frame's top row (streaks)
    by_edge = np.array([[x, y] for x in source[:, 0][::40] for y in (0.0, 4.0, 8.0)])
    assert (_sampled(field, by_edge)[:, 1] >= by_edge[:, 1] * (1 - EDGE_REACH) - 1e-3).all()


@pytest.mark.parametrize("past", [1.0, 3.0])
def test_an_outline_the_motion_stretches_lands_where_the_mesh_puts_it(landmarks, past):
    """The face grown 1.5 times: a point ``past`` pixels outside the drawn outline samples
    the source where the outline's triangles' map puts it (a copy of the nearest cell's
    displacement was off by 0.9-1.6 px at the median and up to 2.1 px, in steps of a cell)."""
    xy, depth = landmarks
    size = float(np.ptp(xy, axis=0).max())
    centre = 2 * size
    source = xy - xy.mean(axis=0) + centre
    target = (source - centre) * 1.5 + centre
    field = warp_field(source, target, depth, (int(4 * size),) * 2)
    a, b = target[list(FACE_OVAL)], target[np.roll(list(FACE_OVAL), -1)]
    middle = (a + b) / 2
    normal = np.stack([(b - a)[:, 1], (a - b)[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    normal *= np.sign(((middle - centre) * normal).sum(axis=1))[:, None]  # outwards
    at = middle + past * normal
    error = np.linalg.norm(_sampled(field, at) - ((at - centre) / 1.5 + centre), axis=1)
    assert np.median(error) < 0.4 and error.max() < 0.6, (np.median(error), error.max())


def test_a_sliver_at_the_outline_throws_nothing_past_it(landmarks):
    """Slivers along the outline (3 px high) squeezed to 1 px while the face moves 1 px:
    the mesh moves nothing more than 3 px, but the slivers' affine maps, taken past the mesh,
    moved the skin there by up to 7.8 px (4.0 now: a map that stretches at most 1x goes on
    within the rim). On s5's cheek one threw a dark blot of hair onto the skin for three
    frames of ``preset:talk``."""
    xy, depth = landmarks
    source = xy - xy.min(axis=0) + 100
    sides = list(zip(FACE_OVAL[::2], FACE_OVAL[1::2], strict=False))
    a, b = source[[i for i, _ in sides]], source[[j for _, j in sides]]
    out = np.stack([(b - a)[:, 1], (a - b)[:, 0]], axis=1)
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    out *= np.sign((out * ((a + b) / 2 - source.mean(axis=0))).sum(axis=1))[:, None]
    source = np.concatenate([source, (a + b) / 2 + 3 * out])  # 3 px past each side
    target = source + [1.0, 0.0]
    target[-len(sides):] = (a + b) / 2 + out + [1.0, 0.0]  # 1 px past it: 2 px in
    h, w = (int(v) + 100 for v in source.max(axis=0)[::-1])
    field = warp_field(source, target, np.append(depth, depth[[i for i, _ in sides]]), (h, w))
    x0, y0, x1, y1 = field.roi
    grid = np.stack(np.meshgrid(np.arange(x0, x1), np.arange(y0, y1)), axis=-1)
    moved = np.linalg.norm(field.map - grid - [-1.0, 0.0], axis=-1)
    assert moved.max() < 5.5, moved.max()


def test_the_stretch_of_a_triangles_map_is_its_largest_singular_value():
    """The outline's continuation is refused to maps that stretch more than ``RIM_STRETCH``;
    the closed form equals the SVD's largest singular value of J - I, and a degenerate
    target triangle is not a number (so it is refused too)."""
    rng = np.random.default_rng(0)
    source, target = rng.normal(size=(2, 500, 3, 2))
    edges = [np.stack([p[:, 0] - p[:, 2], p[:, 1] - p[:, 2]], axis=-1) for p in (source, target)]
    expected = np.linalg.norm(edges[0] @ np.linalg.inv(edges[1]) - np.eye(2), ord=2,
                              axis=(1, 2))
    np.testing.assert_allclose(_stretch(source, target), expected, rtol=1e-9)
    same = _stretch(target, target)
    np.testing.assert_allclose(same, 0.0, atol=1e-9)  # the identity map stretches nothing
    flat = target[:1].copy()
    flat[0, 2] = flat[0, 0]
    assert not _stretch(source[:1], flat)[0] <= 1.0
