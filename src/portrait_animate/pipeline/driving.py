"""The driver: a video, an image or a motion template, reduced to per-frame motion and open
ratios (SPEC 4.2); its pixels are re-decoded only for the concat panel."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import repeat

import numpy as np

from ..engines.base import Engine
from ..errors import InputError
from ..face.crop import axis_aligned_crop_matrix
from ..face.mesh import FaceMesh
from ..io.images import read_image_rgb
from ..io.templates import load_template
from ..io.video import iter_frames, probe_video
from ..motion.model import Motion
from ..motion.presets import PRESET_PREFIX, preset_template
from ..motion.template import MotionTemplate
from .faces import CROP_SIZE, CropSettings, driving_crop, points_in_input, track_faces
from .inputs import InputKind
from .progress import Reporter

__all__ = ["PreparedDriving", "prepare_driving", "DEFAULT_FPS"]

DEFAULT_FPS = 25.0


@dataclass
class PreparedDriving:
    """Attributes:
    spec: the driving path.
    kind: video, image or template.
    template: per-frame motion and ratios.
    bbox: the averaged crop box, or None when the driver is not cropped (or a template).
    has_audio: whether a driving video has an audio stream.
    input_size: side of the engine's input crops.
    """

    spec: str
    kind: InputKind
    template: MotionTemplate
    bbox: np.ndarray | None
    has_audio: bool
    input_size: int = 256

    @property
    def is_video(self) -> bool:
        """Several driving frames: a video, or a template or preset of more than one frame."""
        return self.kind is InputKind.VIDEO or self.template.n_frames > 1

    @property
    def n_frames(self) -> int:
        return self.template.n_frames

    def motion(self, i: int) -> Motion:
        return self.template.motions[i if self.is_video else 0]

    def eye_ratio(self, i: int) -> float | None:
        ratios = self.template.eye_ratios
        return None if ratios is None else float(ratios[i if self.is_video else 0, 0])

    def lip_ratio(self, i: int) -> float | None:
        ratios = self.template.lip_ratios
        return None if ratios is None else float(ratios[i if self.is_video else 0, 0])

    def panels(self, n: int) -> Iterator[np.ndarray] | None:
        """n driving crops (the engine's input) for rendering and the concat output; None
        without driving pixels."""
        if self.kind in (InputKind.TEMPLATE, InputKind.PRESET):
            return None
        return (panel for _, panel in _panels(self.spec, self.kind, self.bbox, n,
                                              self.input_size))


def _frames(spec: str, kind: InputKind, limit: int | None) -> Iterator[np.ndarray]:
    if kind is InputKind.IMAGE:
        return iter([read_image_rgb(spec)])
    return iter_frames(spec, limit=limit)


def _panels(spec: str, kind: InputKind, bbox: np.ndarray | None, n: int,
            size: int) -> Iterator[tuple[tuple[int, int], np.ndarray]]:
    """(frame shape, driving crop) pairs."""
    if kind is InputKind.IMAGE:
        image = read_image_rgb(spec)
        return repeat((image.shape[:2], driving_crop(image, bbox, size)), n)
    return ((frame.shape[:2], driving_crop(frame, bbox, size))
            for frame in iter_frames(spec, limit=n))


def _no_face(spec: str) -> InputError:
    return InputError(f"no face found in any frame of the driving input {spec}; use a driving "
                      "video or image that shows a face, or lower --det_thresh")


def prepare_driving(spec: str, kind: InputKind, engine: Engine, mesh: FaceMesh,
                    settings: CropSettings, force_crop: bool, limit: int | None,
                    reporter: Reporter) -> PreparedDriving:
    """Per-frame motion and ratios of at most ``limit`` driving frames.

    The driver is cropped to one averaged box when ``force_crop`` is set or it is not square.
    """
    if kind is InputKind.PRESET:
        template = preset_template(spec.removeprefix(PRESET_PREFIX), engine.layout)
        return PreparedDriving(spec, kind, template, None, False)
    if kind is InputKind.TEMPLATE:
        if force_crop:
            reporter.note("note: --flag_crop_driving_video has no effect on a motion template")
        return PreparedDriving(spec, kind, load_template(spec), None, False)

    if kind is InputKind.IMAGE:
        fps, has_audio = DEFAULT_FPS, False
        h, w = read_image_rgb(spec).shape[:2]
    else:
        probe = probe_video(spec)
        fps, has_audio, (w, h) = probe.fps, probe.has_audio, probe.size
    crop = force_crop or w != h
    track = track_faces(reporter.track(_frames(spec, kind, limit), "driving faces"), mesh,
                        settings, engine.uses_landmarks)
    if track is None:
        raise _no_face(spec)
    bbox = track.mean_bbox() if crop else None
    n = len(track)
    panels = _panels(spec, kind, bbox, n, engine.input_size)
    to_crop = None if bbox is None else axis_aligned_crop_matrix(bbox, CROP_SIZE)
    motions = []
    for i, (frame_shape, panel) in enumerate(reporter.track(panels, "driving motion", n)):
        points = None if track.points is None else track.points[i]
        landmarks = points_in_input(points, frame_shape, to_crop, engine.input_size)
        motions.append(engine.motion(panel, landmarks))
    template = MotionTemplate(motions=motions, fps=fps, eye_ratios=track.eye_ratios,
                              lip_ratios=track.lip_ratios, layout=engine.layout.name)
    return PreparedDriving(spec, kind, template, bbox, has_audio, engine.input_size)
