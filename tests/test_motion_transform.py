"""Pure functions of the motion model: pose decoding, rotations, keypoint transform."""

from __future__ import annotations

import math

import pytest
import torch

from portrait_animate.motion import (
    apply_stitching_delta,
    bins_to_degrees,
    rotation_matrix,
    transform_keypoints,
)


def test_uniform_bins_decode_to_zero_and_degrees_pass_through():
    assert bins_to_degrees(torch.zeros(2, 66)).flatten().tolist() == [0.0, 0.0]
    degrees = torch.tensor([[12.5]])
    assert bins_to_degrees(degrees) is degrees


def test_peaked_bin_decodes_to_its_centre():
    logits = torch.full((1, 66), -1e4)
    logits[0, 40] = 0
    assert bins_to_degrees(logits).item() == pytest.approx(40 * 3 - 97.5)


def test_wrong_logit_shape_names_expected_shape():
    with pytest.raises(ValueError, match=r"\(\*, 66\)"):
        bins_to_degrees(torch.zeros(1, 65))


def test_rotation_is_transposed_zyx_product():
    R = rotation_matrix(torch.tensor([0.0]), torch.tensor([90.0]), torch.tensor([0.0]))[0]
    # Yaw 90: Ry maps x to -z; R is its transpose, applied to row vectors.
    x = torch.tensor([[1.0, 0.0, 0.0]])
    torch.testing.assert_close(x @ R, torch.tensor([[0.0, 0.0, -1.0]]), atol=1e-6, rtol=0)
    angles = torch.tensor([[10.0], [-20.0]]), torch.tensor([[5.0], [30.0]]), torch.tensor(
        [[-7.0], [3.0]])
    Rs = rotation_matrix(*angles)
    torch.testing.assert_close(Rs @ Rs.transpose(1, 2), torch.eye(3).expand(2, 3, 3),
                               atol=1e-6, rtol=0)
    roll = rotation_matrix(torch.zeros(1), torch.zeros(1), torch.tensor([30.0]))[0]
    c, s = math.cos(math.pi / 6), math.sin(math.pi / 6)
    torch.testing.assert_close(roll, torch.tensor([[c, s, 0], [-s, c, 0], [0, 0, 1.0]]))


def test_transform_scales_rotates_adds_exp_and_drops_tz():
    kp = torch.randn(1, 21, 3)
    exp = torch.randn(1, 21, 3)
    R = torch.eye(3)[None]
    out = transform_keypoints(kp, R, exp, torch.tensor([[2.0]]), torch.tensor([[0.1, 0.2, 5.0]]))
    expected = 2 * (kp + exp) + torch.tensor([0.1, 0.2, 0.0])
    torch.testing.assert_close(out, expected)


def test_transform_checks_shapes_up_front():
    with pytest.raises(ValueError, match=r"exp must have shape \(1, 21, 3\)"):
        transform_keypoints(torch.zeros(1, 21, 3), torch.eye(3)[None], torch.zeros(1, 63),
                            torch.ones(1, 1), torch.zeros(1, 3))


def test_stitching_delta_adds_offsets_then_shared_xy_shift():
    x_d = torch.zeros(1, 21, 3)
    delta = torch.zeros(1, 65)
    delta[0, :63] = torch.arange(63.0)
    delta[0, 63:] = torch.tensor([100.0, 200.0])
    out = apply_stitching_delta(x_d, delta)
    expected = torch.arange(63.0).reshape(1, 21, 3)
    expected[..., 0] += 100
    expected[..., 1] += 200
    torch.testing.assert_close(out, expected)
    assert x_d.abs().sum() == 0, "input must not be modified"
