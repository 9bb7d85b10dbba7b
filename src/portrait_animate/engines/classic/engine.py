"""The classic engine: MediaPipe landmarks for motion, a geometric warp for rendering.

Training-free and download-free. Motion is the shared model on the 478 mesh points; the
renderer warps the source frame at its full resolution so that its landmarks land on the
composed driving landmarks, and paints the mouth interior an opening mouth needs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from ...errors import InputError
from ...face.mesh import FaceMesh
from ...io.images import check_rgb
from ...models.checks import check_shape
from ...motion.model import Motion
from ..base import RenderItem
from . import retarget
from .anatomy import (
    ABOVE_LIDS,
    ABOVE_MOUTH,
    BELOW_LIDS,
    BELOW_MOUTH,
    CHEEKS,
    EYES,
    JAW,
    LIPS,
    NUM_POINTS,
)
from .eyes import WARP_POINTS, paint_eyes, separate_lids
from .motion import RIGID_POINTS, classic_layout, motion_from_landmarks, to_normalized
from .mouth import LipColour, lip_colour, paint_mouth
from .warp import apply_field, merge_fields, unfold, warp_field

__all__ = ["ClassicEngine", "ClassicAppearance"]

#: The points that only the head's motion moves: the rigid points less every skin the
#: expression carries (cheeks, jaw, skin around the mouth and lids). The warp tells the head's
#: motion from the expression's by them (numbered as in ``WARP_POINTS``, which keeps the
#: first 468 in order).
HEAD_POINTS = tuple(sorted(set(RIGID_POINTS) - set(CHEEKS) - set(JAW) - set(BELOW_MOUTH)
                           - set(ABOVE_MOUTH) - set(LIPS) - set(sum(ABOVE_LIDS + BELOW_LIDS, ()))))
#: The eyes and the lips: the expression moves them as it means to, folds included (an eye
#: closing, a lower lip that absolute driving draws down over the skin below it), so
#: :func:`unfold` leaves them and every triangle touching them as they are (numbered as in
#: ``WARP_POINTS`` too).
EXPRESSIVE = EYES + LIPS


@dataclass
class ClassicAppearance:
    """A source frame ready to be warped.

    Attributes:
        frame: (H, W, 3) uint8 RGB at full resolution.
        to_frame: (2, 3) map from the crop's normalised frame to frame pixels.
        lips: colour statistics of the source's lips, measured at the first render.
    """

    frame: np.ndarray
    to_frame: np.ndarray
    lips: LipColour | None = None

    def pixels(self, keypoints: torch.Tensor) -> np.ndarray:
        """(1, K, 3) normalised keypoints -> (K, 2) frame pixels."""
        xy = keypoints[0, :, :2].double().numpy()
        return xy @ self.to_frame[:, :2].T + self.to_frame[:, 2]

    def relief(self, keypoints: torch.Tensor) -> np.ndarray:
        """(1, K, 3) normalised keypoints -> (K,) their depth in frame pixels, towards the
        camera negative."""
        scale = np.sqrt(abs(np.linalg.det(self.to_frame[:, :2])))
        return keypoints[0, :, 2].double().numpy() * scale


def _normalized_to_frame(M_c2o: np.ndarray | None, frame_shape: tuple[int, int]) -> np.ndarray:
    """(2, 3) affine from the crop's [-1, 1] frame to frame pixels."""
    to_crop512 = np.array([[256.0, 0, 256.0], [0, 256.0, 256.0], [0, 0, 1]])
    if M_c2o is None:  # the whole frame was resized to the crop size
        h, w = frame_shape
        return np.array([[w / 2, 0, w / 2], [0, h / 2, h / 2]])
    return (M_c2o @ to_crop512)[:2]


class _OneThread:
    """One thread for torch, BLAS/LAPACK (OpenMP included) and OpenCV while any classic engine
    is open: the arrays are small here (keypoints, 3x3 solves, a coarse grid, one frame), and
    with more threads every call waits at a barrier for a thread that MediaPipe, ffmpeg or
    another process keeps off the CPU (milliseconds per call, far more under load); the
    pipeline overlaps decoding, face analysis, rendering and encoding instead. The settings
    are the process's: those found before the first engine are restored when the last one
    closes, so that a script's own work after ``animate`` has its threads back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = 0
        self._saved: tuple[int, int, threadpool_limits] | None = None

    def enter(self) -> None:
        with self._lock:
            if self._open == 0:
                self._saved = (torch.get_num_threads(), cv2.getNumThreads(),
                               threadpool_limits(1))
                torch.set_num_threads(1)
                cv2.setNumThreads(1)
            self._open += 1

    def leave(self) -> None:
        with self._lock:
            self._open -= 1
            if self._open == 0 and self._saved is not None:
                torch_threads, cv2_threads, limits = self._saved
                limits.restore_original_limits()
                torch.set_num_threads(torch_threads)
                cv2.setNumThreads(cv2_threads)
                self._saved = None


_ONE_THREAD = _OneThread()


class ClassicEngine:
    """Landmark motion and geometric rendering; renders whole frames (no paste-back needed).

    Args:
        det_thresh: face-detection confidence for the landmarks of crops.
    """

    name = "classic"
    renders_full_frame = True
    input_size = 512
    uses_landmarks = True
    #: Past about 30 degrees of yaw or pitch from the source's pose, the cheek that turns
    #: away smears into streaks and the features tear (s6, s11 edited by 20-50 degrees).
    max_turn = 30.0

    def __init__(self, det_thresh: float = 0.15) -> None:
        _ONE_THREAD.enter()
        self.layout = classic_layout()
        self._det_thresh = det_thresh
        self._mesh: FaceMesh | None = None  # made when a crop comes without its landmarks
        self._last: Motion | None = None
        self._closed = False

    def close(self) -> None:
        """Release the face mesh (a MediaPipe graph, about 45 MB that Python does not free)
        and, when no other classic engine is open, the process's thread settings as they
        were; the engine is not used after."""
        if self._closed:
            return
        self._closed = True
        if self._mesh is not None:
            self._mesh.close()
            self._mesh = None
        _ONE_THREAD.leave()

    def landmarks(self, crop: np.ndarray) -> np.ndarray | None:
        """(478, 3) normalised landmarks of a square crop, or None."""
        if self._mesh is None:
            self._mesh = FaceMesh(self._det_thresh, max_faces=1)
        points = self._mesh.landmarks3d(crop)
        return None if points is None else to_normalized(points, crop.shape[1])

    def motion(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> Motion:
        check_rgb(crop, "crop")
        if landmarks is not None:
            landmarks = np.asarray(landmarks, dtype=np.float64)
            if landmarks.shape != (NUM_POINTS, 3) or not np.isfinite(landmarks).all() \
                    or np.ptp(landmarks[:, :2], axis=0).min() <= 0:
                raise ValueError(f"landmarks must be ({NUM_POINTS}, 3) finite pixels of a face "
                                 f"(not all at one place), got shape {landmarks.shape}")
            points = to_normalized(landmarks, crop.shape[1])
        else:
            points = self.landmarks(crop)
        if points is None:
            if self._last is None:
                raise InputError("no face found in the face crop; use a clearer portrait or "
                                 "lower --det_thresh")
            return self._last  # the nearest earlier frame's motion; nothing shifts
        self._last = motion_from_landmarks(points)
        return self._last

    def appearance(self, crop: np.ndarray, frame: np.ndarray,
                   M_c2o: np.ndarray | None) -> ClassicAppearance:
        """The source frame (H, W, 3) uint8 RGB that :meth:`render` warps, with the map
        ``M_c2o`` (3, 3) of the crop (H', W', 3) into it (None: the crop is the frame,
        resized).

        Raises:
            TypeError, ValueError: naming the input and what it must be.
        """
        check_rgb(crop, "crop")
        check_rgb(frame, "frame")
        if M_c2o is not None:
            matrix = np.asarray(M_c2o)
            if matrix.shape != (3, 3) or not np.issubdtype(matrix.dtype, np.number) \
                    or not np.isfinite(matrix).all():
                raise ValueError(f"M_c2o must be a finite (3, 3) crop-to-frame matrix or None, "
                                 f"got shape {matrix.shape} {matrix.dtype}")
        return ClassicAppearance(frame=frame, to_frame=_normalized_to_frame(M_c2o, frame.shape[:2]))

    def appearance_batch(self, crops: Sequence[np.ndarray], frames: Sequence[np.ndarray],
                         maps: Sequence[np.ndarray | None]) -> list[ClassicAppearance]:
        """Each frame's appearance in turn: there is no network to batch."""
        return [self.appearance(crop, frame, M_c2o)
                for crop, frame, M_c2o in zip(crops, frames, maps, strict=True)]

    def motion_batch(self, crops: Sequence[np.ndarray],
                     landmarks: Sequence[np.ndarray | None]) -> list[Motion]:
        """Each crop's motion in turn: the mesh has no batch to share."""
        return [self.motion(crop, points) for crop, points in zip(crops, landmarks,
                                                                   strict=True)]

    def render_batch(self, items: Sequence[RenderItem]) -> list[np.ndarray]:
        """Each frame rendered in turn: the warp has no batch to share."""
        return [self.render(item.appearance, item.x_s, item.x_d, item.driving_crop,
                            item.driving_motion) for item in items]

    def batch_size(self, requested: int = 0) -> int:
        """``requested``, else 1."""
        return requested if requested > 0 else 1

    def render(self, appearance: ClassicAppearance, x_s: torch.Tensor, x_d: torch.Tensor,
               driving_crop: np.ndarray | None = None,
               driving_motion: Motion | None = None) -> np.ndarray:
        """The full source frame with its face moved from x_s to x_d (1, 478, 3)."""
        return self.render_faces([RenderItem(appearance, x_s, x_d, driving_crop,
                                             driving_motion)])

    def render_faces(self, items: Sequence[RenderItem]) -> np.ndarray:
        """The full source frame with every item's face moved (the items' appearances share
        the frame): one warp field built from every face's (:func:`merge_fields`), then each
        face's eyes and mouth painted."""
        if not items:
            raise ValueError("render_faces needs at least one item")
        for item in items:
            if not isinstance(item.appearance, ClassicAppearance):
                raise TypeError("appearance must be what this engine's appearance() returned, "
                                f"got {type(item.appearance).__name__}")
            for name in ("x_s", "x_d"):
                _check_render_keypoints(getattr(item, name), name)
        frame = items[0].appearance.frame
        faces, fields = [], []
        for item in items:
            appearance = item.appearance
            source = appearance.pixels(item.x_s)
            target = appearance.pixels(item.x_d)
            if appearance.lips is None:
                appearance.lips = lip_colour(frame, source)
            shown = list(WARP_POINTS)
            warped = source[shown]
            target[shown] = unfold(warped, target[shown], HEAD_POINTS, EXPRESSIVE,
                                   appearance.relief(item.x_s)[shown])
            target = separate_lids(source, target)
            depth = item.x_d[0, shown, 2].double().numpy()
            fields.append(warp_field(warped, target[shown], depth, frame.shape[:2],
                                     weighted=len(items) > 1, rigid=HEAD_POINTS))
            faces.append((source, target))
        out = apply_field(frame, merge_fields(fields))
        for item, (source, target) in zip(items, faces, strict=True):
            paint_eyes(out, frame, source, target)
            driving_points = None
            if item.driving_crop is not None and item.driving_motion is not None:
                driving_points = _crop_pixels(item.driving_motion, item.driving_crop.shape[1])
            paint_mouth(out, source, target, item.appearance.lips, item.driving_crop,
                        driving_points)
        return out

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """x_d (1, 478, 3) shifted so that the jaw line stays near x_s's (1, 478, 3)."""
        _check_finite(x_s, (1, NUM_POINTS, 3), "x_s")
        _check_finite(x_d, (1, NUM_POINTS, 3), "x_d")
        return retarget.stitch(x_s, x_d)

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        """Keypoint delta (1, 478, 3) for ratios (1, 3) = [eye0_s, eye1_s, target]."""
        _check_finite(x_s, (1, NUM_POINTS, 3), "x_s")
        _check_finite(ratios, (1, 3), "ratios")
        return retarget.eye_delta(x_s, ratios)

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        """Keypoint delta (1, 478, 3) for ratios (1, 2) = [lip_s, target]."""
        _check_finite(x_s, (1, NUM_POINTS, 3), "x_s")
        _check_finite(ratios, (1, 2), "ratios")
        return retarget.lip_delta(x_s, ratios)


#: The farthest a keypoint may be from the crop's centre, in crop half-sides (the crop is
#: [-1, 1]): far past any face the pipeline composes, short of a warp as large as memory.
MAX_KEYPOINT_REACH = 10.0


def _check_finite(tensor: torch.Tensor, shape: tuple[int, ...], name: str) -> None:
    """A tensor of ``shape`` whose values are all finite.

    Raises:
        TypeError, ValueError: naming ``name`` and what it must be.
    """
    check_shape(tensor, shape, name)
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} has values that are not finite numbers")


def _check_render_keypoints(kp: torch.Tensor, name: str) -> None:
    """(1, 478, 3) finite keypoints within :data:`MAX_KEYPOINT_REACH` of the crop.

    Raises:
        TypeError, ValueError: naming ``name`` and what it must be.
    """
    _check_finite(kp, (1, NUM_POINTS, 3), name)
    reach = float(kp[0, :, :2].abs().max())
    if reach > MAX_KEYPOINT_REACH:
        raise ValueError(f"{name} reaches {reach:g} crop half-sides from the crop's centre, "
                         f"past {MAX_KEYPOINT_REACH:g}; keypoints are in the crop's [-1, 1] "
                         "frame")


def _crop_pixels(motion: Motion, size: int) -> np.ndarray | None:
    """(K, 2) pixels in a driving crop of a driving frame's motion (its own landmarks)."""
    if motion.kp is None:
        return None
    xy = motion.keypoints()[0, :, :2].double().numpy()
    return (xy + 1) * (size / 2)
