"""Image driving on the classic engine moves the source by the driver's expression only: a
face keeps its own shape, and takes the expression of a driving image, relative or
absolute."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from media import read_video
from portrait_animate.cli.main import main
from portrait_animate.engines.classic.anatomy import (
    ABOVE_MOUTH,
    BELOW_MOUTH,
    BROWS,
    CHEEKS,
    CHIN,
    EYE_CORNERS,
    EYES,
    INNER_LIPS,
    LIPS,
)
from portrait_animate.engines.classic.edits import mesh_edits
from portrait_animate.engines.classic.expression import absolute_expression, image_expression
from portrait_animate.engines.classic.motion import (
    classic_layout,
    motion_from_landmarks,
    similarity_fit,
    to_normalized,
)
from portrait_animate.engines.classic.retarget import lip_delta
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import lip_ratio
from portrait_animate.io.video import iter_frames
from portrait_animate.motion.composition import DrivingMode, compose_image_source
from portrait_animate.motion.editing import EditParams
from portrait_animate.motion.transform import transform_keypoints

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


def _image_motion(mesh, path):
    return _motion(mesh, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))


def test_a_driver_at_rest_adds_nothing_and_an_expression_adds_only_it(shared, mesh):
    source = _image_motion(mesh, shared / "assets/source/s0.jpg")
    at_rest = next(iter_frames(shared / "assets/source/s13.mp4", limit=1))
    # Canonical faces are about 1.3 units wide.
    assert float(image_expression(_motion(mesh, at_rest), source).abs().max()) < 0.005
    frames, _ = read_video(shared / "assets/driving/d9.mp4")
    opened = image_expression(_motion(mesh, frames[70]), source)[0].norm(dim=1)
    assert float(opened[sorted(set(LIPS))].mean()) > 0.02
    moving = set(EXPRESSION_SET) | set(CHIN) | set(CHEEKS) | set(BELOW_MOUTH) | set(ABOVE_MOUTH)
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


def _folds(x_s: torch.Tensor, x_d: torch.Tensor) -> list[tuple[int, ...]]:
    """The triangles of x_s's mesh (the eyes' and mouth's openings left out, which the
    renderer paints) that fold over in x_d: a fold tears the skin into a staircase."""
    source, target = (x[0, :468, :2].double().numpy() for x in (x_s, x_d))
    tri = Delaunay(source).simplices
    tri = tri[~np.isin(tri, list(INNER_LIPS) + list(EYES)).any(1)]

    def areas(p):
        a, b, c = p[tri[:, 0]], p[tri[:, 1]], p[tri[:, 2]]
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    return [tuple(t) for t in tri[np.sign(areas(source)) != np.sign(areas(target))]]


def _keypoints(motion, exp: torch.Tensor) -> torch.Tensor:
    return transform_keypoints(motion.kp, motion.R, exp, motion.scale, motion.t)


@pytest.mark.parametrize("source, driver", [("s5", "d19"), ("s11", "d19"), ("s5", "d30")])
def test_an_open_mouth_or_a_smile_moves_lips_and_chin_without_folding_them(shared, mesh,
                                                                             source, driver):
    """A dropping jaw carries the skin beneath the lip down without any point overtaking the
    one below it, and every ring of a lip moves with the lip (a still ring folded it)."""
    s = _image_motion(mesh, shared / f"assets/source/{source}.jpg")
    offsets = image_expression(_image_motion(mesh, shared / f"assets/driving/{driver}.jpg"), s)
    x_s, x_d = _keypoints(s, s.exp), _keypoints(s, s.exp + offsets)
    assert float(offsets.abs().max()) > 0.01  # the driver opens the mouth or smiles
    assert _folds(x_s, x_d) == []


def test_the_lip_sliders_and_lip_retargeting_do_not_fold_the_face(shared, mesh):
    image = cv2.cvtColor(cv2.imread(str(shared / "assets/source/s5.jpg")), cv2.COLOR_BGR2RGB)
    s = _motion(mesh, image)
    x_s = _keypoints(s, s.exp)
    for params in (EditParams(lip_open=120), EditParams(smile=1.0), EditParams(grin=15),
                   EditParams(pursing=15)):
        assert _folds(x_s, _keypoints(s, mesh_edits(s.exp, params))) == [], params
    opened = x_s + lip_delta(x_s, torch.tensor([[lip_ratio(mesh.landmarks(image)), 0.6]]))
    assert float((opened - x_s).abs().max()) > 0.05
    assert _folds(x_s, opened) == []



@pytest.mark.parametrize("mode", [DrivingMode(region="lip"),
                                  DrivingMode(relative=False, region="lip"),
                                  DrivingMode(region="lip", driving_is_video=False)],
                         ids=["video-lip", "absolute-lip", "image-lip"])
def test_a_copied_mouth_takes_the_skin_that_moves_with_it(shared, mesh, mode):
    """``--animation_region lip`` and absolute driving copy the mouth with its skin (chin,
    beneath the lower lip, above the upper lip, cheeks). The lips and chin copied alone
    left the skin between them where it was, and the lower lip went down past it and folded
    over it, a tear across the lip: 10 to 19 triangles on s5 and s11 by d9's widest mouth,
    17 by d19."""
    driving = list(itertools.islice(iter_frames(shared / "assets/driving/d9.mp4"), 71))
    for name in ("s5", "s11"):
        s = _image_motion(mesh, shared / f"assets/source/{name}.jpg")
        if mode.driving_is_video:
            anchor, driver = _motion(mesh, driving[0]), _motion(mesh, driving[70])
        else:
            anchor = driver = _image_motion(mesh, shared / "assets/driving/d19.jpg")
        x_s = s.keypoints()
        x_d = compose_image_source(s, driver, anchor, classic_layout(), mode).keypoints()
        assert float(x_d[0, 17, 1] - x_s[0, 17, 1]) > 0.03, name  # the lower lip goes down
        assert _folds(x_s, x_d) == [], name


def test_lip_retargeting_tapers_every_lip_ring_into_its_own_corner(shared, mesh):
    """The lower lip's rings fan out towards the corners; each ring's end point moves as the
    inner lip does at the same share of the way to its own corner. s6's slightly open mouth
    folded its outer lip's ends over the skin beside the corners (2, 2 and 3 triangles)."""
    image = cv2.cvtColor(cv2.imread(str(shared / "assets/source/s6.jpg")), cv2.COLOR_BGR2RGB)
    s = _motion(mesh, image)
    x_s = _keypoints(s, s.exp)
    for ratio in (0.3, 0.6, 0.8):
        opened = x_s + lip_delta(x_s, torch.tensor([[lip_ratio(mesh.landmarks(image)), ratio]]))
        assert float((opened - x_s).abs().max()) > 0.03, ratio
        assert _folds(x_s, opened) == [], ratio

def _below_chin(points: np.ndarray, shape: tuple[int, ...], near: float, far: float
                ) -> tuple[slice, slice]:
    """The band from ``near`` to ``far`` face sizes below the chin, a face size wide."""
    chin, size = points[152, :2], float(np.ptp(points[:, :2], axis=0).max())
    y0, y1 = (int(min(chin[1] + f * size, shape[0])) for f in (near, far))
    x0, x1 = int(chin[0] - 0.5 * size), int(chin[0] + 0.5 * size)
    return slice(y0, y1), slice(max(x0, 0), x1)


def test_an_opening_jaw_leaves_the_collar_where_it_was(shared, mesh, tmp_path):
    """The jaw drops the chin over the neck; the neck and the clothes below it stay (the
    expression's motion fades within its own length below the chin, the head's within the
    body's reach). s5's collar moved by 8.7 levels on average when the jaw dragged it."""
    source_path = shared / "assets/source/s5.jpg"
    source = cv2.cvtColor(cv2.imread(str(source_path)), cv2.COLOR_BGR2RGB)
    result = _animate(tmp_path, source_path, shared / "assets/driving/d19.jpg")
    points = mesh.landmarks(source)
    assert lip_ratio(mesh.landmarks(result)) > lip_ratio(points) + 0.3  # the jaw did drop

    def moved(near: float, far: float) -> float:
        band = _below_chin(points, source.shape, near, far)
        return float(np.abs(result[band].astype(int) - source[band]).mean())

    assert moved(0.5, 1.0) < 2.0      # the collar (it was 8.7)
    assert moved(0.25, 0.5) < 10.0    # the neck under the chin (it was 26)


def test_a_rising_jaw_stretches_the_neck_no_more_than_the_body_reach_did(shared, mesh):
    """Closing an open mouth pulls the neck up after the chin, a stretch: the expression's
    share then takes a reach as long as the body's, so the map under the chin shrinks no area
    more than it did (a short reach would fold the neck). Dropping the chin as far squeezes
    the neck instead, and the skin half a face below the chin stays, which it did not."""
    from portrait_animate.engines.classic.engine import HEAD_POINTS
    from portrait_animate.engines.classic.warp import _pixel_grid, warp_field

    image = cv2.cvtColor(cv2.imread(str(shared / "assets/source/s5.jpg")), cv2.COLOR_BGR2RGB)
    points = mesh.landmarks3d(image)[:468]
    source, depth = points[:, :2], points[:, 2]
    jaw = np.zeros(len(points))
    jaw[list(CHIN)] = 1.0
    jaw[list(BELOW_MOUTH)] = 0.6

    def field(target: np.ndarray, near: float, far: float, rigid: tuple[int, ...]
              ) -> tuple[np.ndarray, np.ndarray]:
        """The area ratio and the displacement length in a band below the chin."""
        warp = warp_field(source, target, depth, image.shape[:2], rigid=rigid)
        grid, (x0, y0, _, _) = warp.map, warp.roi
        det = (np.gradient(grid[..., 0], axis=1) * np.gradient(grid[..., 1], axis=0)
               - np.gradient(grid[..., 0], axis=0) * np.gradient(grid[..., 1], axis=1))
        rows, cols = _below_chin(target, image.shape, near, far)
        band = slice(rows.start - y0, rows.stop - y0), slice(cols.start - x0, cols.stop - x0)
        return det[band], np.linalg.norm((grid - _pixel_grid(warp.roi))[band], axis=-1)

    risen = source - np.c_[np.zeros(len(jaw)), 25.0 * jaw]  # 25 px up
    stretch, _ = field(risen, 0.05, 0.6, HEAD_POINTS)
    body_stretch, _ = field(risen, 0.05, 0.6, ())
    assert float(stretch.min()) > 0.5
    assert float(stretch.min()) >= float(body_stretch.min()) - 0.01
    dropped = source + np.c_[np.zeros(len(jaw)), 25.0 * jaw]
    squeeze, below = field(dropped, 0.45, 0.55, HEAD_POINTS)
    _, body_below = field(dropped, 0.45, 0.55, ())
    assert float(squeeze.min()) > 0.9  # a squeeze: no area shrinks
    assert float(below.max()) < 1.0 < 3.0 < float(body_below.max())


def _inner_gap(x: torch.Tensor) -> float:
    """The middle inner lips' gap of (1, K, 3) keypoints."""
    return float(x[0, 14, 1] - x[0, 13, 1])


@pytest.mark.parametrize("source", ["s5", "s11"])
def test_absolute_driving_by_a_stranger_gives_the_expression_and_keeps_the_face(shared, mesh,
                                                                                source):
    """Absolute driving by another person's image takes the source to the driver's
    expression on the source's own face. Copying the driver's expression (the reference's
    way, whose expression holds no face) gave the source the driver's eyes, brows and mouth
    on the mesh: 101 folded triangles over four sources and three drivers, and the eyes
    spaced as the driver's."""
    s = _image_motion(mesh, shared / f"assets/source/{source}.jpg")
    corners = [c for pair in EYE_CORNERS for c in pair]
    for driver in ("d12", "d19"):
        d = _image_motion(mesh, shared / f"assets/driving/{driver}.jpg")
        x_s = s.keypoints()
        x_d = compose_image_source(s, d, d, classic_layout(),
                                   DrivingMode(relative=False, region="exp",
                                               driving_is_video=False)).keypoints()
        assert _folds(x_s, x_d) == [], (source, driver)
        assert float((x_d[0, corners] - x_s[0, corners]).abs().max()) < 1e-6, driver
        if driver == "d19":  # the driver's open mouth
            assert _inner_gap(x_d) - _inner_gap(x_s) > 0.05


def test_absolute_driving_sets_the_expression_and_relative_driving_adds_to_it(shared, mesh):
    """Absolute driving by a closed mouth closes the source's open one (the driver's
    expression, whatever the source's), where relative driving by it, a face at rest, leaves
    the source as it is; a driver that reads as the source moves nothing."""
    frames = list(itertools.islice(iter_frames(shared / "assets/driving/d9.mp4"), 71))
    opened, closed = _motion(mesh, frames[70]), _motion(mesh, frames[0])
    assert float(absolute_expression(opened, opened).abs().max()) == 0.0
    x_s = opened.keypoints()
    for relative, kept in ((False, (0.0, 0.15)), (True, (0.9, 1.1))):
        x_d = compose_image_source(opened, closed, closed, classic_layout(),
                                   DrivingMode(relative, "all", driving_is_video=False))
        assert kept[0] <= _inner_gap(x_d.keypoints()) / _inner_gap(x_s) <= kept[1], relative
    assert _folds(x_s, compose_image_source(opened, closed, closed, classic_layout(), DrivingMode(
        False, "exp", driving_is_video=False)).keypoints()) == []


def test_absolute_driving_of_a_video_reproduces_it_on_its_own_first_frame(shared, mesh):
    """A driving video takes the source to its anchor frame's expression, then moves it by
    the driver's motion since: driving frame 0 itself by the video gives back every frame's
    expression exactly where it is copied, as copying it did."""
    frames = list(itertools.islice(iter_frames(shared / "assets/driving/d9.mp4"), 71))
    first = _motion(mesh, frames[0])
    copied = classic_layout().region_mask("all")
    for i in (10, 70):
        d = _motion(mesh, frames[i])
        out = compose_image_source(first, d, first, classic_layout(),
                                   DrivingMode(relative=False, region="all"))
        assert torch.allclose(out.exp[copied], d.exp[copied], atol=1e-6)
        assert torch.equal(out.exp[~copied], first.exp[~copied])
        assert torch.equal(out.R, d.R)
