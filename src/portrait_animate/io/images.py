"""Reading and writing still images, and the built-in sample portrait."""

from __future__ import annotations

import functools
import io
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from ..errors import InputError
from .files import atomic_path

__all__ = ["IMAGE_EXTENSIONS", "ANIMATED_EXTENSIONS", "PILLOW_ERRORS", "SAMPLE_PREFIX",
           "check_rgb", "is_animated_image", "over_white", "read_image_rgb", "register_heif",
           "write_image_rgb", "resize_area"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".gif", ".bmp", ".tif",
                    ".tiff", ".webp", ".heic", ".heif", ".avif")
#: The image formats that may hold an animation (a GIF, an animated WebP, an APNG), which is
#: a video: its motion animates or drives.
ANIMATED_EXTENSIONS = (".gif", ".webp", ".png", ".apng")
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
    """RGB pixels of an image file, upright as a photo viewer shows it and in sRGB; None when
    it cannot be decoded. The format is told by the content, not the name. OpenCV decodes
    an opaque JPEG, PNG, BMP or TIFF, as the reference reads pictures; Pillow decodes every
    other format (GIF, WebP, HEIC, AVIF, ...), a TIFF that OpenCV cannot turn upright, a PNG
    with a colour profile (the same pixels, without libpng's warnings) and any picture with
    transparency, which is shown over white (:func:`over_white`), as a browser shows it on
    a white page.

    Raises:
        InputError: an empty file, a JPEG or PNG cut off (a download cut short, which OpenCV
            decodes grey below the cut), too many pixels or a TIFF of floating-point samples.
    """
    data = path.read_bytes()
    if not data:
        raise InputError(f"image {path} is empty (0 bytes); copy or download it again")
    if path.suffix.lower() in (".heic", ".heif"):
        register_heif()
    # Pillow's warnings (a large picture, corrupt EXIF data) are not for the user: over twice
    # its pixel limit is refused, and a file it cannot decode is told in one line
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _decode_data(path, data)


def _decode_data(path: Path, data: bytes) -> np.ndarray | None:
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
    except Image.DecompressionBombError:
        raise InputError(f"cannot decode image {path}: it has over "
                         f"{2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels; re-export it "
                         "smaller as JPEG or PNG") from None
    except PILLOW_ERRORS:
        return _opencv(path, data)  # a format Pillow does not know (a float RGB TIFF)
    with image:
        if (image.format in ("JPEG", "MPO") and _jpeg_cut_off(data)) or \
                (image.format == "PNG" and b"IEND" not in data):
            raise InputError(f"cannot use image {path}: the {image.format} file is cut off "
                             "before its end; copy or download it again")
        rgb = None
        icc = image.info.get("icc_profile")
        turned = image.format == "TIFF" and image.getexif().get(_ORIENTATION, 1) != 1
        # OpenCV's libpng writes its warnings on a PNG's colour profile ("iCCP: known
        # incorrect sRGB profile") to the terminal, where nothing can catch them
        profiled_png = image.format == "PNG" and icc is not None
        if image.format in _OPENCV_FORMATS and not (turned or profiled_png
                                                    or _transparent(image)):
            rgb = _opencv(path, data)
        if rgb is None:
            rgb = _pillow(image)
    return _to_srgb(rgb, icc) if rgb is not None and icc else rgb


#: What OpenCV decodes (when opaque): the formats the reference's pictures come in.
_OPENCV_FORMATS = ("JPEG", "MPO", "PNG", "BMP", "TIFF")
#: The EXIF tag of a picture's orientation.
_ORIENTATION = 0x0112


def _opencv(path: Path, data: bytes) -> np.ndarray | None:
    """RGB pixels decoded by OpenCV, turned by their EXIF orientation; None when it cannot.

    Raises:
        InputError: a TIFF of floating-point samples.
    """
    if data.startswith((b"II*\0", b"MM\0*")):
        _refuse_float_tiff(path, data)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    return None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _pillow(image: Image.Image) -> np.ndarray | None:
    """RGB pixels of an opened Pillow picture, turned by its EXIF orientation, transparency
    over white; None when it cannot be decoded."""
    try:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("I", "I;16", "I;16L", "I;16B"):  # 16-bit grey: to 8 bits first
            values = np.asarray(image)
            grey = np.clip(np.round(values / 257), 0, 255).astype(np.uint8)
            clear = image.info.get("transparency")
            alpha = np.where(values == clear, 0, 255).astype(np.uint8) if clear is not None \
                else np.full_like(grey, 255)
            rgba = np.dstack([grey, grey, grey, alpha])
        else:
            rgba = np.asarray(image.convert("RGBA"))
    except PILLOW_ERRORS:
        return None
    return over_white(rgba)


def _jpeg_cut_off(data: bytes) -> bool:
    """Whether a JPEG ends before its end-of-image marker: its marker segments are stepped
    over by their lengths, and each scan's coded data up to the next marker (in which 0xFF
    is followed by 0x00 or a restart marker), so that nothing after the picture (a phone's
    motion photo appends a video) is taken for it."""
    at, size = 2, len(data)  # after the start-of-image marker
    while True:
        at = data.find(b"\xff", at)
        if at < 0 or at + 1 >= size:
            return True
        code = data[at + 1]
        if code == 0xD9:  # end of image
            return False
        if code in (0x00, 0x01, 0xFF) or 0xD0 <= code <= 0xD7:  # coded data, fill, restart
            at += 1 if code == 0xFF else 2
            continue
        if at + 4 > size:
            return True
        at += 2 + int.from_bytes(data[at + 2:at + 4], "big")


@functools.cache
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _to_srgb(rgb: np.ndarray, icc: bytes) -> np.ndarray:
    """``rgb`` converted from the RGB colour profile ``icc`` the file embeds (Display P3 of
    an iPhone photo, Adobe RGB) to sRGB, which the outputs are in; as it is for an sRGB
    profile, another colour space's (a CMYK file's) or one that cannot be read."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = ImageCms.getProfileDescription(profile)
    except (OSError, ImageCms.PyCMSError):
        return rgb
    if profile.profile.xcolor_space.strip() != "RGB" or "srgb" in name.lower().replace(" ", ""):
        return rgb
    try:
        return np.asarray(ImageCms.profileToProfile(Image.fromarray(rgb), profile, _srgb(),
                                                    outputMode="RGB"))
    except ImageCms.PyCMSError:
        return rgb


def _refuse_float_tiff(path: Path, data: bytes) -> None:
    """A TIFF of floating-point samples (HDR, linear light) has no one mapping to 8-bit
    pixels: OpenCV gives garbage colours for three channels and nothing for one."""
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is not None and raw.dtype.kind == "f":
        raise InputError(f"cannot use image {path}: it holds {8 * raw.dtype.itemsize}-bit "
                         "floating-point samples (HDR); re-export it as an 8- or 16-bit TIFF, "
                         "PNG or JPEG")


def _transparent(image: Image.Image) -> bool:
    """Whether an opened (not yet decoded) Pillow image has an alpha channel or a transparent
    colour."""
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def over_white(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an (H, W, 4) uint8 RGBA picture laid over white: what a
    transparent pixel hides (black, or the background a cut-out tool left) is not shown."""
    alpha = rgba[..., 3:]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha.astype(np.uint16)
    # rgb * a + 255 * (255 - a) is at most 255 * 255: rounded division in 16 bits
    mixed = rgba[..., :3].astype(np.uint16) * a + 255 * (255 - a) + 127
    return (mixed // 255).astype(np.uint8)


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
