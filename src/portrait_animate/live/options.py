"""The options of ``live``: the live-only ones, beside the animation options it shares with
``animate`` (one options model)."""

from __future__ import annotations

from dataclasses import dataclass

from ..pipeline.options import AnimateOptions

__all__ = ["LiveOptions", "LIVE_ANIMATE_OPTIONS"]

#: The ``animate`` options that work live, by their names there.
LIVE_ANIMATE_OPTIONS = (
    "animation_region", "driving_multiplier", "flag_stitching", "flag_relative_motion",
    "flag_eye_retargeting", "flag_lip_retargeting", "flag_pasteback", "flag_do_crop",
    "engine", "precision", "weights_dir", "det_thresh", "scale", "vx_ratio", "vy_ratio",
    "flag_do_rot", "source_max_dim", "source_division", "scale_crop_driving_video",
    "vx_ratio_crop_driving_video", "vy_ratio_crop_driving_video", "flag_force_cpu",
    "device_id", "flag_use_half_precision", "flag_do_torch_compile", "quiet",
)


@dataclass
class LiveOptions:
    """Attributes:
    animate: the animation options (``source`` is the portrait; ``driving`` is unused).
    camera: a device index ("0"), a video file (played in real time) or a stream URL.
    window: show the result in a window (skipped, with a note, without a display).
    virtual_camera: send the result to a virtual camera (pyvirtualcam).
    record: write one result frame per camera frame to this ``.mp4``.
    max_seconds: stop after this long (None: at the end of a file, or on a key).
    stats_json: write the session's figures here.
    live_smooth: One-Euro filter strength on the driving motion; 0 turns it off.
    """

    animate: AnimateOptions
    camera: str = "0"
    window: bool = True
    virtual_camera: bool = False
    record: str | None = None
    max_seconds: float | None = None
    stats_json: str | None = None
    live_smooth: float = 1.0
