"""``animate``: a source image or video driven by a video, an image or a motion template
(SPEC 4), streamed frame by frame.

Four threads overlap: the driving video's decoding and face analysis (:mod:`.driving`); each
frame's driving motion, keypoints and source appearance (:func:`_render_items`, run ahead by
:func:`.prefetch.ahead`); the rendering, a batch of frames at a time (here); and the
compositing (paste-back, concat), PNG and video encoding (:mod:`.outputs`, ffmpeg in its own
processes). Queues between them are bounded, so memory stays flat in video length."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from itertools import islice
from pathlib import Path

import numpy as np
import torch

from ..engines.base import Engine, RenderItem
from ..errors import InputError
from ..face.mesh import FaceMesh
from ..face.tracking import FacePick, FaceTracker
from ..io.files import check_output_folder, fitted_name, removed_on_failure
from ..io.images import read_image_rgb
from ..io.templates import load_template, save_face_templates
from ..io.video import probe_video
from ..motion.composition import (
    DrivingMode,
    apply_expression_friendly,
    compose_image_source,
    compose_video_source,
    expression_friendly_multiplier,
    video_source_tracks,
)
from ..motion.model import LIVEPORTRAIT_LAYOUT, Motion
from ..motion.retargeting import (
    RetargetingOptions,
    finalize_keypoints,
    normalize_lip_delta,
    source_eye_target,
    source_video_eye_delta,
)
from ..motion.template import MotionTemplate, takes_by_ratios
from .compositing import Compositor
from .driving import (
    DRIVER_NAMES,
    PreparedDriving,
    TimeBase,
    anchor_past_the_end,
    prepare_driving,
)
from .engines import engine_layout, load_engine
from .faces import CropSettings
from .inputs import (
    InputKind,
    check_readable,
    classify_input,
    driving_kind,
    input_name,
    limited_size,
)
from .options import (
    AnimateOptions,
    parse_anchor,
    parse_driving_face,
    parse_face_map,
    parse_faces,
)
from .outputs import OutputNames, OutputWriter, concat_panels
from .prefetch import ahead
from .progress import Reporter
from .source import PreparedSource, SourceFrame, SourceGroup, prepare_source_faces

__all__ = ["AnimateResult", "FrameAnimator", "MAX_SHIFT", "analyse_driving", "animate",
           "check_inputs", "driving_faces", "note_whole_source", "paste_back_active",
           "prepare_animation_source"]

#: How far the driven keypoints may move from the source's, in face sizes (the longer side of
#: the source keypoints' box), before the engines tear the face: on the classic engine a head
#: turn of preset:shake x4 (0.54) tears it, while the real head motion of d9.mp4 (up to 0.29,
#: 0.43 at x1.5) renders whole.
MAX_SHIFT = 0.5
#: Below this (in face sizes) no keypoint of an animated image moves: the result is still.
STILL = 1e-4


@dataclass
class AnimateResult:
    """Attributes:
    output: the result (``.jpg`` or ``.mp4``).
    concat: driving | source | result side by side.
    frames_dir: the lossless PNG frames, when asked for.
    template: the driving motion template written, if any.
    n_frames: animated frames.
    fps: frame rate of a video result, else None.
    engine: the engine that ran.
    """

    output: Path
    concat: Path
    frames_dir: Path | None
    template: Path | None
    n_frames: int
    fps: float | None
    engine: str


def _check_options(options: AnimateOptions, src_kind: InputKind, drv_kind: InputKind) -> None:
    invalid = options.invalid_values()
    if invalid:
        raise InputError(invalid[0])
    anchor = parse_anchor(options.driving_anchor)
    if drv_kind is InputKind.IMAGE and isinstance(anchor, int) and anchor > 0:
        raise InputError(anchor_past_the_end(anchor, drv_kind, options.driving, 1))
    problems = options.conflicts()
    if drv_kind is InputKind.PRESET and not options.flag_relative_motion:
        problems.append("a preset drives relative motion; drop --no_flag_relative_motion")
    if drv_kind is InputKind.PRESET and (options.driving_face != "largest" or options.face_map):
        problems.append("a preset moves one face; drop --driving_face and --face_map, or "
                        "drive by a video, an image or a template of several faces")
    if options.source_faces != "largest" and not paste_back_active(options):
        given = [flag for flag, off in (
            ("--no_flag_do_crop", not options.flag_do_crop),
            ("--no_flag_pasteback", not options.flag_pasteback),
            ("--no_flag_stitching", not (options.flag_stitching
                                         or options.flag_pasteback_without_stitching))) if off]
        problems.append(f"faces picked by --source_faces {options.source_faces} are animated "
                        f"in the whole source frame, pasted back; drop {' and '.join(given)}")
    if options.flag_source_video_eye_retargeting and src_kind is not InputKind.VIDEO:
        problems.append("--flag_source_video_eye_retargeting needs a source video; drop it for "
                        "an image source")
    if problems:
        raise InputError("conflicting options: " + problems[0])


def _check_layout(spec: str, layout: str, engine: str) -> None:
    """A motion template's keypoints against the engine (by name) that is to use them (one
    that the engine takes by its ratios is on the engine's layout by now)."""
    needed = "neural" if layout == LIVEPORTRAIT_LAYOUT.name else "classic"
    if engine != needed:
        by_ratios = engine_layout(engine).ratio_motion is not None
        problem = (f"the motion template {spec} holds {layout} keypoints"
                   + (f" and no eye and lip ratios, and the {engine} engine takes such a "
                      "template by its ratios" if by_ratios
                      else f", which the {engine} engine cannot use"))
        raise InputError(f"{problem}; run with --engine {needed} (or re-create the template "
                         "from its driving video)", page=f"{problem}; pick the {needed} engine")


#: Why --driving_smooth does nothing to a driver of each kind that it leaves as it is.
_UNSMOOTHED = {
    InputKind.TEMPLATE: "its motion is used as it was saved (one that animate wrote was "
                        "smoothed then)",
    InputKind.PRESET: "its motion is smooth as it is made",
    InputKind.IMAGE: "one frame has no jitter to smooth"}


def _check_ratios(options: AnimateOptions, kind: InputKind, spec: str, eyes: bool,
                  lips: bool) -> None:
    """Eye and lip retargeting against the open ratios a driver has (``eyes``, ``lips``)."""
    for flag, wanted, has in (("eye", options.flag_eye_retargeting, eyes),
                              ("lip", options.flag_lip_retargeting, lips)):
        if wanted and not has:
            raise InputError(f"--flag_{flag}_retargeting needs {flag} ratios, which "
                             f"{DRIVER_NAMES[kind]} {spec} does not have; drop the flag or use "
                             "a driving video")


def _check_template(options: AnimateOptions, template: MotionTemplate) -> None:
    """A motion template against the options that need its frames or ratios, before the
    source is analysed."""
    anchor = parse_anchor(options.driving_anchor)
    if isinstance(anchor, int) and anchor >= template.n_frames:
        raise InputError(anchor_past_the_end(anchor, InputKind.TEMPLATE, options.driving,
                                             template.n_frames))
    _check_ratios(options, InputKind.TEMPLATE, options.driving,
                  template.eye_ratios is not None, template.lip_ratios is not None)


def _check_by_ratios(options: AnimateOptions, layout: str, engine: str) -> None:
    """A template of ``layout`` that ``engine`` takes by its pose and ratios against the
    options: the ratios open the eyes and lips from the anchor's, in relative motion."""
    if not options.flag_relative_motion:
        problem = (f"the {engine} engine takes the motion template {options.driving} ({layout} "
                   "keypoints) by its head pose and eye and lip ratios, in relative motion only")
        raise InputError(f"{problem}; drop --no_flag_relative_motion, or run with --engine "
                         "neural", page=f"{problem}; drive relative motion, or pick the neural "
                         "engine")


def _check_driving(options: AnimateOptions, driving: PreparedDriving, engine: Engine) -> None:
    _check_layout(driving.spec, driving.layout, engine.name)
    if driving.by_ratios is not None:
        _check_by_ratios(options, driving.by_ratios, engine.name)
    _check_ratios(options, driving.kind, driving.spec, driving.has_eye_ratios,
                  driving.has_lip_ratios)


def _frame_count(source: PreparedSource, driving: PreparedDriving) -> int | None:
    """Frames to animate; None for an image driven by a video, animated while the video is
    analysed, to its end."""
    if source.is_video:
        if driving.is_video:
            return min(len(source.frames_info), driving.n_frames)
        return len(source.frames_info)
    return None if driving.kind is InputKind.VIDEO else driving.n_frames


class FrameAnimator:
    """Decides the keypoints of each animated frame; frame i's driving motion is known when
    it is asked for (all of them from the start for a video source, which smooths them).
    ``animate`` and ``live`` both use it, so a frame is composed the same way in both.

    Args:
        driving: a :class:`PreparedDriving`, or any object with its ``is_video``,
            ``motion(i)``, ``motions(n)``, ``anchor_motion()``, ``eye_ratio(i)`` and
            ``lip_ratio(i)``.
        n: frames to animate (known for a video source).
        face: the number of the source face animated, named in warnings when one of several
            (None: the only one).
    """

    def __init__(self, engine: Engine, options: AnimateOptions, source: PreparedSource,
                 driving: PreparedDriving, n: int | None, reporter: Reporter,
                 face: int | None = None) -> None:
        self.engine, self.options, self.source, self.driving = engine, options, source, driving
        self.reporter = reporter
        self._of_face = "" if face is None else f" of source face {face}"
        self._warned_shift = self._warned_turn = False
        self.mode = DrivingMode(options.flag_relative_motion, options.animation_region,
                                driving.is_video)
        if self.mode.moves_nothing:
            reporter.note("note: --animation_region pose moves nothing with a driving image in "
                          "relative motion (the image's pose is relative to itself); pass "
                          "--no_flag_relative_motion to take the image's pose")
        self.retarget = RetargetingOptions(
            relative=options.flag_relative_motion, stitching=options.flag_stitching,
            eye_retargeting=options.flag_eye_retargeting,
            lip_retargeting=options.flag_lip_retargeting,
            driving_multiplier=options.driving_multiplier)
        # Relative motion starts from the anchor; absolute driving on a layout whose
        # expression holds the face's shape takes the source to the anchor's expression.
        self._uses_anchor = self.mode.relative or engine.layout.absolute_expression is not None
        self.tracks = (video_source_tracks(
            [f.motion for f in source.frames_info[:n]], driving.motions(n),
            engine.layout, self.mode, options.driving_smooth_observation_variance,
            anchor=driving.anchor_motion() if self._uses_anchor else None)
            if source.is_video else None)
        self.expression_friendly = (
            options.flag_relative_motion and options.driving_option == "expression-friendly"
            and not source.is_video and driving.is_video)
        self.eye_target = None
        first = source.frames_info[0]
        if options.flag_source_video_eye_retargeting and first.eye_ratios is not None:
            self.eye_target = source_eye_target(first.eye_ratios)
        self._x_d_0: torch.Tensor | None = None
        self._first: torch.Tensor | None = None
        # the furthest an image source's keypoints moved from frame 0's (None: one frame)
        self.moved: float | None = None
        self._multiplier = 1.0
        self._lip_normalize: tuple[int, torch.Tensor | None] | None = None

    def _composed(self, i: int, info: SourceFrame) -> torch.Tensor:
        layout = self.engine.layout
        if self.tracks is None:
            drv_i = self.driving.motion(i)
            anchor = self.driving.anchor_motion() if self._uses_anchor else drv_i
            motion = compose_image_source(info.motion, drv_i, anchor, layout, self.mode)
        else:
            rot = None if self.tracks.R is None else self.tracks.R[i]
            motion = compose_video_source(info.motion, self.driving.motion(i),
                                          self.tracks.exp[i], rot, layout, self.mode)
        self._check_turn(i, info.motion, motion)
        x_d = motion.keypoints()
        if self.expression_friendly:
            if self._x_d_0 is None:  # the anchor's keypoints
                anchor = self.driving.anchor_motion()
                self._x_d_0 = compose_image_source(info.motion, anchor, anchor, layout,
                                                   self.mode).keypoints()
                self._multiplier = expression_friendly_multiplier(info.x_s, self._x_d_0)
            x_d = apply_expression_friendly(info.x_s, x_d, self._x_d_0, self._multiplier)
        return x_d

    def reset_anchor(self) -> None:
        """Forget what was derived from the driving anchor: the driver has a new one."""
        self._x_d_0 = None

    def _lip_normalize_delta(self, key: int, info: SourceFrame) -> torch.Tensor | None:
        if not (self.options.flag_normalize_lip and info.lip_ratio is not None):
            return None
        if self._lip_normalize is None or self._lip_normalize[0] != key:
            # the last source frame's alone: an image's one frame, or the video frame asked for
            # (a video's are each asked for once; kept, they grew with its length)
            self._lip_normalize = key, normalize_lip_delta(self.engine, info.x_s, info.lip_ratio)
        return self._lip_normalize[1]

    def keypoints(self, i: int) -> tuple[SourceFrame, torch.Tensor]:
        key = i if self.source.is_video else 0
        info = self.source.frames_info[key]
        source_eyes = None
        if self.eye_target is not None and info.eye_ratios is not None:
            source_eyes = source_video_eye_delta(self.engine, info.x_s, info.eye_ratios,
                                                 self.eye_target)
        x = finalize_keypoints(
            self.engine, info.x_s, self._composed(i, info), self.retarget,
            lip_normalize=self._lip_normalize_delta(key, info), source_eyes=source_eyes,
            source_eye_ratios=info.eye_ratios, source_lip_ratio=info.lip_ratio,
            driving_eye_ratio=self.driving.eye_ratio(i),
            driving_lip_ratio=self.driving.lip_ratio(i))
        self._check_shift(i, info.x_s, x)
        if not self.source.is_video:
            if self._first is None:
                self._first = x
            else:
                self.moved = max(self.moved or 0.0, float((x - self._first).abs().max()))
        return info, x

    def still_reason(self) -> str | None:
        """Why the face did not move through an image's animation of several frames, as
        'reason; fix', or None when it moved (or the source is a video, which moves)."""
        if self.moved is None or self.moved > STILL * _size(self._first):
            return None
        options, driving = self.options, self.driving
        if options.driving_multiplier == 0:
            return "--driving_multiplier 0 freezes the face; pass a positive one, e.g. 1"
        what = {InputKind.PRESET: driving.spec, InputKind.TEMPLATE: "the motion template"}.get(
            driving.kind, f"the driving {driving.kind.value}")
        if options.animation_region == "all":
            return f"{what} holds no motion; give a driver that moves"
        return (f"{what} moves nothing in --animation_region {options.animation_region}; "
                "pass another region, e.g. --animation_region all")

    def _check_shift(self, i: int, x_s: torch.Tensor, x: torch.Tensor) -> None:
        """Warn, once, when frame i moves the face further than the engines can render."""
        if self._warned_shift:
            return
        shift = float((x[0, :, :2] - x_s[0, :, :2]).norm(dim=-1).max() / _size(x_s))
        if shift <= MAX_SHIFT:
            return
        self._warned_shift = True
        if self.options.driving_multiplier > 1:
            fix = f"lower --driving_multiplier ({self.options.driving_multiplier:g})"
        elif not self.options.flag_relative_motion:
            fix = "drop --no_flag_relative_motion (relative motion keeps the source's framing)"
        else:
            fix = "use a driver with less head motion"
        self.reporter.note(f"warning: frame {i} moves the face{self._of_face} by {shift:.0%} "
                           f"of its size, more than the {self.engine.name} engine renders "
                           f"without tearing it ({MAX_SHIFT:.0%}); {fix}")

    def _check_turn(self, i: int, source: Motion, motion: Motion) -> None:
        """Warn, once, when frame i turns the head out of the picture's plane from the
        source's pose further than the engine draws (:attr:`Engine.max_turn`)."""
        limit = self.engine.max_turn
        if self._warned_turn or limit is None:
            return
        # the angle between the source's and the frame's view axis: a turn in yaw, pitch or
        # both (a roll, in the picture's plane, is none)
        cosine = float((source.R.transpose(1, 2) @ motion.R)[0, 2, 2].clamp(-1, 1))
        turn = math.degrees(math.acos(cosine))
        if turn <= limit:
            return
        self._warned_turn = True
        if self.options.flag_relative_motion:
            fix = ("pass --animation_region exp to keep the source's pose, or use a driver "
                   "that turns less")
        else:
            fix = "drop --no_flag_relative_motion to turn the head from the source's own pose"
        self.reporter.note(f"warning: frame {i} turns the head{self._of_face} {turn:.0f} "
                           f"degrees from the source's pose, more than the {self.engine.name} "
                           f"engine draws without smearing the side turned away ({limit:g} "
                           f"degrees); {fix}")


def _size(x: torch.Tensor) -> float:
    """A face's size: the longer side of its keypoints' box in x and y. ``x``: (1, N, 3)."""
    xy = x[0, :, :2]
    return float((xy.max(dim=0).values - xy.min(dim=0).values).max())


def paste_back_active(options: AnimateOptions) -> bool:
    """Whether the result is pasted back into the source frame (else it is the crop)."""
    stitched = options.flag_stitching or options.flag_pasteback_without_stitching
    return options.flag_pasteback and options.flag_do_crop and stitched


def _render_items(engine: Engine, animators: list[FrameAnimator], source: SourceGroup,
                  drivers: list[PreparedDriving], n: int | None, batch: int = 1
                  ) -> Iterator[tuple]:
    """Per frame, what the renderer takes (a :class:`RenderItem` per face) and what
    :func:`_composer` needs besides: the source frame, each face's crop map, the concat's
    first panels and the landmarks of the faces kept still.

    ``animators`` animate the source's faces, in order; each animator's driver is one of
    ``drivers``, whose first gives the concat its driving panel. A source video's
    appearances are taken ``batch`` frames at a time (an image's once)."""
    video = source.first.is_video
    appearances: list = [None] * len(animators)
    by_driver = [drivers.index(a.driving) for a in animators]
    streams = zip(*(d.frames(n) for d in drivers), strict=False)
    pairs = enumerate(zip(streams, source.frames(n), strict=False))  # an image source repeats
    while chunk := list(islice(pairs, batch)):
        frames = [frame for _, (_, (frame, _)) in chunk]
        inputs = [model_inputs for _, (_, (_, model_inputs)) in chunk]
        keypoints = [[animator.keypoints(i) for animator in animators] for i, _ in chunk]
        take = len(chunk) if video else 1  # an image's appearance is taken once
        for k in range(len(animators)):
            if video or appearances[k] is None:
                appearances[k] = engine.appearance_batch(
                    [faces[k] for faces in inputs[:take]], frames[:take],
                    [faces[k][0].M_c2o for faces in keypoints[:take]])
        for j, (i, (driven, _)) in enumerate(chunk):
            items = []
            for k, (info, x_d) in enumerate(keypoints[j]):
                panel, motion = driven[by_driver[k]]
                items.append(RenderItem(appearances[k][j if video else 0], *info.warp(x_d),
                                        driving_crop=panel, driving_motion=motion))
            # the concat shows the first face's crop, or the whole frame for several faces
            shown = inputs[j][0] if len(animators) == 1 else frames[j]
            panel = driven[0][0]
            still = [track.points[i if video else 0] for track in source.still]
            yield (items, frames[j], [info.M_c2o for info, _ in keypoints[j]],
                   [shown] if panel is None else [panel, shown], still)


def _render_frames(engine: Engine, items: Iterable[tuple], batch: int = 1) -> Iterator[tuple]:
    """Per frame, the renders (a list: one whole frame, or one crop per face) and what
    :func:`_composer` needs besides, from :func:`_render_items`. Frames are rendered
    ``batch`` at a time, and yielded one by one in order; a whole-frame engine renders a
    frame's faces together (``render_faces``)."""
    pending: list[tuple] = []

    def flush() -> Iterator[tuple]:
        if engine.renders_full_frame and any(len(faces) > 1 for faces, *_ in pending):
            renders = [[engine.render_faces(faces)] for faces, *_ in pending]
        else:
            flat = iter(engine.render_batch([item for faces, *_ in pending for item in faces]))
            renders = [[next(flat) for _ in faces] for faces, *_ in pending]
        for rendered, (_, *rest) in zip(renders, pending, strict=True):
            yield rendered, *rest
        pending.clear()

    for entry in items:
        pending.append(entry)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()


def _composer(engine: Engine, paste: bool, whole: bool = False,
              sars: tuple[Fraction, Fraction] = (Fraction(1), Fraction(1))
              ) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    """(renders, source frame, crop maps, first panels, still faces) -> (result, concat), run
    by the output thread; the concat ends with the first face's crop view, or with the whole
    result when ``whole`` (several faces). ``sars``: the driver's and the source's pixel
    aspect ratios, which their panels are shown with."""
    compositor = Compositor(engine, paste)
    driving_sar, source_sar = sars

    def compose(rendered: list[np.ndarray], frame: np.ndarray, maps: list[np.ndarray | None],
                panels: list[np.ndarray], still: list[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
        if whole:
            result = compositor.result(rendered, frame, maps, still)
            shown = [*panels, result]
        else:
            result, crop_view = compositor.group(rendered, frame, maps, still)
            shown = [*panels, crop_view]
        # the panels are the driver's (when it has pixels), then the source's and the result
        aspects = [driving_sar] * (len(panels) - 1) + [source_sar] * 2
        return result, concat_panels(shown, keep_aspect=whole, sars=aspects)

    return compose


def _takes_driving_audio(options: AnimateOptions, source: PreparedSource) -> bool:
    """Whether the output takes a driving video's audio, if it has one."""
    return options.audio_priority == "driving" or not source.has_audio


def _time_base(options: AnimateOptions, source: PreparedSource) -> TimeBase | None:
    """A video source's output time base, which a driver may be resampled onto; None for an
    image source, whose output takes the driver's."""
    if not source.is_video:
        return None
    return TimeBase(source.fps, options.driving_time_base, _takes_driving_audio(options, source))


def _audio(options: AnimateOptions, source: PreparedSource, driving: PreparedDriving,
           reporter: Reporter) -> Path | None:
    """The file whose audio track a video result takes, if any."""
    if driving.has_audio and _takes_driving_audio(options, source):
        audio = Path(driving.spec)
    elif source.has_audio:
        audio = Path(source.spec)
    else:
        return None
    reporter.note(f"audio from {audio}")
    return audio


def _animate_prepared(options: AnimateOptions, engine: Engine, source: SourceGroup,
                      by_face: dict[int | None, PreparedDriving], wanted: list[int | None],
                      reporter: Reporter, batch: int, overlap: bool = True) -> AnimateResult:
    """Animate, encode and write the outputs of a prepared source and its drivers (see
    :func:`animate` for ``overlap``), ``batch`` frames rendered at a time: ``by_face`` holds
    the driver of each driving face (number, or None for the largest), source face k is
    driven by face ``wanted[k]``'s."""
    drivers = list(by_face.values())
    driving = drivers[0]
    for each in drivers:
        _check_driving(options, each, engine)
    n = _frame_count(source.first, driving)
    if n == 1 and source.first.is_video and driving.is_video:
        reporter.note("note: the source video has one frame, so the result has one (a video "
                      "source gives as many frames as the shorter input); give that picture as "
                      "an image (.jpg, .png) to animate it through the whole driver")
    image_result = not source.first.is_video and not driving.is_video
    fps = source.first.fps if source.first.is_video else driving.fps
    names = OutputNames(options.output_dir,
                        f"{input_name(options.source)}--{input_name(options.driving)}",
                        image_result)
    several = len(source.faces) > 1
    animators = [FrameAnimator(engine, options, face, by_face[number], n, reporter,
                               face=shown if several else None)
                 for face, number, shown in zip(source.faces, wanted, source.numbers,
                                                strict=True)]
    for each in drivers:
        each.ready()
        if options.flag_relative_motion:
            each.anchor()  # chosen, and told, before the first frame
    items = _render_items(engine, animators, source, drivers, n, batch)
    # decoding, face analysis and motion run ahead of the renderer, at most two batches
    frames = _render_frames(engine, ahead(items, 2 * batch, "render-items") if overlap
                            else items, batch)
    compose = _composer(engine, paste_back_active(options), len(source.faces) > 1,
                        (driving.sar, source.first.sar))
    audio = None if image_result else _audio(options, source.first, driving, reporter)
    template_path = None
    if driving.kind in (InputKind.IMAGE, InputKind.VIDEO):
        suffix = "_template.npz"
        template_path = names.dir / (fitted_name(input_name(options.driving), suffix,
                                                 names.dir) + suffix)
    # The classic engine renders faster than x264's default preset encodes: its videos take
    # the fast encoding; the neural engine's keep the default, as the reference writes them.
    with OutputWriter(names, fps, options.save_frames, image_result,
                      engine.name == "classic", compose, source.first.sar, audio) as writer:
        total = driving.frames_hint if n is None else n
        for frame in reporter.track(frames, f"animating ({engine.name})", total):
            writer.add(*frame)
        if template_path is not None:  # written with the other outputs, or not at all
            writer.attach(template_path, lambda tmp: save_face_templates(
                tmp, {number: each.template for number, each in by_face.items()},
                options.face_order))
    if template_path is not None and driving.limit is not None and \
            driving.template.n_frames >= driving.limit:
        n = driving.template.n_frames
        held = "the first frame" if n == 1 else f"the first {n} frames"
        reporter.note(f"note: {template_path.name} holds {held} of {options.driving}, those "
                      "the source video uses")
    for each in drivers:
        each.tell_missing()
    reasons = [animator.still_reason() for animator in animators]
    if all(reasons):
        reporter.note(f"note: nothing moves: {reasons[0]}")
    reporter.note(f"wrote {names.result} and {names.concat}")
    return AnimateResult(output=names.result, concat=names.concat,
                         frames_dir=names.frames if options.save_frames else None,
                         template=template_path, n_frames=writer.count,
                         fps=None if image_result else fps, engine=engine.name)


def check_inputs(options: AnimateOptions) -> tuple[InputKind, InputKind]:
    """What :func:`animate` checks before it loads an engine: the options' values and
    conflicts, the inputs' kinds and that they can be read, and the output folder.

    Returns:
        The source's and the driver's kinds (a driving video of one frame is an image,
        :func:`~.inputs.driving_kind`).

    Raises:
        InputError: the first problem, in one line that names its fix.
    """
    wrong_types = options.wrong_types()  # a source of None is no file to look for
    if wrong_types:
        raise InputError(wrong_types[0])
    src_kind = classify_input(options.source, "source")
    if src_kind is InputKind.TEMPLATE:
        raise InputError("the source must be an image or a video, not a motion template")
    drv_kind = driving_kind(options.driving,
                            classify_input(options.driving, "driving", allow_template=True))
    _check_options(options, src_kind, drv_kind)
    check_readable(options.source, src_kind)
    if drv_kind is InputKind.TEMPLATE:
        template = load_template(options.driving)
        if options.engine != "auto":  # auto's engine is known once the weights are looked for
            if takes_by_ratios(template, engine_layout(options.engine)):
                _check_by_ratios(options, template.layout, options.engine)
            else:
                _check_layout(options.driving, template.layout, options.engine)
        _check_template(options, template)
    else:
        check_readable(options.driving, drv_kind)
    check_output_folder(options.output_dir, "-o")
    return src_kind, drv_kind


def prepare_animation_source(options: AnimateOptions, kind: InputKind, engine: Engine,
                             mesh: FaceMesh, reporter: Reporter) -> SourceGroup:
    """``options.source`` analysed as :func:`animate` does (each face it animates): reusable
    by every animation of it with the same engine, source options and relative or absolute
    motion."""
    if not options.flag_do_crop:
        note_whole_source(options, kind, reporter)
    settings = CropSettings(options.scale, options.vx_ratio, options.vy_ratio,
                            options.flag_do_rot)
    return prepare_source_faces(options.source, kind, engine, mesh, settings,
                                options.flag_do_crop, options.source_max_dim,
                                options.source_division, reporter,
                                faces=parse_faces(options.source_faces),
                                order=options.face_order, smooth=options.driving_smooth,
                                smooth_landmarks=options.flag_relative_motion,
                                batch=engine.batch_size(options.batch_size))


def note_whole_source(options: AnimateOptions, kind: InputKind, reporter: Reporter) -> None:
    """Under --no_flag_do_crop the whole source, as resized to ``--source_max_dim``, is resized
    to the engine's square input, as the reference does: say so when that squashes it."""
    width, height = (probe_video(options.source).size if kind is InputKind.VIDEO
                     else read_image_rgb(options.source).shape[1::-1])
    frame = limited_size(width, height, options.source_max_dim, options.source_division)
    if frame[0] != frame[1]:
        reporter.note(f"note: --no_flag_do_crop resizes the whole {width}x{height} source to a "
                      "square: its proportions are not kept (drop the flag to animate the face "
                      "in place)")


def driving_faces(options: AnimateOptions, numbers: list[int | None]) -> list[int | None]:
    """The driving face of each source face numbered in ``numbers``: its ``--face_map``
    entry, else ``--driving_face`` (None: the largest)."""
    pairs = parse_face_map(options.face_map)
    default = parse_driving_face(options.driving_face)
    return [pairs.get(n, default) if n is not None else default for n in numbers]


def _driving_settings(options: AnimateOptions) -> CropSettings:
    return CropSettings(options.scale_crop_driving_video, options.vx_ratio_crop_driving_video,
                        options.vy_ratio_crop_driving_video, rotate=False)


def _note_whole_driver(options: AnimateOptions, by_face: dict[int | None, PreparedDriving],
                       reporter: Reporter) -> None:
    """Say so when the driving crop's options were given for a driver used whole (a square
    video or image without --flag_crop_driving_video): they changed nothing."""
    given = [f"--{name}" for name in ("scale_crop_driving_video", "vx_ratio_crop_driving_video",
                                      "vy_ratio_crop_driving_video")
             if getattr(options, name) != getattr(AnimateOptions, name)]
    if given and any(d.kind in (InputKind.VIDEO, InputKind.IMAGE) and not d.cropped
                     for d in by_face.values()):
        reporter.note(f"note: {' and '.join(given)} change{'s' * (len(given) == 1)} nothing: "
                      f"the square driver {options.driving} is used whole; pass "
                      "--flag_crop_driving_video to crop it to its face")


def _driving_mesh(mesh: FaceMesh, number: int | None,
                  options: AnimateOptions) -> FaceMesh | FacePick:
    """What finds the driving face: the mesh (the largest face), or a pick of face
    ``number`` numbered by ``--face_order``."""
    return mesh if number is None else FacePick(FaceTracker(mesh, options.face_order), number)


def analyse_driving(options: AnimateOptions, kind: InputKind, engine: Engine,
                    reporter: Reporter) -> MotionTemplate:
    """The whole analysis of a driving video or image (``options.driving``): its motion
    template, with the crop box its crops were cut from and, under ``--driving_anchor auto``,
    the anchor. :func:`animate` takes it as ``analysed`` for any source, instead of analysing
    the driver again.

    Raises:
        InputError: no face in the driver, or it cannot be decoded.
    """
    if kind not in (InputKind.IMAGE, InputKind.VIDEO):
        raise InputError(f"only a driving video or image is analysed, not {options.driving}")
    number = parse_driving_face(options.driving_face)
    with FaceMesh(options.det_thresh) as mesh, prepare_driving(
            options.driving, kind, engine, _driving_mesh(mesh, number, options),
            _driving_settings(options), options.flag_crop_driving_video or number is not None,
            None, reporter, smooth=options.driving_smooth,
            anchor=parse_anchor(options.driving_anchor),
            batch=engine.batch_size(options.batch_size)) as driving:
        driving.ready()
        if options.flag_relative_motion:
            driving.anchor()
        return driving.template


def animate(options: AnimateOptions, engine: Engine | None = None,
            reporter: Reporter | None = None, overlap: bool = True, *,
            source: SourceGroup | None = None,
            analysed: MotionTemplate | None = None,
            mesh: FaceMesh | None = None) -> AnimateResult:
    """Animate ``options.source`` by ``options.driving`` and write the outputs.

    ``overlap`` runs the driving frames' motion, the keypoints and the source's appearance in
    a thread ahead of the renderer; without it they run between renders, on this thread (the
    same outputs, slower). ``source`` (:func:`prepare_animation_source`) and ``analysed``
    (:func:`analyse_driving`), made with this engine and options, skip those analyses: a
    batch shares them between animations. ``mesh``, a face mesh of ``options.det_thresh``
    that nothing else uses meanwhile, is used instead of a new one.

    Raises:
        InputError: bad input or conflicting options; nothing is left behind.
        WeightsError: the neural engine's weights are missing or invalid.
    """
    reporter = reporter or Reporter(options.quiet, keep_warnings=True)
    src_kind, drv_kind = check_inputs(options)
    analysed_kind = drv_kind in (InputKind.IMAGE, InputKind.VIDEO)
    # an output folder made for a run that fails (or is interrupted) is removed
    with removed_on_failure(options.output_dir, ()), contextlib.ExitStack() as stack:
        if engine is None:  # one loaded here is closed here (a script may call this in a loop)
            engine = load_engine(options, reporter)
            stack.callback(engine.close)
        def given_mesh() -> FaceMesh:
            nonlocal mesh
            if mesh is None:
                mesh = stack.enter_context(FaceMesh(options.det_thresh))
            return mesh

        if source is None:
            source = prepare_animation_source(options, src_kind, engine, given_mesh(),
                                              reporter)
            if options.source_faces != "largest":
                reporter.note(f"source faces animated: {', '.join(map(str, source.numbers))} "
                              f"(--source_faces {options.source_faces}; `portrait-animate "
                              "faces` shows them)")
        retargeted = [part for part, flag in (("eye", options.flag_eye_retargeting),
                                              ("lip", options.flag_lip_retargeting)) if flag]
        if retargeted and options.flag_relative_motion:
            flags = " and ".join(f"--flag_{part}_retargeting" for part in retargeted)
            reporter.note(f"note: with {flags}, as in the reference, the driver opens and "
                          f"closes the {' and '.join(p + 's' for p in retargeted)} only: the "
                          "head and the rest of the face keep the source's pose and "
                          "expression (drop the flag to drive the whole face)")
        if drv_kind in _UNSMOOTHED and options.driving_smooth != AnimateOptions.driving_smooth:
            reporter.note(f"note: --driving_smooth has no effect on {DRIVER_NAMES[drv_kind]}: "
                          f"{_UNSMOOTHED[drv_kind]}")
        limit = len(source.first.frames_info) if source.first.is_video and \
            drv_kind is InputKind.VIDEO else None
        unused = sorted(set(parse_face_map(options.face_map)) - set(source.numbers))
        if unused:
            raise InputError(f"--face_map names source face {unused[0]}, which is not "
                             f"animated (--source_faces {options.source_faces}); name only "
                             "animated faces", page=f"the face map names source face "
                             f"{unused[0]}, which is not animated; name only animated faces")
        wanted = driving_faces(options, source.numbers)
        if set(wanted) != {parse_driving_face(options.driving_face)}:
            analysed = None  # it is --driving_face's analysis; a face map wants other faces
        batch = engine.batch_size(options.batch_size)
        by_face: dict[int | None, PreparedDriving] = {}
        for number in dict.fromkeys(wanted):  # each driving face once
            # each driving face's analysis runs in its own thread, with its own mesh
            face_mesh = mesh
            if analysed_kind and analysed is None:
                face_mesh = stack.enter_context(FaceMesh(options.det_thresh)) if by_face \
                    else given_mesh()
            # a numbered face of a video or image is cropped to; a template has no pixels
            crop = options.flag_crop_driving_video or (number is not None and analysed_kind)
            by_face[number] = stack.enter_context(prepare_driving(
                options.driving, drv_kind, engine,
                _driving_mesh(face_mesh, number, options) if analysed_kind else face_mesh,
                _driving_settings(options), crop, limit, reporter,
                _time_base(options, source.first), smooth=options.driving_smooth,
                anchor=parse_anchor(options.driving_anchor), analysed=analysed,
                face=number, order=options.face_order, batch=batch))
        if None in by_face and len(by_face) > 1:
            by_face[None].among_faces = True
        _note_whole_driver(options, by_face, reporter)
        return _animate_prepared(options, engine, source, by_face, wanted, reporter, batch,
                                 overlap)
