"""Image retargeting and precise editing (SPEC 6.2) and video lip retargeting (SPEC 6.3).

Editing an image is split in two so that an app can re-render on every slider tick: the
per-image work (detection, crop, motion, appearance, paste-back mask) is done once by
:func:`prepare_editable_image`; :func:`render_edit` only decides keypoints and renders.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engines.base import Engine, RenderItem
from ..errors import InputError
from ..face.mesh import FaceMesh
from ..motion.editing import RATIO_RANGE, EditParams
from ..motion.retargeting import edited_keypoints, lip_silent_keypoints
from ..motion.smoothing import kalman_smooth
from ..ranges import Range
from .compositing import Compositor
from .faces import CropSettings
from .inputs import InputKind, check_readable, classify_input, input_name
from .options import RANGES
from .outputs import OutputNames, OutputWriter, concat_panels
from .progress import Reporter
from .source import PreparedSource, SourceFrame, prepare_source, prepare_source_faces

__all__ = [
    "EditableImage",
    "EditedImage",
    "prepare_editable_image",
    "render_edit",
    "VideoRetargetOptions",
    "VideoRetargetResult",
    "retarget_video",
]

EDIT_CROP = CropSettings(scale=2.5, vx_ratio=0.0, vy_ratio=-0.125)
VIDEO_CROP = CropSettings(scale=2.3, vx_ratio=0.0, vy_ratio=-0.125)


@dataclass
class EditableImage:
    """The per-image work of editing, done once and reused by every render.

    Attributes:
        frame: the (H, W, 3) uint8 source image, resized to the limits.
        crop: the engine's model input.
        info: motion, keypoints, ratios and crop map of the source.
        appearance: the engine's per-source data (F's feature volume, or the frame).
        do_crop: the source was cropped to the face (so the result is pasted back).
        eye_ratio: mean eye open ratio rounded to 0.01 (the slider's start), None without a face.
        lip_ratio: lip open ratio rounded to 0.01, None without a face.
        still: (478, 3) landmarks of each other face of the image, kept as they are.
    """

    frame: np.ndarray
    crop: np.ndarray
    info: SourceFrame
    appearance: Any
    do_crop: bool
    eye_ratio: float | None
    lip_ratio: float | None
    still: list[np.ndarray] = field(default_factory=list)


@dataclass
class EditedImage:
    """Attributes:
    crop: the 512x512 edited crop ("Retargeting Result").
    pasted: the edit pasted back into the source image, or the crop without cropping.
    """

    crop: np.ndarray
    pasted: np.ndarray


def _first_frame(source: PreparedSource) -> tuple[np.ndarray, np.ndarray]:
    return next(source.frames(1))


def prepare_editable_image(spec: str | os.PathLike, engine: Engine, *, do_crop: bool = True,
                           settings: CropSettings = EDIT_CROP, det_thresh: float = 0.15,
                           max_dim: int = 1280, division: int = 2, face: int | None = None,
                           face_order: str = "large-small") -> EditableImage:
    """Detect, crop and analyse a source image for editing: its largest face, or face number
    ``face`` (numbered by ``face_order``), the other faces kept still.

    Raises:
        InputError: unreadable image, no face while cropping, or no face ``face``.
    """
    spec = os.fspath(spec)
    if classify_input(spec, "source") is not InputKind.IMAGE:
        raise InputError(f"image editing needs an image, not {spec}; use a .jpg or .png")
    if face is not None and not do_crop:
        raise InputError("a face is picked in the cropped image; tick \"do crop\" or edit "
                         "the largest face")
    with FaceMesh(det_thresh) as mesh:
        group = prepare_source_faces(spec, InputKind.IMAGE, engine, mesh, settings, do_crop,
                                     max_dim, division, Reporter(quiet=True),
                                     faces="largest" if face is None else (face,),
                                     order=face_order)
    source = group.first
    frame, crop = _first_frame(source)
    info = source.frames_info[0]
    eyes = None if info.eye_ratios is None else round(float(np.mean(info.eye_ratios)), 2)
    lip = None if info.lip_ratio is None else round(info.lip_ratio, 2)
    return EditableImage(frame=frame, crop=crop, info=info,
                         appearance=engine.appearance(crop, frame, info.M_c2o),
                         do_crop=do_crop, eye_ratio=eyes, lip_ratio=lip,
                         still=[track.points[0] for track in group.still])


def _changed(target: float | None, start: float | None) -> float | None:
    return None if target is None or target == start else target


def render_edit(engine: Engine, source: EditableImage, params: EditParams, *,
                stitching: bool = True, eye_ratio: float | None = None,
                lip_ratio: float | None = None,
                compositor: Compositor | None = None) -> EditedImage:
    """Render one edit of a prepared image.

    Args:
        engine: the engine that prepared ``source``.
        params: head angles (relative degrees), movement and expression sliders.
        stitching: run stitching after the edits.
        eye_ratio, lip_ratio: target open ratios; None or the source's own value leaves the
            eyes / lips as they are.
        compositor: reuse one across renders of the same source to keep its paste-back mask.

    Raises:
        InputError: an edit or a ratio out of its range (:data:`~..motion.editing.EDIT_RANGES`,
            :data:`~..motion.editing.RATIO_RANGE`), or ratios without a detected face.
    """
    info = source.info
    eye_target = _changed(eye_ratio, source.eye_ratio)
    lip_target = _changed(lip_ratio, source.lip_ratio)
    problems = params.problems() + [problem for name, ratio in (
        ("eye_ratio", eye_target), ("lip_ratio", lip_target)) if ratio is not None and (
        problem := RATIO_RANGE.problem(name, ratio))]
    if problems:
        raise InputError(problems[0])
    if (eye_target is not None or lip_target is not None) and info.eye_ratios is None:
        raise InputError("eye and lip ratios need a detected face in the source; use a "
                         "portrait with a clearly visible face")
    with torch.no_grad():
        x_d = edited_keypoints(engine, info.motion, engine.layout, params, stitching=stitching,
                               source_eye_ratios=info.eye_ratios, eye_target=eye_target,
                               source_lip_ratio=info.lip_ratio, lip_target=lip_target)
        rendered = engine.render(source.appearance, info.x_s, x_d)
    compositor = compositor or Compositor(engine, source.do_crop)
    pasted, crop = compositor.group([rendered], source.frame, [info.M_c2o], source.still)
    return EditedImage(crop=crop, pasted=pasted)


@dataclass(frozen=True)
class VideoRetargetOptions:
    """Attributes:
    lip_ratio: target lip open ratio of every frame.
    smooth_observation_variance: Kalman observation variance of the lip deltas.
    lip_silent: close the mouth with the neutral expression instead (ignores the two above).
    do_crop: crop each frame to the face and paste the result back.
    scale: crop size relative to the face.
    det_thresh: face detection confidence threshold.
    """

    lip_ratio: float = 0.0
    smooth_observation_variance: float = 3e-6
    lip_silent: bool = False
    do_crop: bool = True
    scale: float = 2.3
    det_thresh: float = 0.15

    def check(self) -> None:
        """Raises InputError on a value that is not a number or out of its range."""
        for name in ("lip_ratio", "smooth_observation_variance", "scale"):
            problem = _VIDEO_RANGES[name].problem(name, getattr(self, name),
                                                  _VIDEO_DEFAULTS[name])
            if problem:
                raise InputError(problem)


_VIDEO_RANGES = {"lip_ratio": Range(0.0, 1.0, "a lip-open ratio"),
                 "smooth_observation_variance": RANGES["driving_smooth_observation_variance"],
                 "scale": RANGES["scale"]}
_VIDEO_DEFAULTS = {name: getattr(VideoRetargetOptions, name) for name in _VIDEO_RANGES}


@dataclass
class VideoRetargetResult:
    """Attributes: output (``{name}_retargeting.mp4``), concat (source crop | result), n_frames,
    fps."""

    output: Path
    concat: Path
    n_frames: int
    fps: float


def _lip_keypoints(engine: Engine, frames: list[SourceFrame],
                   options: VideoRetargetOptions) -> list[torch.Tensor]:
    if options.lip_silent:
        return [lip_silent_keypoints(engine, f.motion, engine.layout, f.lip_ratio)
                for f in frames]
    target = torch.tensor([[0.0, options.lip_ratio]])
    deltas = []
    for f in frames:
        target[0, 0] = f.lip_ratio
        deltas.append(engine.retarget_lip(f.x_s, target.clone()).numpy())
    smoothed = kalman_smooth(np.stack(deltas), options.smooth_observation_variance)
    return [engine.stitch(f.x_s, f.x_s + torch.from_numpy(d))
            for f, d in zip(frames, smoothed, strict=True)]


def retarget_video(spec: str | os.PathLike, engine: Engine, options: VideoRetargetOptions,
                   output_dir: str | Path, reporter: Reporter | None = None) -> VideoRetargetResult:
    """Set the lip opening of every frame of a video (or keep the lips silent), stitched,
    pasted back, with the input's audio and pixel aspect ratio.

    Raises:
        InputError: not a readable video, no face, or bad options; nothing is left behind.
    """
    reporter = reporter or Reporter(quiet=True)
    options.check()
    spec = os.fspath(spec)
    if classify_input(spec, "source") is not InputKind.VIDEO:
        raise InputError(f"video retargeting needs a video, not {spec}; use an .mp4")
    check_readable(spec, InputKind.VIDEO)
    settings = CropSettings(options.scale, VIDEO_CROP.vx_ratio, VIDEO_CROP.vy_ratio)
    batch = engine.batch_size()
    with FaceMesh(options.det_thresh) as mesh:
        source = prepare_source(spec, InputKind.VIDEO, engine, mesh, settings, options.do_crop,
                                1280, 2, None, reporter, face_required=not options.lip_silent,
                                batch=batch)
    frames = source.frames_info
    with torch.no_grad():
        keypoints = _lip_keypoints(engine, frames, options)
    names = OutputNames(output_dir, f"{input_name(spec)}_retargeting", image=False)
    compositor = Compositor(engine, options.do_crop)
    rendered = _render(engine, source, keypoints, compositor, batch)
    with OutputWriter(names, source.fps, save_frames=False, image=False, sar=source.sar,
                      audio=Path(spec) if source.has_audio else None) as writer:
        for result, concat in reporter.track(rendered, f"retargeting ({engine.name})",
                                             len(frames)):
            writer.add(result, concat)
    return VideoRetargetResult(output=names.result, concat=names.concat,
                               n_frames=len(frames), fps=source.fps)


def _render(engine: Engine, source: PreparedSource, keypoints: list[torch.Tensor],
            compositor: Compositor, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The retargeted frames, pasted back, with their concats; F, W and G run over ``batch``
    frames at a time."""
    frames = zip(source.frames(len(keypoints)), source.frames_info, keypoints, strict=True)
    while chunk := list(islice(frames, batch)):
        maps = [info.M_c2o for _, info, _ in chunk]
        with torch.no_grad():
            appearances = engine.appearance_batch([crop for (_, crop), _, _ in chunk],
                                                  [frame for (frame, _), _, _ in chunk], maps)
            rendered = engine.render_batch([
                RenderItem(appearance, *info.warp(x_d))
                for appearance, (_, info, x_d) in zip(appearances, chunk, strict=True)])
        for image, ((frame, crop), _, _), M_c2o in zip(rendered, chunk, maps, strict=True):
            result, view = compositor(image, frame, M_c2o)
            yield result, concat_panels([crop, view])
