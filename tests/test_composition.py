"""Motion composition (SPEC 4.5-4.6) as pure functions, against hand-written expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portrait_animate.motion import rotation_matrix
from portrait_animate.motion.composition import (
    DrivingMode,
    apply_expression_friendly,
    compose_image_source,
    compose_video_source,
    expression_friendly_multiplier,
    video_source_tracks,
)
from portrait_animate.motion.model import LIP_ARRAY, LIVEPORTRAIT_LAYOUT, REGIONS, Motion

L = torch.from_numpy(LIP_ARRAY[None]).float()
LIP = list(LIVEPORTRAIT_LAYOUT.lip)
EYES = list(LIVEPORTRAIT_LAYOUT.eyes)


def motion(seed: int, angles=(5.0, -10.0, 3.0)) -> Motion:
    g = torch.Generator().manual_seed(seed)
    p, y, r = (torch.tensor([[a + seed]]) for a in angles)
    return Motion(scale=torch.rand(1, 1, generator=g) + 0.5, R=rotation_matrix(p, y, r),
                  exp=0.05 * torch.randn(1, 21, 3, generator=g),
                  t=0.1 * torch.randn(1, 3, generator=g),
                  kp=torch.randn(1, 21, 3, generator=g))


S, D0, DI = motion(1), motion(2), motion(3)


def close(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_exp_pattern_is_the_reference_index_set():
    mask = LIVEPORTRAIT_LAYOUT.exp_pattern
    full = [1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert mask[full].all()
    assert not mask[[0, 7, 10]].any()
    assert mask[3].tolist() == mask[4].tolist() == [False, True, False]
    assert mask[5].tolist() == mask[8].tolist() == [False, False, True]
    assert mask[9].tolist() == [False, True, True]


def test_relative_all_from_video():
    out = compose_image_source(S, DI, D0, LIVEPORTRAIT_LAYOUT, DrivingMode(True, "all", True))
    close(out.R, (DI.R @ D0.R.transpose(1, 2)) @ S.R)
    close(out.exp, S.exp + (DI.exp - D0.exp))
    close(out.scale, S.scale * (DI.scale / D0.scale))
    close(out.t, S.t + (DI.t - D0.t))
    assert out.kp is S.kp


def test_relative_from_image_subtracts_lip_array_except_for_eyes():
    mode = DrivingMode(True, "exp", False)
    close(compose_image_source(S, D0, D0, LIVEPORTRAIT_LAYOUT, mode).exp, S.exp + (D0.exp - L))
    eyes = compose_image_source(S, D0, D0, LIVEPORTRAIT_LAYOUT, DrivingMode(True, "eyes", False))
    expected = S.exp.clone()
    expected[:, EYES] = (S.exp + D0.exp)[:, EYES]
    close(eyes.exp, expected)


@pytest.mark.parametrize("region", ["exp", "pose", "lip", "eyes"])
def test_relative_regions_from_video(region):
    out = compose_image_source(S, DI, D0, LIVEPORTRAIT_LAYOUT, DrivingMode(True, region, True))
    d = S.exp + (DI.exp - D0.exp)
    expected_exp = {"exp": d, "pose": S.exp}.get(region)
    if expected_exp is None:
        expected_exp = S.exp.clone()
        idx = LIP if region == "lip" else EYES
        expected_exp[:, idx] = d[:, idx]
    close(out.exp, expected_exp)
    close(out.scale, S.scale)
    if region == "pose":
        close(out.R, (DI.R @ D0.R.transpose(1, 2)) @ S.R)
        close(out.t, S.t + (DI.t - D0.t))
    else:
        close(out.R, S.R)
        close(out.t, S.t)


@pytest.mark.parametrize("region", REGIONS)
def test_absolute_regions(region):
    out = compose_image_source(S, DI, D0, LIVEPORTRAIT_LAYOUT, DrivingMode(False, region, True))
    mask = LIVEPORTRAIT_LAYOUT.region_mask(region)
    close(out.exp, torch.where(mask, DI.exp, S.exp))
    close(out.scale, S.scale)
    pose = region in ("all", "pose")
    close(out.R, DI.R if pose else S.R)
    close(out.t, DI.t if pose else S.t)


def test_keypoints_drop_tz():
    out = compose_image_source(S, DI, D0, LIVEPORTRAIT_LAYOUT, DrivingMode(False, "all", True))
    x = out.keypoints()
    expected = out.scale[..., None] * (S.kp @ DI.R + out.exp)
    expected[..., :2] += DI.t[:, None, :2]
    close(x, expected)


def test_video_source_relative_video_tracks_are_smoothed_sums():
    src, drv = [motion(10 + i) for i in range(4)], [motion(20 + i) for i in range(4)]
    mode = DrivingMode(True, "all", True)
    tracks = video_source_tracks(src, drv, LIVEPORTRAIT_LAYOUT, mode, 1e-12)
    for i in range(4):
        # A tiny observation variance makes the smoother follow the observations.
        torch.testing.assert_close(tracks.exp[i], (src[i].exp + drv[i].exp) - drv[0].exp,
                                   atol=1e-5, rtol=0)
        torch.testing.assert_close(tracks.R[i], (drv[i].R @ drv[0].R.transpose(1, 2)) @ src[i].R,
                                   atol=1e-5, rtol=0)
    assert video_source_tracks(src, drv, LIVEPORTRAIT_LAYOUT, DrivingMode(True, "lip", True),
                               1e-12).R is None


def test_video_source_relative_image_uses_float64_neutral_offset_and_source_pose():
    src = [motion(10 + i) for i in range(3)]
    tracks = video_source_tracks(src, [D0], LIVEPORTRAIT_LAYOUT, DrivingMode(True, "all", False),
                                 3e-7)
    for i in range(3):
        expected = (src[i].exp.numpy() + (D0.exp.numpy() - LIP_ARRAY[None])).astype(np.float32)
        np.testing.assert_array_equal(tracks.exp[i].numpy(), expected)
        assert torch.equal(tracks.R[i], src[i].R)


def test_video_source_absolute_image_repeats_driving():
    src = [motion(10 + i) for i in range(3)]
    tracks = video_source_tracks(src, [D0], LIVEPORTRAIT_LAYOUT,
                                 DrivingMode(False, "all", False), 3e-7)
    assert all(torch.equal(e, D0.exp) for e in tracks.exp)
    assert all(torch.equal(r, D0.R) for r in tracks.R)


@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("region", REGIONS)
def test_compose_video_source_frame(relative, region):
    mode = DrivingMode(relative, region, True)
    exp_track, rot_track = motion(40).exp, motion(41).R
    out = compose_video_source(S, DI, exp_track, rot_track, LIVEPORTRAIT_LAYOUT, mode)
    close(out.exp, torch.where(LIVEPORTRAIT_LAYOUT.region_mask(region), exp_track, S.exp))
    pose = region in ("all", "pose")
    close(out.R, rot_track if pose else S.R)
    close(out.t, DI.t if (pose and not relative) else S.t)
    close(out.scale, S.scale)


def test_expression_friendly_reproduces_source_at_frame_zero_and_scales_motion():
    x_s, x_d0, x_di = S.keypoints(), D0.with_(kp=S.kp).keypoints(), DI.with_(kp=S.kp).keypoints()
    m = expression_friendly_multiplier(x_s, x_d0)
    close(apply_expression_friendly(x_s, x_d0, x_d0, m), x_s)
    close(apply_expression_friendly(x_s, x_di, x_d0, m), x_s + m * (x_di - x_d0))
    # Doubling the driving shape multiplies its hull volume by 8, so m shrinks by sqrt(8).
    assert expression_friendly_multiplier(x_s, 2 * x_d0) == pytest.approx(m / np.sqrt(8))


def test_relative_pose_from_a_driving_image_moves_nothing_and_says_so():
    """A driving image is its own first frame: relative pose from it is the identity, on an
    image source and on a video source; absolute pose from it moves the head."""
    mode = DrivingMode(True, "pose", driving_is_video=False)
    assert mode.moves_nothing
    close(compose_image_source(S, D0, D0, LIVEPORTRAIT_LAYOUT, mode).keypoints(), S.keypoints())
    tracks = video_source_tracks([S], [D0], LIVEPORTRAIT_LAYOUT, mode, 3e-7)
    frame = compose_video_source(S, D0, tracks.exp[0], tracks.R[0], LIVEPORTRAIT_LAYOUT, mode)
    close(frame.keypoints(), S.keypoints())
    for moving in (DrivingMode(False, "pose", False), DrivingMode(True, "pose", True),
                   DrivingMode(True, "all", False)):
        assert not moving.moves_nothing
    absolute = compose_image_source(S, D0, D0, LIVEPORTRAIT_LAYOUT, DrivingMode(False, "pose",
                                                                                False))
    assert (absolute.keypoints() - S.keypoints()).abs().max() > 0.1


@pytest.mark.parametrize("region", REGIONS)
def test_expression_friendly_changes_nothing_in_relative_motion(region):
    """SPEC 4.6 applies only in relative motion from a driving video, whose frame 0 composes
    to the source's own keypoints: m = 1 and x_s + m (x_d,i - x_d,0) = x_d,i up to float
    rounding, whatever the region or the engine's keypoints (README, --driving_option)."""
    mode = DrivingMode(True, region, driving_is_video=True)
    x_s = S.keypoints()
    x_d0 = compose_image_source(S, D0, D0, LIVEPORTRAIT_LAYOUT, mode).keypoints()
    x_di = compose_image_source(S, DI, D0, LIVEPORTRAIT_LAYOUT, mode).keypoints()
    close(x_d0, x_s)
    m = expression_friendly_multiplier(x_s, x_d0)
    assert m == pytest.approx(1, abs=1e-6)
    close(apply_expression_friendly(x_s, x_di, x_d0, m), x_di)
