"""From an engine's renders to what is shown: the result in the source frame and the
512x512 crop view, whichever of the two the engine renders, with one face or several."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ..engines.base import Engine
from ..face.pasteback import PasteBack, mask_template
from .faces import CROP_SIZE

__all__ = ["Compositor", "crop_view", "still_mask", "OWNERSHIP_SOFTNESS", "STILL_FEATHER"]

#: How softly the faces' paste-back regions meet (:func:`_ownership`), in crop sizes.
OWNERSHIP_SOFTNESS = 0.04
#: Feather around a face kept still (:func:`still_mask`), in face sizes.
STILL_FEATHER = 0.08


def crop_view(frame: np.ndarray, M_c2o: np.ndarray | None) -> np.ndarray:
    """The 512x512 crop of a whole rendered frame (the resized frame without cropping)."""
    if M_c2o is None:
        return cv2.resize(frame, (CROP_SIZE, CROP_SIZE))
    return cv2.warpAffine(frame, np.linalg.inv(M_c2o)[:2], (CROP_SIZE, CROP_SIZE),
                          flags=cv2.INTER_LINEAR)


def still_mask(faces: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 weight of the source frame for faces kept still: 1 inside each face's
    landmark hull (those pixels are the source's exactly), feathered to 0 outside it.

    Args:
        faces: (478, 2+) landmark pixels of each face.
        shape: (H, W) of the frame.
    """
    mask = np.zeros(shape, np.float32)
    for points in faces:
        hull = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(points[:, :2].round().astype(np.int32)), 1)
        size = float(np.ptp(points[:, :2], axis=0).max())
        outside = cv2.distanceTransform(1 - hull, cv2.DIST_L2, 5)
        ramp = np.clip(1 - outside / max(STILL_FEATHER * size, 1.0), 0, 1)
        mask = np.maximum(mask, ramp * ramp * (3 - 2 * ramp))
    return mask


def _ownership(maps: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """(F, H, W) float32 share of each face's crop in every pixel, summing to 1: by distance
    from each crop's centre in its crop sizes, a soft nearest-face partition, so that
    overlapping paste-back regions meet without a seam and each face keeps its own."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    scores = []
    for M_c2o in maps:
        cx, cy = M_c2o[:2] @ np.array([CROP_SIZE / 2, CROP_SIZE / 2, 1.0])
        side = float(np.linalg.norm(M_c2o[:2, 0])) * CROP_SIZE
        scores.append(-np.hypot(xs - cx, ys - cy) / (side * OWNERSHIP_SOFTNESS))
    scores = np.stack(scores)
    weights = np.exp(scores - scores.max(axis=0))
    return weights / weights.sum(axis=0)


def _same(cached: Sequence[object], given: Sequence[object]) -> bool:
    """Whether ``given`` holds the very objects ``cached`` does (crop maps, landmarks: one
    set for an image source, so what is made from them is made once)."""
    return len(cached) == len(given) and all(a is b for a, b in zip(cached, given,
                                                                     strict=True))


class _GroupPaste:
    """Blends several faces' crops into a frame through their crop maps, each weighted by its
    paste-back mask times its :func:`_ownership` share."""

    def __init__(self, maps: Sequence[np.ndarray], shape: tuple[int, int]) -> None:
        h, w = shape
        self._maps = [M[:2] for M in maps]
        owners = _ownership(maps, shape)
        self._weights = []
        for M, owner in zip(self._maps, owners, strict=True):
            mask = cv2.warpAffine(mask_template(CROP_SIZE), M, (w, h), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            self._weights.append((mask.astype(np.float32) / 255 * owner)[..., None])
        self._rest = 1 - sum(self._weights)

    def __call__(self, crops: Sequence[np.ndarray], frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        out = self._rest * frame.astype(np.float32)
        for crop, M, weight in zip(crops, self._maps, self._weights, strict=True):
            out += weight * cv2.warpAffine(crop, M, (w, h), flags=cv2.INTER_LINEAR,
                                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return np.clip(out, 0, 255).astype(np.uint8)


class Compositor:
    """Turns renders into (result, crop view) pairs.

    Args:
        engine: the engine whose renders come in.
        paste: the result is the whole source frame (paste-back), else the crop.
    """

    def __init__(self, engine: Engine, paste: bool) -> None:
        self.engine, self.paste = engine, paste
        self._paste_back: PasteBack | _GroupPaste | None = None
        self._maps: list[np.ndarray | None] = []
        self._still: tuple[list[np.ndarray], np.ndarray] | None = None

    def _paste_back_for(self, maps: list[np.ndarray], frame: np.ndarray
                        ) -> PasteBack | _GroupPaste:
        # The paste-back masks are warped once per crop maps: once for an image source.
        if self._paste_back is None or not _same(self._maps, maps):
            shape = frame.shape[:2]
            self._paste_back = (PasteBack(maps[0], (shape[1], shape[0])) if len(maps) == 1
                                else _GroupPaste(maps, shape))
            self._maps = list(maps)
        return self._paste_back

    def _keep_still(self, result: np.ndarray, frame: np.ndarray,
                    still: list[np.ndarray]) -> np.ndarray:
        if self._still is None or not _same(self._still[0], still):
            self._still = (list(still), still_mask(still, frame.shape[:2])[..., None])
        mask = self._still[1]
        out = mask * frame.astype(np.float32) + (1 - mask) * result.astype(np.float32)
        return np.clip(out.round(), 0, 255).astype(np.uint8)

    def __call__(self, rendered: np.ndarray, frame: np.ndarray,
                 M_c2o: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(result, crop view) of one render of ``frame``, whose crop map is ``M_c2o``."""
        return self.group([rendered], frame, [M_c2o])

    def group(self, rendered: Sequence[np.ndarray], frame: np.ndarray,
              maps: Sequence[np.ndarray | None],
              still: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
        """(result, crop view) of the renders of ``frame``: one whole frame, or one crop per
        face whose crop map is in ``maps``. The faces in ``still`` (landmark pixels) are
        kept as they are in ``frame``; the crop view is the first face's."""
        if self.engine.renders_full_frame:
            view = crop_view(rendered[0], maps[0])
            return (self.result(rendered, frame, maps, still) if self.paste else view), view
        return self.result(rendered, frame, maps, still), rendered[0]

    def result(self, rendered: Sequence[np.ndarray], frame: np.ndarray,
               maps: Sequence[np.ndarray | None],
               still: Sequence[np.ndarray] = ()) -> np.ndarray:
        """The result of :meth:`group` alone: no crop view is made for it (a whole frame's
        view is a warp of it, which the result does not need when pasted back)."""
        if self.engine.renders_full_frame:
            result = rendered[0] if self.paste else crop_view(rendered[0], maps[0])
        elif self.paste and maps[0] is not None:
            paste = self._paste_back_for(list(maps), frame)
            result = paste(rendered[0] if len(maps) == 1 else rendered, frame)
        else:
            result = rendered[0]
        if still and self.paste:
            result = self._keep_still(result, frame, list(still))
        return result
