"""Editing sliders (SPEC 6.2) as offsets on the MediaPipe mesh, in canonical units.

The magnitudes are chosen so that each slider's full range gives a strong but plausible
expression on the canonical face (about 1.3 units wide).
"""

from __future__ import annotations

import numpy as np
import torch

from ...motion.editing import EditParams
from .anatomy import (
    BELOW_MOUTH,
    BROWS,
    CHEEKS,
    CHIN,
    EYE_CORNERS,
    IRISES,
    LIPS,
    LOWER_LIDS,
    LOWER_LIPS,
    OUTER_LIPS,
    UPPER_LIDS,
    UPPER_LIPS,
)
from .motion import canonical_shape

__all__ = ["mesh_edits", "smile_offsets", "skin_below_mouth"]

_CORNERS = (61, 291, 78, 308)


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


def skin_below_mouth(points: np.ndarray, drop: float) -> np.ndarray:
    """(478, 3) offsets carrying the chin and the skin beneath the lower lip of a face's
    (478, 3) upright points down with a jaw that drops the lower lip by ``drop``."""
    delta = np.zeros_like(points)
    below = list(BELOW_MOUTH)
    delta[list(CHIN), 1] = 0.8 * drop
    mouth = points[[61, 291]].mean(0)
    half = abs(points[291, 0] - points[61, 0]) / 2
    across = np.clip(np.abs(points[below, 0] - mouth[0]) / (1.8 * half), 0, 1)
    under = np.clip((points[below, 1] - mouth[1]) / (0.5 * half), 0, 1)
    delta[below, 1] = 0.8 * drop * np.cos(across * np.pi / 2) * under
    return delta


def _jaw_drop(canonical: np.ndarray, drop: float) -> np.ndarray:
    """Offsets opening the mouth by ``drop``: the lower lip goes down, most in the middle, and
    the chin and the skin beneath the lip go with it."""
    delta = skin_below_mouth(canonical, drop)
    lower = list(LOWER_LIPS)
    delta[lower, 1] = drop * np.cos(np.abs(_mouth_side(canonical, lower)) * np.pi / 2) ** 0.5
    return delta


def mesh_edits(exp: torch.Tensor, params: EditParams) -> torch.Tensor:
    """Add the sliders' offsets to a (1, 478, 3) expression; returns a copy."""
    c = canonical_shape()
    d = np.zeros_like(c)
    lips = list(OUTER_LIPS) + [i for i in UPPER_LIPS + LOWER_LIPS if i not in OUTER_LIPS]
    side = _mouth_side(c, lips)
    corners = list(_CORNERS)
    if params.smile:
        d += smile_offsets(c, 0.04 * params.smile, 0.07 * params.smile)
    if params.lip_open:
        d += _jaw_drop(c, 0.0012 * params.lip_open)
    if params.pouting:
        d[lips, 2] -= 2.0 * params.pouting
        d[lips, 0] -= 0.5 * params.pouting * side
    if params.pursing:
        d[list(UPPER_LIPS), 1] += 0.001 * params.pursing
        d[list(LOWER_LIPS), 1] -= 0.001 * params.pursing
    if params.grin:
        d[corners, 0] += 0.003 * params.grin * np.sign(_mouth_side(c, corners))
        d[list(LOWER_LIPS), 1] += 0.002 * params.grin
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
    return exp + torch.from_numpy(d[None]).to(exp)
