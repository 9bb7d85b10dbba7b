"""Reading and writing still images, and the built-in sample portrait."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import InputError
from .files import atomic_path

__all__ = ["IMAGE_EXTENSIONS", "ANIMATED_EXTENSIONS", "PILLOW_ERRORS", "SAMPLE_PREFIX",
           "check_rgb", "is_animated_image", "over_white", "read_image_rgb", "register_heif",
           "write_image_rgb", "resize_area"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp",
                    ".heic", ".heif", ".avif")
#: The image formats that may hold an animation (a GIF, an animated WebP, an APNG), which is
#: a video: its motion animates or drives.
ANIMATED_EXTENSIONS = (".gif", ".webp", ".png")
#: What Pillow raises on a file it cannot identify or decode (not its decompression bomb).
PILLOW_ERRORS = (UnidentifiedImageError, OSError, ValueError, SyntaxError)
SAMPLE_PREFIX = "sample:"
_SAMPLES = ("astronaut",)


def _sample(name: str) -> np.ndarray:
    if name not in _SAMPLES:
        raise InputError(f"unknown sample {SAMPLE_PREFIX}{name}; available: "
                         + ", ".join(SAMPLE_PREFIX + s for s in _SAMPLES))
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def read_image_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a file, or from ``sample:astronaut`` (shipped by scikit-image).

    Raises:
        InputError: the file is missing, has an unsupported extension or cannot be decoded.
    """
    spec = str(path)
    if spec.startswith(SAMPLE_PREFIX):
        return _sample(spec.removeprefix(SAMPLE_PREFIX))
    p = Path(spec)
    if not p.is_file():
        raise InputError(f"image not found: {p}; check the path")
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(f"unsupported image extension {p.suffix!r} for {p}; use one of "
                         + " ".join(IMAGE_EXTENSIONS))
    rgb = _decode(p)
    if rgb is None:
        raise InputError(f"cannot decode image {p}: the file is corrupt or not an image; "
                         "re-export it as JPEG or PNG")
    return rgb


@functools.cache
def register_heif() -> None:
    """Let Pillow open HEIC and HEIF pictures (an iPhone's photos), with pillow-heif; once,
    where one is read (the import costs tens of milliseconds that no other command pays)."""
    import pillow_heif

    pillow_heif.register_heif_opener()


def _decode(path: Path) -> np.ndarray | None:
    """RGB pixels of an image file, None when it cannot be decoded. OpenCV reads no GIF, HEIC
    or AVIF and drops transparency: Pillow decodes a GIF's first frame, those formats and any
    picture with transparency, which is shown over white (:func:`over_white`), as a browser
    shows it on a white page."""
    suffix = path.suffix.lower()
    if suffix in (".heic", ".heif"):
        register_heif()
    if suffix in _MAYBE_TRANSPARENT + _PILLOW_ONLY:
        try:
            with Image.open(path) as image:
                if suffix in _PILLOW_ONLY or _transparent(image):
                    return over_white(np.array(ImageOps.exif_transpose(image).convert("RGBA")))
        except Image.DecompressionBombError:
            raise InputError(f"cannot decode image {path}: it has over "
                             f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; re-export it "
                             "smaller as JPEG or PNG") from None
        except PILLOW_ERRORS:
            if suffix in _PILLOW_ONLY:
                return None  # OpenCV reads none; other files it may read where Pillow fails
    if suffix in (".tif", ".tiff"):
        _refuse_float_tiff(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _refuse_float_tiff(path: Path) -> None:
    """A TIFF of floating-point samples (HDR, linear light) has no one mapping to 8-bit
    pixels: OpenCV gives garbage colours for three channels and nothing for one."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is not None and raw.dtype.kind == "f":
        raise InputError(f"cannot use image {path}: it holds {8 * raw.dtype.itemsize}-bit "
                         "floating-point samples (HDR); re-export it as an 8- or 16-bit TIFF, "
                         "PNG or JPEG")


#: Formats that can hold transparency (an alpha channel or a transparent palette colour).
_MAYBE_TRANSPARENT = (".png", ".webp", ".tif", ".tiff")
#: Formats that only Pillow reads here.
_PILLOW_ONLY = (".gif", ".heic", ".heif", ".avif")


def _transparent(image: Image.Image) -> bool:
    """Whether an opened (not yet decoded) Pillow image has an alpha channel or a transparent
    colour."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def over_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an (H, W, 4) uint8 RGBA picture laid over white: what a
    transparent pixel hides (black, or the background a cut-out tool left) is not shown."""
    alpha = rgba[..., 3:].astype(np.float32) / 255
    rgb = rgba[..., :3].astype(np.float32) * alpha + 255 * (1 - alpha)
    return np.round(rgb).astype(np.uint8)


def is_animated_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a GIF, WebP or PNG (APNG) of more than one frame (its header and
    second frame are read); False for any other file, or one Pillow cannot open
    (:func:`read_image_rgb` says why)."""
    p = Path(path)
    if p.suffix.lower() not in ANIMATED_EXTENSIONS or not p.is_file():
        return False
    try:
        with Image.open(p) as image:
            return bool(getattr(image, "is_animated", False))
    except (Image.DecompressionBombError, *PILLOW_ERRORS):
        return False


def check_rgb(image: np.ndarray, what: str = "image") -> None:
    """Fail unless ``image`` is a non-empty (H, W, 3) uint8 RGB array.

    Raises:
        TypeError: not a numpy array.
        ValueError: another shape or dtype, naming what was given.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or not image.size:
        hint = ("; a float image in [0, 1] is (image * 255).round().astype(np.uint8)"
                if np.issubdtype(image.dtype, np.floating) else "")
        raise ValueError(f"{what} must be a non-empty (H, W, 3) uint8 RGB array, got "
                         f"{image.shape} {image.dtype}{hint}")


def write_image_rgb(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write an (H, W, 3) uint8 RGB image atomically: a temporary name, renamed when done.

    Raises:
        ValueError: not such an image (:func:`check_rgb`).
        InputError: a name whose extension OpenCV cannot write.
    """
    check_rgb(image)
    if Path(path).suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(f"cannot write image {path}: {Path(path).suffix or 'no'} extension; "
                         "use a .jpg or .png name")
    with atomic_path(path) as tmp:
        try:
            written = cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        except cv2.error:  # no writer for the extension (.gif, .jfif)
            written = False
        if not written:
            raise InputError(f"cannot write image {path}; use a .jpg or .png name")
    return Path(path)


def resize_area(image: np.ndarray, size: int) -> np.ndarray:
    """Square ``size`` x ``size`` resize with area interpolation."""
    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
