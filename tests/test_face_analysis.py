"""MediaPipe face analysis on real portraits: largest face, tracking policy, crop geometry,
calibrated open ratios and paste-back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from portrait_animate.face.crop import crop_rotated, face_box, rotated_crop_matrix
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.pasteback import PasteBack, mask_template
from portrait_animate.face.ratios import eye_ratios, lip_ratio
from portrait_animate.io.images import read_image_rgb
from portrait_animate.pipeline.faces import CropSettings, track_faces


def rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh(0.15) as m:
        yield m


@pytest.fixture(scope="module")
def portrait(shared) -> np.ndarray:
    return rgb(shared / "assets/source/s0.jpg")


def test_mask_is_the_shipped_template(shared):
    shipped = cv2.imread(str(shared / "reference/mask_template.png"), cv2.IMREAD_COLOR)
    np.testing.assert_array_equal(mask_template(), shipped[..., 0])


def test_largest_face_is_picked(mesh, shared):
    big = rgb(shared / "assets/source/s0.jpg")
    small = cv2.resize(rgb(shared / "assets/source/s5.jpg"), (300, 300))
    canvas = np.zeros((big.shape[0], big.shape[1] + 320, 3), np.uint8)
    canvas[:, 320:] = big
    canvas[:300, :300] = small
    points = mesh.landmarks(canvas)
    assert points is not None and points[:, 0].min() > 320


def test_small_face_in_a_full_body_frame_is_found(mesh, shared):
    from media import read_video

    frames, _ = read_video(shared / "assets/source/s13.mp4")
    points = mesh.landmarks(frames[0])
    assert points is not None
    assert (points.max(0) - points.min(0)).max() < 150  # a ~100 px face in 720x1080


def test_a_small_face_in_a_large_photo_animates_and_drives(shared, tmp_path):
    """A 4000x3000 photo, shrunk to 1280 px, whose face is about 50 px there: the search of
    the whole image misses it, the detector on tiles of the image (as `faces` searches)
    finds it, in a source image and in a driving image."""
    from portrait_animate.cli.main import main

    canvas = np.full((3000, 4000, 3), 90, np.uint8)
    small = cv2.resize(cv2.imread(str(shared / "assets/source/s0.jpg")), None, fx=0.5, fy=0.5,
                       interpolation=cv2.INTER_AREA)
    canvas[1200:1200 + small.shape[0], 2600:2600 + small.shape[1]] = small
    cv2.imwrite(str(tmp_path / "photo.jpg"), canvas)
    with FaceMesh(0.15) as mesh:
        assert mesh.landmarks(cv2.resize(canvas, (1280, 960))[..., ::-1].copy()) is None
    assert main(["animate", "--engine", "classic", "-s", str(tmp_path / "photo.jpg"), "-d",
                 str(shared / "assets/driving/d19.jpg"), "-o", str(tmp_path), "--quiet"]) == 0
    result = cv2.imread(str(tmp_path / "photo--d19.jpg")).astype(int)
    source = cv2.resize(canvas, (1280, 960), interpolation=cv2.INTER_AREA).astype(int)
    changed = np.abs(result - source).max(axis=2) > 40
    ys, xs = np.nonzero(changed)
    # the mouth opened, inside the pasted portrait (x 832-928, y 384-496 at 1280 px)
    # (30 pixels: the opening of a 48 px face's mouth, the neck under it staying where it was)
    assert changed.sum() > 20 and 832 < xs.mean() < 928 and 384 < ys.mean() < 496
    # and as a driving image
    assert main(["animate", "--engine", "classic", "-s", str(shared / "assets/source/s5.jpg"),
                 "-d", str(tmp_path / "photo.jpg"), "-o", str(tmp_path), "--quiet"]) == 0


def test_a_frame_without_face_borrows_the_previous_and_shifts_nothing(mesh, portrait):
    noise = np.random.default_rng(0).integers(0, 255, portrait.shape, dtype=np.uint8)
    shifted = np.roll(portrait, 40, axis=1)
    track = track_faces([noise, portrait, noise, shifted], mesh, CropSettings(2.3, 0, -0.125))
    assert len(track) == 4 and track.found.tolist() == [False, True, False, True]
    np.testing.assert_array_equal(track.boxes[0].center, track.boxes[1].center)
    np.testing.assert_array_equal(track.boxes[2].center, track.boxes[1].center)
    assert track.boxes[3].center[0] == pytest.approx(track.boxes[1].center[0] + 40, abs=3)


def test_crop_maps_landmarks_and_inverts(mesh, portrait):
    points = mesh.landmarks(portrait)
    box = face_box(points, 2.3, 0.0, -0.125)
    crop = crop_rotated(portrait, box, 512)
    np.testing.assert_allclose(crop.M_o2c @ crop.M_c2o, np.eye(3), atol=1e-9)
    in_crop = points @ crop.M_o2c[:2, :2].T + crop.M_o2c[:2, 2]
    assert in_crop.min() > 0 and in_crop.max() < 512
    # The face spans about 1/2.3 of the crop.
    span = (in_crop.max(0) - in_crop.min(0)).max()
    assert 512 / 2.3 * 0.8 < span < 512 / 2.3 * 1.4


def test_vx_ratio_moves_the_crop_unlike_the_reference(mesh, portrait):
    points = mesh.landmarks(portrait)
    centred = face_box(points, 2.3, 0.0, -0.125)
    shifted = face_box(points, 2.3, 0.1, -0.125)
    np.testing.assert_allclose(shifted.center - centred.center, centred.u_x * 0.1 * centred.size)
    assert not np.allclose(rotated_crop_matrix(shifted, 512), rotated_crop_matrix(centred, 512))


def test_calibrated_ratios_on_real_faces(mesh, shared):
    from media import read_video

    frames, _ = read_video(shared / "assets/driving/d9.mp4")
    eyes, lips = [], []
    for frame in frames[::6]:
        points = mesh.landmarks(frame)
        if points is not None:
            eyes.append(np.mean(eye_ratios(points)))
            lips.append(lip_ratio(points))
    eyes, lips = np.array(eyes), np.array(lips)
    # The reference's scale: open eyes about 0.33-0.37, closed 0.00-0.05; closed lips < 0.01.
    assert 0.28 < np.median(eyes) < 0.42
    assert eyes.min() < 0.08
    assert np.median(lips) < 0.03


def test_paste_back_matches_full_frame_blend_and_leaves_far_pixels(mesh, portrait):
    points = mesh.landmarks(portrait)
    M_c2o = np.linalg.inv(rotated_crop_matrix(face_box(points, 2.3, 0, -0.125), 512))
    crop = np.full((512, 512, 3), 200, np.uint8)
    out = PasteBack(M_c2o, (portrait.shape[1], portrait.shape[0]))(crop, portrait)
    h, w = portrait.shape[:2]
    warped = cv2.warpAffine(crop, M_c2o[:2], (w, h))
    mask = cv2.warpAffine(np.repeat(mask_template()[..., None], 3, 2), M_c2o[:2], (w, h))
    mask = mask.astype(np.float32) / 255
    naive = np.clip(mask * warped + (1 - mask) * portrait, 0, 255).astype(np.uint8)
    assert np.abs(out.astype(int) - naive).max() <= 1
    untouched = mask[..., 0] == 0
    np.testing.assert_array_equal(out[untouched], portrait[untouched])
    assert untouched[:20, :20].all()


def test_a_failed_mediapipe_graph_is_replaced_and_the_image_run_again(shared):
    """MediaPipe's graphs now and then fail inside ("Packet isn't the sole owner of the
    holder") and then fail every later image; the mesh replaces the graph and goes on."""
    image = read_image_rgb(shared / "assets/source/s0.jpg")
    with FaceMesh() as mesh:
        expected = mesh.landmarks3d(image)
        broken = mesh._mesh

        def fail(_image):
            raise RuntimeError("Graph has errors: Packet isn't the sole owner of the holder.")

        broken.process = fail
        points = mesh.landmarks3d(image)
        assert mesh.rebuilt == 1 and mesh._mesh is not broken
        np.testing.assert_allclose(points, expected, atol=1e-3)
        assert mesh.landmarks3d(image) is not None and mesh.rebuilt == 1


def test_a_long_driver_is_analysed_on_several_meshes_with_the_same_result(shared, tmp_path,
                                                                          monkeypatch):
    """A driving video of 100 frames is shared out between two face meshes (threads), and its
    analysis, motion and anchor are those of one mesh, frame for frame."""
    from media import loop_video
    from portrait_animate.engines.classic import ClassicEngine
    from portrait_animate.pipeline import driving
    from portrait_animate.pipeline.animate import analyse_driving
    from portrait_animate.pipeline.inputs import InputKind
    from portrait_animate.pipeline.options import AnimateOptions
    from portrait_animate.pipeline.progress import Reporter

    video = loop_video(shared / "assets/driving/d0.mp4", tmp_path / "d0_100.mp4", 100)
    assert driving.analysis_workers(100) == min(2, driving.core_share())
    assert driving.analysis_workers(8) == 1
    twins = []
    twin = FaceMesh.twin
    monkeypatch.setattr(FaceMesh, "twin", lambda self: twins.append(1) or twin(self))
    options = AnimateOptions(source=str(video), driving=str(video), quiet=True)
    templates = {}
    for workers in (1, 2):
        monkeypatch.setattr(driving, "analysis_workers", lambda frames, n=workers: n)
        twins.clear()
        templates[workers] = analyse_driving(options, InputKind.VIDEO, ClassicEngine(),
                                             Reporter(True))
        assert len(twins) == workers - 1
    one, two = templates[1], templates[2]
    assert len(one.motions) == len(two.motions) == 100
    assert one.anchor == two.anchor
    np.testing.assert_array_equal(one.eye_ratios, two.eye_ratios)
    np.testing.assert_array_equal(one.lip_ratios, two.lip_ratios)
    for a, b in zip(one.motions, two.motions, strict=True):
        for name in ("scale", "R", "exp", "t"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_ordered_map_keeps_order_raises_at_the_item_and_stops_early():
    import threading

    from portrait_animate.pipeline.prefetch import ordered_map

    made = []

    def make():
        made.append(threading.get_ident())
        return lambda x: x * x

    assert list(ordered_map(make, range(40), 3)) == [x * x for x in range(40)]
    assert 1 <= len(made) <= 3 and len(set(made)) == len(made)  # one function per thread

    def failing():
        return lambda x: 1 // (x - 5)

    got = []
    with pytest.raises(ZeroDivisionError):
        for y in ordered_map(failing, range(10), 2):
            got.append(y)
    assert len(got) == 5

    taken = []

    def endless():
        i = 0
        while True:
            taken.append(i)
            yield i
            i += 1

    stream = ordered_map(make, endless(), 2)
    assert next(stream) == 0
    stream.close()
    assert len(taken) <= 5  # at most 2 x 2 ahead of the one taken
    with pytest.raises(ValueError, match="workers must be at least 1"):
        list(ordered_map(make, range(3), 0))


_MEDIAPIPE_WITHOUT_PYPLOT = """
import sys
{before}
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.io.images import read_image_rgb

with FaceMesh() as mesh:
    assert mesh.landmarks(read_image_rgb("sample:astronaut")) is not None
print("loaded", "matplotlib.pyplot" in sys.modules)
import matplotlib.pyplot as plt
from mediapipe.python.solutions import drawing_utils
assert drawing_utils.plt.figure is plt.figure  # its drawing helpers still draw
"""


@pytest.mark.parametrize("before", ["", "import matplotlib.pyplot"])
def test_the_face_mesh_loads_mediapipe_without_matplotlib(before):
    """MediaPipe's drawing helpers import matplotlib's pyplot as MediaPipe loads (0.47 s and
    27 MB of each command's start-up); the face mesh loads without it, and pyplot imported
    later, or before, is the real one, which those helpers then use."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _MEDIAPIPE_WITHOUT_PYPLOT.format(before=before)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == str(bool(before)), done.stdout
