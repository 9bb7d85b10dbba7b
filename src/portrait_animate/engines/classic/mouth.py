"""The mouth interior of an opening mouth: transferred from the driving frame and
colour-matched to the source's lips, or a synthesised dark cavity when there is no driving
frame. Without it the warp would show the lips stretched across the opening."""

from __future__ import annotations

import cv2
import numpy as np

from .anatomy import INNER_LIPS, OUTER_LIPS

__all__ = ["polygon_area", "LipColour", "lip_colour", "paint_mouth"]

#: Feather of the interior's edge, in mouth widths.
FEATHER = 0.03


def polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0], points[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


class LipColour:
    """Per-channel mean and standard deviation of the lips' ring (outer minus inner contour)."""

    def __init__(self, mean: np.ndarray, std: np.ndarray) -> None:
        self.mean, self.std = mean, np.maximum(std, 1.0)


def lip_colour(image: np.ndarray, points: np.ndarray) -> LipColour:
    """Colour statistics of the lips of a face with (N, 2) pixel landmarks in ``image``."""
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(points[list(OUTER_LIPS)]).astype(np.int32)], 1)
    cv2.fillPoly(mask, [np.round(points[list(INNER_LIPS)]).astype(np.int32)], 0)
    pixels = image[mask.astype(bool)].astype(np.float32)
    if len(pixels) < 8:
        return LipColour(np.array([150.0, 80.0, 80.0]), np.array([20.0, 20.0, 20.0]))
    return LipColour(pixels.mean(0), pixels.std(0))


def _local_box(polygon: np.ndarray, pad: float, shape: tuple[int, int]) -> tuple[int, ...]:
    h, w = shape
    lo = np.floor(polygon.min(0) - pad).astype(int)
    hi = np.ceil(polygon.max(0) + pad).astype(int) + 1
    return max(lo[0], 0), max(lo[1], 0), min(hi[0], w), min(hi[1], h)


def _cavity(shape: tuple[int, int], polygon: np.ndarray, lips: LipColour) -> np.ndarray:
    """A dark, slightly reddish cavity, darkest in the middle of the opening."""
    h, w = shape
    centre_y = polygon[:, 1].mean()
    half = max(np.ptp(polygon[:, 1]) / 2, 1.0)
    ys = np.arange(h, dtype=np.float32)[:, None]
    shade = 0.55 + 0.45 * np.clip(np.abs(ys - centre_y) / half, 0, 1)
    colour = lips.mean * np.array([0.22, 0.12, 0.12], np.float32)
    return np.broadcast_to(shade[..., None] * colour, (h, w, 3)).astype(np.float32)


def _transferred(driving: np.ndarray, driving_points: np.ndarray, target_points: np.ndarray,
                 box: tuple[int, ...], source_lips: LipColour) -> np.ndarray:
    x0, y0, x1, y1 = box
    lips = list(INNER_LIPS) + list(OUTER_LIPS)
    M, _ = cv2.estimateAffine2D(driving_points[lips].astype(np.float32),
                                (target_points[lips] - [x0, y0]).astype(np.float32),
                                method=cv2.LMEDS)
    if M is None:
        return None
    patch = cv2.warpAffine(driving, M, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE).astype(np.float32)
    drv_lips = lip_colour(driving, driving_points)
    return (patch - drv_lips.mean) / drv_lips.std * source_lips.std + source_lips.mean


def paint_mouth(out: np.ndarray, source_points: np.ndarray, target_points: np.ndarray,
                source_lips: LipColour, driving: np.ndarray | None = None,
                driving_points: np.ndarray | None = None) -> None:
    """Fill the target mouth opening of ``out`` in place where the source had none.

    Args:
        out: the warped frame (H, W, 3) uint8.
        source_points, target_points: (N, 2) landmarks in the source and the output.
        source_lips: colour statistics of the source's lips.
        driving: the driving crop, if any, with its (N, 2) pixel landmarks.
    """
    inner_t = target_points[list(INNER_LIPS)]
    area_t = polygon_area(inner_t)
    width = float(np.linalg.norm(target_points[61] - target_points[291]))
    if area_t < (0.02 * width) ** 2:
        return
    # Opening the source already shows is warped from real pixels; only the excess is painted.
    gain = float(np.clip(1 - polygon_area(source_points[list(INNER_LIPS)]) / area_t, 0, 1))
    if gain <= 0:
        return
    feather = max(FEATHER * width, 0.8)
    box = _local_box(inner_t, 3 * feather, out.shape[:2])
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return
    mask = np.zeros((y1 - y0, x1 - x0), np.float32)
    cv2.fillPoly(mask, [np.round((inner_t - [x0, y0]) * 4).astype(np.int32)], 1.0, shift=2)
    mask = cv2.GaussianBlur(mask, (0, 0), feather) * gain
    content = None
    if driving is not None and driving_points is not None:
        content = _transferred(driving, driving_points, target_points, box, source_lips)
    if content is None:
        content = _cavity(mask.shape, inner_t - [x0, y0], source_lips)
    region = out[y0:y1, x0:x1].astype(np.float32)
    blended = region + mask[..., None] * (content - region)
    out[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
