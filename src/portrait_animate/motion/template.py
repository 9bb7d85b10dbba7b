"""A motion template: the per-frame motion of a driving video, reusable without its pixels."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .model import KeypointLayout, Motion

__all__ = ["MotionTemplate", "ratio_template", "takes_by_ratios"]


@dataclass
class MotionTemplate:
    """Attributes:
    motions: per-frame driving motion (``kp`` may be None).
    fps: frame rate of the driving video.
    eye_ratios: (N, 2) per-frame eye open ratios, or None (e.g. animal templates).
    lip_ratios: (N, 1) per-frame lip open ratios, or None.
    layout: name of the keypoint layout the motion is expressed on.
    anchor: the frame relative motion started from when it was made (``--driving_anchor``),
        or None when not recorded (reference templates).
    crop_box: the [x0, y0, x1, y1] box the driving crops were cut from in the driving
        frames, or None (the frames were resized whole, or it was not recorded); with it the
        driving video's pixels can be cropped again as the motion was taken.
    """

    motions: list[Motion]
    fps: float
    eye_ratios: np.ndarray | None = None
    lip_ratios: np.ndarray | None = None
    layout: str = "liveportrait-21"
    anchor: int | None = None
    crop_box: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.motions)
        if n == 0:
            raise ValueError("a motion template needs at least one frame")
        for name, ratios, cols in (("eye_ratios", self.eye_ratios, 2),
                                   ("lip_ratios", self.lip_ratios, 1)):
            if ratios is not None and ratios.shape != (n, cols):
                raise ValueError(f"{name} must have shape ({n}, {cols}), got {ratios.shape}")
            if ratios is not None and (ratios < 0).any():
                frame = int(np.flatnonzero((ratios < 0).any(axis=1))[0])
                raise ValueError(f"{name} of frame {frame} is negative ({ratios[frame].min():g}), "
                                 "but an open ratio is a distance over a width, 0 or more")
        if self.anchor is not None and not 0 <= self.anchor < n:
            raise ValueError(f"anchor must be a frame index below {n}, got {self.anchor}")

    @property
    def n_frames(self) -> int:
        return len(self.motions)


def takes_by_ratios(template: MotionTemplate, layout: KeypointLayout) -> bool:
    """Whether ``template`` is of another layout, which ``layout`` takes by its eye and lip
    ratios (:func:`ratio_template`)."""
    return (template.layout != layout.name and layout.ratio_motion is not None
            and template.eye_ratios is not None and template.lip_ratios is not None)


def ratio_template(template: MotionTemplate, layout: KeypointLayout) -> MotionTemplate:
    """``template``, of another layout, as driving motion on ``layout`` by its eye and lip
    open ratios: each frame keeps its head pose (scale, R, t) on the layout's
    :attr:`~.model.KeypointLayout.ratio_motion` of the frame's ratios. The rest of its
    expression (a smile, the brows) is not carried over.

    Raises:
        ValueError: ``layout`` takes no ratios, or ``template`` has none.
    """
    if layout.ratio_motion is None:
        raise ValueError(f"layout {layout.name} takes no eye and lip ratios")
    if template.eye_ratios is None or template.lip_ratios is None:
        raise ValueError("the template has no eye and lip ratios")
    motions = [replace(layout.ratio_motion((float(eyes[0]), float(eyes[1])), float(lip[0])),
                       scale=m.scale, R=m.R, t=m.t)
               for m, eyes, lip in zip(template.motions, template.eye_ratios, template.lip_ratios,
                                       strict=True)]
    return replace(template, motions=motions, layout=layout.name)
