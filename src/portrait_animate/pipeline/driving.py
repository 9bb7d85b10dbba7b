"""The driver: a video, an image or a motion template, reduced to per-frame motion and open
ratios (SPEC 4.2).

A driving video is analysed while it is animated: a background thread decodes each frame,
runs the face mesh on it (a long video's frames are shared out between a few meshes on their
own threads, in order) and keeps its driving crop, and frame i is animated from that crop as
soon as its face is known. A driver cropped to one averaged box waits for the whole analysis
and is decoded again for its crops, as is one whose motion is needed for every frame before
the animation starts (a video source's). Per frame only landmarks, ratios and motion are kept,
and at most a few crops.

A video source's output keeps the source's frame rate. The driver is then taken frame for
frame (the reference's way), or resampled onto the output's time base (:class:`TimeBase`), so
that a driving video's motion stays in time with its audio.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from itertools import count, islice

import numpy as np

from ..engines.base import Engine
from ..engines.neural.device import core_share
from ..errors import InputError
from ..face.crop import axis_aligned_crop_matrix, mean_bbox
from ..face.mesh import FaceMesh
from ..face.tracking import FacePick
from ..io.templates import load_template
from ..io.video import iter_frames, probe_video
from ..motion.anchor import choose_anchor
from ..motion.model import Motion
from ..motion.presets import PRESET_PREFIX, preset_template
from ..motion.smoothing import smooth_motion_stream, smoothing_radius
from ..motion.template import MotionTemplate, ratio_template, takes_by_ratios
from .faces import (
    CROP_SIZE,
    CropSettings,
    FaceTrack,
    driving_crop,
    missing_faces_note,
    points_in_input,
    track_faces,
    track_still_face,
)
from .inputs import InputKind, read_still
from .prefetch import ordered_map
from .progress import WARNING, Reporter

__all__ = ["DEFAULT_FPS", "DRIVER_NAMES", "PreparedDriving", "TimeBase", "anchor_past_the_end",
           "prepare_driving"]

DEFAULT_FPS = 25.0
#: Driving crops the analysis may keep ahead of the animation.
PANELS_AHEAD = 8
#: Driving crops kept while no face is found yet, before decoding twice instead.
PANELS_BEFORE_FACE = 32
#: Face meshes a driving video is analysed with at most, one per this many frames (a mesh
#: takes about 0.1 s to make; on a 2-core AMD EPYC one thread analyses a 512x512 frame in
#: 9.4 ms, two in 4.7 ms, with the same landmarks), and no more than this process's cores
#: (a batch worker's share).
MAX_ANALYSIS_WORKERS = 4
FRAMES_PER_ANALYSIS_WORKER = 50


def analysis_workers(frames: int | None) -> int:
    """Threads that analyse a driving video of about ``frames`` frames."""
    return max(1, min(MAX_ANALYSIS_WORKERS, core_share(),
                      (frames or 0) // FRAMES_PER_ANALYSIS_WORKER))


def _frames(spec: str, kind: InputKind, limit: int | None,
            warn: Callable[[str], None] | None = None) -> Generator[np.ndarray, None, None]:
    if kind is InputKind.IMAGE:
        yield read_still(spec)
    else:
        yield from iter_frames(spec, limit=limit, warn=warn)


@dataclass(frozen=True)
class TimeBase:
    """The time base of a video source's output, when it may not be the driver's.

    Attributes:
        fps: the output's frame rate.
        mode: ``driving`` takes the driver frame for frame, as the reference does (its motion
            plays faster or slower than it was filmed); ``output`` resamples the driving motion
            onto the output's frame rate; ``auto`` resamples when the output takes the
            driver's audio.
        driving_audio: the output takes a driving video's audio, if it has one.
    """

    fps: float
    mode: str
    driving_audio: bool


class _Timeline:
    """Which driving frame each output frame shows: output frame i, at i / output fps, shows
    the driving frame nearest in time, round(i * driving fps / output fps); frame for frame
    without rates."""

    def __init__(self, driving_fps: float = 1.0, output_fps: float = 1.0) -> None:
        ratio = (Fraction(driving_fps) / Fraction(output_fps)).limit_denominator(100_000)
        self._p, self._q = ratio.numerator, ratio.denominator

    def driving(self, i: int) -> int:
        """The driving frame that output frame i shows."""
        return (2 * i * self._p + self._q) // (2 * self._q)

    def output_frames(self, m: int) -> int:
        """Output frames that show the first m driving frames (m >= 1)."""
        return ((2 * m - 1) * self._q + 2 * self._p - 1) // (2 * self._p)


def _timeline(time_base: TimeBase | None, fps: float, has_audio: bool,
              reporter: Reporter) -> _Timeline:
    """The timeline of a driver of ``fps`` (with audio or not) in an output of ``time_base``."""
    if time_base is None or fps == time_base.fps:
        return _Timeline()
    audio = has_audio and time_base.driving_audio
    if time_base.mode == "output" or (time_base.mode == "auto" and audio):
        reporter.note(f"note: the driving motion ({fps:g} fps) is resampled onto the "
                      f"output's {time_base.fps:g} fps"
                      + (", in time with its audio" if audio else "")
                      + " (--driving_time_base driving takes it frame for frame)")
        return _Timeline(fps, time_base.fps)
    if audio:
        reporter.note(f"note: the driver's {fps:g} fps are played frame for frame at "
                      f"{time_base.fps:g} fps, out of time with its audio; use "
                      "--driving_time_base auto or output to keep them in time")
    return _Timeline()


def _no_face(spec: str, face: int | None = None) -> InputError:
    if face is not None:
        problem = f"the driving input {spec} has no face {face}"
        return InputError(f"{problem}; run `portrait-animate faces {spec}` to see its faces",
                          page=f"{problem}; pick another driving face")
    problem = f"no face found in any frame of the driving input {spec}"
    return InputError(f"{problem}; use a driving video or image that shows a face, or lower "
                      "--det_thresh", page=f"{problem}; upload a driving video or image that "
                      "shows a face")


class _FaceAnalysis:
    """The face mesh on every driving frame, in a background thread, waited for frame by frame.

    A frame without a face borrows the nearest earlier frame's face (the first found, for
    leading frames), as :func:`track_faces` does for a whole track, so nothing shifts.

    With ``panel_size``, each frame's driving crop (the whole frame resized) is kept until
    :meth:`take_panel` hands it over, so the frames are decoded once: the thread stays at most
    :data:`PANELS_AHEAD` frames ahead of the taker. It stops keeping them (:meth:`release`)
    when a caller waits for the whole analysis, or when no face is found in the first
    :data:`PANELS_BEFORE_FACE` frames; the taker then decodes the frames itself.

    Args:
        frames: the decoded frames; closed when the analysis ends.
        mesh: used by the thread alone until :meth:`close`.
        settings: the crop box of each face.
        keep_points: keep each face's landmarks.
        panel_size: side of the driving crops to keep, or None to keep none.
        workers: threads that run a face mesh each (the largest face only: a numbered face
            is tracked on one); ``mesh`` is the first's, the others' are made like it.
        still: the frame is a still image, whose largest face is searched harder
            (:func:`track_still_face`: a small face in a large photo).
    """

    def __init__(self, frames: Generator[np.ndarray, None, None], mesh: FaceMesh | FacePick,
                 settings: CropSettings, keep_points: bool, panel_size: int | None,
                 workers: int = 1, still: bool = False) -> None:
        self._faces: list[FaceTrack | None] = []
        #: Per frame, the frame whose face it uses; -1 before the first face.
        self._nearest: list[int] = []
        self._first: int | None = None
        self._panels: dict[int, np.ndarray] = {}
        #: Frames before this one hold no landmarks, but the borrowed face's
        #: (:meth:`let_go_points`).
        self._points_kept_from = 0
        #: (H, W) of the frames, once the first is decoded.
        self.frame_shape: tuple[int, int] | None = None
        self._keep_panels = panel_size is not None
        self._taken = 0
        self._done = False
        self._stop = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="driving-faces", daemon=True,
                                        args=(frames, mesh, settings, keep_points, panel_size,
                                              workers, still))
        self._thread.start()

    def _run(self, frames: Generator[np.ndarray, None, None], mesh: FaceMesh | FacePick,
             settings: CropSettings, keep_points: bool, panel_size: int | None,
             workers: int, still: bool) -> None:
        last = -1
        # A numbered face is tracked from frame to frame: one thread; the largest face of each
        # frame is found on its own, so frames can be shared out between meshes.
        workers = workers if isinstance(mesh, FaceMesh) else 1
        meshes: list[FaceMesh | FacePick] = []
        lock = threading.Lock()

        def analyser() -> Callable[[np.ndarray], tuple[np.ndarray, FaceTrack | None]]:
            with lock:  # the given mesh for the first thread, one of its settings for others
                meshes.append(mesh if not meshes else mesh.twin())
                own = meshes[-1]
            if still and isinstance(own, FaceMesh):
                return lambda frame: (frame, track_still_face(frame, own, settings, keep_points))
            return lambda frame: (frame, track_faces([frame], own, settings, keep_points))

        analysed = ordered_map(analyser, frames, workers, "driving-faces")
        try:
            for i, (frame, face) in enumerate(analysed):
                panel = driving_crop(frame, None, panel_size) if self._keep_panels else None
                with self._changed:
                    if self._stop:
                        break
                    self.frame_shape = frame.shape[:2]
                    if face is not None:
                        last = i
                        self._first = i if self._first is None else self._first
                    self._faces.append(face)
                    self._nearest.append(last)
                    if self._keep_panels:
                        self._panels[i] = panel
                        if self._first is None and len(self._panels) > PANELS_BEFORE_FACE:
                            self._release()
                    self._changed.notify_all()
                    self._changed.wait_for(lambda n=i + 1: self._stop or not self._keep_panels
                                           or self._first is None
                                           or n - self._taken < PANELS_AHEAD)
        except BaseException as exc:  # raised in the waiting thread
            self._error = exc
        finally:
            analysed.close()
            frames.close()
            for own in meshes[1:]:
                own.close()
            with self._changed:
                self._done = True
                self._changed.notify_all()

    def _wait(self, ready: Callable[[], bool]) -> None:
        with self._changed:
            self._changed.wait_for(lambda: ready() or self._done)
        if self._error is not None:
            raise self._error

    @property
    def done(self) -> bool:
        return self._done

    def has_face(self) -> bool:
        """Whether any frame has a face; waits until one is found or the analysis ends."""
        self._wait(lambda: self._first is not None)
        return self._first is not None

    def face(self, i: int) -> FaceTrack | None:
        """Frame i's face (borrowed when it has none); None past the last frame."""
        self._wait(lambda: len(self._faces) > i and self._first is not None)
        if i >= len(self._faces) or self._first is None:
            return None
        j = self._nearest[i]
        return self._faces[j if j >= 0 else self._first]

    def take_panel(self, i: int) -> np.ndarray | None:
        """Frame i's driving crop, once, if kept (the frame is analysed); None if not."""
        with self._changed:
            self._taken = max(self._taken, i + 1)
            self._changed.notify_all()
            return self._panels.pop(i, None)

    def let_go_points(self, taken: int) -> None:
        """The motion of the first ``taken`` frames is taken: their landmarks are let go (a
        frame's largest share of what a long driver holds), but for the face that later
        frames without one of their own borrow."""
        with self._changed:
            borrowed = self._nearest[taken - 1]
            for j in range(self._points_kept_from, taken):
                face = self._faces[j]
                if j != borrowed and face is not None and face.points is not None:
                    self._faces[j] = replace(face, points=None)
            self._points_kept_from = borrowed if borrowed >= 0 else taken

    def _release(self) -> None:
        self._keep_panels = False
        self._panels.clear()

    def release(self) -> None:
        """Keep no more driving crops, so that the analysis runs to the end."""
        with self._changed:
            self._release()
            self._changed.notify_all()

    def progress(self) -> Iterator[int]:
        """Yields as each frame is analysed, until the last."""
        i = 0
        while True:
            self._wait(lambda seen=i: len(self._faces) > seen)
            if i >= len(self._faces):
                return
            i += 1
            yield i

    def faces(self) -> list[FaceTrack]:
        """Every frame's face (borrowed where it has none), once all are analysed."""
        return [self.face(i) for i in range(len(self._faces))]

    def missing(self) -> list[int]:
        """The frames without a face of their own (they borrow another's), once all are
        analysed."""
        return [i for i, face in enumerate(self._faces) if face is None]

    def own_boxes(self) -> list[np.ndarray]:
        """The crop boxes of the frames with a face of their own, once all are analysed."""
        return [f.boxes[0].bbox for f in self._faces if f is not None]

    def close(self) -> None:
        """Stop after the frame in progress and wait for the thread."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        self._thread.join()


class PreparedDriving:
    """A driver ready to animate: per-frame motion and open ratios, and the driving crops.

    Args:
        template: the motion of a template or preset.
        analysis: the running analysis of a driving video or image (see the module); call
            :meth:`close` when done with it.
        engine: takes the motion of the driving crops.
        crop: crop the frames to the averaged box (else resize them whole).
        reporter: shows the waits for the whole analysis.
        timeline: the driving frame of each output frame (frame for frame without).
        smooth: ``--driving_smooth``, the strength of the zero-phase smoothing of a driving
            video's motion (0: none).
        anchor: ``--driving_anchor``, the driving frame relative motion starts from: ``first``,
            ``auto`` (the most neutral) or an index (:func:`parse_anchor`).
        pixels: the template is the analysis of the driving video or image ``spec`` (as
            :attr:`template` gives it), whose frames are decoded again, cropped by its
            ``crop_box``, for the driving crops.
        face: the number of the driving face analysed (None: the largest), for messages.
        batch: driving frames whose motion is taken at a time (one batch of M on the neural
            engine).
        limit: the driving frames analysed of a longer video, all that a source video uses.

    Frames are counted in output frames (:meth:`frames`, :meth:`motion`, :attr:`n_frames`,
    ...); only :attr:`template` holds the driver's own frames.

    Attributes:
        spec: the driving path.
        kind: video, image or template.
        fps: frame rate of the driver.
        has_audio: whether a driving video has an audio stream.
        layout: name of the keypoint layout of the motion.
        has_eye_ratios, has_lip_ratios: whether per-frame open ratios are known.
        sar: the pixel aspect ratio of a driving video's frames (1: square pixels).
        frames_hint: the expected number of frames, for progress (a video's may be off).
        limit: the driving frames analysed of a longer video (None: all of it).
        by_ratios: the template's own layout, when it is another one, taken by its head pose
            and eye and lip ratios (:func:`~..motion.template.ratio_template`); else None.
    """

    def __init__(self, spec: str, kind: InputKind, fps: float, has_audio: bool, layout: str,
                 frames_hint: int | None, *, template: MotionTemplate | None = None,
                 analysis: _FaceAnalysis | None = None, engine: Engine | None = None,
                 crop: bool = False, reporter: Reporter | None = None,
                 timeline: _Timeline | None = None, smooth: float = 0.0,
                 anchor: str | int = "first", pixels: bool = False,
                 face: int | None = None, batch: int = 1, sar: Fraction = Fraction(1),
                 limit: int | None = None, by_ratios: str | None = None) -> None:
        self.spec, self.kind, self.fps, self.has_audio, self.layout = \
            spec, kind, fps, has_audio, layout
        self.by_ratios = by_ratios
        self.limit = limit
        self.frames_hint = frames_hint
        self.sar = sar
        self.has_eye_ratios = template is None or template.eye_ratios is not None
        self.has_lip_ratios = template is None or template.lip_ratios is not None
        self._template, self._analysis, self._engine = template, analysis, engine
        self._crop, self._reporter = crop, reporter or Reporter(quiet=True)
        self._timeline = timeline or _Timeline()
        self._pixels = pixels
        self._bbox: np.ndarray | None = template.crop_box if pixels else None
        #: The driving frames' motion as taken, and as smoothed (the one used).
        self._raw: list[Motion] = []
        self._motions: list[Motion] = []
        #: Smoothing passes from frame 0 under way, which read :attr:`_raw`.
        self._smoothing_passes = 0
        self._smooth = smooth if analysis is not None and kind is InputKind.VIDEO else 0.0
        self._anchor_spec = anchor
        self._anchor: int | None = None
        self._face = face
        #: The run drives faces by several driving faces: this one, unnumbered, is named
        #: "the largest driving face" in what it tells (a bare "driving anchor" read as a
        #: repeat of another face's).
        self.among_faces = False
        self._batch = batch
        self._told_missing = False

    @property
    def cropped(self) -> bool:
        """Whether the driving frames are cropped to the face (else used whole)."""
        return self._crop

    @property
    def is_video(self) -> bool:
        """Several driving frames: a video (even of one frame, analysed or not), or a
        template or preset of more than one frame."""
        if self._template is not None and not self._pixels:
            return self._template.n_frames > 1
        return self.kind is InputKind.VIDEO

    def _analysed(self) -> list[FaceTrack]:
        """Every frame's face (borrowed where it has none), waiting for the whole analysis."""
        if not self._analysis.done:
            self._analysis.release()
            for _ in self._reporter.track(self._analysis.progress(), "driving faces"):
                pass
        return self._analysis.faces()

    def ready(self) -> None:
        """Wait until the first frame can be animated: a face is found and, for a driver
        cropped to the averaged box, every frame is analysed.

        Raises:
            InputError: no frame has a face, or the driver cannot be decoded.
        """
        if self._analysis is None:
            return
        if not self._analysis.has_face():
            raise _no_face(self.spec, self._face)
        if self._crop and self._bbox is None:
            self._analysed()
            self._bbox = mean_bbox(self._analysis.own_boxes())

    def _frame(self, i: int) -> int:
        """The driving frame of output frame i."""
        return self._timeline.driving(i) if self.is_video else 0

    @property
    def n_frames(self) -> int:
        """Output frames of the driver (at most the limit); waits for the whole analysis."""
        if self._template is not None:
            return self._timeline.output_frames(self._template.n_frames)
        return self._timeline.output_frames(len(self._analysed()))

    def frames(self, n: int | None = None) -> Iterator[tuple[np.ndarray | None, Motion]]:
        """(driving crop, motion) of the first n output frames (all without n), in order: the
        crop is the engine's input and the concat panel (None without driving pixels), its
        motion is taken once and kept for :meth:`motion` and the template (also that of the
        driving frames skipped after the last one shown, before output frame n's)."""
        end = None if n is None or not self.is_video else self._timeline.driving(n)
        driving = self._motion_frames(end)
        shown, item = -1, None
        try:
            for i in range(n) if n is not None else count():
                while shown < self._frame(i):
                    if (item := next(driving, None)) is None:
                        return
                    shown += 1
                yield item
            for _ in driving:
                pass
        finally:
            driving.close()

    @property
    def _name(self) -> str:
        if self._face is not None:
            return f"driving face {self._face}"
        return "the largest driving face" if self.among_faces else "the driving face"

    def tell_missing(self) -> None:
        """Tell, once, the frames of a driver analysed to its end in which its face was not
        found (they take the nearest frame's face)."""
        if self._analysis is None or not self._analysis.done or self._told_missing:
            return
        self._told_missing = True
        missing = self._analysis.missing()
        if missing:
            face = self._name
            total = len(missing) + len(self._analysis.own_boxes())
            self._reporter.note(missing_faces_note(face, missing, total))

    def _motion_frames(self, n: int | None
                       ) -> Generator[tuple[np.ndarray | None, Motion], None, None]:
        """:meth:`frames` of the first n driving frames (all without n): their motion
        smoothed, which looks ahead as far as the smoothing reaches past frame n."""
        if self._all_kept():
            # every frame's smoothed motion is kept (a pass to the end took them): the crops
            # alone are taken again
            self._let_raw_go()
            crops = self._analysed_crops(n)
            try:
                for motion, (panel, _) in zip(self._motions, crops, strict=False):
                    yield panel, motion
            finally:
                crops.close()
            return
        ahead = smoothing_radius(self._smooth) if self._smooth > 0 else 0
        raw = self._driving_frames(None if n is None else n + ahead)
        stream = smooth_motion_stream(raw, self._smooth)
        self._smoothing_passes += 1
        try:
            for i, (panel, motion) in enumerate(islice(stream, n)):
                if i == len(self._motions):
                    self._motions.append(motion)
                yield panel, self._motions[i]
        finally:
            stream.close()
            raw.close()
            self._smoothing_passes -= 1
            self._let_raw_go()

    def _all_kept(self) -> bool:
        """Whether the whole driver is analysed and every frame's smoothed motion kept."""
        return self._analysis is not None and self._analysis.done and \
            len(self._motions) == len(self._analysis.faces())

    def _let_raw_go(self) -> None:
        """Let the raw motions go once every frame's smoothed one is kept and no smoothing
        pass still reads them (one that rendering started before the anchor's pass took the
        whole driver): only a smoothing from frame 0 needs them, and they are a frame's share
        of what a long driver holds, before a video source's tracks are made."""
        if self._smoothing_passes == 0 and self._all_kept():
            self._raw.clear()

    def _driving_frames(self, n: int | None
                        ) -> Generator[tuple[np.ndarray | None, Motion], None, None]:
        """The first n driving frames (all without n) with their motion as taken."""
        if self._analysis is None:
            total = self._template.n_frames if n is None else n
            motions = self._template.motions[:total]
            if not self._pixels:
                yield from ((None, m) for m in motions)
                return
            size = self._engine.input_size
            decoder = _frames(self.spec, self.kind, len(motions))
            try:
                for frame, motion in zip(decoder, motions, strict=False):
                    yield driving_crop(frame, self._bbox, size), motion
            finally:
                decoder.close()
            return
        self.ready()
        crops = self._analysed_crops(n)
        try:
            i = 0
            while chunk := list(islice(crops, self._batch)):
                new = chunk[max(0, len(self._raw) - i):]  # the frames whose motion is not kept
                self._raw.extend(self._engine.motion_batch([panel for panel, _ in new],
                                                           [points for _, points in new]))
                self._analysis.let_go_points(len(self._raw))
                for panel, _ in chunk:
                    yield panel, self._raw[i]
                    i += 1
        finally:
            crops.close()

    def _analysed_crops(self, n: int | None
                        ) -> Generator[tuple[np.ndarray, np.ndarray | None], None, None]:
        """The first n analysed driving frames' (all without n) crops and landmarks in the
        crop (None where the engine takes none)."""
        size = self._engine.input_size
        to_crop = None if self._bbox is None else axis_aligned_crop_matrix(self._bbox, CROP_SIZE)
        decoder: Generator[np.ndarray, None, None] | None = None
        decoded = 0
        try:
            for i in range(n) if n is not None else count():
                face = self._analysis.face(i)
                if face is None:
                    return
                panel = self._analysis.take_panel(i)
                if panel is None:  # not kept by the analysis: decoded again here
                    decoder = decoder or _frames(self.spec, self.kind, n)
                    frame = next(islice(decoder, i - decoded, None), None)
                    if frame is None:
                        return
                    decoded = i + 1
                    panel = driving_crop(frame, self._bbox, size)
                points = None if face.points is None else face.points[0]
                yield panel, points_in_input(points, self._analysis.frame_shape, to_crop, size)
                if not self.is_video:  # one driving image for every frame
                    return
        finally:
            if decoder is not None:
                decoder.close()

    def _take_motions(self, m: int) -> None:
        """Take the motion of the first m driving frames now (a decoding pass) where not yet."""
        if self._analysis is not None and len(self._motions) < m:
            for _ in self._motion_frames(m):
                pass

    def motions(self, n: int) -> list[Motion]:
        """The first n output frames' motion, taken now where not yet."""
        self._take_motions(self._frame(n - 1) + 1)
        return [self.motion(i) for i in range(n)]

    def motion(self, i: int) -> Motion:
        """Output frame i's motion; :meth:`frames` has reached it."""
        return self._driving_motion(self._frame(i))

    def _driving_motion(self, j: int) -> Motion:
        return self._template.motions[j] if self._template is not None else self._motions[j]

    def anchor(self) -> int:
        """The driving frame relative motion starts from, chosen (and told) once.

        Raises:
            InputError: an index past the driver's last frame.
        """
        if self._anchor is None:
            self._anchor = self._choose_anchor()
            if self.is_video:
                how = ("--driving_anchor first" if self._anchor_spec == "first" else
                       f"--driving_anchor {self._anchor_spec}")
                saved = (self._template is not None and self._template.anchor is not None
                         and self._anchor_spec == "auto")
                of = "" if self._face is None and not self.among_faces else f" of {self._name}"
                self._reporter.note(
                    f"driving anchor{of}: frame {self._anchor} "
                    f"({'saved in the template' if saved else how}); the driving motion "
                    "starts from it")
                if self._analysis is not None and self._analysis.done and \
                        self._anchor in self._analysis.missing():
                    self._reporter.note(f"warning: the driving face is not found in the anchor "
                                        f"frame {self._anchor}; --driving_anchor auto picks a "
                                        "frame where it is")
        return self._anchor

    def anchor_motion(self) -> Motion:
        """The motion of :meth:`anchor`'s frame."""
        return self._driving_motion(self.anchor())

    def _choose_anchor(self) -> int:
        spec = self._anchor_spec
        if spec == "first":
            return 0
        if isinstance(spec, int):
            if not self.is_video:
                frames = 1
            elif self._template is None:
                self.ready()
                self._take_motions(spec + 1)
                frames = len(self._motions)
            else:
                frames = self._template.n_frames
            if spec >= frames:
                raise InputError(anchor_past_the_end(spec, self.kind, self.spec, frames,
                                                     frames == self.limit))
            return spec
        if not self.is_video:
            return 0
        if self.kind is InputKind.PRESET:
            return 0  # presets start at rest by design
        if self._template is not None and self._template.anchor is not None:
            return self._template.anchor  # the template's, or the analysis' under auto
        template = self.template
        usable = None
        if self._analysis is not None:
            usable = np.ones(template.n_frames, bool)
            usable[self._analysis.missing()] = False
        return choose_anchor(template.motions, template.eye_ratios, template.lip_ratios,
                             usable)

    def eye_ratio(self, i: int) -> float | None:
        if self._template is None:
            return float(self._analysis.face(self._frame(i)).eye_ratios[0, 0])
        ratios = self._template.eye_ratios
        return None if ratios is None else float(ratios[self._frame(i), 0])

    def lip_ratio(self, i: int) -> float | None:
        if self._template is None:
            return float(self._analysis.face(self._frame(i)).lip_ratios[0, 0])
        ratios = self._template.lip_ratios
        return None if ratios is None else float(ratios[self._frame(i), 0])

    @property
    def template(self) -> MotionTemplate:
        """The whole driving motion, at the driver's own frame rate, taking what
        :meth:`frames` has not reached. A given analysis (``pixels``) holds the anchor chosen
        here, as this driver's own analysis would (it was made under ``auto``)."""
        if self._template is not None:
            return replace(self._template, anchor=self._anchor) if self._pixels \
                else self._template
        faces = self._analysed()
        self._take_motions(len(faces))
        return MotionTemplate(
            motions=self._motions[:len(faces)], fps=self.fps, layout=self.layout,
            eye_ratios=np.concatenate([f.eye_ratios for f in faces]),
            lip_ratios=np.concatenate([f.lip_ratios for f in faces]), anchor=self._anchor,
            crop_box=self._bbox)

    def close(self) -> None:
        """Stop the analysis of a driving video or image, if it runs."""
        if self._analysis is not None:
            self._analysis.close()

    def __enter__(self) -> PreparedDriving:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: What a driver of each kind is called in messages.
DRIVER_NAMES = {InputKind.VIDEO: "the driving video", InputKind.IMAGE: "the driving image",
                InputKind.TEMPLATE: "the motion template", InputKind.PRESET: "the preset"}


def anchor_past_the_end(anchor: int, kind: InputKind, spec: str, frames: int,
                        cut: bool = False) -> str:
    """The message refusing ``--driving_anchor`` ``anchor`` of a driver of ``frames``
    frames (``cut``: all that a source video of that length uses, of a longer driver)."""
    what = f"{DRIVER_NAMES[kind]} {spec}"
    if cut:
        return (f"--driving_anchor {anchor} is past the frames of {what} that the source "
                f"video uses (its first {frames}); pass an index below {frames} or auto")
    return (f"--driving_anchor {anchor} is past the last frame of {what} ({frames} "
            f"frame{'s' * (frames != 1)}); pass "
            + ("0 or auto" if frames == 1 else f"an index below {frames} or auto"))


def prepare_driving(spec: str, kind: InputKind, engine: Engine, mesh: FaceMesh | FacePick,
                    settings: CropSettings, force_crop: bool, limit: int | None,
                    reporter: Reporter, time_base: TimeBase | None = None, *,
                    smooth: float = 0.0, anchor: str | int = "first",
                    analysed: MotionTemplate | None = None,
                    face: int | None = None, order: str | None = None,
                    batch: int = 1) -> PreparedDriving:
    """The driver of at most ``limit`` output frames; a video or image is analysed from now
    on with ``mesh``, which only the analysis may use until :meth:`PreparedDriving.close`
    (a :class:`FacePick` analyses one numbered face instead of the largest).

    The driver is cropped to one averaged box when ``force_crop`` is set or it is not square.
    ``time_base``, the output's of a video source, decides whether a driver of several
    frames is resampled onto it. ``smooth`` and ``anchor``: see :class:`PreparedDriving`.
    ``analysed``, the :attr:`PreparedDriving.template` of this video or image prepared with
    the same engine, crop settings and smoothing, stands for its analysis: only its frames
    are decoded again (``mesh`` is not used). ``face`` picks a template's track of that
    driving face (a video's or image's face is picked by ``mesh``), numbered by ``order``
    (``--face_order``; None: as the template numbers them). ``batch``: driving frames whose
    motion is taken at a time.
    """
    layout, by_ratios = engine.layout.name, None
    if kind in (InputKind.PRESET, InputKind.TEMPLATE):
        if force_crop:
            reporter.note("note: --flag_crop_driving_video has no effect on a "
                          + ("preset" if kind is InputKind.PRESET else "motion template"))
        if kind is InputKind.PRESET:
            if face is not None:
                raise InputError(f"a preset moves one face, so it has no driving face {face}; "
                                 "drop --driving_face and --face_map")
            template = preset_template(spec.removeprefix(PRESET_PREFIX), engine.layout)
        else:
            template = load_template(spec, face, order)
            if takes_by_ratios(template, engine.layout):
                by_ratios = template.layout
                reporter.note(f"{WARNING}the {engine.name} engine takes only the head pose and "
                              f"the eyes' and lips' opening of {spec} ({by_ratios} keypoints), "
                              "not the rest of its expression, which the neural engine takes "
                              "(--engine neural)")
                template = ratio_template(template, engine.layout)
            layout = template.layout
        timeline = _timeline(time_base if template.n_frames > 1 else None, template.fps,
                             False, reporter)
        return PreparedDriving(spec, kind, template.fps, False, layout, template.n_frames,
                               template=template, timeline=timeline, reporter=reporter,
                               anchor=anchor, face=face, by_ratios=by_ratios)

    if kind is InputKind.IMAGE:
        fps, has_audio, hint, timeline, sar = DEFAULT_FPS, False, 1, _Timeline(), Fraction(1)
        h, w = read_still(spec).shape[:2]
    else:
        probe = probe_video(spec)
        fps, has_audio, (w, h), sar = probe.fps, probe.has_audio, probe.size, probe.sar
        timeline = _timeline(time_base, fps, has_audio, reporter)
        if limit is not None:  # in driving frames
            limit = timeline.driving(limit - 1) + 1
        hint = round(probe.duration * probe.fps) or limit
        if limit is not None and hint is not None and hint <= limit:
            limit = None  # a driver no longer than the limit: all of it is used
        hint = hint if limit is None else min(hint, limit)
    crop = force_crop or w != h
    if analysed is not None:
        if crop and analysed.crop_box is None:
            raise InputError(f"the analysis given for {spec} has no crop box; analyse the "
                             "driver again")
        return PreparedDriving(spec, kind, fps, has_audio, layout, analysed.n_frames,
                               template=analysed, engine=engine, crop=crop, reporter=reporter,
                               timeline=timeline, anchor=anchor, pixels=True, sar=sar)
    analysis = _FaceAnalysis(_frames(spec, kind, limit, reporter.note), mesh, settings,
                             engine.uses_landmarks, None if crop else engine.input_size,
                             analysis_workers(hint), still=kind is InputKind.IMAGE)
    return PreparedDriving(spec, kind, fps, has_audio, layout, hint, analysis=analysis,
                           engine=engine, crop=crop, reporter=reporter, timeline=timeline,
                           smooth=smooth, anchor=anchor, face=face, batch=batch, sar=sar,
                           limit=limit)
