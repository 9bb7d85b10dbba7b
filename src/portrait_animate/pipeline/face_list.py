"""The numbered faces of an image or video, as ``--source_faces``, ``--driving_face`` and
``--face_map`` number them, with a preview that shows the numbers."""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..errors import InputError
from ..face.mesh import DetectedFace, FaceMesh
from ..face.tracking import FaceTracker
from ..io.images import read_image_rgb
from ..io.video import iter_frames
from .inputs import InputKind, limited_size, resize_to_limit

__all__ = ["ListedFace", "FaceList", "list_faces", "draw_faces"]


@dataclass(frozen=True)
class ListedFace:
    """One numbered face.

    Attributes:
        number: its number, as the options take it.
        box: [x0, y0, x1, y1] of its landmarks in the preview frame (its first frame, if it is
            not in the preview frame), in the input's own pixels, not the resized frame's (a
            crop of the input at the box is the face, however large the input).
        size: the box's longer side, in the input's pixels.
        score: the detector's mean confidence, or None when only the mesh found it.
        first_frame: the first frame it is in (0 for an image).
        frames: the frames it is in (1 for an image).
    """

    number: int
    box: tuple[float, float, float, float]
    size: float
    score: float | None
    first_frame: int
    frames: int


@dataclass
class FaceList:
    """Attributes:
    faces: the faces, by number.
    preview: (H, W, 3) uint8 RGB frame with the faces' boxes and numbers drawn on it, resized
        as ``animate`` resizes the input (so smaller than a large input).
    preview_frame: which frame the preview is (the first with the most faces).
    n_frames: frames looked at.
    """

    faces: list[ListedFace]
    preview: np.ndarray
    preview_frame: int
    n_frames: int


def list_faces(spec: str, kind: InputKind, mesh: FaceMesh, order: str = "large-small",
               max_dim: int = 1280, division: int = 2, limit: int | None = None) -> FaceList:
    """The faces of an image, or tracked through a video's first ``limit`` frames, numbered
    by ``order``: found on the frames resized as ``animate`` resizes a source, their boxes
    given in the input's pixels.

    Raises:
        InputError: not an image or video.
    """
    if kind is InputKind.IMAGE:
        frames = iter([read_image_rgb(spec)])
    elif kind is InputKind.VIDEO:
        frames = iter_frames(spec, limit=limit)
    else:
        raise InputError(f"faces are listed in an image or a video, not {spec}; pass one")
    tracker = FaceTracker(mesh, order)
    seen: dict[int, list] = {}  # number -> [first frame, frames, scores, first face]
    best, best_frame = None, 0
    at_best: dict[int, DetectedFace] = {}
    n = 0
    for i, raw in enumerate(frames):
        frame = resize_to_limit(raw, max_dim, division)
        height, width = raw.shape[:2]
        faces = tracker.update(frame)
        n = i + 1
        for number, face in faces.items():
            entry = seen.setdefault(number, [i, 0, [], face])
            entry[1] += 1
            if face.score is not None:
                entry[2].append(face.score)
        if best is None or len(faces) > len(at_best):
            best, best_frame, at_best = frame, i, faces
    listed = []
    for number in sorted(seen):
        first, count, scores, first_face = seen[number]
        face = at_best.get(number, first_face)
        listed.append(ListedFace(number, tuple(float(v) for v in face.box), face.size,
                                 float(np.mean(scores)) if scores else None, first, count))
    preview = draw_faces(best, listed)
    # the frames' pixels (before their crop to ``division``) to the input's
    scale = np.divide((width, height), limited_size(width, height, max_dim)).tolist() * 2
    return FaceList([_scaled(face, scale) for face in listed], preview, best_frame, n)


def _scaled(face: ListedFace, scale: list[float]) -> ListedFace:
    """``face`` with its box multiplied by ``scale`` ([x, y, x, y]), and its size so."""
    box = tuple(v * s for v, s in zip(face.box, scale, strict=True))
    return replace(face, box=box, size=max(box[2] - box[0], box[3] - box[1]))


def draw_faces(image: np.ndarray, faces: list[ListedFace]) -> np.ndarray:
    """A copy of an (H, W, 3) uint8 RGB image with each face's box and number drawn on it."""
    out = image.copy()
    thickness = max(2, round(max(out.shape[:2]) / 400))
    for face in faces:
        x0, y0, x1, y1 = (round(v) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 215, 0), thickness, cv2.LINE_AA)
        text = str(face.number)
        scale = max(0.6, face.size / 90)
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        top = max(y0 - h - base - 2 * thickness, 0)
        cv2.rectangle(out, (x0, top), (x0 + w + 2 * thickness, top + h + base + 2 * thickness),
                      (255, 215, 0), -1)
        cv2.putText(out, text, (x0 + thickness, top + h + thickness), cv2.FONT_HERSHEY_SIMPLEX,
                    scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return out
