"""Numbered faces across the frames of a video: each face keeps its number while it moves, and
one that leaves and comes back takes its number again when it returns near where it was."""

from __future__ import annotations

import numpy as np

from .mesh import DetectedFace, FaceMesh, box_iou

__all__ = ["FaceTracker", "FacePick", "MATCH_IOU", "MATCH_DISTANCE"]

#: A detection continues a face when their boxes overlap at least this much (IoU) ...
MATCH_IOU = 0.2
#: ... or when its centre is within this many face sizes of the face's last centre.
MATCH_DISTANCE = 0.5


class FaceTracker:
    """Numbers the faces of successive frames.

    The faces of the first frame with any are numbered by ``order``
    (:func:`~portrait_animate.face.mesh.order_faces`). In later frames each face found
    continues the known face it overlaps most (:data:`MATCH_IOU`, :data:`MATCH_DISTANCE`),
    whether that face was seen in the frame before or earlier; a face that matches none takes
    the next number.

    Args:
        mesh: finds the faces (:meth:`FaceMesh.faces`).
        order: how the first frame's faces are numbered.
    """

    def __init__(self, mesh: FaceMesh, order: str = "large-small") -> None:
        self.mesh, self.order = mesh, order
        self._last: list[np.ndarray] = []  # each number's last box

    @property
    def count(self) -> int:
        """Faces numbered so far."""
        return len(self._last)

    def update(self, image: np.ndarray) -> dict[int, DetectedFace]:
        """The faces of the next frame, an (H, W, 3) uint8 RGB image, by number."""
        found = self.mesh.faces(image, self.order)
        if not self._last:
            self._last = [face.box for face in found]
            return dict(enumerate(found))
        pairs = []
        for j, face in enumerate(found):
            for number, box in enumerate(self._last):
                score = _match(face.box, box)
                if score > 0:
                    pairs.append((score, number, j))
        numbered: dict[int, DetectedFace] = {}
        taken: set[int] = set()
        for _, number, j in sorted(pairs, reverse=True):
            if number not in numbered and j not in taken:
                numbered[number], taken = found[j], taken | {j}
        for j, face in enumerate(found):
            if j not in taken:
                numbered[len(self._last)] = face
                self._last.append(face.box)
        for number, face in numbered.items():
            self._last[number] = face.box
        return numbered


def _match(a: np.ndarray, b: np.ndarray) -> float:
    """How well box a continues box b: their IoU, or a small score for a close centre; 0 for
    neither."""
    iou = box_iou(a, b)
    if iou >= MATCH_IOU:
        return 1.0 + iou
    size = max(b[2] - b[0], b[3] - b[1])
    distance = float(np.linalg.norm((a[:2] + a[2:]) / 2 - (b[:2] + b[2:]) / 2)) / size
    return 1.0 - distance / MATCH_DISTANCE if distance < MATCH_DISTANCE else 0.0


class FacePick:
    """One numbered face of successive frames, where a :class:`FaceMesh` would give the
    largest: the pipeline's face analysis takes it in place of the mesh.

    Args:
        tracker: numbers the faces; this pick alone may use it.
        number: the face to give.
    """

    def __init__(self, tracker: FaceTracker, number: int) -> None:
        self.tracker, self.number = tracker, number

    def landmarks3d(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks of face ``number`` in the next frame, or None when it is not
        there."""
        face = self.tracker.update(image).get(self.number)
        return None if face is None else face.points
