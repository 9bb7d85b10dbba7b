"""Head-pose decoding, the rotation convention and the keypoint transform (SPEC 2.3-2.4).

Keypoints are (B, K, 3) row vectors in the normalised [-1, 1]^3 feature volume; a rotation
matrix R is applied as ``x @ R``.
"""

from __future__ import annotations

import math

import torch

from ..models.checks import check_shape

__all__ = [
    "NUM_BINS",
    "bins_to_degrees",
    "rotation_matrix",
    "rotation_angles",
    "transform_keypoints",
    "apply_stitching_delta",
]

NUM_BINS = 66


def bins_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """Expected angle of 66 three-degree bins centred on [-97.5, 97.5].

    Args:
        logits: (B, 66) bin logits, or (B, 1) degrees, which are returned unchanged.

    Returns:
        (B, 1) degrees.
    """
    if logits.ndim == 2 and logits.shape[1] == 1:
        return logits
    check_shape(logits, (None, NUM_BINS), "logits")
    idx = torch.arange(NUM_BINS, dtype=logits.dtype, device=logits.device)
    prob = torch.softmax(logits, dim=1)
    return (torch.sum(prob * idx, dim=1) * 3 - 97.5)[:, None]


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """R = (Rz Ry Rx)^T from angles in degrees, for row vectors.

    Args:
        pitch, yaw, roll: (B,) or (B, 1) degrees.

    Returns:
        (B, 3, 3) rotation matrices.
    """
    angles = []
    for name, a in (("pitch", pitch), ("yaw", yaw), ("roll", roll)):
        if a.ndim == 1:
            a = a[:, None]
        check_shape(a, (None, 1), name)
        angles.append(a / 180 * math.pi)
    x, y, z = angles
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    b = x.shape[0]
    rot_x = torch.cat([one, zero, zero, zero, x.cos(), -x.sin(), zero, x.sin(), x.cos()], 1)
    rot_y = torch.cat([y.cos(), zero, y.sin(), zero, one, zero, -y.sin(), zero, y.cos()], 1)
    rot_z = torch.cat([z.cos(), -z.sin(), zero, z.sin(), z.cos(), zero, zero, zero, one], 1)
    rot = rot_z.view(b, 3, 3) @ rot_y.view(b, 3, 3) @ rot_x.view(b, 3, 3)
    return rot.permute(0, 2, 1)


def rotation_angles(rotation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pitch, yaw and roll in degrees of R = (Rz Ry Rx)^T, the inverse of
    :func:`rotation_matrix` for |yaw| < 90.

    Args:
        rotation: (B, 3, 3).

    Returns:
        pitch, yaw, roll, each (B, 1), in the rotation's dtype.
    """
    check_shape(rotation, (None, 3, 3), "rotation")
    # Solved in float64 so that rotation_matrix(*rotation_angles(R)) returns R to float32
    # rounding.
    m = rotation.double().transpose(1, 2)
    pitch = torch.atan2(m[:, 2, 1], m[:, 2, 2])
    yaw = torch.asin((-m[:, 2, 0]).clamp(-1, 1))
    roll = torch.atan2(m[:, 1, 0], m[:, 0, 0])
    return tuple((a * 180 / math.pi)[:, None].to(rotation.dtype) for a in (pitch, yaw, roll))


def transform_keypoints(kp: torch.Tensor, rotation: torch.Tensor, exp: torch.Tensor,
                        scale: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x = s * (kp @ R + exp) + t with tz dropped (Eqn. 2 of the paper).

    Args:
        kp: (B, K, 3) canonical keypoints.
        rotation: (B, 3, 3).
        exp: (B, K, 3) expression offsets.
        scale: (B, 1).
        t: (B, 3); only tx and ty are added.

    Returns:
        (B, K, 3) transformed keypoints.
    """
    b, k = kp.shape[:2]
    check_shape(kp, (None, k, 3), "kp")
    check_shape(rotation, (b, 3, 3), "rotation")
    check_shape(exp, (b, k, 3), "exp")
    check_shape(scale, (b, 1), "scale")
    check_shape(t, (b, 3), "t")
    out = (kp @ rotation + exp) * scale[..., None]
    out[:, :, 0:2] += t[:, None, 0:2]
    return out


def apply_stitching_delta(x_d: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add the stitching network's output to the driving keypoints.

    Args:
        x_d: (B, K, 3) driving keypoints.
        delta: (B, 3K + 2): per-keypoint offsets, then (dx, dy) shared by every keypoint.

    Returns:
        (B, K, 3) stitched keypoints.
    """
    b, k = x_d.shape[:2]
    check_shape(delta, (b, 3 * k + 2), "delta")
    out = x_d + delta[:, : 3 * k].reshape(b, k, 3)
    out[..., :2] += delta[:, 3 * k : 3 * k + 2].reshape(b, 1, 2)
    return out
