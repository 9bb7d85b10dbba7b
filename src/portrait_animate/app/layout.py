"""The page: three sections as in the reference app (SPEC 6.1-6.3), for both engines, with
named API endpoints ``/animate``, ``/retarget_image`` and ``/retarget_video``."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr

from ..choices import FACE_ORDERS
from ..errors import InputError, PortraitAnimateError
from ..io.images import read_image_rgb, write_image_rgb
from ..io.video import probe_video
from ..motion.composition import DrivingMode
from ..motion.editing import EDIT_RANGES, RATIO_RANGE, EditParams
from ..motion.model import REGIONS
from ..motion.presets import PRESET_PREFIX, PRESETS
from ..pipeline.inputs import InputKind
from ..pipeline.options import (
    DRIVING_OPTIONS,
    ENGINES,
    AnimateOptions,
    parse_driving_face,
    reword_options,
)
from ..pipeline.progress import WARNING, Reporter
from ..pipeline.retargeting import VideoRetargetOptions
from .backend import AppBackend
from .live import LiveHandlers, live_section
from .uploads import image_upload, refuse_out_of_range

__all__ = ["build_app", "page_error", "page_message", "user_errors", "EXPRESSION_SLIDERS",
           "MOVEMENT_SLIDERS"]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: name -> (label, minimum, maximum, step, default), SPEC 6.2 (the ends from EDIT_RANGES).
MOVEMENT_SLIDERS = {name: (label, EDIT_RANGES[name].low, EDIT_RANGES[name].high, step,
                           default)
                    for name, label, step, default in (
                        ("pitch", "relative pitch", 1, 0), ("yaw", "relative yaw", 1, 0),
                        ("roll", "relative roll", 1, 0), ("mov_x", "x-axis movement", 0.01, 0),
                        ("mov_y", "y-axis movement", 0.01, 0),
                        ("mov_z", "z-axis movement", 0.01, 1.0))}
EXPRESSION_SLIDERS = {name: (label, EDIT_RANGES[name].low, EDIT_RANGES[name].high, step, 0)
                      for name, label, step in (
                          ("pouting", "pouting", 0.01), ("pursing", "pursing 😐", 0.01),
                          ("grin", "grin 😁", 0.01), ("lip_open", "lip close <-> open", 1),
                          ("smile", "smile 😄", 0.01), ("wink", "wink 😉", 0.01),
                          ("eyebrow", "eyebrow 🤨", 0.01),
                          ("gaze_x", "eye gaze (horizontal) 👀", 0.01),
                          ("gaze_y", "eye gaze (vertical) 🙄", 0.01))}
EDIT_SCALE = 2.5

INTRO = """# portrait-animate
Bring a portrait to life with the motion of a driving video, image, template or preset;
edit a face with sliders; close or open the lips of a whole video. Engines: **neural**
(LivePortrait weights) or **classic** (no weights, MediaPipe face mesh); **auto** picks neural
when weights are found."""


#: The labels of the controls of animate's options, by option name: a message that names an
#: option as the command line does (``--driving_multiplier``) names its control instead.
PAGE_LABELS = {
    "flag_do_crop": "do crop (source)", "flag_crop_driving_video": "do crop (driving)",
    "flag_normalize_lip": "normalize lip", "flag_relative_motion": "relative motion",
    "flag_pasteback": "paste-back", "flag_stitching": "stitching",
    "animation_region": "animation region", "driving_option": "driving option (i2v)",
    "driving_multiplier": "driving multiplier (i2v)",
    "driving_smooth_observation_variance": "motion smooth strength (v2v)",
    "driving_smooth": "driving smooth", "driving_anchor": "driving anchor",
    "face_order": "face order", "source_faces": "source faces to animate",
    "driving_face": "driving face", "face_map": "face map", "engine": "engine",
    **{f"{name}{suffix}": f"{role} crop {what}"
       for role, suffix in (("source", ""), ("driving", "_crop_driving_video"))
       for name, what in (("scale", "scale"), ("vx_ratio", "x"), ("vy_ratio", "y"))},
}
def page_message(message: str, inputs: Iterable[object]) -> str:
    """A message as the page shows it: each uploaded file (an absolute path on the server
    among ``inputs``) is named by its file name, and each option that has a control by the
    control's label (:data:`PAGE_LABELS`)."""
    for value in inputs:
        if isinstance(value, str) and Path(value).is_absolute():
            message = message.replace(value, Path(value).name)
    return reword_options(
        message, lambda option: f"'{PAGE_LABELS[option]}'" if option in PAGE_LABELS else None,
        lambda option, on: f"{'tick' if on else 'untick'} '{PAGE_LABELS[option]}'")


def page_error(exc: Exception, inputs: Iterable[object], where: str) -> gr.Error:
    """The page's one readable message for ``exc``, a failure of ``where`` given ``inputs``
    (:func:`page_message`), never a stack trace. A user's error is one INFO line in the server
    log; only a fault logs its traceback."""
    if isinstance(exc, PortraitAnimateError):
        log.info("%s: %s", where, exc)
        return gr.Error(page_message(exc.page, inputs), print_exception=False)
    log.error("unexpected failure in %s", where, exc_info=exc)
    return gr.Error(page_message(f"unexpected failure ({type(exc).__name__}: {exc}); the "
                                 "server log has the details", inputs), print_exception=False)


def user_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """Failures reach the page as one readable message (:func:`page_error`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise page_error(exc, [*args, *kwargs.values()], fn.__name__) from None

    return wrapper


class PageClosedError(PortraitAnimateError):
    """The page that asked for a job was closed or reloaded: the job stops, its outputs
    removed, so that the page's next job does not wait behind it."""

    def __init__(self) -> None:
        super().__init__("the page was closed or reloaded, so its job stopped")


class _PageReporter(Reporter):
    """Progress of long jobs shown in the page; ``closed`` tells whether the page is gone,
    which stops the job (:class:`PageClosedError`) at its next step. Notes go to the server
    log; warnings (:data:`WARNING`) are kept for the page too (:attr:`warnings`, without
    the prefix), since they say the result may not be what the user wanted."""

    def __init__(self, progress: gr.Progress, closed: Callable[[], bool] = lambda: False
                 ) -> None:
        super().__init__(quiet=True)
        self.progress = progress
        self.closed = closed
        self.warnings: list[str] = []

    def note(self, message: str) -> None:
        log.info(message)
        if message.startswith(WARNING):  # from the pipeline's threads too: append is atomic
            self.warnings.append(message.removeprefix(WARNING))

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        self.progress((0, total), desc=description)
        for i, item in enumerate(items, 1):
            if self.closed():
                raise PageClosedError()
            yield item
            self.progress((i, total), desc=description)


def _show_warnings(reporter: _PageReporter, inputs: Iterable[object]) -> None:
    """Each warning of a finished job once, as the page words it (:func:`page_message`)."""
    inputs = list(inputs)
    for message in dict.fromkeys(reporter.warnings):
        gr.Warning(page_message(message, inputs))


def _pick(selected: str, candidates: dict[str, str | None], missing: str) -> tuple[str, str]:
    """The input of the selected tab, else the only one given: (tab, value).

    Raises:
        InputError: ``missing``, when no tab has an input.
    """
    if candidates.get(selected):
        return selected, candidates[selected]
    for tab, value in candidates.items():
        if value:
            return tab, value
    raise InputError(missing)


NO_SOURCE = "no source: upload an image or a video first"
NO_DRIVING = "no driving input: upload a video, an image or a template, or pick a preset first"
POSE_MOVES_NOTHING = ('the "pose" animation region moves nothing with a driving image in '
                      'relative motion; untick "relative motion" to take the image\'s pose')


SOURCE_KINDS = {"Image": InputKind.IMAGE, "Video": InputKind.VIDEO}
#: A source video's faces are listed from its first frames.
FACE_PREVIEW_FRAMES = 25
DRIVING_KINDS = {"Video": InputKind.VIDEO, "Image": InputKind.IMAGE,
                 "Template": InputKind.TEMPLATE, "Preset": InputKind.PRESET}


class _Handlers:
    """The functions behind the page's events; their parameter names are the API's."""

    def __init__(self, backend: AppBackend) -> None:
        self.backend = backend
        self._jobs: dict[str, int] = {}  # the long jobs running, by page
        self._closed: set[str] = set()  # the pages gone with a job running
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _page_job(self, request: gr.Request | None, progress: gr.Progress,
                  inputs: Iterable[object]) -> Iterator[_PageReporter]:
        """The reporter of a long job of the page of ``request`` (none: a test's), showing
        ``progress``, which stops the job once the page is closed (:meth:`page_closed`). A
        job that ends shows its warnings in the page, worded for it (:func:`page_message`
        of the job's ``inputs``): the frame loop runs on the pipeline's threads, where
        Gradio's messages cannot be raised, so they are shown from the event's."""
        page = getattr(request, "session_hash", None)
        if page is not None:
            with self._lock:
                self._jobs[page] = self._jobs.get(page, 0) + 1
        try:
            reporter = _PageReporter(progress, lambda: page in self._closed)
            yield reporter
            _show_warnings(reporter, inputs)
        finally:
            if page is not None:
                with self._lock:
                    self._jobs[page] -= 1
                    if not self._jobs[page]:
                        del self._jobs[page]
                        self._closed.discard(page)

    def page_closed(self, request: gr.Request) -> None:
        """The page of ``request`` was closed or reloaded: its long jobs stop."""
        with self._lock:
            if request.session_hash in self._jobs:
                self._closed.add(request.session_hash)
                log.info("a page with a job running was closed: the job stops")

    def animate(self, source_tab: str, driving_tab: str, flag_do_crop: bool, scale: float,
                vx_ratio: float, vy_ratio: float, flag_crop_driving_video: bool,
                scale_crop_driving_video: float, vx_ratio_crop_driving_video: float,
                vy_ratio_crop_driving_video: float, flag_normalize_lip: bool,
                flag_relative_motion: bool, flag_pasteback: bool, flag_stitching: bool,
                animation_region: str, driving_option: str, driving_multiplier: float,
                driving_smooth_observation_variance: float, engine: str,
                source_image: str | None = None, source_video: str | None = None,
                driving_video: str | None = None, driving_image: str | None = None,
                driving_template: str | None = None, driving_preset: str | None = None,
                driving_smooth: float = AnimateOptions.driving_smooth,
                driving_anchor: str = AnimateOptions.driving_anchor,
                source_faces: list[str] | str | None = None,
                face_order: str = AnimateOptions.face_order,
                driving_face: str = AnimateOptions.driving_face,
                face_map: str = AnimateOptions.face_map,
                request: gr.Request = None,
                progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        """Inputs without a value, or with a default, come last, so that API calls may leave
        them out. ``source_faces``: the face numbers chosen, or all (none: the largest
        face), or the option's text (all, largest, 0,2)."""
        src_tab, source = _pick(source_tab, {"Image": source_image, "Video": source_video},
                                NO_SOURCE)
        preset = f"{PRESET_PREFIX}{driving_preset}" if driving_preset else None
        drv_tab, driving = _pick(driving_tab, {"Video": driving_video, "Image": driving_image,
                                               "Template": driving_template, "Preset": preset},
                                 NO_DRIVING)
        source = self.backend.upload(source, "source", SOURCE_KINDS[src_tab])
        if drv_tab != "Preset":
            driving = self.backend.upload(driving, "driving", DRIVING_KINDS[drv_tab])
        if drv_tab == "Video" and not flag_crop_driving_video:
            width, height = probe_video(driving).size
            if width != height:
                gr.Info("The driving video is not square, so it is cropped to the face.")
        if drv_tab == "Image" and DrivingMode(flag_relative_motion, animation_region,
                                              driving_is_video=False).moves_nothing:
            gr.Warning(POSE_MOVES_NOTHING)
        with self._page_job(request, progress, (source, driving)) as reporter:
            result = self.backend.animate(
                source, driving, engine, reporter, flag_do_crop=flag_do_crop,
                scale=scale, vx_ratio=vx_ratio, vy_ratio=vy_ratio,
                flag_crop_driving_video=flag_crop_driving_video,
                scale_crop_driving_video=scale_crop_driving_video,
                vx_ratio_crop_driving_video=vx_ratio_crop_driving_video,
                vy_ratio_crop_driving_video=vy_ratio_crop_driving_video,
                flag_normalize_lip=flag_normalize_lip, flag_relative_motion=flag_relative_motion,
                flag_pasteback=flag_pasteback, flag_stitching=flag_stitching,
                animation_region=animation_region, driving_option=driving_option,
                driving_multiplier=driving_multiplier,
                driving_smooth_observation_variance=driving_smooth_observation_variance,
                driving_smooth=driving_smooth, driving_anchor=str(driving_anchor),
                source_faces=_faces_option(source_faces), face_order=face_order,
                driving_face=str(driving_face).strip() or "largest", face_map=face_map or "")
        paths = (str(result.output), str(result.concat))
        if result.fps is not None:
            return (*paths, None, None)
        return (None, None, *paths)

    def find_faces(self, source_tab: str, face_order: str, source_image: str | None = None,
                   source_video: str | None = None) -> tuple:
        """The source's faces: a preview with their numbers, and their choices (none chosen:
        the largest face is animated)."""
        kind = SOURCE_KINDS.get(source_tab, InputKind.IMAGE)
        path = source_image if kind is InputKind.IMAGE else source_video
        if not path:
            return None, gr.update(choices=[], value=[])
        path = self.backend.upload(path, "source", kind)
        found = self.backend.find_faces(path, kind, face_order, frames=FACE_PREVIEW_FRAMES)
        choices = ["all", *(str(f.number) for f in found.faces)]
        return found.preview, gr.update(choices=choices, value=[])

    def find_edit_faces(self, image: str | None = None) -> tuple:
        """The image's faces for editing: a preview with their numbers, and the face picker
        (largest, or a number)."""
        if not image:
            return None, _edit_face_picker()
        image = self.backend.upload(image, "image", InputKind.IMAGE)
        found = self.backend.find_faces(image, InputKind.IMAGE, "large-small")
        return found.preview, _edit_face_picker(f.number for f in found.faces)

    def init_retargeting_image(self, flag_do_crop: bool, scale: float, engine: str,
                               image: str | None = None,
                               face: str = "largest") -> tuple[float, float]:
        if not image:
            return 0.0, 0.0
        image = self.backend.upload(image, "image", InputKind.IMAGE)
        source = self.backend.edit_source(image, engine, flag_do_crop, scale,
                                          _edit_face(face))
        return source.eye_ratio or 0.0, source.lip_ratio or 0.0

    def retarget_image(self, eye_ratio: float, lip_ratio: float,
                       pitch: float, yaw: float, roll: float, mov_x: float, mov_y: float,
                       mov_z: float, pouting: float, pursing: float, grin: float,
                       lip_open: float, smile: float, wink: float, eyebrow: float,
                       gaze_x: float, gaze_y: float, flag_do_crop: bool, flag_stitching: bool,
                       scale: float, engine: str, image: str | None = None,
                       face: str = "largest") -> tuple:
        """The edited crop, the pasted-back result and the tick's latency. A ratio of 0
        means "no value set": the eyes or lips stay as they are. ``face``: the face edited,
        largest or its number (large-small); the others stay as they are."""
        if not image:
            return None, None, ""
        image = self.backend.upload(image, "image", InputKind.IMAGE)
        params = EditParams(pitch=pitch, yaw=yaw, roll=roll, mov_x=mov_x, mov_y=mov_y,
                            mov_z=mov_z, pouting=pouting, pursing=pursing, grin=grin,
                            lip_open=lip_open, smile=smile, wink=wink, eyebrow=eyebrow,
                            gaze_x=gaze_x, gaze_y=gaze_y)
        tick = self.backend.edit(image, params, engine=engine, do_crop=flag_do_crop,
                                 stitching=flag_stitching, scale=scale,
                                 eye_ratio=eye_ratio or None, lip_ratio=lip_ratio or None,
                                 face=_edit_face(face))
        cached = "face analysis cached" if tick.prepare_ms == 0 else \
            f"face analysis {tick.prepare_ms:.0f} ms"
        status = f"{tick.engine} engine: render {tick.render_ms:.0f} ms ({cached})"
        return tick.image.crop, tick.image.pasted, status

    def retarget_video(self, lip_ratio: float, smooth_observation_variance: float,
                       lip_silent: bool, flag_do_crop: bool, scale: float, engine: str,
                       video: str | None = None, request: gr.Request = None,
                       progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        if not video:
            raise InputError("no video: upload one first")
        video = self.backend.upload(video, "video", InputKind.VIDEO)
        options = VideoRetargetOptions(
            lip_ratio=lip_ratio, smooth_observation_variance=smooth_observation_variance,
            lip_silent=lip_silent, do_crop=flag_do_crop, scale=scale,
            det_thresh=self.backend.base.det_thresh)
        with self._page_job(request, progress, (video,)) as reporter:
            result = self.backend.retarget_video(video, options, engine, reporter)
        return str(result.concat), str(result.output)


def _faces_option(chosen: list[str] | str | None) -> str:
    """``--source_faces`` from the faces chosen (numbers, or all; none: largest) or the
    option's own text."""
    if isinstance(chosen, str):
        return chosen.strip() or "largest"
    chosen = [str(c).strip() for c in chosen or ()]
    if "all" in chosen:
        return "all"
    return ",".join(chosen) if chosen else "largest"


def _edit_face_picker(numbers: Iterable[int] = ()) -> dict:
    """The editing face picker: largest, then the faces' numbers; largest picked."""
    return gr.update(choices=["largest", *(str(n) for n in numbers)], value="largest")


def _edit_face(face: str | None) -> int | None:
    """The face picker's value as a face number, None for the largest."""
    try:
        return parse_driving_face(str(face or "largest"))
    except ValueError:
        raise InputError(f"face {face!r} is not largest or a face number (0, 1, ...); pick "
                         "one from the list") from None


def _engine_radio(default: str, elem_id: str) -> gr.Radio:
    return gr.Radio(list(ENGINES), value=default, label=PAGE_LABELS["engine"],
                    info="auto: neural when LivePortrait weights are found, else classic",
                    elem_id=elem_id)


def _crop_numbers(scale: float, vx: float, vy: float, prefix: str) -> list[gr.Number]:
    suffix = "" if prefix == "source" else "_crop_driving_video"
    return [gr.Number(scale, label=PAGE_LABELS[f"scale{suffix}"], minimum=1.8, maximum=3.2,
                      step=0.05),
            gr.Number(vx, label=PAGE_LABELS[f"vx_ratio{suffix}"], minimum=-0.5, maximum=0.5,
                      step=0.01),
            gr.Number(vy, label=PAGE_LABELS[f"vy_ratio{suffix}"], minimum=-0.5, maximum=0.5,
                      step=0.01)]


def _tab_tracker(tabs: dict[str, gr.Tab], value: str) -> gr.Textbox:
    """A hidden textbox holding the selected tab's name (each tab's ``id``)."""
    selected = gr.Textbox(value, visible=False)
    for name, tab in tabs.items():
        tab.select(lambda n=name: n, None, selected, queue=False, api_visibility="private")
    return selected


def _animation_section(handlers: _Handlers, base: AnimateOptions, astronaut: str) -> None:
    """The controls start at the app's command-line values (the reference's defaults)."""
    gr.Markdown("## Animation")
    with gr.Row():
        with gr.Column():
            with gr.Tabs() as source_tabs:
                with gr.Tab("🖼️ Source Image", id="Image") as src_image_tab:
                    source_image = image_upload("source image", elem_id="source-image")
                with gr.Tab("🎞️ Source Video", id="Video") as src_video_tab:
                    source_video = gr.Video(label="source video", elem_id="source-video")
            source_tab = _tab_tracker({"Image": src_image_tab, "Video": src_video_tab}, "Image")
            with gr.Accordion("Cropping Options for Source Image or Video", open=False):
                do_crop = gr.Checkbox(base.flag_do_crop, label=PAGE_LABELS["flag_do_crop"])
                source_crop = _crop_numbers(base.scale, base.vx_ratio, base.vy_ratio, "source")
        with gr.Column():
            with gr.Tabs() as driving_tabs:
                with gr.Tab("🎞️ Driving Video", id="Video") as drv_video_tab:
                    driving_video = gr.Video(label="driving video", elem_id="driving-video")
                with gr.Tab("🖼️ Driving Image", id="Image") as drv_image_tab:
                    driving_image = image_upload("driving image", elem_id="driving-image")
                with gr.Tab("📁 Driving Template", id="Template") as drv_template_tab:
                    driving_template = gr.File(label="motion template (.pkl, .npz)",
                                               file_types=[".pkl", ".npz"],
                                               elem_id="driving-template")
                with gr.Tab("✨ Preset", id="Preset") as drv_preset_tab:
                    driving_preset = gr.Dropdown(
                        [(f"{name}: {desc}", name) for name, (_, _, desc) in PRESETS.items()],
                        value=None, label="preset motion", elem_id="driving-preset")
            driving_tab = _tab_tracker({"Video": drv_video_tab, "Image": drv_image_tab,
                                        "Template": drv_template_tab,
                                        "Preset": drv_preset_tab}, "Video")
            with gr.Accordion("Cropping Options for Driving Video", open=False):
                crop_driving = gr.Checkbox(base.flag_crop_driving_video,
                                           label=PAGE_LABELS["flag_crop_driving_video"])
                driving_crop = _crop_numbers(base.scale_crop_driving_video,
                                             base.vx_ratio_crop_driving_video,
                                             base.vy_ratio_crop_driving_video, "driving")
    with gr.Accordion("Animation Options", open=True), gr.Row():
        normalize_lip = gr.Checkbox(base.flag_normalize_lip,
                                    label=PAGE_LABELS["flag_normalize_lip"])
        relative = gr.Checkbox(base.flag_relative_motion,
                               label=PAGE_LABELS["flag_relative_motion"])
        pasteback = gr.Checkbox(base.flag_pasteback, label=PAGE_LABELS["flag_pasteback"])
        stitching = gr.Checkbox(base.flag_stitching, label=PAGE_LABELS["flag_stitching"])
        region = gr.Radio(list(REGIONS), value=base.animation_region,
                          label=PAGE_LABELS["animation_region"])
        driving_option = gr.Radio(list(DRIVING_OPTIONS), value=base.driving_option,
                                  label=PAGE_LABELS["driving_option"],
                                  info="the same result either way, as in the reference")
        multiplier = gr.Number(base.driving_multiplier, label=PAGE_LABELS["driving_multiplier"],
                               minimum=0.0, maximum=2.0, step=0.02)
        smoothing = gr.Number(base.driving_smooth_observation_variance,
                              label=PAGE_LABELS["driving_smooth_observation_variance"],
                              minimum=1e-11, maximum=1e-2, step=1e-8)
        engine_radio = _engine_radio(base.engine, "engine")
    with gr.Accordion("Stable motion (driving video)", open=False), gr.Row():
        driving_smooth = gr.Number(base.driving_smooth, label=PAGE_LABELS["driving_smooth"],
                                   minimum=0.0, maximum=10.0, step=0.5,
                                   info="frames of zero-phase smoothing; 0 turns it off")
        driving_anchor = gr.Dropdown(["auto", "first"], value=base.driving_anchor,
                                     allow_custom_value=True, label=PAGE_LABELS["driving_anchor"],
                                     info="the frame the driving motion starts from: auto (the "
                                          "most neutral), first, or a frame number")
    with gr.Accordion("👥 Faces (group photos and videos)", open=False):
        with gr.Row():
            face_order = gr.Dropdown(list(FACE_ORDERS), value=base.face_order,
                                     label=PAGE_LABELS["face_order"], elem_id="face-order",
                                     info="how the faces are numbered")
            source_faces = gr.Dropdown([], value=[], multiselect=True,
                                       allow_custom_value=True, label=PAGE_LABELS["source_faces"],
                                       info="their numbers, or all; none: the largest face",
                                       elem_id="source-faces")
            driving_face = gr.Textbox(base.driving_face, label=PAGE_LABELS["driving_face"],
                                      info="the face of the driver that drives them: "
                                           "largest, or its number", elem_id="driving-face")
            face_map = gr.Textbox(base.face_map, label=PAGE_LABELS["face_map"], elem_id="face-map",
                                  info="source faces driven by other driving faces: "
                                       "SOURCE:DRIVING pairs, e.g. 0:1,1:0")
        faces_preview = gr.Image(label="faces found in the source", interactive=False,
                                 elem_id="faces-preview")
    with gr.Row():
        animate_button = gr.Button("🚀 Animate", variant="primary", elem_id="animate-button")
        clear = gr.ClearButton(value="🧹 Clear")
    with gr.Row():
        result_video = gr.Video(label="The animated video in the original image space",
                                elem_id="result-video", interactive=False)
        concat_video = gr.Video(label="The animated video", elem_id="concat-video",
                                interactive=False)
        result_image = gr.Image(label="The animated image in the original image space",
                                visible=False, elem_id="result-image", interactive=False)
        concat_image = gr.Image(label="The animated image", visible=False,
                                elem_id="concat-image", interactive=False)
    inputs = [source_tab, driving_tab, do_crop, *source_crop, crop_driving, *driving_crop,
              normalize_lip, relative, pasteback, stitching, region, driving_option, multiplier,
              smoothing, engine_radio, source_image, source_video, driving_video, driving_image,
              driving_template, driving_preset, driving_smooth, driving_anchor, source_faces,
              face_order, driving_face, face_map]
    outputs = [result_video, concat_video, result_image, concat_image]
    find = user_errors(handlers.find_faces)
    for event in (source_image.change, source_video.change, face_order.input):
        event(find, [source_tab, face_order, source_image, source_video],
              [faces_preview, source_faces], api_visibility="private")
    clear.add([source_image, source_video, driving_video, driving_image, driving_template,
               *outputs])
    animate_button.click(user_errors(handlers.animate), inputs, outputs, api_name="animate",
                         concurrency_id="engine").then(
        _show_filled, outputs, outputs, api_visibility="private", queue=False)
    # the hidden tab trackers are no example inputs: the examples table would have two
    # columns without a header, which the page cannot draw
    examples = gr.Examples([[astronaut, name] for name in ("talk", "smile", "nod")],
                           [source_image, driving_preset],
                           label="🖼️ Portrait Animation (astronaut and presets)",
                           cache_examples=False, elem_id="animation-examples")
    examples.load_input_event.then(
        lambda: (gr.Tabs(selected="Image"), "Image", gr.Tabs(selected="Preset"), "Preset"),
        None, [source_tabs, source_tab, driving_tabs, driving_tab], queue=False,
        api_visibility="private")


def _show_filled(*values: object) -> list[dict]:
    """Show the result components that hold something (images or videos), hide the rest."""
    return [gr.update(visible=value is not None) for value in values]


def _slider(spec: tuple, name: str) -> gr.Slider:
    label, minimum, maximum, step, default = spec
    return gr.Slider(minimum, maximum, value=default, step=step, label=label, elem_id=name)


def _image_retargeting_section(handlers: _Handlers, engine: str, astronaut: str) -> None:
    gr.Markdown("## Image retargeting and precise portrait editing")
    with gr.Row():
        do_crop = gr.Checkbox(True, label=PAGE_LABELS["flag_do_crop"], elem_id="edit-do-crop")
        stitching = gr.Checkbox(True, label="stitching", elem_id="edit-stitching")
        scale = gr.Number(EDIT_SCALE, label="crop scale", minimum=1.8, maximum=3.2, step=0.05,
                          elem_id="edit-scale")
        eye_ratio = gr.Slider(RATIO_RANGE.low, RATIO_RANGE.high, value=0, step=0.01,
                              label="target eyes-open ratio", elem_id="eye-ratio")
        lip_ratio = gr.Slider(RATIO_RANGE.low, RATIO_RANGE.high, value=0, step=0.01,
                              label="target lip-open ratio", elem_id="lip-ratio")
        engine_radio = _engine_radio(engine, "edit-engine")
    with gr.Row():
        with gr.Column():
            image = image_upload("source image", elem_id="edit-image")
            example = gr.Examples([[astronaut]], [image], label="example",
                                  cache_examples=False)
            with gr.Accordion("👥 Faces", open=False):
                edit_face = gr.Dropdown(["largest"], value="largest", label="face to edit",
                                        allow_custom_value=True,
                                        info="numbered by size, largest first",
                                        elem_id="edit-face")
                edit_preview = gr.Image(label="faces found", interactive=False,
                                        elem_id="edit-faces-preview")
        with gr.Column():
            with gr.Accordion("Facial movement sliders", open=True):
                movement = {n: _slider(s, n) for n, s in MOVEMENT_SLIDERS.items()}
            with gr.Accordion("Facial expression sliders", open=True):
                expression = {n: _slider(s, n) for n, s in EXPRESSION_SLIDERS.items()}
    with gr.Row():
        reset = gr.Button("🔄 Reset", elem_id="edit-reset")
        clear = gr.ClearButton(value="🧹 Clear")
    with gr.Row():
        crop_out = gr.Image(label="Retargeting Result", elem_id="edit-crop", interactive=False)
        pasted_out = gr.Image(label="Paste-back Result", elem_id="edit-pasted",
                              interactive=False)
    status = gr.Markdown(elem_id="edit-status", label="status")
    sliders = [*movement.values(), *expression.values()]
    inputs = [eye_ratio, lip_ratio, *sliders, do_crop, stitching, scale, engine_radio, image,
              edit_face]
    outputs = [crop_out, pasted_out, status]
    render = user_errors(handlers.retarget_image)
    init = user_errors(handlers.init_retargeting_image)
    # first, so that the API's names are these events' (later ones get a suffix)
    edit_face.input(init, [do_crop, scale, engine_radio, image, edit_face],
                    [eye_ratio, lip_ratio], api_name="init_retargeting_image",
                    concurrency_id="engine").then(render, inputs, outputs,
                                                  api_name="retarget_image",
                                                  concurrency_id="engine")
    find = user_errors(handlers.find_edit_faces)
    clear.add([image, *outputs])
    # A new image (or none) first clears what the last one showed, so that one that fails
    # shows its one message and nothing of the image before it. Not on the image's change:
    # replacing an image changes it twice, which ran the image's checks (and its message) twice.
    for new_image in (image.upload, image.clear, clear.click, example.load_input_event.then):
        new_image(lambda: (None, _edit_face_picker(), 0, 0, None, None, ""), None,
                  [edit_preview, edit_face, eye_ratio, lip_ratio, *outputs], queue=False,
                  api_visibility="private").then(
            find, [image], [edit_preview, edit_face], api_visibility="private").success(
            init, [do_crop, scale, engine_radio, image, edit_face], [eye_ratio, lip_ratio],
            api_visibility="private", concurrency_id="engine").success(
            render, inputs, outputs, api_visibility="private", concurrency_id="engine")
    # input fires on the user's moves only (drag or typing), not when init sets the ratios.
    for control in [eye_ratio, lip_ratio, *sliders]:
        control.input(render, inputs, outputs, api_visibility="private",
                        concurrency_id="engine", trigger_mode="always_last")
    for control in (do_crop, stitching, scale, engine_radio):
        control.input(render, inputs, outputs, api_visibility="private",
                      concurrency_id="engine", trigger_mode="always_last")
    defaults = [s[-1] for s in (*MOVEMENT_SLIDERS.values(), *EXPRESSION_SLIDERS.values())]
    reset.click(lambda: (*defaults, EDIT_SCALE, True, True), None,
                [*sliders, scale, stitching, do_crop], api_visibility="private",
                queue=False).then(render, inputs, outputs, api_visibility="private",
                                  concurrency_id="engine")


def _video_retargeting_section(handlers: _Handlers, engine: str) -> None:
    gr.Markdown("## Video retargeting")
    with gr.Row():
        do_crop = gr.Checkbox(True, label=PAGE_LABELS["flag_do_crop"])
        scale = gr.Number(2.3, label="crop scale", minimum=1.8, maximum=3.2, step=0.05)
        lip_ratio = gr.Slider(0, 0.8, value=0, step=0.01, label="target lip-open ratio",
                              elem_id="video-lip-ratio")
        smoothing = gr.Number(3e-6, label="motion smooth strength", minimum=1e-11,
                              maximum=1e-2, step=1e-8)
        lip_silent = gr.Checkbox(False, label="keeping the lip silent", elem_id="lip-silent")
        engine_radio = _engine_radio(engine, "video-engine")
    with gr.Row():
        video = gr.Video(label="source video", elem_id="retarget-video-input")
        concat_out = gr.Video(label="Retargeting Result", elem_id="retarget-video-concat",
                              interactive=False)
        result_out = gr.Video(label="Paste-back Result", elem_id="retarget-video-result",
                              interactive=False)
    with gr.Row():
        button = gr.Button("🚗 Retargeting Video", variant="primary",
                           elem_id="retarget-video-button")
        clear = gr.ClearButton(value="🧹 Clear")
    clear.add([lip_ratio, video, concat_out, result_out])
    button.click(user_errors(handlers.retarget_video),
                 [lip_ratio, smoothing, lip_silent, do_crop, scale, engine_radio, video],
                 [concat_out, result_out], api_name="retarget_video", concurrency_id="engine")


def _astronaut_file(work_dir: Path) -> str:
    path = work_dir / "examples" / "astronaut.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image_rgb(path, read_image_rgb("sample:astronaut"))
    return str(path)


def build_app(backend: AppBackend) -> gr.Blocks:
    """The app's page on ``backend``; launch it with ``.launch()``."""
    handlers = _Handlers(backend)
    astronaut = _astronaut_file(backend.work_dir)
    engine = backend.base.engine
    with gr.Blocks(title="portrait-animate") as demo:
        gr.Markdown(INTRO)
        _animation_section(handlers, backend.base, astronaut)
        _image_retargeting_section(handlers, engine, astronaut)
        _video_retargeting_section(handlers, engine)
        with gr.Tab("📷 Live"):
            live_section(LiveHandlers(backend, page_error), engine, astronaut)
        demo.unload(handlers.page_closed)
    for block in demo.blocks.values():
        if isinstance(block, (gr.Slider, gr.Number)) and None not in (block.minimum,
                                                                     block.maximum):
            refuse_out_of_range(block)
    return demo
