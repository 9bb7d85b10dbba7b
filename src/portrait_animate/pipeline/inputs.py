"""Classifying and loading the source and driving inputs (SPEC 4.1-4.2)."""

from __future__ import annotations

import enum
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS, SAMPLE_PREFIX, read_image_rgb
from ..io.templates import TEMPLATE_EXTENSIONS, load_template
from ..io.video import VIDEO_EXTENSIONS, iter_frames
from ..motion.presets import PRESET_PREFIX, PRESETS

__all__ = ["InputKind", "classify_input", "check_readable", "input_name", "resize_to_limit"]


class InputKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    TEMPLATE = "template"
    PRESET = "preset"


def classify_input(spec: str, role: str, allow_template: bool = False) -> InputKind:
    """Kind of an input by its extension; missing files and unknown extensions are errors."""
    if spec.startswith(SAMPLE_PREFIX):
        return InputKind.IMAGE
    if spec.startswith(PRESET_PREFIX):
        if not allow_template:
            raise InputError(f"a preset drives; the {role} must be an image or a video")
        name = spec.removeprefix(PRESET_PREFIX)
        if name not in PRESETS:
            raise InputError(f"unknown preset {name!r}; available: {', '.join(PRESETS)} "
                             "(see `portrait-animate presets`)")
        return InputKind.PRESET
    path = Path(spec)
    if not path.exists():
        raise InputError(f"{role} not found: {path}; check the path")
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return InputKind.IMAGE
    if suffix in VIDEO_EXTENSIONS:
        return InputKind.VIDEO
    if allow_template and suffix in TEMPLATE_EXTENSIONS:
        return InputKind.TEMPLATE
    kinds = [*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS, *(TEMPLATE_EXTENSIONS if allow_template else ())]
    raise InputError(f"unsupported {role} extension {path.suffix!r} for {path}; use one of "
                     + " ".join(kinds))


def check_readable(spec: str, kind: InputKind) -> None:
    """Fail on an unreadable input before any model is loaded or output written."""
    if kind is InputKind.IMAGE:
        read_image_rgb(spec)
    elif kind is InputKind.VIDEO:
        next(iter_frames(spec, limit=1))
    elif kind is InputKind.TEMPLATE:
        load_template(spec)


def input_name(spec: str) -> str:
    """The name outputs use for an input: the file stem, or the sample/preset name."""
    for prefix in (SAMPLE_PREFIX, PRESET_PREFIX):
        if spec.startswith(prefix):
            return spec.removeprefix(prefix)
    return Path(spec).stem


def resize_to_limit(image: np.ndarray, max_dim: int, division: int) -> np.ndarray:
    """Shrink so the long side is at most ``max_dim`` (bilinear, short side truncated), then
    crop the bottom/right to multiples of ``division``."""
    h, w = image.shape[:2]
    if max_dim > 0 and max(h, w) > max_dim:
        size = (int(w * (max_dim / h)), max_dim) if h > w else (max_dim, int(h * (max_dim / w)))
        image = cv2.resize(image, size)
    division = max(division, 1)
    new_h = image.shape[0] - image.shape[0] % division
    new_w = image.shape[1] - image.shape[1] % division
    if new_h == 0 or new_w == 0:
        return image
    return image[:new_h, :new_w]

