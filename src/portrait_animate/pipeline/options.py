"""The options of ``animate``: the reference's argument names, spellings and defaults
(SPEC 5.1), plus ours (engine, weights_dir, save_frames, quiet, ...)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ..engines.neural.acceleration import PRECISIONS
from ..motion.model import REGIONS

__all__ = ["AnimateOptions", "DRIVING_OPTIONS", "AUDIO_PRIORITIES", "ENGINES", "PRECISIONS"]

DRIVING_OPTIONS = ("expression-friendly", "pose-friendly")
AUDIO_PRIORITIES = ("driving", "source")
ENGINES = ("auto", "neural", "classic")


@dataclass
class AnimateOptions:
    """Everything ``animate`` can be told; each field's ``help`` metadata is its CLI help."""

    source: str
    driving: str
    output_dir: str = "animations/"
    flag_use_half_precision: bool = True
    flag_crop_driving_video: bool = False
    device_id: int = 0
    flag_force_cpu: bool = False
    flag_normalize_lip: bool = False
    flag_source_video_eye_retargeting: bool = False
    flag_eye_retargeting: bool = False
    flag_lip_retargeting: bool = False
    flag_stitching: bool = True
    flag_relative_motion: bool = True
    flag_pasteback: bool = True
    flag_do_crop: bool = True
    driving_option: str = "expression-friendly"
    driving_multiplier: float = 1.0
    driving_smooth_observation_variance: float = 3e-7
    audio_priority: str = "driving"
    animation_region: str = "all"
    det_thresh: float = 0.15
    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    flag_do_rot: bool = True
    source_max_dim: int = 1280
    source_division: int = 2
    scale_crop_driving_video: float = 2.2
    vx_ratio_crop_driving_video: float = 0.0
    vy_ratio_crop_driving_video: float = -0.1
    flag_do_torch_compile: bool = False
    flag_pasteback_without_stitching: bool = False
    engine: str = "auto"
    precision: str = "auto"
    weights_dir: str | None = None
    save_frames: bool = False
    quiet: bool = False

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def conflicts(self) -> list[str]:
        """Option combinations that cannot work, each as 'problem; fix'."""
        problems = []
        choices = (("animation_region", REGIONS), ("driving_option", DRIVING_OPTIONS),
                   ("audio_priority", AUDIO_PRIORITIES), ("engine", ENGINES),
                   ("precision", PRECISIONS))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                problems.append(f"--{name} {getattr(self, name)!r} is not one of "
                                f"{', '.join(allowed)}")
        if not 0 < self.det_thresh <= 1:
            problems.append("--det_thresh must be in (0, 1]")
        for name in ("scale", "scale_crop_driving_video", "driving_smooth_observation_variance"):
            if getattr(self, name) <= 0:
                problems.append(f"--{name} must be positive")
        if self.flag_normalize_lip and not self.flag_relative_motion:
            problems.append("--flag_normalize_lip needs relative motion; drop "
                            "--no_flag_relative_motion or --flag_normalize_lip")
        return problems
