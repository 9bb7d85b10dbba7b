"""Face geometry of every frame of an input: crop boxes and open ratios, small per frame.

A frame where no face is found borrows the nearest earlier frame's geometry (the first
found, for leading frames), so frames are never dropped or shifted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..face.anatomy import EYE_0, EYE_1
from ..face.crop import (
    Crop,
    CropBox,
    crop_axis_aligned,
    crop_rotated,
    face_box,
    map_points,
    mean_bbox,
)
from ..face.mesh import FaceMesh
from ..face.ratios import eye_ratios, lip_ratio
from ..face.tracking import FacePick, FaceTracker
from ..motion.smoothing import zero_phase_smooth

__all__ = ["CropSettings", "FaceTrack", "track_faces", "track_still_face", "track_numbered_faces",
           "smooth_track", "lag_weight", "source_crop", "driving_crop", "missing_faces_note",
           "CROP_SIZE", "MODEL_SIZE"]

CROP_SIZE = 512
MODEL_SIZE = 256


@dataclass(frozen=True)
class CropSettings:
    """Attributes: scale, vx_ratio, vy_ratio of the box; rotate it with the face or not."""

    scale: float
    vx_ratio: float
    vy_ratio: float
    rotate: bool = True

    def box(self, points: np.ndarray) -> CropBox:
        box = face_box(points, self.scale, self.vx_ratio, self.vy_ratio)
        if self.rotate:
            return box
        return CropBox(box.center, box.size, np.array([1.0, 0.0]), np.array([0.0, 1.0]))


@dataclass
class FaceTrack:
    """Attributes:
    boxes: per-frame crop box.
    eye_ratios: (N, 2) per-frame eye open ratios.
    lip_ratios: (N, 1) per-frame lip open ratios.
    found: (N,) whether the frame's own face was found.
    points: per-frame (478, 3) float32 landmarks in frame pixels, kept only when asked for
        (engines that animate the landmarks themselves).
    raw_points: where each frame shows those landmarks, when ``points`` are smoothed ones
        (:func:`smooth_track`); None otherwise.
    """

    boxes: list[CropBox]
    eye_ratios: np.ndarray
    lip_ratios: np.ndarray
    found: np.ndarray
    points: list[np.ndarray] | None = None
    raw_points: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.boxes)

    def mean_bbox(self) -> np.ndarray:
        """One axis-aligned box for the whole track, from the frames with a face."""
        return mean_bbox([b.bbox for b, f in zip(self.boxes, self.found, strict=True) if f])


def _nearest_found(found: list[bool]) -> list[int]:
    first = found.index(True)
    source, last = [], first
    for i, ok in enumerate(found):
        last = i if ok else last
        source.append(last if i >= first else first)
    return source


def _track(found_points: Iterable[np.ndarray | None], settings: CropSettings,
           keep_points: bool) -> FaceTrack | None:
    boxes, eyes, lips, found, kept = [], [], [], [], []
    for points in found_points:
        found.append(points is not None)
        boxes.append(None if points is None else settings.box(points[:, :2]))
        eyes.append((0.0, 0.0) if points is None else eye_ratios(points[:, :2]))
        lips.append((0.0,) if points is None else (lip_ratio(points[:, :2]),))
        kept.append(None if points is None or not keep_points else points.astype(np.float32))
    if not any(found):
        return None
    take = _nearest_found(found)
    return FaceTrack(boxes=[boxes[j] for j in take],
                     eye_ratios=np.array([eyes[j] for j in take], dtype=np.float32),
                     lip_ratios=np.array([lips[j] for j in take], dtype=np.float32),
                     found=np.array(found),
                     points=[kept[j] for j in take] if keep_points else None)


def _spans(frames: list[int], shown: int = 4) -> str:
    """Sorted frame indices as spans, "2-3, 7", the first ``shown`` of them."""
    spans: list[list[int]] = []
    for i in frames:
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    text = ", ".join(f"{a}-{b}" if b > a else f"{a}" for a, b in spans[:shown])
    return text + (", ..." if len(spans) > shown else "")


def missing_faces_note(face: str, missing: list[int], total: int) -> str:
    """The note for the frames (sorted indices) of a video, of ``total``, in which ``face``
    ("the driving face") was not found: they take a nearby frame's."""
    return (f"note: {face} is not found in {len(missing)} of {total} frames "
            f"({_spans(missing)}); they reuse a nearby frame's face")


def track_faces(frames: Iterable[np.ndarray], mesh: FaceMesh | FacePick, settings: CropSettings,
                keep_points: bool = False) -> FaceTrack | None:
    """Landmarks of every frame (the largest face, or the face a :class:`FacePick` picks)
    reduced to a crop box and ratios (and kept, if asked); None if no frame has a face."""
    return _track((mesh.landmarks3d(frame) for frame in frames), settings, keep_points)


def track_still_face(image: np.ndarray, mesh: FaceMesh, settings: CropSettings,
                     keep_points: bool = False) -> FaceTrack | None:
    """:func:`track_faces` of one still image, searched harder when the mesh finds no face:
    the largest of :meth:`FaceMesh.faces`, whose detector also looks at tiles of the image
    (a small face in a large photo, which the search of the whole image misses)."""
    track = track_faces([image], mesh, settings, keep_points)
    if track is None:
        faces = mesh.faces(image)
        if faces:
            track = _track([faces[0].points], settings, keep_points)
    return track


def track_numbered_faces(frames: Iterable[np.ndarray], mesh: FaceMesh, order: str,
                         settings: CropSettings, keep_points: bool = False) -> list[FaceTrack]:
    """Every face of the frames, tracked (:class:`FaceTracker`) and numbered by ``order``:
    one track per number, a frame where the face is missing borrowing its nearest frame's."""
    tracker = FaceTracker(mesh, order)
    points: list[list[np.ndarray | None]] = []  # per number, per frame (float32)
    for i, frame in enumerate(frames):
        faces = tracker.update(frame)
        points += [[None] * i for _ in range(tracker.count - len(points))]
        for number, track in enumerate(points):
            face = faces.get(number)
            track.append(None if face is None else face.points.astype(np.float32))
    return [_track(track, settings, keep_points) for track in points]


def smooth_track(track: FaceTrack, settings: CropSettings, strength: float,
                 points_too: bool = True) -> FaceTrack:
    """The track with its landmarks smoothed in time (:func:`zero_phase_smooth`, ``strength``
    frames) and its crop boxes and ratios taken again from them, so that a still head keeps
    still crops; the track itself without landmarks or with ``strength`` 0. With
    ``points_too`` the landmarks are the smoothed ones and the frames' own are kept as
    ``raw_points``; without it the landmarks stay where each frame shows the face (a warp
    from them moves the frame's own pixels) and only the boxes and ratios are the smoothed
    ones'."""
    if strength <= 0 or track.points is None or len(track) < 3:
        return track
    points = zero_phase_smooth(np.stack(track.points), strength)  # (T, 478, 3)
    return replace(track, boxes=[settings.box(p[:, :2]) for p in points],
                   eye_ratios=np.array([eye_ratios(p[:, :2]) for p in points], np.float32),
                   lip_ratios=np.array([(lip_ratio(p[:, :2]),) for p in points], np.float32),
                   points=list(points) if points_too else track.points,
                   raw_points=track.points if points_too else None)


#: Smoothed landmarks that lie, at their median, under LAG_START eye spans (outer corner to
#: outer corner) from where the frame shows them are taken for the mesh's tremble (measured
#: 0.002-0.007 a frame on still and talking heads); past LAG_FULL, for a head that really
#: moved and that the smoothing lags (0.07 on average on s13, a dancer filmed at a doubled
#: frame rate, whose head steps every other frame).
LAG_START, LAG_FULL = 0.01, 0.03


def lag_weight(raw: np.ndarray, smoothed: np.ndarray) -> float:
    """How much of the way from a frame's smoothed (478, 3) landmarks back to its own ``raw``
    ones a warp should start: 0 while they differ by the mesh's tremble, 1 once the
    smoothing lags a moving head (:data:`LAG_START`, :data:`LAG_FULL`)."""
    span = max(float(np.linalg.norm(smoothed[EYE_0[2], :2] - smoothed[EYE_1[3], :2])), 1e-6)
    lag = float(np.median(np.linalg.norm(raw[:, :2] - smoothed[:, :2], axis=-1))) / span
    return float(np.clip((lag - LAG_START) / (LAG_FULL - LAG_START), 0.0, 1.0))


def points_in_input(points: np.ndarray | None, frame_shape: tuple[int, int],
                    to_crop512: np.ndarray | None, size: int) -> np.ndarray | None:
    """Frame landmarks (478, 3) in the pixels of a size x size engine input made from the 512
    crop ``to_crop512`` maps to, or from the whole frame resized when it is None."""
    if points is None:
        return None
    if to_crop512 is None:
        h, w = frame_shape
        M = np.diag([size / w, size / h, 1.0])
    else:
        M = np.diag([size / CROP_SIZE, size / CROP_SIZE, 1.0]) @ to_crop512
    return map_points(points.astype(np.float64), M)


def source_crop(frame: np.ndarray, box: CropBox, size: int = MODEL_SIZE) -> tuple[np.ndarray, Crop]:
    """The size x size model input (area-resized from a 512 crop) and the 512 crop with its
    maps."""
    crop = crop_rotated(frame, box, CROP_SIZE)
    if size == CROP_SIZE:
        return crop.image, crop
    return cv2.resize(crop.image, (size, size), interpolation=cv2.INTER_AREA), crop


def driving_crop(frame: np.ndarray, bbox: np.ndarray | None, size: int = MODEL_SIZE) -> np.ndarray:
    """The size x size driving input: the averaged box cropped to 512 then resized, or the
    whole frame resized when the driver is not cropped."""
    if bbox is None:
        return cv2.resize(frame, (size, size))
    crop = crop_axis_aligned(frame, bbox, CROP_SIZE).image
    return crop if size == CROP_SIZE else cv2.resize(crop, (size, size))
