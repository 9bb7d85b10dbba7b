"""Eyes in the warp: the iris follows the driver's gaze inside the opening the lids leave,
and an eye that closes hides its iris behind the lids instead of letting it poke through."""

from __future__ import annotations

import numpy as np

from .anatomy import EYE_CORNERS, LOWER_LIDS, UPPER_LIDS

__all__ = ["EYE_OUTLINES", "clamp_irises", "separate_lids", "hidden_irises"]

#: Smallest lid gap kept in the output, in pixels: lids that touch would make duplicate
#: points, which the triangulation drops.
MIN_LID_GAP = 1.0
#: Below this opening relative to the source's, an eye's iris is hidden behind the lids.
IRIS_HIDDEN_BELOW = 0.35

#: Each eye's opening, around: corner, upper lid, corner, lower lid (reversed).
EYE_OUTLINES = tuple(
    (corners[0], *upper, corners[1], *reversed(lower))
    for corners, upper, lower in zip(EYE_CORNERS, UPPER_LIDS, LOWER_LIDS, strict=True))


def _opening(points: np.ndarray, outline: tuple[int, ...]) -> float:
    """Lid gap over eye width: the middle upper-lid point to the middle lower-lid point."""
    upper, lower = outline[4], outline[12]
    width = np.linalg.norm(points[outline[0]] - points[outline[8]])
    return float(np.linalg.norm(points[upper] - points[lower]) / max(width, 1e-9))


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def separate_lids(target: np.ndarray) -> np.ndarray:
    """A copy of the (478, 2) target landmarks whose facing lid points keep MIN_LID_GAP: an
    upper lid that comes down onto (or past) the lower lid rests just above it."""
    out = target.copy()
    for corners, upper, lower in zip(EYE_CORNERS, UPPER_LIDS, LOWER_LIDS, strict=True):
        a, b = target[corners[0]], target[corners[1]]
        along = (b - a) / max(np.linalg.norm(b - a), 1e-9)
        normal = np.array([-along[1], along[0]])
        for u, lo in zip(upper, lower, strict=True):
            gap = float(np.dot(target[lo] - target[u], normal))
            if gap < MIN_LID_GAP:
                out[u] = target[lo] - MIN_LID_GAP * normal
    return out


def hidden_irises(target: np.ndarray, source: np.ndarray) -> list[int]:
    """Iris points of eyes closed too far to show an iris."""
    hidden = []
    for outline in EYE_OUTLINES:
        openness = _opening(target, outline) / max(_opening(source, outline), 1e-3)
        if openness < IRIS_HIDDEN_BELOW:
            hidden += list(_IRIS_POINTS[outline[0]])
    return hidden


def clamp_irises(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """A copy of the (478, 2) target landmarks with each iris squeezed between its eye's lids
    as much as the eye closes relative to the source: a closing eye hides its iris instead of
    letting it poke through the lid."""
    out = target.copy()
    for outline, corners, upper, lower in zip(EYE_OUTLINES, EYE_CORNERS, UPPER_LIDS, LOWER_LIDS,
                                              strict=True):
        squeeze = min(_opening(target, outline) / max(_opening(source, outline), 1e-3), 1.0)
        a, b = target[corners[0]], target[corners[1]]
        along = (b - a) / max(np.linalg.norm(b - a), 1e-9)
        normal = np.array([-along[1], along[0]])
        frame = np.stack([along, normal], axis=1)
        ux, uy = ((target[[corners[0], *upper, corners[1]]] - a) @ frame).T
        lx, ly = ((target[[corners[0], *lower, corners[1]]] - a) @ frame).T
        iris = list(_IRIS_POINTS[corners[0]])
        ix, iy = ((target[iris] - a) @ frame).T
        top, bottom = np.interp(ix, *_sorted(ux, uy)), np.interp(ix, *_sorted(lx, ly))
        middle = (top + bottom) / 2
        squeezed = np.clip(middle + (iy - middle) * squeeze, np.minimum(top, bottom),
                           np.maximum(top, bottom))
        out[iris] = a + np.outer(ix, along) + np.outer(squeezed, normal)
    return out


_IRIS_POINTS = {33: range(468, 473), 362: range(473, 478)}


def _sorted(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(x)
    return x[order], y[order]
