"""Per-frame motion composition: relative or absolute driving of five regions, from a
driving image or video, onto an image or video source (SPEC 4.5-4.6), quirks included.

Pure functions on :class:`Motion`; float32 evaluation order follows the reference so that
results agree to the last bits where it matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import ConvexHull

from .model import REGIONS, KeypointLayout, Motion
from .smoothing import kalman_smooth

__all__ = [
    "DrivingMode",
    "compose_image_source",
    "VideoSourceTracks",
    "video_source_tracks",
    "compose_video_source",
    "expression_friendly_multiplier",
    "apply_expression_friendly",
]


@dataclass(frozen=True)
class DrivingMode:
    """How driving motion is applied.

    Attributes:
        relative: motion relative to the first driving frame (else absolute).
        region: one of ``exp``, ``pose``, ``lip``, ``eyes``, ``all``.
        driving_is_video: several driving frames (a video, or a template of more than one
            frame); a single driving image otherwise.
    """

    relative: bool = True
    region: str = "all"
    driving_is_video: bool = True

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"unknown animation region {self.region!r}; expected one of "
                             f"{REGIONS}")

    @property
    def drives_pose(self) -> bool:
        return self.region in ("all", "pose")

    @property
    def moves_nothing(self) -> bool:
        """The pose region relative to a single driving image: that image is its own first
        frame, so the relative pose is the identity (R_d,0 R_d,0^T, t_d,0 - t_d,0) and the
        source comes out unchanged (SPEC 4.5 a, c)."""
        return self.relative and not self.driving_is_video and self.region == "pose"


def _neutral(layout: KeypointLayout, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(layout.neutral_exp).to(dtype=torch.float32, device=like.device)


def _copy_region(base: torch.Tensor, driven: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.to(base.device), driven, base)


def _relative_expression(src: Motion, drv_i: Motion, drv_0: Motion, layout: KeypointLayout,
                         mode: DrivingMode) -> torch.Tensor:
    if mode.driving_is_video:
        if layout.video_expression is not None:
            return src.exp + layout.video_expression(drv_i, drv_0, src)
        return src.exp + (drv_i.exp - drv_0.exp)
    if layout.image_expression is not None:
        return src.exp + layout.image_expression(drv_i, src)
    if mode.region == "eyes":
        return src.exp + drv_i.exp  # [quirk 5] no neutral expression subtracted
    return src.exp + (drv_i.exp - _neutral(layout, src.exp))


def _absolute_expression(src: Motion, drv_i: Motion, drv_0: Motion, layout: KeypointLayout,
                         driving_is_video: bool) -> torch.Tensor:
    """The expression absolute driving gives the source: the driver's own (the reference),
    or, on a layout whose expression holds the face's shape, the source taken to the
    anchor's expression and moved by the driver's motion since (the driving image's own
    expression for a single image), so the source keeps its face."""
    if layout.absolute_expression is None:
        return drv_i.exp
    if driving_is_video:
        return src.exp + (drv_i.exp - drv_0.exp) + layout.absolute_expression(drv_0, src)
    return src.exp + layout.absolute_expression(drv_i, src)


def compose_image_source(src: Motion, drv_i: Motion, drv_0: Motion, layout: KeypointLayout,
                         mode: DrivingMode) -> Motion:
    """The motion of animated frame i for an image source (SPEC 4.5 a, b).

    Args:
        src: source motion, with ``kp``.
        drv_i: motion of driving frame i.
        drv_0: motion of the anchor, the driving frame relative motion starts from (the first
            in the reference, ``--driving_anchor``; ``drv_i`` itself for a driving image).
            Absolute driving uses it only on a layout with ``absolute_expression``.
        layout: keypoint layout.
        mode: relative/absolute, region and driving kind.

    Returns:
        The new motion on the source's canonical keypoints; ``keypoints()`` drops tz.
    """
    region = mode.region
    if mode.relative:
        expression = _relative_expression(src, drv_i, drv_0, layout, mode)
        pose_R = (drv_i.R @ drv_0.R.transpose(1, 2)) @ src.R
        pose_t = src.t + (drv_i.t - drv_0.t)
        if region == "all":
            return src.with_(R=pose_R, exp=expression,
                             scale=src.scale * (drv_i.scale / drv_0.scale), t=pose_t)
        if region == "exp":
            return src.with_(exp=expression)
        if region == "pose":
            return src.with_(R=pose_R, t=pose_t)
        return src.with_(exp=_copy_region(src.exp, expression, layout.region_mask(region)))
    expression = _absolute_expression(src, drv_i, drv_0, layout, mode.driving_is_video)
    exp = _copy_region(src.exp, expression, layout.region_mask(region))
    R = drv_i.R if mode.drives_pose else src.R
    t = drv_i.t if mode.drives_pose else src.t
    return src.with_(R=R, exp=exp, t=t)


@dataclass
class VideoSourceTracks:
    """Precomputed per-frame expression and rotation tracks of a video source (SPEC 4.5 c).

    Attributes:
        exp: n tensors (1, K, 3).
        R: n tensors (1, 3, 3), or None when the region does not drive the pose.
    """

    exp: list[torch.Tensor]
    R: list[torch.Tensor] | None


def video_source_tracks(src: Sequence[Motion], drv: Sequence[Motion], layout: KeypointLayout,
                        mode: DrivingMode, smooth_variance: float,
                        anchor: Motion | None = None) -> VideoSourceTracks:
    """Expression and rotation tracks for n source frames, Kalman-smoothed for a driving video.

    Args:
        src: n source-frame motions.
        drv: n driving motions (one for a driving image).
        layout: keypoint layout.
        mode: relative/absolute, region and driving kind.
        smooth_variance: observation variance of the smoother.
        anchor: the driving motion relative motion starts from (``--driving_anchor``); the
            first driving frame's without it.
    """
    n = len(src)
    d0 = drv[0] if anchor is None else anchor
    if mode.driving_is_video:
        # each frame's expression is written into one (n, 1, K, 3) array, not kept a frame at
        # a time and stacked (two copies of a long video's track)
        exp = np.empty((n, *src[0].exp.shape), np.float32)
        for i, (s, d) in enumerate(zip(src, drv, strict=True)):
            if not mode.relative:
                exp[i] = _absolute_expression(s, d, d0, layout, True).numpy()
            elif layout.video_expression is not None:  # as an image source takes it
                exp[i] = (s.exp + layout.video_expression(d, d0, s)).numpy()
            else:
                exp[i] = (s.exp.numpy() + d.exp.numpy()) - d0.exp.numpy()
        if mode.relative:
            rot = ([(d.R.numpy() @ d0.R.numpy().transpose(0, 2, 1)) @ s.R.numpy()
                    for s, d in zip(src, drv, strict=True)] if mode.drives_pose else None)
        else:
            rot = [d.R.numpy() for d in drv[:n]]
        exp_t = _tensors(kalman_smooth(exp, smooth_variance))
        rot_t = None if rot is None else _tensors(kalman_smooth(np.stack(rot), smooth_variance))
        return VideoSourceTracks(exp_t, rot_t)
    if mode.relative:
        if layout.image_expression is not None:
            return VideoSourceTracks([s.exp + layout.image_expression(d0, s) for s in src],
                                     [s.R for s in src])
        offset = d0.exp.numpy() - layout.neutral_exp  # float64, as the reference evaluates it
        exp_t = [torch.from_numpy((s.exp.numpy() + offset).astype(np.float32)) for s in src]
        return VideoSourceTracks(exp_t, [s.R for s in src])
    return VideoSourceTracks([_absolute_expression(s, d0, d0, layout, False) for s in src],
                             [d0.R] * n)


def _tensors(stacked: np.ndarray) -> list[torch.Tensor]:
    return [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for a in stacked]


def compose_video_source(src_i: Motion, drv_i: Motion, exp_track: torch.Tensor,
                         rot_track: torch.Tensor | None, layout: KeypointLayout,
                         mode: DrivingMode) -> Motion:
    """The motion of animated frame i for a video source (SPEC 4.5 c).

    Args:
        src_i: motion of source frame i, with ``kp``.
        drv_i: motion of driving frame i (the driving image for every frame).
        exp_track, rot_track: frame i of :func:`video_source_tracks`.
        layout: keypoint layout.
        mode: relative/absolute, region and driving kind.
    """
    R = rot_track if mode.drives_pose and rot_track is not None else src_i.R
    exp = _copy_region(src_i.exp, exp_track, layout.region_mask(mode.region))
    t = drv_i.t if (not mode.relative and mode.drives_pose) else src_i.t
    return src_i.with_(R=R, exp=exp, t=t)


def expression_friendly_multiplier(x_s: torch.Tensor, x_d_0: torch.Tensor) -> float:
    """m = sqrt(V(x_s)) / sqrt(V(x_d,0)), V the 3-D convex-hull volume (SPEC 4.6)."""
    v_s = ConvexHull(x_s[0].detach().cpu().numpy()).volume
    v_d = ConvexHull(x_d_0[0].detach().cpu().numpy()).volume
    return float(np.sqrt(v_s) / np.sqrt(v_d))


def apply_expression_friendly(x_s: torch.Tensor, x_d_i: torch.Tensor, x_d_0: torch.Tensor,
                              multiplier: float) -> torch.Tensor:
    """x_d,i <- x_s + m * (x_d,i - x_d,0): frame 0 reproduces the source exactly."""
    return x_s + multiplier * (x_d_i - x_d_0)
