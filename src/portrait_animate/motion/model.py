"""The motion model: a frame's motion and the keypoint layout it acts on.

A frame's motion is x = s * (x_c @ R + delta) + t (tz dropped): canonical keypoints x_c,
rotation R, expression offsets delta, scale s and translation t. Both engines share it; only
the keypoint layout (count, region index sets, neutral expression) differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..choices import REGIONS
from ..models.checks import check_shape
from .editing import liveportrait_edits
from .transform import transform_keypoints

__all__ = ["Motion", "KeypointLayout", "LIVEPORTRAIT_LAYOUT", "LIP_ARRAY", "REGIONS",
           "MESH_LAYOUT_NAME", "MESH_POINTS", "LAYOUT_KEYPOINTS"]

#: The reference's neutral, closed-mouth expression (``lip_array.pkl``), verbatim, (21, 3).
LIP_ARRAY = np.array([
    (-9.4524e-05, 0.00024222, -4.009739999999999e-05),
    (0.000208596, 0.000468054, 1.2746399999999999e-05),
    (-0.000124602, 0.00032497200000000003, 4.425e-06),
    (0.000119652, -0.000456624, 5.40852e-05),
    (-0.000265254, -7.459799999999999e-05, -1.5527999999999998e-05),
    (-3.3488399999999996e-05, -0.000183036, -3.4940399999999998e-06),
    (-4.7542799999999996e-07, -4.5246599999999997e-07, 1.59498e-06),
    (-0.000541296, 0.0026328000000000002, 7.2485999999999995e-06),
    (-1.1694e-05, 5.00502e-06, 9.9888e-06),
    (8.028599999999999e-07, 5.1913199999999995e-06, -0.00040934399999999996),
    (0.000166878, -1.9815000000000003e-05, -8.854799999999999e-05),
    (-1.51536e-05, 8.2506e-05, 5.94012e-06),
    (-2.61054e-07, 2.7591e-06, 2.21028e-06),
    (-6.6282e-05, -6.828599999999999e-05, -3.4531799999999997e-06),
    (-0.00083262, -0.00179592, -2.59176e-06),
    (6.9714e-06, 3.65514e-05, -1.8977999999999999e-06),
    (-4.808759999999999e-06, 7.1148e-06, -1.03236e-05),
    (-0.0006368400000000001, -0.0011661, 5.62314e-05),
    (0.00028329, -1.4565599999999998e-05, 1.09746e-05),
    (-4.16022e-06, -0.0150906, -0.0025494),
    (0.000222474, 0.00562788, 0.0027264599999999996),
], dtype=np.float64)


@dataclass
class Motion:
    """One frame's motion, batch of one.

    Attributes:
        scale: (1, 1).
        R: (1, 3, 3) rotation for row vectors.
        exp: (1, K, 3) expression offsets.
        t: (1, 3) translation.
        kp: (1, K, 3) canonical keypoints; None for driving templates, which do not need them.
    """

    scale: torch.Tensor
    R: torch.Tensor
    exp: torch.Tensor
    t: torch.Tensor
    kp: torch.Tensor | None = None

    def __post_init__(self) -> None:
        check_shape(self.scale, (1, 1), "scale")
        check_shape(self.R, (1, 3, 3), "R")
        check_shape(self.exp, (1, None, 3), "exp")
        check_shape(self.t, (1, 3), "t")
        if self.kp is not None:
            check_shape(self.kp, tuple(self.exp.shape), "kp")

    def keypoints(self) -> torch.Tensor:
        """(1, K, 3) transformed keypoints, tz dropped."""
        if self.kp is None:
            raise ValueError("this motion has no canonical keypoints (kp)")
        return transform_keypoints(self.kp, self.R, self.exp, self.scale, self.t)

    def with_(self, **changes: torch.Tensor) -> Motion:
        """A copy with some fields replaced."""
        return replace(self, **changes)


@dataclass(frozen=True)
class KeypointLayout:
    """The keypoints an engine animates and the index sets of the animation regions.

    Attributes:
        name: identifies the layout in saved templates.
        num_kp: number of keypoints K.
        exp_pattern: (K, 3) bool, the entries absolute "exp"/"all" driving copies.
        lip: keypoints of the lip region.
        eyes: keypoints of the eyes region.
        neutral_exp: (1, K, 3) float64 neutral expression, the stand-in for the first driving
            frame when the driver is a single image.
        edit: adds editing sliders (an ``EditParams``) to a (1, K, 3) expression.
        identity_free_expression: the expression carries no identity, so replacing it by the
            neutral one keeps the face (LivePortrait); on the mesh it also holds the face's
            own shape, and the mouth is closed by lip retargeting instead.
        image_expression: for a layout whose expression holds the face's shape, what a single
            driving image adds to a source's expression in relative driving: (driver,
            source) motions -> (1, K, 3) offsets, the driver compared with its own neutral
            estimate. None: the driver's expression minus ``neutral_exp`` (LivePortrait).
        absolute_expression: for such a layout, absolute driving's counterpart: (driver,
            source) motions -> (1, K, 3) offsets that take the source's expression to the
            driver's without the driver's face shape. None: absolute driving copies the
            driver's expression (LivePortrait).
        video_expression: for such a layout, what frame i of a driving video adds to a
            source's expression in relative driving: (driver, anchor, source) motions ->
            (1, K, 3) offsets. None: the driver's expression minus the anchor's (LivePortrait).
        ratio_motion: for a layout that can take a motion template of another layout by
            its eye and lip open ratios: ((eye0, eye1), lip) ratios -> the motion of the
            layout's neutral face (with ``kp``, unposed) opened to them. None: it cannot.
    """

    name: str
    num_kp: int
    exp_pattern: np.ndarray
    lip: tuple[int, ...]
    eyes: tuple[int, ...]
    neutral_exp: np.ndarray = field(repr=False)
    edit: Callable[[torch.Tensor, object], torch.Tensor] | None = field(default=None,
                                                                       repr=False)
    identity_free_expression: bool = True
    image_expression: Callable[[Motion, Motion], torch.Tensor] | None = field(default=None,
                                                                              repr=False)
    absolute_expression: Callable[[Motion, Motion], torch.Tensor] | None = field(
        default=None, repr=False)
    video_expression: Callable[[Motion, Motion, Motion], torch.Tensor] | None = field(
        default=None, repr=False)
    ratio_motion: Callable[[tuple[float, float], float], Motion] | None = field(
        default=None, repr=False)

    def region_mask(self, region: str) -> torch.Tensor:
        """(1, K, 3) bool mask of what a region copies from the driving expression."""
        mask = np.zeros((self.num_kp, 3), dtype=bool)
        if region in ("exp", "all"):
            mask = self.exp_pattern.copy()
        elif region == "lip":
            mask[list(self.lip)] = True
        elif region == "eyes":
            mask[list(self.eyes)] = True
        elif region != "pose":
            raise ValueError(f"unknown animation region {region!r}; expected one of {REGIONS}")
        return torch.from_numpy(mask)[None]


def _liveportrait_exp_pattern() -> np.ndarray:
    pattern = np.zeros((21, 3), dtype=bool)
    pattern[[1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]] = True
    pattern[[3, 4], 1] = True
    pattern[[5, 8], 2] = True
    pattern[9, 1:] = True
    return pattern


#: The 21 implicit keypoints of LivePortrait (SPEC 4.5).
LIVEPORTRAIT_LAYOUT = KeypointLayout(
    name="liveportrait-21",
    num_kp=21,
    exp_pattern=_liveportrait_exp_pattern(),
    lip=(6, 12, 14, 17, 19, 20),
    eyes=(11, 13, 15, 16, 18),
    neutral_exp=LIP_ARRAY[None],
    edit=liveportrait_edits,
)

#: The classic engine's layout: the MediaPipe face mesh's points (its layout object, with
#: the mesh's anatomy, is the engine's).
MESH_LAYOUT_NAME = "mediapipe-478"
MESH_POINTS = 478
#: Every layout's keypoint count, by name: what a motion template may hold.
LAYOUT_KEYPOINTS = {LIVEPORTRAIT_LAYOUT.name: LIVEPORTRAIT_LAYOUT.num_kp,
                    MESH_LAYOUT_NAME: MESH_POINTS}
