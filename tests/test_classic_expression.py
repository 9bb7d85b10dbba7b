"""Relative image driving on the classic engine moves the source by the driver's expression
only: a face keeps its own shape, and takes the expression of a driving image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from media import read_video
from portrait_animate.cli.main import main
from portrait_animate.engines.classic.anatomy import BELOW_MOUTH, BROWS, CHEEKS, CHIN, EYES, LIPS
from portrait_animate.engines.classic.expression import image_expression
from portrait_animate.engines.classic.motion import (
    motion_from_landmarks,
    similarity_fit,
    to_normalized,
)
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import lip_ratio
from portrait_animate.io.video import iter_frames

EXPRESSION_SET = sorted(set(LIPS) | set(EYES) | set(BROWS))


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh() as m:
        yield m


def _write(path, image: np.ndarray):
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def _animate(tmp_path, source, driving) -> np.ndarray:
    assert main(["animate", "--engine", "classic", "-o", str(tmp_path), "--quiet",
                 "--save_frames", "-s", str(source), "-d", str(driving)]) == 0
    frame = next(next(tmp_path.glob("*_frames")).glob("*.png"))
    return cv2.cvtColor(cv2.imread(str(frame)), cv2.COLOR_BGR2RGB)


def _shape_error(points: np.ndarray, truth: np.ndarray) -> float:
    """Mean distance of mouth, eye and brow points after a 2-D similarity fit, over the
    inter-pupil distance."""
    a, b = (np.c_[p[EXPRESSION_SET], np.zeros(len(EXPRESSION_SET))] for p in (points, truth))
    scale, R, t = similarity_fit(a, b)
    fitted = scale * a @ R + t
    return float(np.linalg.norm(fitted - b, axis=1).mean() / np.linalg.norm(truth[468]
                                                                             - truth[473]))


def _motion(mesh, image: np.ndarray):
    return motion_from_landmarks(to_normalized(mesh.landmarks3d(image), max(image.shape[:2])))


def test_a_driver_at_rest_adds_nothing_and_an_expression_adds_only_it(shared, mesh):
    source = _motion(mesh, cv2.cvtColor(cv2.imread(str(shared / "assets/source/s0.jpg")),
                                        cv2.COLOR_BGR2RGB))
    at_rest = next(iter_frames(shared / "assets/source/s13.mp4", limit=1))
    # Canonical faces are about 1.3 units wide.
    assert float(image_expression(_motion(mesh, at_rest), source).abs().max()) < 0.005
    frames, _ = read_video(shared / "assets/driving/d9.mp4")
    opened = image_expression(_motion(mesh, frames[70]), source)[0].norm(dim=1)
    assert float(opened[sorted(set(LIPS))].mean()) > 0.02
    moving = set(EXPRESSION_SET) | set(CHIN) | set(CHEEKS) | set(BELOW_MOUTH)
    rest = [i for i in range(468) if i not in moving]
    assert float(opened[rest].max()) < 1e-6


def test_relative_image_driving_of_a_face_by_itself_takes_the_expression(shared, mesh,
                                                                          tmp_path):
    frames, _ = read_video(shared / "assets/driving/d9.mp4")
    rest, open_mouth = frames[0], frames[70]  # the widest mouth of the first 100 frames
    result = _animate(tmp_path, _write(tmp_path / "rest.png", rest),
                      _write(tmp_path / "open.png", open_mouth))
    out, src, truth = (mesh.landmarks(f) for f in (result, rest, open_mouth))
    assert lip_ratio(out) > lip_ratio(src) + 0.5 * (lip_ratio(truth) - lip_ratio(src))
    assert _shape_error(out, truth) < 0.6 * _shape_error(src, truth)


@pytest.mark.parametrize("driver", ["d30.jpg", "d12.jpg"])
def test_a_differently_shaped_driver_leaves_the_face_shape(shared, mesh, tmp_path, driver):
    source_path = shared / "assets/source/s0.jpg"
    source = cv2.cvtColor(cv2.imread(str(source_path)), cv2.COLOR_BGR2RGB)
    result = _animate(tmp_path, source_path, shared / "assets/driving" / driver)
    before, after = mesh.landmarks(source), mesh.landmarks(result)

    def span(points: np.ndarray, a: int, b: int) -> float:
        return float(np.linalg.norm(points[a] - points[b]))

    def eye_spacing(points: np.ndarray) -> float:
        return float(np.linalg.norm(points[[33, 133]].mean(0) - points[[362, 263]].mean(0)))

    assert eye_spacing(after) == pytest.approx(eye_spacing(before), rel=0.03)
    for name, (a, b) in {"jaw width": (172, 397), "nose length": (168, 1)}.items():
        assert span(after, a, b) == pytest.approx(span(before, a, b), rel=0.03), name
