"""MediaPipe face mesh: 478 refined landmarks, the largest face first (SPEC 3, on MediaPipe)."""

from __future__ import annotations

import numpy as np

__all__ = ["FaceMesh", "NUM_LANDMARKS"]

NUM_LANDMARKS = 478


class FaceMesh:
    """Detects faces and returns the largest face's (478, 2) pixel landmarks.

    Every call detects afresh, so a face lost in one video frame is found again in the next,
    and a frame with no face never affects the frames after it.

    Args:
        det_thresh: minimum face-detection confidence.
        max_faces: faces considered when picking the largest.
    """

    def __init__(self, det_thresh: float = 0.15, max_faces: int = 4) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
            min_detection_confidence=det_thresh)

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._mesh.close()

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 2) float64 (x, y) pixels of the largest face in an (H, W, 3) uint8 RGB image,
        or None when there is no face."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} "
                             f"{image.dtype}")
        result = self._mesh.process(np.ascontiguousarray(image))
        faces = result.multi_face_landmarks or []
        if not faces:
            return None
        h, w = image.shape[:2]
        points = [np.array([(p.x * w, p.y * h) for p in face.landmark]) for face in faces]
        return max(points, key=_box_area)


def _box_area(points: np.ndarray) -> float:
    span = points.max(axis=0) - points.min(axis=0)
    return float(span[0] * span[1])
