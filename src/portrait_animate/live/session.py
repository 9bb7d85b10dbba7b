"""One live session: camera frames in, animated portrait frames out, one at a time.

Motion is relative to a neutral anchor: the first frame with a face, or the next one after
:meth:`LiveSession.set_neutral`. When no face is seen, the last motion holds for
:data:`HOLD_SECONDS`, then eases back to rest over :data:`EASE_SECONDS`; when a face returns
once that ease has begun, its motion eases in from what was shown over :data:`EASE_SECONDS`
(a face missed for a moment, within the hold, is taken up at once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..engines.base import Engine
from ..errors import InputError
from ..face.crop import axis_aligned_crop_matrix
from ..face.mesh import FaceMesh
from ..face.ratios import eye_ratios, lip_ratio
from ..motion.model import Motion
from ..motion.one_euro import OneEuroMotionFilter
from ..motion.smoothing import blend_motion
from ..pipeline.animate import FrameAnimator, note_whole_source, paste_back_active
from ..pipeline.compositing import Compositor
from ..pipeline.faces import CROP_SIZE, CropSettings, driving_crop, points_in_input
from ..pipeline.inputs import InputKind, classify_input
from ..pipeline.options import AnimateOptions
from ..pipeline.progress import Reporter
from ..pipeline.source import PreparedSource, prepare_source

__all__ = ["LiveSession", "LiveFrame", "Driven", "HOLD_SECONDS", "EASE_SECONDS"]

HOLD_SECONDS = 0.5
EASE_SECONDS = 0.5


class _LiveDriving:
    """The camera as the driver :class:`FrameAnimator` reads: the current frame's motion and
    ratios, and the anchor."""

    is_video = True

    def __init__(self) -> None:
        self.current: Motion | None = None
        self.anchor: Motion | None = None
        self.eye: float | None = None
        self.lip: float | None = None

    def motion(self, i: int) -> Motion:
        return self.current

    def motions(self, n: int) -> list[Motion]:
        raise NotImplementedError("a live driver has no motion track")

    def anchor_motion(self) -> Motion:
        return self.anchor

    def eye_ratio(self, i: int) -> float | None:
        return self.eye

    def lip_ratio(self, i: int) -> float | None:
        return self.lip


@dataclass(frozen=True)
class Driven:
    """What the analysis of a camera frame gives the render.

    Attributes:
        motion: the (filtered) driving motion; None before any face was seen.
        panel: the driving crop (the last one seen while the face is away).
        eye, lip: the driving open ratios, or None without a face.
        face: whether the camera frame had a face.
        anchor: the neutral motion the frame is relative to.
    """

    motion: Motion | None
    panel: np.ndarray | None
    eye: float | None
    lip: float | None
    face: bool
    anchor: Motion | None = None


@dataclass(frozen=True)
class LiveFrame:
    """Attributes: image (H, W, 3) uint8 RGB, the animated portrait; face: whether the camera
    frame had a face; animated: whether the portrait moved (a face was ever seen);
    render_ms: the engine's render of the frame (0 when not animated)."""

    image: np.ndarray
    face: bool
    animated: bool
    render_ms: float = 0.0


def prepare_live_source(options: AnimateOptions, engine: Engine, mesh: FaceMesh,
                        reporter: Reporter) -> PreparedSource:
    """The source portrait of a live session: an image (or ``sample:``), prepared as
    ``animate`` prepares it.

    Raises:
        InputError: a video or template source, or no face in the image.
    """
    if classify_input(options.source, "source") is not InputKind.IMAGE:
        raise InputError(f"live animates a source image; {options.source} is not one: give "
                         "an image (or sample:astronaut)")
    if not options.flag_do_crop:
        note_whole_source(options, InputKind.IMAGE, reporter)
    settings = CropSettings(options.scale, options.vx_ratio, options.vy_ratio,
                            options.flag_do_rot)
    return prepare_source(options.source, InputKind.IMAGE, engine, mesh, settings,
                          options.flag_do_crop, options.source_max_dim,
                          options.source_division, None, reporter)


class LiveSession:
    """Animates ``source`` by camera frames given to :meth:`process`.

    Args:
        engine: renders the frames.
        options: the animation options (region, multiplier, stitching, retargeting, crops).
        source: the prepared source image (:func:`prepare_live_source`).
        mesh: finds the face in each camera frame; used by this session alone.
        live_smooth: One-Euro filter strength (:class:`OneEuroMotionFilter`); 0: off.
    """

    def __init__(self, engine: Engine, options: AnimateOptions, source: PreparedSource,
                 mesh: FaceMesh, live_smooth: float = 1.0) -> None:
        self.engine, self.options, self.source, self.mesh = engine, options, source, mesh
        self._driving = _LiveDriving()
        self._animator = FrameAnimator(engine, options, source, self._driving, None,
                                       Reporter(quiet=True))
        self._filter = OneEuroMotionFilter(live_smooth)
        self._settings = CropSettings(options.scale_crop_driving_video,
                                      options.vx_ratio_crop_driving_video,
                                      options.vy_ratio_crop_driving_video, rotate=False)
        frame, model_input = next(source.frames(1))
        self._frame = frame
        info = source.frames_info[0]
        self._appearance = engine.appearance(model_input, frame, info.M_c2o)
        self._compositor = Compositor(engine, paste_back_active(options))
        self._rest = self._compositor.result(
            [engine.render(self._appearance, info.x_s, info.x_s)], frame, [info.M_c2o])
        self._bbox: np.ndarray | None = None
        self._reanchor = True
        self._anchor: Motion | None = None
        self._rendered_anchor: Motion | None = None
        self._last: Motion | None = None
        self._last_panel: np.ndarray | None = None
        self._last_seen = 0.0
        self._shown: Motion | None = None  # the eased motion while the face is away
        self._ease_in: tuple[Motion, float] | None = None  # from what, since when

    @property
    def rest(self) -> np.ndarray:
        """The portrait at rest (its own expression), shown before any face is seen."""
        return self._rest

    def set_neutral(self) -> None:
        """Take the next frame with a face as the new neutral anchor."""
        self._reanchor = True

    def _motion(self, image: np.ndarray, points: np.ndarray, t: float
                ) -> tuple[np.ndarray, Motion]:
        if self._reanchor:  # a new anchor: the crop box stays where its face was
            self._bbox = self._settings.box(points[:, :2]).bbox
        to_crop = axis_aligned_crop_matrix(self._bbox, CROP_SIZE)
        size = self.engine.input_size
        panel = driving_crop(image, self._bbox, size)
        motion = self.engine.motion(panel, points_in_input(points, image.shape[:2], to_crop,
                                                           size))
        if self._reanchor:
            self._reanchor = False
            self._anchor = motion
            self._filter.reset()
        return panel, self._filter(motion, t)

    def analyse(self, image: np.ndarray, t: float) -> Driven:
        """The driving motion of camera frame ``image`` (H, W, 3) uint8 RGB, captured at ``t``
        seconds (monotonic); safe to run beside :meth:`render` of an earlier frame."""
        points = self.mesh.landmarks3d(image)
        if points is not None:
            if self._shown is not None:  # back after the ease to rest began: ease in from it
                self._ease_in, self._shown = (self._shown, t), None
                self._filter.reset()  # its state is the motion from before the face left
            panel, motion = self._motion(image, points, t)
            self._last, self._last_panel, self._last_seen = motion, panel, t
            if self._ease_in is not None:
                start, since = self._ease_in
                weight = float(np.clip((t - since) / EASE_SECONDS, 0.0, 1.0))
                if weight < 1:
                    motion = blend_motion(start, motion, weight)
                else:
                    self._ease_in = None
            return Driven(motion, panel, eye_ratios(points[:, :2])[0],
                          lip_ratio(points[:, :2]), face=True, anchor=self._anchor)
        if self._last is None:
            return Driven(None, None, None, None, face=False)
        # hold, then ease back to the anchor (rest)
        weight = float(np.clip((t - self._last_seen - HOLD_SECONDS) / EASE_SECONDS, 0.0, 1.0))
        motion = blend_motion(self._last, self._anchor, weight)
        if weight > 0:
            self._shown = motion
        return Driven(motion, self._last_panel, None, None, face=False, anchor=self._anchor)

    def render(self, driven: Driven) -> LiveFrame:
        """The portrait animated by an analysed frame."""
        if driven.motion is None:
            return LiveFrame(self._rest, face=False, animated=False)
        self._driving.current, self._driving.anchor = driven.motion, driven.anchor
        if driven.eye is not None:
            self._driving.eye, self._driving.lip = driven.eye, driven.lip
        if driven.anchor is not self._rendered_anchor:
            self._animator.reset_anchor()
            self._rendered_anchor = driven.anchor
        info, x_d = self._animator.keypoints(0)
        start = time.perf_counter()
        rendered = self.engine.render(self._appearance, info.x_s, x_d,
                                      driving_crop=driven.panel, driving_motion=driven.motion)
        render_ms = 1000 * (time.perf_counter() - start)
        result = self._compositor.result([rendered], self._frame, [info.M_c2o])
        return LiveFrame(result, face=driven.face, animated=True, render_ms=render_ms)

    def process(self, image: np.ndarray, t: float) -> LiveFrame:
        """:meth:`analyse` then :meth:`render` one camera frame."""
        return self.render(self.analyse(image, t))
