"""The classic engine's mouths, measured on rendered stills: a wide-open mouth without driving
pixels shows a shaded dark cavity, upper teeth and a tongue; a driver's teeth stay teeth-
coloured; a smile bends the lips and lifts the cheeks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from media import clip
from portrait_animate.cli.main import main
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.engines.classic.anatomy import CHEEKS, INNER_LIPS, OUTER_LIPS
from portrait_animate.engines.classic.edits import mesh_edits
from portrait_animate.engines.classic.mouth import lip_colour, paint_mouth
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import lip_ratio
from portrait_animate.motion.editing import EditParams
from portrait_animate.pipeline.retargeting import prepare_editable_image, render_edit


@pytest.fixture(scope="module")
def mesh():
    with FaceMesh() as m:
        yield m


def opening(image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) RGB pixels of the middle half of the mouth opening (between the inner lips), and
    (N,) their depth down the opening: 0 at the upper lip, 1 at the lower."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(INNER_LIPS), :2]).astype(np.int32)], 1)
    ys, xs = np.nonzero(mask)
    (left, _), (right, _) = points[78, :2], points[308, :2]
    middle = np.abs(xs - (left + right) / 2) < 0.25 * (right - left)
    depth = (ys - points[13, 1]) / (points[14, 1] - points[13, 1])
    return image[ys[middle], xs[middle]].astype(float), depth[middle]


def value_and_saturation(pixels: np.ndarray) -> tuple[float, float]:
    """HSV value (0-255) and saturation (0-1) of the mean colour of (N, 3) RGB pixels."""
    mean = pixels.mean(0)
    return float(mean.max()), float((mean.max() - mean.min()) / max(mean.max(), 1.0))


@pytest.mark.parametrize("source", ["s0.jpg", "s11.jpg"])
def test_wide_open_mouth_shows_cavity_teeth_and_tongue(shared, mesh, source, tmp_path):
    engine = ClassicEngine()
    image = prepare_editable_image(str(shared / "assets/source" / source), engine)
    still = render_edit(engine, image, EditParams(lip_open=120)).pasted
    cv2.imwrite(str(tmp_path / "open.png"), cv2.cvtColor(still, cv2.COLOR_RGB2BGR))
    points = mesh.landmarks(still)
    assert lip_ratio(points) > lip_ratio(mesh.landmarks(image.frame)) + 0.2
    pixels, depth = opening(still, points)
    teeth, cavity, tongue = (pixels[(depth >= lo) & (depth < hi)]
                             for lo, hi in ((0.0, 0.25), (0.4, 0.65), (0.75, 1.0)))
    assert min(len(teeth), len(cavity), len(tongue)) >= 8
    teeth_v, teeth_s = value_and_saturation(teeth)
    cavity_v, _ = value_and_saturation(cavity)
    tongue_v, _ = value_and_saturation(tongue)
    # A dark cavity, but not a flat black slot; reddish.
    assert 20 < cavity_v < 110, cavity.mean(0)
    assert cavity.mean(0)[0] > cavity.mean(0)[2], cavity.mean(0)
    # Upper teeth: bright and nearly grey.
    assert teeth_v > 2 * cavity_v and teeth_v > 100, teeth.mean(0)
    assert teeth_s < 0.3, teeth.mean(0)
    # Tongue: lighter than the cavity, red.
    red, green, blue = tongue.mean(0)
    assert tongue_v > 1.4 * cavity_v, tongue.mean(0)
    assert red > 1.25 * green and red > 1.25 * blue, tongue.mean(0)


def test_driver_teeth_keep_a_teeth_colour(shared, mesh, tmp_path):
    # d0 shows its teeth from frame 18 on; s5's lips are orange, which its teeth must not be.
    d0 = clip(shared / "assets/driving/d0.mp4", tmp_path / "d0.mp4", 1.0)
    assert main(["animate", "--engine", "classic", "-o", str(tmp_path), "--quiet",
                 "--save_frames", "-s", str(shared / "assets/source/s5.jpg"), "-d",
                 str(d0)]) == 0
    last = sorted(next(tmp_path.glob("*_frames")).glob("*.png"))[-1]
    frame = cv2.cvtColor(cv2.imread(str(last)), cv2.COLOR_BGR2RGB)
    pixels, _ = opening(frame, mesh.landmarks(frame))
    brightness = pixels.mean(1)
    teeth = pixels[brightness >= np.percentile(brightness, 70)]
    teeth_v, teeth_s = value_and_saturation(teeth)
    assert teeth_v > 150 and teeth_s < 0.3, teeth.mean(0)


def test_smile_bends_the_lips_and_lifts_the_cheeks():
    offsets = mesh_edits(torch.zeros(1, 478, 3), EditParams(smile=1.0))[0, :, :2].numpy()
    corner = np.linalg.norm(offsets[61])
    assert offsets[61, 1] < 0 and offsets[291, 1] < 0
    # Around the lips each point moves almost as its neighbour: nothing left behind to stretch.
    ring = offsets[list(OUTER_LIPS)]
    assert np.linalg.norm(ring - np.roll(ring, 1, axis=0), axis=1).max() < 0.3 * corner
    cheeks = offsets[list(CHEEKS)]
    assert (cheeks[:, 1] < 0).all(), "every cheek point goes up"
    assert np.median(np.linalg.norm(cheeks, axis=1)) > 0.3 * corner


def test_driving_lips_outside_the_driving_crop_leave_a_painted_mouth(shared, mesh):
    """A driver whose lips lie outside its crop lends no mouth: the opening is painted, and
    nothing fails."""
    image = cv2.cvtColor(cv2.imread(str(shared / "assets/source/s0.jpg")), cv2.COLOR_BGR2RGB)
    points = mesh.landmarks(image)[:, :2]
    target = points.copy()
    lower = [95, 88, 178, 87, 14, 317, 402, 318, 324]  # the inner lower lip, between corners
    target[lower, 1] += 0.5 * np.linalg.norm(points[61] - points[291])  # the mouth opens
    driving = cv2.resize(image, (64, 64))
    far = 4 * points + image.shape[1] * 4  # larger than the target (so shrunk), and outside
    out = image.copy()
    paint_mouth(out, points, target, lip_colour(image, points), driving, far)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(target[list(INNER_LIPS)]).astype(np.int32)], 1)
    assert np.abs(out.astype(int) - image)[mask == 1].mean() > 10


@pytest.mark.parametrize("source", ["s5.jpg", "s11.jpg"])
def test_a_mouth_closed_from_open_shows_lips_not_a_seam(shared, mesh, source, tmp_path):
    """Closing an open mouth squeezes its dark inside into a line between the lips, which the
    warp's coarse grid draws as a jagged black and white seam (the darkest lip pixels at 0.26
    to 0.34 of the lips' median brightness); the seam is filled from the lips around it."""
    engine = ClassicEngine()
    image = prepare_editable_image(str(shared / "assets/source" / source), engine)
    opened = tmp_path / "open.png"
    cv2.imwrite(str(opened), cv2.cvtColor(render_edit(engine, image, EditParams(lip_open=120))
                                          .pasted, cv2.COLOR_RGB2BGR))
    open_image = prepare_editable_image(str(opened), engine)
    closed = render_edit(engine, open_image, EditParams(), lip_ratio=0.0).pasted
    points = mesh.landmarks(closed)
    assert lip_ratio(mesh.landmarks(open_image.frame)) > 0.2 and lip_ratio(points) < 0.05
    mask = np.zeros(closed.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], 1)
    luma = (closed.astype(float) @ [0.299, 0.587, 0.114])[mask > 0]
    assert np.percentile(luma, 2) > 0.5 * np.median(luma)


def test_a_closed_mouth_closed_further_paints_no_opening(shared):
    """``lip_open`` at its low end presses a closed mouth's lips past each other: there is no
    opening to paint (the crossed lips' polygon was taken for one, a dark flat blob)."""
    engine = ClassicEngine()
    image = prepare_editable_image(str(shared / "assets/source/s5.jpg"), engine)
    points = image.appearance.pixels(image.info.x_s)[:468]
    mask = np.zeros(image.frame.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], 1)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8)).astype(bool)

    def darkest(edit: EditParams) -> float:
        """The 10th percentile of the luma around the lips, in the pasted result."""
        pasted = render_edit(engine, image, edit).pasted
        return float(np.percentile(pasted[mask] @ [0.299, 0.587, 0.114], 10))

    assert darkest(EditParams(lip_open=-90)) > darkest(EditParams()) - 15
