"""Classifying and loading the source and driving inputs (SPEC 4.1-4.2)."""

from __future__ import annotations

import enum
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS, SAMPLE_PREFIX, is_animated_image, read_image_rgb
from ..io.templates import TEMPLATE_EXTENSIONS, load_template
from ..io.video import VIDEO_EXTENSIONS, iter_frames, probe_video
from ..motion.presets import PRESET_PREFIX, PRESETS

__all__ = ["InputKind", "classify_input", "check_readable", "driving_kind", "input_name",
           "limited_size", "read_still", "resize_to_limit"]


class InputKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"
    TEMPLATE = "template"
    PRESET = "preset"


def classify_input(spec: str, role: str, allow_template: bool = False) -> InputKind:
    """Kind of an input by its extension; missing files and unknown extensions are errors. An
    animated GIF, WebP or PNG is a video (its motion animates or drives), a still one an
    image."""
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
    if path.is_dir():
        files = "an image, a video or a motion template" if allow_template else \
            "an image or a video"
        raise InputError(f"the {role} {path} is a folder; give the path of a file in it "
                         f"({files})")
    suffix = path.suffix.lower()
    if is_animated_image(path):
        return InputKind.VIDEO
    if suffix in IMAGE_EXTENSIONS:
        return InputKind.IMAGE
    if suffix in VIDEO_EXTENSIONS:
        return InputKind.VIDEO
    if allow_template and suffix in TEMPLATE_EXTENSIONS:
        return InputKind.TEMPLATE
    kinds = dict.fromkeys([*IMAGE_EXTENSIONS, *VIDEO_EXTENSIONS,
                           *(TEMPLATE_EXTENSIONS if allow_template else ())])
    raise InputError(f"unsupported {role} extension {path.suffix!r} for {path}; use one of "
                     + " ".join(kinds))


def driving_kind(spec: str, kind: InputKind) -> InputKind:
    """The kind a driver of ``kind`` (:func:`classify_input`) drives as: a video of one frame
    drives as that frame would as an image (the whole of a video source is animated, and the
    expression is read as from a photo), else ``kind``."""
    if kind is InputKind.VIDEO and probe_video(spec).frames == 1:
        return InputKind.IMAGE
    return kind


def read_still(spec: str) -> np.ndarray:
    """The pixels of an input of the image kind: an image, or a video of one frame
    (:func:`driving_kind`)."""
    if spec.startswith(SAMPLE_PREFIX) or Path(spec).suffix.lower() in IMAGE_EXTENSIONS:
        return read_image_rgb(spec)
    return next(iter_frames(spec, limit=1))


def check_readable(spec: str, kind: InputKind) -> None:
    """Fail on an unreadable input before any model is loaded or output written."""
    if kind is InputKind.IMAGE:
        read_still(spec)
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


def limited_size(width: int, height: int, max_dim: int, division: int = 1) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` image after :func:`resize_to_limit`."""
    if max_dim > 0 and max(height, width) > max_dim:
        # a side never shrinks to nothing (a 20000 x 3 strip is 1280 x 1)
        width, height = ((max(int(width * (max_dim / height)), 1), max_dim) if height > width
                         else (max_dim, max(int(height * (max_dim / width)), 1)))
    division = max(division, 1)
    cropped = (width - width % division, height - height % division)
    return (width, height) if 0 in cropped else cropped


def resize_to_limit(image: np.ndarray, max_dim: int, division: int) -> np.ndarray:
    """Shrink so the long side is at most ``max_dim`` (bilinear, short side truncated), then
    crop the bottom/right to multiples of ``division``."""
    h, w = image.shape[:2]
    size = limited_size(w, h, max_dim)
    if size != (w, h):
        image = cv2.resize(image, size)
    new_w, new_h = limited_size(w, h, max_dim, division)
    return image[:new_h, :new_w]
