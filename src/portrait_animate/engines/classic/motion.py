"""Landmarks <-> the shared motion model: x = s * (x_c @ R + delta) + t.

Landmarks live in the crop's normalised frame like LivePortrait's keypoints: x and y in
[-1, 1] over the 256x256 crop, z in the same units. The canonical shape x_c is one generic
face (MediaPipe's mesh of the scikit-image astronaut, centred and scaled), so pose comes from
a similarity fit on the rigid points and delta is the exact residual: a frame's motion
reproduces its landmarks.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ...face.mesh import FaceMesh
from ...motion.model import MESH_LAYOUT_NAME, KeypointLayout, Motion
from .anatomy import (
    ABOVE_MOUTH,
    BELOW_MOUTH,
    BROWS,
    CHEEKS,
    CHIN,
    EYES,
    INNER_LIPS,
    IRISES,
    LIPS,
    NUM_POINTS,
    OUTER_LIPS,
)

__all__ = ["classic_layout", "canonical_shape", "to_normalized", "similarity_fit",
           "motion_from_landmarks", "ratio_motion", "RIGID_POINTS"]

CROP = 256
#: The mouth and the skin that moves with it (the chin, beneath the lower lip, between the
#: nose and the upper lip, the cheeks): what the lip region copies. Lips copied without it
#: went down past the skin that stayed and folded over it, a tear across the lip.
MOUTH_POINTS = tuple(sorted(set(LIPS) | set(CHIN) | set(BELOW_MOUTH) | set(ABOVE_MOUTH)
                            | set(CHEEKS)))
EXPRESSION_POINTS = tuple(sorted(set(MOUTH_POINTS) | set(EYES) | set(IRISES) | set(BROWS)))
#: The points the head's pose is fitted on: all but the inner and outer lips, eyes, irises,
#: brows and chin. The lips' two middle rings stay among them, as they were before they
#: became expression points, so the canonical face (every mesh template's ``kp``) stays the
#: same and templates written before keep their frame.
RIGID_POINTS = tuple(i for i in range(NUM_POINTS) if i not in set(INNER_LIPS) | set(OUTER_LIPS)
                     | set(EYES) | set(IRISES) | set(BROWS) | set(CHIN))


@functools.lru_cache(maxsize=1)
def classic_layout() -> KeypointLayout:
    """The 478 mesh points; "exp" moves the mouth and its skin, eyes, irises and brows."""
    pattern = np.zeros((NUM_POINTS, 3), dtype=bool)
    pattern[list(EXPRESSION_POINTS)] = True
    from .edits import mesh_edits
    from .expression import absolute_expression, image_expression, video_expression

    return KeypointLayout(name=MESH_LAYOUT_NAME, num_kp=NUM_POINTS, exp_pattern=pattern,
                          lip=MOUTH_POINTS,
                          eyes=tuple(sorted(set(EYES) | set(IRISES))),
                          neutral_exp=np.zeros((1, NUM_POINTS, 3)), edit=mesh_edits,
                          identity_free_expression=False, image_expression=image_expression,
                          absolute_expression=absolute_expression,
                          video_expression=video_expression,
                          ratio_motion=ratio_motion)


def to_normalized(points: np.ndarray, size: int = CROP) -> np.ndarray:
    """(N, 3) crop pixels (z in pixels) -> the crop's [-1, 1] frame."""
    return points / (size / 2) - np.array([1.0, 1.0, 0.0])


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares s, R (row-vector rotation), t with dst ~ s * src @ R + t (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / (a**2).sum(1).mean())
    R = rot.T
    return scale, R, mu_d - scale * mu_s @ R


@functools.lru_cache(maxsize=1)
def canonical_shape() -> np.ndarray:
    """(478, 3) generic face: the astronaut's mesh, centred on its rigid points, unit RMS."""
    from skimage import data

    with FaceMesh(0.15) as mesh:
        points = mesh.landmarks3d(np.ascontiguousarray(data.astronaut()[..., :3]))
    points = points - points[list(RIGID_POINTS)].mean(0)
    return points / np.sqrt((points[list(RIGID_POINTS)] ** 2).sum(1).mean()) * 0.5


def _tensor(a: np.ndarray | float, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(shape))


@functools.lru_cache(maxsize=1)
def _canonical_kp() -> torch.Tensor:
    """(1, 478, 3) float32 :func:`canonical_shape`, the one ``kp`` every motion shares (a
    video's motions are kept for every frame: a copy each was 5.6 KB a frame)."""
    return _tensor(canonical_shape(), (1, NUM_POINTS, 3))


def motion_from_landmarks(points: np.ndarray) -> Motion:
    """The motion of (478, 3) normalised landmarks, with the canonical shape as ``kp`` (one
    tensor shared by every motion: never change it in place)."""
    canonical = canonical_shape()
    rigid = list(RIGID_POINTS)
    scale, R, t = similarity_fit(canonical[rigid], points[rigid])
    exp = (points - t) / scale - canonical @ R
    return Motion(scale=_tensor(scale, (1, 1)), R=_tensor(R, (1, 3, 3)),
                  exp=_tensor(exp, (1, NUM_POINTS, 3)), t=_tensor(t, (1, 3)),
                  kp=_canonical_kp())


def ratio_motion(eye_ratios: tuple[float, float], lip_ratio: float) -> Motion:
    """The canonical face, unposed, with its eyes and lips opened to the given ratios
    (:func:`~.retarget.ratio_expression`)."""
    from .retarget import ratio_expression

    return Motion(scale=_tensor(1.0, (1, 1)), R=_tensor(np.eye(3), (1, 3, 3)),
                  exp=ratio_expression(eye_ratios, lip_ratio), t=_tensor(np.zeros(3), (1, 3)),
                  kp=_canonical_kp())
