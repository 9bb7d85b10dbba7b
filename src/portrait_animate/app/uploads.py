"""Checks on what the browser sends: an upload's kind by extension and content, size and
video length; a number typed outside its control's range."""

from __future__ import annotations

import logging
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import InputError
from ..io.images import ANIMATED_EXTENSIONS, register_heif
from ..io.video import probe_video
from ..pipeline.inputs import InputKind, check_readable, classify_input
from .limits import AppLimits

__all__ = ["AppLimits", "Refused", "checked_upload", "image_upload", "refuse_out_of_range"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Refused:
    """What a control with quiet refusals (``quiet=True``) hands its event's function in place
    of a value it refuses: the page's message and what was refused (the upload's path, the
    number). A stream calls its function for every frame, where an error raised by the
    control would show again on each; the function tells it once instead (the Live tab)."""

    message: str
    value: Hashable


_NAMES = {InputKind.IMAGE: "an image", InputKind.VIDEO: "a video",
          InputKind.TEMPLATE: "a motion template", InputKind.PRESET: "a preset"}


def checked_upload(path: str, role: str, kind: InputKind, limits: AppLimits) -> str:
    """``path`` when it is a readable ``kind`` within the limits.

    Raises:
        InputError: naming the problem and the fix; over a limit, the message for the server's
            log names the app's option that sets it, the page's tells the user what to do.
    """
    file = Path(path)
    if not file.is_file():
        raise InputError(f"the {role} upload is gone ({file.name}); upload it again")
    size_mb = file.stat().st_size / 2**20
    if size_mb > limits.max_upload_mb:
        over = f"the {role} is {size_mb:.0f} MB, over this app's {limits.max_upload_mb:g} MB limit"
        raise InputError(f"{over} (--max_upload_mb)", page=f"{over}; upload a smaller file")
    found = classify_input(path, role, allow_template=kind is InputKind.TEMPLATE)
    if found is not kind:
        # the animate page's source and driving have a tab per kind; the other sections one
        fix = (f"upload it in the {found.value} tab" if role in ("source", "driving")
               else f"upload {_NAMES[kind]} here")
        what = _NAMES[found]
        if found is InputKind.VIDEO and file.suffix.lower() in ANIMATED_EXTENSIONS:
            # the video tabs' file pickers offer video files only
            name = {".webp": "WebP"}.get(file.suffix.lower(), file.suffix[1:].upper())
            what, fix = f"an animated {name}", f"save it as an .mp4 video and {fix}"
        raise InputError(f"the {role} must be {_NAMES[kind]}, but {file.name} is {what}; {fix}")
    check_readable(path, kind)
    if kind is InputKind.VIDEO:
        seconds = probe_video(path).duration
        if seconds > limits.max_video_seconds:
            over = (f"the {role} lasts {seconds:.0f} s, over this app's "
                    f"{limits.max_video_seconds:g} s limit")
            raise InputError(f"{over} (--max_video_seconds)", page=f"{over}; upload a shorter "
                             "video")
    return path


def image_upload(label: str, value: Any = None, *, quiet: bool = False,
                 **kwargs: Any) -> gr.Image:
    """A ``gr.Image`` upload (``type="filepath"``) whose file that is no image (text, a
    cut-off or oversized picture) is one message naming the upload and the fix, where
    Gradio's own error listed the event's components and the file's path on the server.

    The uploaded file is passed on as it is (``image_mode=None``), so the app reads it as
    ``animate`` does: Gradio's conversion to RGB would drop a transparent picture's alpha
    (showing what it hides, often black) where :func:`~..io.images.read_image_rgb` lays it
    over white.

    Its ``preprocess`` is wrapped on the instance: a subclass of ``gr.Image`` would make
    Gradio write a ``.pyi`` stub beside this module at import. ``quiet``: such a file is passed
    on as :class:`Refused`, not logged, for the event's function to tell."""
    register_heif()  # Gradio opens the upload with Pillow: an iPhone's photo is a HEIC
    image = gr.Image(value, type="filepath", label=label, image_mode=None, **kwargs)
    read = image.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return read(payload)
        except Exception as exc:
            name = getattr(payload, "orig_name", None) or Path(getattr(payload, "path", "")).name
            message = (f"the {label.lower()} upload {name} cannot be read as an image; "
                       "upload a .jpg, .png or .webp picture")
            if quiet:
                return Refused(message, getattr(payload, "path", None) or name)
            log.info("%s (%s)", message, type(exc).__name__)
            raise gr.Error(message, print_exception=False) from None

    image.preprocess = preprocess
    return image


def refuse_out_of_range(control: gr.Slider | gr.Number, *, quiet: bool = False) -> None:
    """A number typed outside the control's range (both its ends set) is one message naming
    the control and its range, and one line in the server's log, where Gradio's own error
    named neither and logged a traceback; ``quiet``: it is passed on as :class:`Refused`, not
    logged, for the event's function to tell. A control checked already is left as it is.

    Its ``preprocess`` is wrapped on the instance, as :func:`image_upload` does."""
    read = control.preprocess
    if getattr(read, "checks_range", False):
        return
    low, high = control.minimum, control.maximum

    def preprocess(payload: Any) -> Any:
        if payload is not None and not low <= payload <= high:
            message = (f"'{control.label}' takes {low:g} to {high:g}; {payload:g} is out of "
                       "range")
            if quiet:
                return Refused(message, payload)
            log.info(message)
            raise gr.Error(message, print_exception=False)
        return read(payload)

    preprocess.checks_range = True  # type: ignore[attr-defined]
    control.preprocess = preprocess
