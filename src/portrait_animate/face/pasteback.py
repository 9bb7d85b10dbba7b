"""Pasting the animated 512x512 crop back into the original frame (SPEC 4.8-4.9)."""

from __future__ import annotations

import functools

import cv2
import numpy as np

__all__ = ["mask_template", "PasteBack"]


@functools.lru_cache(maxsize=1)
def mask_template(size: int = 512, inset: int = 16) -> np.ndarray:
    """(size, size) uint8 mask: 255 on the square [inset, size - inset], a linear feather of
    ``inset`` pixels with rounded corners outside it (the reference's mask_template.png)."""
    r = np.arange(size, dtype=np.float64)
    outside = np.maximum.reduce([inset - r, np.zeros(size), r - (size - inset)])
    d = np.hypot(outside[None, :], outside[:, None])
    mask = np.floor(255 * np.clip(inset - d, 0, inset) / inset).astype(np.uint8)
    mask.flags.writeable = False
    return mask


class PasteBack:
    """Blends crops into a frame of fixed size through the crop -> original map.

    Only the rectangle the mask reaches is warped and blended; pixels outside it are copied
    untouched. The blend is float32 and truncated to uint8, as in the reference.

    Args:
        M_c2o: (3, 3) crop -> original map.
        frame_size: (width, height) of the original frame.
        crop_size: side of the crops pasted back.
    """

    def __init__(self, M_c2o: np.ndarray, frame_size: tuple[int, int],
                 crop_size: int = 512) -> None:
        w, h = frame_size
        corners = np.array([[0, 0, 1], [crop_size, 0, 1], [0, crop_size, 1],
                            [crop_size, crop_size, 1]], dtype=np.float64) @ M_c2o[:2].T
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - 1, 0, [w, h])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + 2, 0, [w, h])
        self.roi = (slice(y0, y1), slice(x0, x1))
        shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
        self._M = (shift @ M_c2o)[:2]
        self._size = (int(x1 - x0), int(y1 - y0))
        mask = cv2.warpAffine(np.repeat(mask_template(crop_size)[..., None], 3, axis=2),
                              self._M, self._size, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        self._mask = mask.astype(np.float32) / 255

    def __call__(self, crop: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """The frame with ``crop`` (crop_size, crop_size, 3) uint8 blended in; a new array."""
        out = frame.copy()
        if self._size[0] == 0 or self._size[1] == 0:
            return out
        warped = cv2.warpAffine(crop, self._M, self._size, flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        region = out[self.roi].astype(np.float32)
        blended = self._mask * warped + (1 - self._mask) * region
        out[self.roi] = np.clip(blended, 0, 255).astype(np.uint8)
        return out
