"""Crop geometry (SPEC 3.3): a square box from landmarks, rotated with the face or
axis-aligned, and the affine maps between the original image and the crop."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .anatomy import CROP_POINTS, EYE_0, EYE_1, MOUTH_CORNERS

__all__ = ["CropBox", "face_box", "Crop", "rotated_crop_matrix", "crop_rotated",
           "axis_aligned_crop_matrix", "crop_axis_aligned", "map_points", "mean_bbox"]


@dataclass(frozen=True)
class CropBox:
    """A square crop box: centre (x, y), side length, and unit axes of the face.

    Attributes:
        center: (2,) pixels.
        size: side length L in pixels.
        u_x: (2,) unit vector along the face's horizontal axis.
        u_y: (2,) unit vector from the eyes towards the mouth.
    """

    center: np.ndarray
    size: float
    u_x: np.ndarray
    u_y: np.ndarray

    @property
    def bbox(self) -> np.ndarray:
        """Axis-aligned [x0, y0, x1, y1] of side ``size`` around ``center``."""
        half = self.size / 2
        return np.array([self.center[0] - half, self.center[1] - half,
                         self.center[0] + half, self.center[1] + half])


def face_box(points: np.ndarray, scale: float, vx_ratio: float = 0.0,
             vy_ratio: float = 0.0) -> CropBox:
    """The square box of ``parse_rect_from_landmark`` on MediaPipe landmarks.

    Args:
        points: (478, 2) landmarks in pixels.
        scale: box side over the face's extent.
        vx_ratio, vy_ratio: box shift along the face axes in units of the side; a negative
            ``vy_ratio`` moves the box towards the forehead. Unlike the reference, ``vx_ratio``
            is honoured.
    """
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {points.shape}")
    eye_mid = (points[list(EYE_0)].mean(0) + points[list(EYE_1)].mean(0)) / 2
    mouth_mid = points[list(MOUTH_CORNERS)].mean(0)
    u_y = mouth_mid - eye_mid
    norm = np.linalg.norm(u_y)
    u_y = np.array([0.0, 1.0]) if norm <= 1e-3 else u_y / norm
    u_x = np.array([u_y[1], -u_y[0]])
    face = points[list(CROP_POINTS)]
    c0 = face.mean(0)
    q = (face - c0) @ np.stack([u_x, u_y]).T
    lo, hi = q.min(0), q.max(0)
    c1 = (lo + hi) / 2
    size = float((hi - lo).max() * scale)
    center = c0 + u_x * c1[0] + u_y * c1[1] + u_x * (vx_ratio * size) + u_y * (vy_ratio * size)
    return CropBox(center=center, size=size, u_x=u_x, u_y=u_y)


@dataclass
class Crop:
    """A crop and its maps.

    Attributes:
        image: (dsize, dsize, 3) uint8.
        M_o2c: (3, 3) original -> crop.
        M_c2o: (3, 3) crop -> original.
    """

    image: np.ndarray
    M_o2c: np.ndarray
    M_c2o: np.ndarray


def _warp(image: np.ndarray, M_o2c: np.ndarray, dsize: int) -> Crop:
    crop = cv2.warpAffine(image, M_o2c[:2], (dsize, dsize), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    return Crop(image=crop, M_o2c=M_o2c, M_c2o=np.linalg.inv(M_o2c))


def rotated_crop_matrix(box: CropBox, dsize: int) -> np.ndarray:
    """(3, 3) original -> crop map p' = s [u_x; u_y] (p - centre) + dsize / 2."""
    rot = np.stack([box.u_x, box.u_y]) * (dsize / box.size)
    M = np.eye(3)
    M[:2, :2] = rot
    M[:2, 2] = dsize / 2 - rot @ box.center
    return M


def crop_rotated(image: np.ndarray, box: CropBox, dsize: int) -> Crop:
    """Crop rotated with the face."""
    return _warp(image, rotated_crop_matrix(box, dsize), dsize)


def axis_aligned_crop_matrix(bbox: np.ndarray, dsize: int) -> np.ndarray:
    """(3, 3) original -> crop map of an axis-aligned [x0, y0, x1, y1] box (width sets scale)."""
    s = dsize / (bbox[2] - bbox[0])
    cx, cy = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    return np.array([[s, 0, dsize / 2 - s * cx], [0, s, dsize / 2 - s * cy], [0, 0, 1.0]])


def crop_axis_aligned(image: np.ndarray, bbox: np.ndarray, dsize: int) -> Crop:
    """Crop an axis-aligned [x0, y0, x1, y1] box."""
    return _warp(image, axis_aligned_crop_matrix(bbox, dsize), dsize)


def map_points(points: np.ndarray, M: np.ndarray) -> np.ndarray:
    """(N, 3) pixel landmarks (z in pixels) through a (3, 3) similarity map; z scales along."""
    out = points.copy()
    out[:, :2] = points[:, :2] @ M[:2, :2].T + M[:2, 2]
    out[:, 2] = points[:, 2] * np.sqrt(abs(np.linalg.det(M[:2, :2])))
    return out


def mean_bbox(boxes: list[np.ndarray]) -> np.ndarray:
    """The arithmetic mean of [x0, y0, x1, y1] boxes: one box for a whole driving video."""
    if not boxes:
        raise ValueError("no boxes to average")
    return np.mean(np.stack(boxes), axis=0)
