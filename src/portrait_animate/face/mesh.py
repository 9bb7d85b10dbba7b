"""MediaPipe face mesh: 478 refined landmarks, the largest face first (SPEC 3, on MediaPipe)."""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from ..io.images import SAMPLE_PREFIX, read_image_rgb

__all__ = ["FaceMesh", "NUM_LANDMARKS"]

NUM_LANDMARKS = 478
#: Side of the zoomed view the mesh runs on when the face is small in the frame.
ZOOM_SIZE = 384
#: That view's side relative to the detected face box.
ZOOM_CONTEXT = 2.5
#: Side of the face image each new mesh runs on once, silenced (see :func:`_native_stderr_off`).
WARM_UP_SIZE = 128

_STDERR_LOCK = threading.Lock()


@contextmanager
def _native_stderr_off() -> Iterator[None]:
    """Native code's writes to stderr (file descriptor 2) are dropped inside.

    MediaPipe's C++ (absl logging) and TFLite print start-up notes there, with no setting to
    turn them off: "Created TensorFlow Lite XNNPACK delegate", "All log messages before
    absl::InitializeLog()", feedback-manager warnings when a graph first runs and, once per
    process, a projection warning on the first face found. Python's own writes go there too,
    from every thread, so only the graphs' start-up runs inside, one at a time.
    """
    with _STDERR_LOCK:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as null:
                os.dup2(null.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


@functools.cache
def _warm_up_face() -> np.ndarray:
    face = read_image_rgb(f"{SAMPLE_PREFIX}astronaut")
    return cv2.resize(face, (WARM_UP_SIZE, WARM_UP_SIZE), interpolation=cv2.INTER_AREA)


class FaceMesh:
    """Detects faces and returns the largest face's (478, 2) pixel landmarks.

    Every call detects afresh, so a face lost in one video frame is found again in the next,
    and a frame with no face never affects the frames after it. The mesh's own detector only
    sees faces that fill a good part of the frame; when it finds none, MediaPipe's
    full-range detector locates the face and the mesh runs on a zoomed view of it (full-body
    shots, distant faces).

    Args:
        det_thresh: minimum face-detection confidence.
        max_faces: faces considered when picking the largest.
    """

    def __init__(self, det_thresh: float = 0.15, max_faces: int = 4) -> None:
        import mediapipe as mp

        face = _warm_up_face()
        with _native_stderr_off():
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=max_faces, refine_landmarks=True,
                min_detection_confidence=det_thresh)
            self._detector = mp.solutions.face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=det_thresh)
            # The graphs print their warnings on their first image; static image mode keeps
            # no state from it.
            self._mesh.process(face)
            self._detector.process(face)

    def __enter__(self) -> FaceMesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._mesh.close()
        self._detector.close()

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 2) float64 (x, y) pixels of the largest face in an (H, W, 3) uint8 RGB image,
        or None when there is no face."""
        points = self.landmarks3d(image)
        return None if points is None else points[:, :2]

    def landmarks3d(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 3) float64 (x, y, z) of the largest face: x, y in pixels, z (depth, towards
        the camera negative) in pixels of the image width."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} "
                             f"{image.dtype}")
        image = np.ascontiguousarray(image)
        points = self._mesh_points(image)
        return points if points is not None else self._zoomed_points(image)

    def _mesh_points(self, image: np.ndarray) -> np.ndarray | None:
        faces = self._mesh.process(image).multi_face_landmarks or []
        if not faces:
            return None
        h, w = image.shape[:2]
        points = [np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark])
                  for face in faces]
        return max(points, key=_box_area)

    def _zoomed_points(self, image: np.ndarray) -> np.ndarray | None:
        detections = self._detector.process(image).detections or []
        if not detections:
            return None
        h, w = image.shape[:2]
        boxes = [d.location_data.relative_bounding_box for d in detections]
        box = max(boxes, key=lambda b: b.width * w * b.height * h)
        cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
        side = ZOOM_CONTEXT * max(box.width * w, box.height * h)
        s = ZOOM_SIZE / side
        to_view = np.array([[s, 0, ZOOM_SIZE / 2 - s * cx], [0, s, ZOOM_SIZE / 2 - s * cy]])
        view = cv2.warpAffine(image, to_view, (ZOOM_SIZE, ZOOM_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        points = self._mesh_points(view)
        if points is None:
            return None
        points[:, :2] -= to_view[:, 2]
        return points / s


def _box_area(points: np.ndarray) -> float:
    span = points[:, :2].max(axis=0) - points[:, :2].min(axis=0)
    return float(span[0] * span[1])
