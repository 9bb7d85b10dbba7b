"""Editing sliders (SPEC 6.2) as offsets on the MediaPipe mesh, in canonical units.

The magnitudes are chosen so that each slider's full range gives a strong but plausible
expression on the canonical face (about 1.3 units wide).
"""

from __future__ import annotations

import numpy as np
import torch

from ...motion.editing import EditParams
from .anatomy import (
    ABOVE_MOUTH,
    BELOW_MOUTH,
    BROWS,
    CHEEKS,
    CHIN,
    EYE_CORNERS,
    IRISES,
    JAW_ANGLES,
    LIP_RINGS,
    LIPS,
    LOWER_LIDS,
    LOWER_LIPS,
    NOSE_BASE,
    OUTER_LIPS,
    UPPER_LIDS,
)
from .motion import canonical_shape

__all__ = ["mesh_edits", "smile_offsets", "skin_below_mouth", "carry_skin_above_mouth",
           "corner_frame"]

#: How far a fully closing upper lid travels, in the canonical eye's gaps: the canonical
#: (smiling) eyes are narrow, so the lid overshoots and the renderer stops it at the lower lid
#: of whatever eye it closes.
LID_TRAVEL = 2.5


def _lid_closing(canonical: np.ndarray, eye: int, amount: float) -> np.ndarray:
    """Offsets closing one eye by ``amount`` (0 open .. 1 shut): the upper lid comes down
    over the iris, which stays where it is."""
    delta = np.zeros_like(canonical)
    upper, lower = list(UPPER_LIDS[eye]), list(LOWER_LIDS[eye])
    gap = canonical[lower, 1] - canonical[upper, 1]
    delta[upper, 1] = amount * LID_TRAVEL * gap
    delta[lower, 1] = -amount * 0.1 * gap
    return delta


def _mouth_side(canonical: np.ndarray, points: list[int]) -> np.ndarray:
    centre_x = canonical[[61, 291], 0].mean()
    half = abs(canonical[291, 0] - canonical[61, 0]) / 2
    return np.clip((canonical[points, 0] - centre_x) / half, -1, 1)


#: How much of the mouth corners' move the cheeks take in a smile, and how far from a corner
#: that pull reaches, in mouth widths.
CHEEK_FOLLOW = 0.8
CHEEK_REACH = 0.6


def smile_offsets(points: np.ndarray, spread: float, lift: float) -> np.ndarray:
    """(478, 3) offsets of a smile on a face's (478, 3) upright points: the corners go out by
    ``spread`` and up by ``lift``, the lips bend with them (no lip point left behind to
    stretch the line between the lips) and the cheeks follow; a negative spread narrows."""
    delta = np.zeros_like(points)
    lips = list(LIPS)
    side = _mouth_side(points, lips)
    delta[lips, 0] = spread * side
    delta[lips, 1] = -lift * side**2
    corners, cheeks = [61, 291], list(CHEEKS)
    reach = CHEEK_REACH * abs(points[291, 0] - points[61, 0])
    dist = np.linalg.norm(points[cheeks, None, :2] - points[None, corners, :2], axis=2)
    follow = CHEEK_FOLLOW * np.exp(-((dist.min(1) / reach) ** 2))
    delta[cheeks] = follow[:, None] * delta[corners][dist.argmin(1)]
    return delta


def corner_frame(points: np.ndarray, corners: tuple[int, int]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The middle of two corner points of (N, >=2) points, the unit vector along the line
    between them, its unit normal pointing down the face, and their distance."""
    a, b = points[corners[0], :2], points[corners[1], :2]
    along = (b - a) / max(np.linalg.norm(b - a), 1e-9)
    normal = np.array([-along[1], along[0]])
    if normal[1] < 0:
        normal = -normal  # pointing down the face
    return (a + b) / 2, np.array([normal[1], -normal[0]]), normal, float(np.linalg.norm(b - a))


#: The chin and the skin between the lower lip and the jaw line: what a dropping jaw carries.
_BELOW_LIP = tuple(sorted(set(CHIN) | set(BELOW_MOUTH)))


def skin_below_mouth(points: np.ndarray, drop: float) -> np.ndarray:
    """(478, 3) offsets carrying the chin and the skin beneath the lower lip of a face's
    (478, 3) points down (along the normal of the mouth corners' line) with a jaw that drops
    the middle of the lower lip by ``drop``.

    Each point takes one smooth share of the drop: all of it below the middle of the mouth,
    falling to nothing towards the jaw's angles and up to the corners' line. A point never
    goes down less than the points above it, so the skin stretches and never folds over
    (a fold drew a staircase of torn skin under the chin)."""
    mid, across, normal, width = corner_frame(points, (61, 291))
    rel = points[list(_BELOW_LIP), :2] - mid
    reach = max(float(np.abs((points[list(JAW_ANGLES), :2] - mid) @ across).mean()), 1e-9)
    lateral = np.cos(np.clip(np.abs(rel @ across) / reach, 0, 1) * np.pi / 2) ** 0.5
    down = np.clip(rel @ normal / (0.25 * width), 0, 1)
    delta = np.zeros_like(points)
    delta[list(_BELOW_LIP), :2] = (drop * lateral * down)[:, None] * normal
    return delta


def carry_skin_above_mouth(points: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``delta`` (478, 3) with the skin between the nose and the upper lip of a face's
    (478, 3) points moved along with the outer upper lip at its place: fully at the lip, not
    at all at the nose's base (a rising lip folded over the still skin above it)."""
    mid, across, normal, _ = corner_frame(points, (61, 291))
    lip, skin = list(OUTER_LIPS[:11]), list(ABOVE_MOUTH)
    place = (points[lip, :2] - mid) @ across
    order = np.argsort(place)
    at = (points[skin, :2] - mid) @ across
    lip_height = np.interp(at, place[order], ((points[lip, :2] - mid) @ normal)[order])
    nose = float((points[NOSE_BASE, :2] - mid) @ normal)
    share = np.clip(((points[skin, :2] - mid) @ normal - nose)
                    / np.maximum(lip_height - nose, 1e-9), 0, 1)
    moves = np.stack([np.interp(at, place[order], delta[lip, k][order]) for k in range(3)], 1)
    out = delta.copy()
    out[skin] += share[:, None] * moves
    return out


def _lip_share(canonical: np.ndarray, points: list[int]) -> np.ndarray:
    """Share of a lip's move that each of its ``points`` takes: all of it in the middle,
    none at the corners, which stay where they are (lips that moved up to the corners folded
    over them)."""
    return np.cos(np.abs(_mouth_side(canonical, points)) * np.pi / 2) ** 0.5


def _jaw_drop(canonical: np.ndarray, drop: float) -> np.ndarray:
    """Offsets opening the mouth by ``drop``: the lower lip goes down, most in the middle, and
    the chin and the skin beneath the lip go with it."""
    delta = skin_below_mouth(canonical, drop)
    lower = list(LOWER_LIPS)
    delta[lower, 1] = drop * _lip_share(canonical, lower)
    return delta


def mesh_edits(exp: torch.Tensor, params: EditParams) -> torch.Tensor:
    """Add the sliders' offsets to a (1, 478, 3) expression; returns a copy."""
    c = canonical_shape()
    d = np.zeros_like(c)
    lips = list(LIPS)
    side = _mouth_side(c, lips)
    if params.smile:
        d += smile_offsets(c, 0.04 * params.smile, 0.07 * params.smile)
    if params.lip_open:
        d += _jaw_drop(c, 0.0012 * params.lip_open)
    if params.pouting:
        d[lips, 2] -= 2.0 * params.pouting
        d[lips, 0] -= 0.5 * params.pouting * side
    if params.pursing:  # thinner lips: each ring towards the inner lips, the outer the most
        for depth, ring in enumerate(LIP_RINGS):
            ring_upper, ring_lower = (list(p) for p in zip(*ring, strict=True))
            move = 0.001 * params.pursing * depth / (len(LIP_RINGS) - 1)
            d[ring_upper, 1] += move * _lip_share(c, ring_upper)
            d[ring_lower, 1] -= move * _lip_share(c, ring_lower)
    if params.grin:  # the corners go out, the lips and cheeks with them; the lower lip down
        lower = list(LOWER_LIPS)
        d += smile_offsets(c, 0.003 * params.grin, 0.0)
        d[lower, 1] += 0.002 * params.grin * _lip_share(c, lower)
    if params.wink:
        d += _lid_closing(c, 1, min(params.wink / 25, 1.0))
    if params.blink:
        closing = min(params.blink / 25, 1.0)
        d += _lid_closing(c, 0, closing) + _lid_closing(c, 1, closing)
    if params.eyebrow:
        d[list(BROWS), 1] -= 0.002 * params.eyebrow
    if params.gaze_x or params.gaze_y:
        eye_width = np.linalg.norm(c[EYE_CORNERS[0][0]] - c[EYE_CORNERS[0][1]])
        d[list(IRISES), 0] += 0.008 * params.gaze_x * eye_width
        d[list(IRISES), 1] -= 0.003 * params.gaze_y * eye_width
    d = carry_skin_above_mouth(c, d)
    return exp + torch.from_numpy(d[None]).to(exp)
