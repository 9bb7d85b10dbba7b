"""Algorithm 1 of LivePortrait: normalize-lip, source-video eye retargeting, eye and lip
retargeting, stitching and the driving multiplier (SPEC 4.7).

The decisions live here; the networks (stitching S, R_eyes, R_lip) are passed in as an
object with ``stitch``, ``retarget_eyes`` and ``retarget_lip``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

import torch

from .editing import EditParams
from .model import KeypointLayout, Motion
from .transform import rotation_angles, rotation_matrix

__all__ = [
    "KeypointNetworks",
    "RetargetingOptions",
    "normalize_lip_delta",
    "source_eye_target",
    "source_video_eye_delta",
    "finalize_keypoints",
    "lip_silent_keypoints",
    "edited_keypoints",
    "LIP_NORMALIZE_THRESHOLD",
    "SOURCE_VIDEO_EYE_THRESHOLD",
    "FALLBACK_EYE_TARGET",
]

R = TypeVar("R")

LIP_NORMALIZE_THRESHOLD = 0.03
SOURCE_VIDEO_EYE_THRESHOLD = 0.18
FALLBACK_EYE_TARGET = 0.39


class KeypointNetworks(Protocol):
    """What an engine offers for stitching and retargeting, on (1, K, 3) keypoints."""

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor: ...

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor: ...

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class RetargetingOptions:
    """Attributes:
    relative: relative driving motion.
    stitching: run the stitching network.
    eye_retargeting: drive eye openness by the driving eye ratio (first eye).
    lip_retargeting: drive lip openness by the driving lip ratio.
    driving_multiplier: scale of the final motion around the source keypoints.
    """

    relative: bool = True
    stitching: bool = True
    eye_retargeting: bool = False
    lip_retargeting: bool = False
    driving_multiplier: float = 1.0


def _ratios(*values: float) -> torch.Tensor:
    return torch.tensor([values], dtype=torch.float32)


def normalize_lip_delta(nets: KeypointNetworks, x_s: torch.Tensor,
                        source_lip_ratio: float) -> torch.Tensor | None:
    """R_lip(x_s, [c, 0]) closing an open source mouth; None below the 0.03 threshold."""
    if source_lip_ratio < LIP_NORMALIZE_THRESHOLD:
        return None
    return nets.retarget_lip(x_s, _ratios(source_lip_ratio, 0.0))


def source_eye_target(first_frame_eye_ratios: tuple[float, float]) -> float:
    """Mean eye ratio of source frame 0; 0.39 when that frame's eyes are nearly closed."""
    target = (first_frame_eye_ratios[0] + first_frame_eye_ratios[1]) / 2
    return FALLBACK_EYE_TARGET if target < SOURCE_VIDEO_EYE_THRESHOLD else target


def source_video_eye_delta(nets: KeypointNetworks, x_s: torch.Tensor,
                           eye_ratios: tuple[float, float], target: float) -> torch.Tensor:
    """R_eyes(x_s,i, [eye0_i, eye1_i, target]) holding a video source's eyes open."""
    return nets.retarget_eyes(x_s, _ratios(eye_ratios[0], eye_ratios[1], target))


def lip_silent_keypoints(nets: KeypointNetworks, source: Motion, layout: KeypointLayout,
                         lip_ratio: float | None) -> torch.Tensor:
    """"Keeping the lip silent" for one source-video frame (SPEC 6.3), stitched.

    On LivePortrait keypoints the neutral expression replaces everything but the eyes and the
    full translation is added, tz included [quirk 7]. On the mesh, whose expression also holds
    the face's shape, the mouth is closed by lip retargeting to a zero ratio.
    """
    x_s = source.keypoints()
    if layout.identity_free_expression:
        neutral = torch.from_numpy(layout.neutral_exp).to(source.exp)
        exp = torch.where(layout.region_mask("eyes"), source.exp, neutral)
        x = source.scale[..., None] * (source.kp @ source.R + exp) + source.t[:, None, :]
    else:
        x = x_s + nets.retarget_lip(x_s, _ratios(lip_ratio or 0.0, 0.0))
    return nets.stitch(x_s, x)


def edited_keypoints(nets: KeypointNetworks, source: Motion, layout: KeypointLayout,
                     params: EditParams, *, stitching: bool,
                     source_eye_ratios: tuple[float, float] | None = None,
                     eye_target: float | None = None, source_lip_ratio: float | None = None,
                     lip_target: float | None = None) -> torch.Tensor:
    """Image retargeting and precise editing of one source image (SPEC 6.2).

    The head turns by the relative angles, the sliders add to the expression, mov_z scales
    the face and the full translation is added, tz included [quirk]. Eye and lip targets
    (None: leave them as they are) add R_eyes / R_lip deltas before stitching.

    Returns:
        (1, K, 3) keypoints for the renderer.
    """
    if layout.edit is None:
        raise ValueError(f"layout {layout.name} has no editing map")
    pitch, yaw, roll = rotation_angles(source.R)
    R_d = rotation_matrix(pitch + params.pitch, yaw + params.yaw, roll + params.roll)
    # Equal to R_d, but the reference computes the product, and so do we for float parity.
    R_new = (R_d @ source.R.transpose(1, 2)) @ source.R
    exp = layout.edit(source.exp, params)
    x_d = params.mov_z * source.scale[..., None] * (source.kp @ R_new + exp) \
        + source.t[:, None, :]
    x_s = source.keypoints()
    if eye_target is not None:
        ratios = _required_pair(source_eye_ratios, "eye")
        x_d = x_d + nets.retarget_eyes(x_s, _ratios(*ratios, eye_target))
    if lip_target is not None:
        ratio = _required_pair(source_lip_ratio, "lip")
        x_d = x_d + nets.retarget_lip(x_s, _ratios(ratio, lip_target))
    return nets.stitch(x_s, x_d) if stitching else x_d


def _required_pair(ratios: R | None, what: str) -> R:
    if ratios is None:
        raise ValueError(f"{what} retargeting needs the source's {what} ratio (a detected face)")
    return ratios


def finalize_keypoints(nets: KeypointNetworks, x_s: torch.Tensor, x_d: torch.Tensor,
                       options: RetargetingOptions, *,
                       lip_normalize: torch.Tensor | None = None,
                       source_eyes: torch.Tensor | None = None,
                       source_eye_ratios: tuple[float, float] | None = None,
                       source_lip_ratio: float | None = None,
                       driving_eye_ratio: float | None = None,
                       driving_lip_ratio: float | None = None) -> torch.Tensor:
    """The keypoints handed to the renderer for one frame (Algorithm 1, then the multiplier).

    Args:
        nets: stitching and retargeting networks.
        x_s: (1, K, 3) source keypoints.
        x_d: (1, K, 3) composed driving keypoints.
        options: the flags.
        lip_normalize: precomputed normalize-lip delta, if any.
        source_eyes: precomputed source-video eye delta, if any.
        source_eye_ratios, source_lip_ratio: the source's open ratios (None without landmarks).
        driving_eye_ratio: the driving frame's first eye ratio [quirk 6].
        driving_lip_ratio: the driving frame's lip ratio.
    """
    if options.eye_retargeting or options.lip_retargeting:
        delta = torch.zeros_like(x_s)
        if options.eye_retargeting and source_eye_ratios is not None:
            delta = delta + nets.retarget_eyes(
                x_s, _ratios(*source_eye_ratios, _required(driving_eye_ratio, "eye")))
        if options.lip_retargeting and source_lip_ratio is not None:
            delta = delta + nets.retarget_lip(
                x_s, _ratios(source_lip_ratio, _required(driving_lip_ratio, "lip")))
        # In relative mode the reference discards all driving motion here.
        x = (x_s if options.relative else x_d) + delta
        if options.stitching:
            x = nets.stitch(x_s, x)
    else:
        x = nets.stitch(x_s, x_d) if options.stitching else x_d
        if lip_normalize is not None:
            x = x + lip_normalize
        if source_eyes is not None:
            x = x + source_eyes
    return x_s + options.driving_multiplier * (x - x_s)


def _required(ratio: float | None, what: str) -> float:
    if ratio is None:
        raise ValueError(f"{what} retargeting needs driving {what} ratios")
    return ratio
