"""The classic engine's eyes, measured on rendered portraits: a closed eye is lid skin with a
lash line, not a dark smudge, and a gaze edit moves the irises the mesh finds in the output."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.engines.classic.anatomy import ABOVE_LIDS, EYE_CORNERS, LOWER_LIDS
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.motion.editing import EditParams
from portrait_animate.pipeline.retargeting import prepare_editable_image, render_edit

IRIS_CENTRES = (468, 473)


@pytest.fixture(scope="module")
def engine():
    return ClassicEngine()


@pytest.fixture(scope="module")
def portrait(engine):
    # A photographed face whose upper lids are light skin above a dark lash line.
    return prepare_editable_image("sample:astronaut", engine)


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh() as m:
        yield m


def eye_frame(points: np.ndarray, eye: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Origin (a corner), (2, 2) rows along / across the eye, and the eye's width."""
    a, b = points[EYE_CORNERS[eye][0]], points[EYE_CORNERS[eye][1]]
    width = float(np.linalg.norm(b - a))
    along = (b - a) / width
    return a, np.array([along, [-along[1], along[0]]]), width


def lid_and_cheek(shape: tuple[int, int], points: np.ndarray,
                  eye: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) masks, from the open source's landmarks: where a closed upper lid lies (the
    middle of the eye, from the ring above down to a quarter above the lower lid, clear of
    the lash line) and a patch of cheek below the eye."""
    origin, axes, width = eye_frame(points, eye)
    ys, xs = np.mgrid[: shape[0], : shape[1]]
    x, y = np.moveaxis((np.stack([xs, ys], -1) - origin) @ axes.T, -1, 0)

    def curve(indices: tuple[int, ...]) -> np.ndarray:
        knots = (points[list(indices)] - origin) @ axes.T
        knots = knots[np.argsort(knots[:, 0])]
        return np.interp(x, knots[:, 0], knots[:, 1])

    above = curve(ABOVE_LIDS[eye])
    lower = curve((EYE_CORNERS[eye][0], *LOWER_LIDS[eye], EYE_CORNERS[eye][1]))
    lid = ((x > 0.2 * width) & (x < 0.8 * width) & (y > above)
           & (y < lower - 0.25 * (lower - above)))
    cheek = (x - 0.5 * width) ** 2 + (y - width) ** 2 < (0.25 * width) ** 2
    return lid, cheek


def test_closed_lids_are_skin_coloured(engine, portrait, mesh):
    shut = render_edit(engine, portrait, EditParams(blink=30)).pasted
    points = mesh.landmarks(portrait.frame)
    lab = cv2.cvtColor(shut, cv2.COLOR_RGB2LAB).astype(float)
    for eye in range(2):
        lid, cheek = (lab[m] for m in lid_and_cheek(shut.shape[:2], points, eye))
        skin = cheek[:, 0].mean()
        near_black = float((lid[:, 0] < 0.5 * skin).mean())
        distance = float(np.linalg.norm(lid.mean(0) - cheek.mean(0)))
        assert near_black < 0.02, (eye, near_black)
        assert lid[:, 0].mean() > 0.72 * skin, (eye, lid[:, 0].mean(), skin)
        assert distance < 60, (eye, distance)


def iris_offsets(points: np.ndarray) -> np.ndarray:
    """(2,) each iris centre's position along its eye, in eye widths."""
    offsets = []
    for eye, centre in enumerate(IRIS_CENTRES):
        origin, axes, width = eye_frame(points, eye)
        offsets.append((points[centre] - origin) @ axes[0] / width)
    return np.array(offsets)


@pytest.mark.parametrize("gaze_x", [-30, 30])
def test_gaze_moves_the_irises(engine, portrait, mesh, gaze_x):
    rest = iris_offsets(mesh.landmarks(portrait.frame))
    looking = render_edit(engine, portrait, EditParams(gaze_x=gaze_x)).pasted
    moved = (iris_offsets(mesh.landmarks(looking)) - rest) * np.sign(gaze_x)
    assert np.all(moved > 0.1), moved


def test_an_eye_opens_at_most_as_far_as_its_eyeball_shows(portrait):
    """The lids open at most MAX_OPENING_GROWTH times the source's opening (an eye-ratio edit
    of 0.8 on narrow eyes stretched the irises into slits); a smaller opening, and a closed
    lid resting on the lower one, are left as they are."""
    from portrait_animate.engines.classic.anatomy import UPPER_LIDS
    from portrait_animate.engines.classic.eyes import (
        MAX_OPENING_GROWTH,
        MIN_LID_GAP,
        separate_lids,
    )

    source = portrait.appearance.pixels(portrait.info.x_s)
    upper, lower = list(UPPER_LIDS[0]), list(LOWER_LIDS[0])
    _, axes, _ = eye_frame(source, 0)
    gap = (source[lower] - source[upper]) @ axes[1]
    assert gap.max() > 4  # an open eye

    def opened(times: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The target with the opening ``times`` the source's, separated, and its gaps."""
        target = source.copy()
        target[upper] -= (times - 1) * gap[:, None] * axes[1]
        out = separate_lids(source, target)
        return target, out, (out[lower] - out[upper]) @ axes[1]

    _, _, gaps = opened(3.0)
    assert (gaps <= MAX_OPENING_GROWTH * gap + MIN_LID_GAP + 1e-6).all(), (gaps, gap)
    target, out, _ = opened(1.1)
    np.testing.assert_array_equal(out, target)
    target, out, gaps = opened(0.05)  # shut: the upper lid rests just above the lower
    np.testing.assert_allclose(gaps, MIN_LID_GAP, atol=1e-6)
    np.testing.assert_array_equal(out[lower], target[lower])
