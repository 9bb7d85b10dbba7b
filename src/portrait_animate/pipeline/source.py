"""The source: an image or a video, cropped (or not), with its per-frame motion (SPEC 4.4)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from itertools import islice, repeat
from pathlib import Path

import cv2
import numpy as np
import torch

from ..engines.base import Engine
from ..errors import InputError
from ..face.crop import rotated_crop_matrix
from ..face.mesh import FaceMesh
from ..io.images import read_image_rgb
from ..io.video import iter_frames, probe_video
from ..motion.model import Motion
from .faces import (
    CROP_SIZE,
    CropSettings,
    FaceTrack,
    lag_weight,
    missing_faces_note,
    points_in_input,
    smooth_track,
    source_crop,
    track_faces,
    track_numbered_faces,
    track_still_face,
)
from .inputs import InputKind, resize_to_limit
from .progress import Reporter

__all__ = ["SourceFrame", "PreparedSource", "SourceGroup", "prepare_source",
           "prepare_source_faces"]


@dataclass
class SourceFrame:
    """What the animation of one source frame needs, besides its pixels.

    Attributes:
        motion: the source motion, with canonical keypoints.
        eye_ratios: (eye0, eye1), or None without landmarks.
        lip_ratio: lip open ratio, or None without landmarks.
        M_c2o: (3, 3) crop -> frame map, or None without cropping.
        kept_x_s: :attr:`x_s`, kept for an image's one frame (None: taken when asked).
        shift: (1, K, 3) from the keypoints of ``motion``, taken from smoothed landmarks,
            towards where the frame shows the face, when the smoothing lags a moving head
            (None: they are where it shows it, or near enough).
    """

    motion: Motion
    eye_ratios: tuple[float, float] | None
    lip_ratio: float | None
    M_c2o: np.ndarray | None
    kept_x_s: torch.Tensor | None = None
    shift: torch.Tensor | None = None

    @property
    def x_s(self) -> torch.Tensor:
        """(1, K, 3) source keypoints: an image's kept (asked for a few times a frame), a
        video frame's taken from :attr:`motion` when asked (a video source holds every
        frame's motion; keeping its keypoints too grew memory with its length)."""
        return self.motion.keypoints() if self.kept_x_s is None else self.kept_x_s

    def warp(self, x_d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x_s, x_d) for the renderer, both (1, K, 3): moved by :attr:`shift`, so that the
        warp starts from where the frame shows the face and moves it as far as the
        smoothed motion says (from the smoothed landmarks a dancer's lips were painted a
        lip's width above hers)."""
        if self.shift is None:
            return self.x_s, x_d
        return self.x_s + self.shift, x_d + self.shift


@dataclass
class PreparedSource:
    """Attributes:
    spec: the source path (or sample name).
    kind: image or video.
    frames_info: per-frame :class:`SourceFrame` (one for an image).
    fps: exact frame rate of a video source, else None.
    has_audio: whether a video source has an audio stream.
    sar: the sample (pixel) aspect ratio of a video source's frames, 1 for square pixels.
    """

    spec: str
    kind: InputKind
    frames_info: list[SourceFrame]
    fps: float | None
    has_audio: bool
    _image: np.ndarray | None
    _track: FaceTrack | None
    _max_dim: int
    _division: int
    _input_size: int
    sar: Fraction = Fraction(1)

    @property
    def is_video(self) -> bool:
        return self.kind is InputKind.VIDEO

    def frames(self, n: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """n (frame, model input) pairs, re-decoded for a video one at a time; without n, all
        of a video's frames or an image's for ever."""
        if not self.is_video:
            pair = _model_input(self._image, self._track, 0, self._input_size)
            yield from (repeat(pair) if n is None else repeat(pair, n))
            return
        video = iter_frames(self.spec, limit=n)
        for i, raw in enumerate(video):
            frame = resize_to_limit(raw, self._max_dim, self._division)
            yield _model_input(frame, self._track, i, self._input_size)

    def model_input(self, frame: np.ndarray, i: int) -> np.ndarray:
        """This face's model input from frame i, decoded by another face of the source."""
        return _model_input(frame, self._track, i, self._input_size)[1]


def _model_input(frame: np.ndarray, track: FaceTrack | None, i: int, size: int) -> tuple:
    if track is None:
        return frame, cv2.resize(frame, (size, size))
    crop, _ = source_crop(frame, track.boxes[i], size)
    return frame, crop


def _crop_to_frame(track: FaceTrack | None, i: int) -> np.ndarray | None:
    if track is None:
        return None
    return np.linalg.inv(rotated_crop_matrix(track.boxes[i], CROP_SIZE))


def _landmarks(track: FaceTrack | None, i: int, M_c2o: np.ndarray | None,
               frame_shape: tuple[int, int], size: int) -> np.ndarray | None:
    """Frame i's face-mesh points in its model input of ``size`` pixels, if tracked."""
    if track is None or track.points is None:
        return None
    to_crop = None if M_c2o is None else np.linalg.inv(M_c2o)
    return points_in_input(track.points[i], frame_shape, to_crop, size)


def _frame_info(motion: Motion, track: FaceTrack | None, i: int, M_c2o: np.ndarray | None,
                keep_x_s: bool = False, shift: torch.Tensor | None = None) -> SourceFrame:
    has_face = track is not None
    return SourceFrame(
        motion=motion,
        eye_ratios=tuple(float(v) for v in track.eye_ratios[i]) if has_face else None,
        lip_ratio=float(track.lip_ratios[i, 0]) if has_face else None,
        M_c2o=M_c2o, kept_x_s=motion.keypoints() if keep_x_s else None, shift=shift)


def _lagging(engine: Engine, track: FaceTrack | None,
             chunk: list[tuple[int, tuple[np.ndarray, np.ndarray]]],
             maps: list[np.ndarray | None]) -> dict[int, tuple[float, Motion]]:
    """The frames of ``chunk`` (index, (frame, model input)) whose smoothed landmarks lag
    where the frame shows the face (:func:`lag_weight` > 0), each with that weight and the
    motion of its own landmarks."""
    if track is None or track.raw_points is None:
        return {}
    weights = {i: lag_weight(track.raw_points[i], track.points[i])
               for i, _ in chunk if track.found[i]}
    lagging = [(i, frame, crop, M_c2o) for (i, (frame, crop)), M_c2o
               in zip(chunk, maps, strict=True) if weights.get(i, 0.0) > 0]
    if not lagging:
        return {}
    raw = replace(track, points=track.raw_points)
    motions = engine.motion_batch([crop for _, _, crop, _ in lagging],
                                  [_landmarks(raw, i, M_c2o, frame.shape[:2], len(crop))
                                   for i, frame, crop, M_c2o in lagging])
    return {i: (weights[i], motion) for (i, *_), motion in zip(lagging, motions, strict=True)}


def _shift(lag: tuple[float, Motion] | None, motion: Motion) -> torch.Tensor | None:
    """The keypoints' (1, K, 3) way back, ``lag``'s weight of it, from the smoothed
    ``motion`` towards the frame's own (``lag``: see :func:`_lagging`)."""
    if lag is None:
        return None
    weight, raw = lag
    return weight * (raw.keypoints() - motion.keypoints())


def _no_face(spec: str, kind: InputKind, whole_frame_works: bool) -> InputError:
    """No face in the source, with only the fixes that can work: the whole frame is animated
    uncropped only by an engine that needs no landmarks, for a task that needs no face."""
    problem = f"no face found in the source {kind.value}"
    cli = ["use a portrait with a clearly visible face", "try a lower --det_thresh"]
    page = ["upload a portrait with a clearly visible face"]
    if whole_frame_works:
        cli.append("pass --no_flag_do_crop to animate the whole frame")
        page.append('untick "do crop (source)" to animate the whole frame')
    return InputError(f"{problem} {spec}; {_either(cli)}",
                      page=f"{problem} {Path(spec).name}; {_either(page)}")


def _either(fixes: list[str]) -> str:
    return fixes[0] if len(fixes) == 1 else ", ".join(fixes[:-1]) + f" or {fixes[-1]}"


def prepare_source(spec: str, kind: InputKind, engine: Engine, mesh: FaceMesh,
                   settings: CropSettings, do_crop: bool, max_dim: int, division: int,
                   limit: int | None, reporter: Reporter, *,
                   face_required: bool = False, smooth: float = 0.0,
                   smooth_landmarks: bool = True, track: FaceTrack | None = None,
                   batch: int = 1) -> PreparedSource:
    """Detect, crop and run the motion extractor on the source's frames (at most ``limit``).

    Args:
        face_required: the caller needs the face's landmarks even without cropping.
        smooth: strength of the smoothing of a video source's landmarks, and so of its crop
            boxes and ratios, in frames (``--driving_smooth``; 0: none).
        smooth_landmarks: the motion is taken from the smoothed landmarks too (relative
            driving, which moves the source from them), else from each frame's own (absolute
            driving puts the face where the driver's is: the landmarks must be where the
            frame's pixels are; smoothed to where the face had been, a bending head's upper
            lip slid into its nose by a clip's end).
        track: the face to animate, already tracked with its landmarks
            (:func:`track_numbered_faces`); without it, the largest face of each frame.
        batch: a video's frames whose motion is taken at a time (one batch of M on the
            neural engine; the same motions as one by one).

    Raises:
        InputError: no face where one is needed (to crop, or for landmarks).
    """
    whole_frame_works = not (engine.uses_landmarks or face_required)
    if kind is InputKind.IMAGE:
        image = resize_to_limit(read_image_rgb(spec), max_dim, division)
        if track is None:
            track = track_still_face(image, mesh, settings, engine.uses_landmarks)
        if track is None and (do_crop or not whole_frame_works):
            raise _no_face(spec, kind, whole_frame_works)
        crop_track = track if do_crop else None
        _, crop = _model_input(image, crop_track, 0, engine.input_size)
        M_c2o = _crop_to_frame(crop_track, 0)
        motion = engine.motion(crop, _landmarks(track, 0, M_c2o, image.shape[:2], len(crop)))
        return PreparedSource(spec, kind, [_frame_info(motion, track, 0, M_c2o, keep_x_s=True)],
                              None, False, image, crop_track, max_dim, division,
                              engine.input_size)

    probe = probe_video(spec)
    if track is None:
        frames = (resize_to_limit(f, max_dim, division)
                  for f in iter_frames(spec, limit=limit, warn=reporter.note))
        track = track_faces(reporter.track(frames, "source faces"), mesh, settings,
                            engine.uses_landmarks or smooth > 0)
        if track is not None and not track.found.all():
            reporter.note(missing_faces_note("the source face",
                                             np.flatnonzero(~track.found).tolist(), len(track)))
    if track is None and (do_crop or not whole_frame_works):
        raise _no_face(spec, kind, whole_frame_works)
    if track is not None:
        track = smooth_track(track, settings, smooth, smooth_landmarks)
        if not engine.uses_landmarks:
            track = replace(track, points=None, raw_points=None)
    source = PreparedSource(spec, kind, [], probe.fps, probe.has_audio, None,
                            track if do_crop else None, max_dim, division, engine.input_size,
                            probe.sar)
    n = len(track) if track is not None else sum(1 for _ in iter_frames(spec, limit=limit))
    frames = enumerate(reporter.track(source.frames(n), "source motion", n))
    while chunk := list(islice(frames, max(1, batch))):
        maps = [_crop_to_frame(source._track, i) for i, _ in chunk]
        lagging = _lagging(engine, track, chunk, maps)  # before: the engine keeps the last motion
        motions = engine.motion_batch(
            [crop for _, (_, crop) in chunk],
            [_landmarks(track, i, M_c2o, frame.shape[:2], len(crop))
             for (i, (frame, crop)), M_c2o in zip(chunk, maps, strict=True)])
        source.frames_info.extend(
            _frame_info(motion, track, i, M_c2o, shift=_shift(lagging.get(i), motion))
            for (i, _), motion, M_c2o in zip(chunk, motions, maps, strict=True))
    if source._track is not None:  # its crops are all it is kept for
        source._track = replace(source._track, points=None, raw_points=None)
    return source


@dataclass
class SourceGroup:
    """The source's faces to animate.

    Attributes:
        faces: each face prepared on its own track, in the order of ``numbers``.
        numbers: the faces' numbers (``--face_order``); None for the largest face of each
            frame (``--source_faces largest``).
        still: the tracks, with landmarks, of the faces found but not animated: they are kept
            as they are in the source.
    """

    faces: list[PreparedSource]
    numbers: list[int | None]
    still: list[FaceTrack] = field(default_factory=list)

    @property
    def first(self) -> PreparedSource:
        """The first face's source: the spec, kind, frame rate, audio and frame count, which
        every face shares."""
        return self.faces[0]

    def frames(self, n: int | None) -> Iterator[tuple[np.ndarray, list[np.ndarray]]]:
        """n (frame, model input of each face), as :meth:`PreparedSource.frames`."""
        first, others = self.faces[0], self.faces[1:]
        inputs: list[np.ndarray] = []
        for i, (frame, crop) in enumerate(first.frames(n)):
            if first.is_video or i == 0:  # an image's inputs repeat
                inputs = [crop, *(face.model_input(frame, i) for face in others)]
            yield frame, inputs


def prepare_source_faces(spec: str, kind: InputKind, engine: Engine, mesh: FaceMesh,
                         settings: CropSettings, do_crop: bool, max_dim: int, division: int,
                         reporter: Reporter, *, faces: str | tuple[int, ...] = "largest",
                         order: str = "large-small", smooth: float = 0.0,
                         smooth_landmarks: bool = True, batch: int = 1) -> SourceGroup:
    """The source prepared (:func:`prepare_source`) for each face to animate.

    Args:
        faces: ``largest`` (the largest face of each frame), ``all`` or the faces' numbers
            (:func:`~portrait_animate.pipeline.options.parse_faces`).
        order: how the faces are numbered (``--face_order``), tracked through a video.
        smooth, smooth_landmarks, batch: see :func:`prepare_source`.

    Raises:
        InputError: no face, or a face number the source does not have.
    """
    if faces == "largest":
        return SourceGroup([prepare_source(spec, kind, engine, mesh, settings, do_crop, max_dim,
                                           division, None, reporter, smooth=smooth,
                                           smooth_landmarks=smooth_landmarks, batch=batch)],
                           [None])
    if kind is InputKind.IMAGE:
        frames = iter([resize_to_limit(read_image_rgb(spec), max_dim, division)])
    else:
        frames = reporter.track((resize_to_limit(f, max_dim, division)
                                 for f in iter_frames(spec, warn=reporter.note)), "source faces")
    tracks = track_numbered_faces(frames, mesh, order, settings, keep_points=True)
    if not tracks:
        raise _no_face(spec, kind, False)
    numbers = list(range(len(tracks))) if faces == "all" else list(faces)
    missing = [n for n in numbers if n >= len(tracks)]
    if missing:
        found = "1 face, numbered 0" if len(tracks) == 1 else \
            f"{len(tracks)} faces, numbered 0-{len(tracks) - 1}"
        problem = f"the source has no face {missing[0]}: {found} (--face_order {order})"
        raise InputError(f"{problem}; run `portrait-animate faces {spec}` to see them",
                         page=f"{problem}; pick among those")
    prepared = [prepare_source(spec, kind, engine, mesh, settings, do_crop, max_dim, division,
                               None, reporter, smooth=smooth,
                               smooth_landmarks=smooth_landmarks, track=tracks[n], batch=batch)
                for n in numbers]
    still = [track for n, track in enumerate(tracks) if n not in numbers]
    return SourceGroup(prepared, numbers, still)
