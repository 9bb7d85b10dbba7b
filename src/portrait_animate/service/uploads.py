"""Uploads to the service (held to the size limit as they arrive, see ``app``): saved, and
told apart by their content (Pillow reads an image's header, ffmpeg a video's container),
never by their name."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from ..errors import InputError
from ..io.images import ANIMATED_EXTENSIONS, PILLOW_ERRORS, register_heif
from ..io.video import probe_video

__all__ = ["TooLarge", "save_upload", "IMAGE_FORMATS", "megabytes"]

#: Pillow's format name -> the extension the pipeline reads it by: what ``animate`` reads
#: (a phone's JPEG may be an MPO, a JPEG with a second picture; an animated GIF, WebP or PNG
#: is a video).
IMAGE_FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp",
                 "TIFF": ".tif", "GIF": ".gif", "HEIF": ".heic", "AVIF": ".avif"}
#: The formats, as the messages name them.
_FORMAT_NAMES = "JPEG, PNG, WebP, BMP, TIFF, GIF, HEIC or AVIF"
_CHUNK = 1 << 20
#: The most pixels an image upload may have (Pillow's own bound for untrusted images).
MAX_PIXELS = Image.MAX_IMAGE_PIXELS


def megabytes(limit: int) -> str:
    """``limit`` bytes in MB (MiB) as ``--max_upload_mb`` gave them: 0.05, not the 0.0499992
    of its whole bytes."""
    return f"{round(limit / 2**20, 3):g}"


class TooLarge(InputError):  # noqa: N818 (an HTTP 413, named as such)
    """An upload (``what``) over the size limit of ``limit`` bytes."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"the {what} is over {megabytes(limit)} MB; send a smaller file")


def _copy(data: BinaryIO, dst: Path, what: str) -> None:
    """``data`` into ``dst`` (its size was held to the limit as it arrived)."""
    with open(dst, "wb") as out:
        shutil.copyfileobj(data, out, _CHUNK)
        if out.tell() == 0:
            raise InputError(f"the {what} is empty; send an image or a video")


def _image_extension(path: Path, what: str) -> tuple[str, bool] | None:
    """The pipeline's extension for an image upload and whether it is animated (a GIF, WebP
    or PNG of several frames, which the pipeline takes as a video), or None for what is not
    an image.

    Raises:
        InputError: an image of another format, too many pixels, or damaged.
    """
    register_heif()  # an iPhone's photo is a HEIC
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below
            image = Image.open(path)  # reads the header only
    except Image.DecompressionBombError:
        raise InputError(f"the {what} has over {MAX_PIXELS / 1e6:.0f} megapixels; send a "
                         "smaller image") from None
    except PILLOW_ERRORS:
        return None
    with image:
        fmt, (width, height) = image.format, image.size
        if fmt not in IMAGE_FORMATS:
            raise InputError(f"the {what} is an image of the {fmt} format; send a "
                             f"{_FORMAT_NAMES} image, or a video")
        if width * height > MAX_PIXELS:
            raise InputError(f"the {what} is {width}x{height} pixels, over "
                             f"{MAX_PIXELS / 1e6:.0f} megapixels; send a smaller image")
        try:
            image.load()  # decodes every pixel: a cut-off file fails here
        except PILLOW_ERRORS as exc:
            raise InputError(f"the {what} is a damaged {fmt} image ({exc}); send the whole "
                             "file") from None
        # a GIF, WebP or APNG of several frames, as animate takes it (an MPO's second
        # picture is no frame)
        animated = (IMAGE_FORMATS[fmt] in ANIMATED_EXTENSIONS
                    and bool(getattr(image, "is_animated", False)))
    return IMAGE_FORMATS[fmt], animated


def _check_length(path: Path, max_video_seconds: float, what: str) -> None:
    """Raises InputError when the video at ``path`` (read by ffmpeg) is not one, has no
    duration or lasts over ``max_video_seconds``, read from its container before any frame is
    decoded."""
    try:
        info = probe_video(path)
    except InputError:
        with open(path, "rb") as file:
            head = file.read(4)
        if head == b"PK\x03\x04" or head[:1] == b"\x80":  # .npz (a zip) or .pkl
            raise InputError(f"the {what} is a motion template (.npz or .pkl), which the "
                             "service does not take; send the driving video or image it was "
                             "made from, or a preset's name") from None
        raise InputError(f"the {what} is neither an image ({_FORMAT_NAMES}) nor a video "
                         "ffmpeg can read; send one of those") from None
    if info.duration <= 0:  # a bare stream: its length is known only once it is all decoded
        raise InputError(f"the {what} is a video with no duration (a bare stream such as "
                         ".h264, in no container), so neither its length nor its frames can "
                         "be read; re-encode it as an MP4 (ffmpeg -i FILE OUT.mp4) and send "
                         "that")
    if info.duration > max_video_seconds:
        raise InputError(f"the {what} lasts {info.duration:.1f} s, over the limit of "
                         f"{max_video_seconds:g} s; send a shorter video")


def save_upload(data: BinaryIO, folder: Path, stem: str, max_video_seconds: float,
                what: str) -> Path:
    """Save an uploaded image or video as ``folder/stem.EXT``, EXT from its content.

    Raises:
        InputError: empty, neither an image nor a video, or a video without a duration or
            longer than ``max_video_seconds`` (read from its container before any frame is
            decoded).
    """
    tmp = folder / f".{stem}.upload.mp4"  # probed as a video if not an image
    try:
        _copy(data, tmp, what)
        image = _image_extension(tmp, what)
        if image is None or image[1]:  # a video, or an animated image, which drives as one
            _check_length(tmp, max_video_seconds, what)
        # ffmpeg reads any container by its content
        extension = ".mp4" if image is None else image[0]
        final = folder / f"{stem}{extension}"
        shutil.move(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)
