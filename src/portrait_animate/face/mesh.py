"""MediaPipe face mesh: 478 refined landmarks, the largest face first (SPEC 3, on MediaPipe)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from ..choices import FACE_ORDERS
from ..io.images import SAMPLE_PREFIX, read_image_rgb

__all__ = ["DetectedFace", "FaceMesh", "NUM_LANDMARKS", "box_iou", "import_mediapipe",
           "order_faces"]

NUM_LANDMARKS = 478
#: Side of the zoomed view the mesh runs on when the face is small in the frame.
ZOOM_SIZE = 384
#: That view's side relative to the detected face box.
ZOOM_CONTEXT = 2.5
#: Side of the face image each new mesh runs on once, silenced (see :func:`_native_stderr_off`).
WARM_UP_SIZE = 128

_STDERR_LOCK = threading.Lock()
_IMPORT_LOCK = threading.Lock()
#: What MediaPipe's drawing helpers import as it loads, and nothing here draws with.
_DRAWING_MODULES = ("matplotlib", "matplotlib.pyplot")

#: A detection and a mesh are the same face when their boxes overlap at least this much (IoU).
SAME_FACE_IOU = 0.3
#: Images longer than this many times their shorter side are also searched in square tiles of
#: that side.
TILE_ABOVE = 1.2
#: The smallest tiles searched, in pixels (:func:`_tiles`).
MIN_TILE = 320


class _OnFirstUse(ModuleType):
    """A stand-in for a module, in ``sys.modules`` while MediaPipe loads: who took it then
    gets the real module's attributes, imported when first asked for."""

    def __getattr__(self, name: str) -> Any:
        if sys.modules.get(self.__name__) is self:  # still standing in
            raise AttributeError(f"{self.__name__} is not imported yet")
        return getattr(importlib.import_module(self.__name__), name)


def import_mediapipe() -> ModuleType:
    """MediaPipe, imported without the matplotlib that its drawing helpers import as it
    loads (0.47 s of its 0.64 s import on a 2-core AMD EPYC): while it loads, matplotlib
    and its pyplot are :class:`_OnFirstUse` stand-ins, then the real modules import as usual."""
    with _IMPORT_LOCK:
        if "mediapipe" in sys.modules:  # loaded, or loading in a thread that did not ask here
            return importlib.import_module("mediapipe")
        stand_ins = {name: _OnFirstUse(name) for name in _DRAWING_MODULES
                     if name not in sys.modules}
        parent = stand_ins.get("matplotlib")
        if parent is not None and "matplotlib.pyplot" in stand_ins:
            parent.pyplot = stand_ins["matplotlib.pyplot"]
        sys.modules.update(stand_ins)
        try:
            return importlib.import_module("mediapipe")
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]


@dataclass(frozen=True)
class DetectedFace:
    """One face of an image.

    Attributes:
        points: (478, 3) landmarks, as :meth:`FaceMesh.landmarks3d` gives them.
        box: [x0, y0, x1, y1] of the landmarks, in pixels.
        score: the detector's confidence, or None when only the mesh found the face.
    """

    points: np.ndarray
    box: np.ndarray
    score: float | None

    @property
    def size(self) -> float:
        """The box's longer side, in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))

    @property
    def center(self) -> np.ndarray:
        return (self.box[:2] + self.box[2:]) / 2


def _tiles(h: int, w: int) -> list[tuple[int, int, int]]:
    """(x, y, side) of the square tiles a (h, w) image is searched in besides whole, each
    level overlapping by half: tiles of its shorter side (when it is longer than
    :data:`TILE_ABOVE` times that), then of half that side, while it is at least
    :data:`MIN_TILE` pixels."""
    tiles = []
    side = min(h, w)
    if max(h, w) <= side * TILE_ABOVE:
        side //= 2
    while side >= MIN_TILE:
        for y in _starts(h, side):
            tiles += [(x, y, side) for x in _starts(w, side)]
        side //= 2
    return tiles


def _starts(length: int, side: int) -> list[int]:
    """Where tiles of ``side`` start along ``length``, overlapping by about half."""
    steps = -(-2 * (length - side) // side)
    return sorted({round(v) for v in np.linspace(0, length - side, steps + 1)})


def _check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a contiguous (H, W, 3) uint8 RGB array.

    Raises:
        ValueError: any other shape or type.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} "
                         f"{image.dtype}")
    return np.ascontiguousarray(image)


def _landmark_array(face: Any, w: int, h: int) -> np.ndarray:
    """(478, 3) x, y pixels and z (in pixels of the width) of one MediaPipe face."""
    return np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark])


def _landmark_box(points: np.ndarray) -> np.ndarray:
    return np.concatenate([points[:, :2].min(axis=0), points[:, :2].max(axis=0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def order_faces(faces: list[DetectedFace], order: str, shape: tuple[int, ...]
                ) -> list[DetectedFace]:
    """``faces`` numbered by ``order`` (one of :data:`FACE_ORDERS`) in an image of ``shape``
    (H, W, ...); ties keep the given order.

    Raises:
        ValueError: an unknown order.
    """
    h, w = shape[:2]
    keys = {
        "large-small": lambda f: -f.size,
        "left-right": lambda f: f.center[0],
        "right-left": lambda f: -f.center[0],
        "top-bottom": lambda f: f.center[1],
        "distance-from-center": lambda f: float(np.hypot(f.center[0] - w / 2,
                                                         f.center[1] - h / 2)),
    }
    if order not in keys:
        raise ValueError(f"face order {order!r} is not one of {', '.join(FACE_ORDERS)}")
    return sorted(faces, key=keys[order])


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
        self._det_thresh, self._max_faces = det_thresh, max_faces
        self._mesh = self._new_graph("mesh")
        self._detector = self._new_graph("detector")
        #: Graphs replaced after an internal failure (:meth:`_process`).
        self.rebuilt = 0

    def _new_graph(self, which: str) -> Any:
        """A new MediaPipe graph, ``mesh`` or ``detector``, started on one face, silenced."""
        mp = import_mediapipe()
        with _native_stderr_off():
            if which == "mesh":
                graph = mp.solutions.face_mesh.FaceMesh(
                    static_image_mode=True, max_num_faces=self._max_faces,
                    refine_landmarks=True, min_detection_confidence=self._det_thresh)
            else:
                graph = mp.solutions.face_detection.FaceDetection(
                    model_selection=1, min_detection_confidence=self._det_thresh)
            # The graphs print their warnings on their first image; static image mode keeps
            # no state from it.
            graph.process(_warm_up_face())
        return graph

    def _process(self, which: str, image: np.ndarray) -> Any:
        """``process`` of the ``mesh`` or ``detector`` graph. Now and then a MediaPipe graph
        fails inside ("Packet isn't the sole owner of the holder", a race between its own
        threads) and then fails every later image: the graph is replaced and the image run
        again, once."""
        attribute = f"_{which}"
        try:
            return getattr(self, attribute).process(image)
        except RuntimeError:
            with contextlib.suppress(RuntimeError, ValueError):
                getattr(self, attribute).close()
            setattr(self, attribute, self._new_graph(which))
            self.rebuilt += 1
            return getattr(self, attribute).process(image)

    def twin(self) -> FaceMesh:
        """A new face mesh of the same settings (for another thread: a mesh is used by one
        thread at a time)."""
        return FaceMesh(self._det_thresh, self._max_faces)

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
        image = _check_image(image)
        points = self._mesh_points(image)
        return points if points is not None else self._zoomed_points(image)

    def _mesh_points(self, image: np.ndarray, central: bool = False) -> np.ndarray | None:
        """The largest face's mesh, or with ``central`` the one nearest the image's centre."""
        faces = self._process("mesh", image).multi_face_landmarks or []
        if not faces:
            return None
        h, w = image.shape[:2]
        points = [_landmark_array(face, w, h) for face in faces]
        if central:
            middle = np.array([w / 2, h / 2])
            return min(points, key=lambda p: float(np.linalg.norm(
                p[:, :2].mean(axis=0) - middle)))
        return max(points, key=_box_area)

    def _detections(self, image: np.ndarray, origin: tuple[int, int] = (0, 0)
                    ) -> list[tuple[np.ndarray, float]]:
        """The detector's ([x0, y0, x1, y1] pixels, score) of every face, offset by
        ``origin`` (where ``image`` sits in a larger one)."""
        h, w = image.shape[:2]
        found = []
        for detection in self._process("detector", image).detections or []:
            b = detection.location_data.relative_bounding_box
            box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w,
                            (b.ymin + b.height) * h]) + np.tile(origin, 2)
            found.append((box, float(detection.score[0])))
        return found

    def _tiled_detections(self, image: np.ndarray) -> list[tuple[np.ndarray, float]]:
        """Detections in the whole image and in square tiles of it (:func:`_tiles`: the
        detector sees the whole image squashed into a small square, where faces of a group
        are too small for it), merged: of boxes overlapping by :data:`SAME_FACE_IOU` or
        more, the best scored."""
        found = self._detections(image)
        for x, y, side in _tiles(*image.shape[:2]):
            found += self._detections(np.ascontiguousarray(image[y:y + side, x:x + side]),
                                      (x, y))
        kept: list[tuple[np.ndarray, float]] = []
        for box, score in sorted(found, key=lambda f: -f[1]):
            if all(box_iou(box, other) < SAME_FACE_IOU for other, _ in kept):
                kept.append((box, score))
        return kept

    def faces(self, image: np.ndarray, order: str = "large-small") -> list[DetectedFace]:
        """Every face of an (H, W, 3) uint8 RGB image, numbered by ``order``
        (:func:`order_faces`).

        The detector runs on the whole image and on square tiles of it; each face it finds
        gets its mesh from a zoomed view of it, so small faces beside large ones are found
        too. Faces only the mesh finds on the whole image (large, close-up ones), clear of
        every detected face, are added without a score.
        """
        image = _check_image(image)
        faces: list[DetectedFace] = []

        def add(points: np.ndarray, score: float | None, most: float) -> None:
            box = _landmark_box(points)
            if all(box_iou(box, known.box) <= most for known in faces):
                faces.append(DetectedFace(points, box, score))

        for box, score in self._tiled_detections(image):
            points = self._zoomed_at(image, box)
            if points is not None:
                add(points, score, SAME_FACE_IOU)
        h, w = image.shape[:2]
        for face in self._process("mesh", image).multi_face_landmarks or []:
            # a mesh overlapping a detected face is that face, often badly placed
            add(_landmark_array(face, w, h), None, 0.0)
        return order_faces(faces, order, image.shape)

    def _zoomed_points(self, image: np.ndarray) -> np.ndarray | None:
        detections = self._detections(image)
        if not detections:
            return None
        box = max((box for box, _ in detections),
                  key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
        return self._zoomed_at(image, box)

    def _zoomed_at(self, image: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The mesh of the face in ``box``, run on a zoomed view around it."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        side = ZOOM_CONTEXT * max(box[2] - box[0], box[3] - box[1])
        s = ZOOM_SIZE / side
        to_view = np.array([[s, 0, ZOOM_SIZE / 2 - s * cx], [0, s, ZOOM_SIZE / 2 - s * cy]])
        view = cv2.warpAffine(image, to_view, (ZOOM_SIZE, ZOOM_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        points = self._mesh_points(view, central=True)
        if points is None:
            return None
        points[:, :2] -= to_view[:, 2]
        return points / s


def _box_area(points: np.ndarray) -> float:
    span = points[:, :2].max(axis=0) - points[:, :2].min(axis=0)
    return float(span[0] * span[1])
