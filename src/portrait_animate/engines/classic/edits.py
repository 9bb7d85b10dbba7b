"""Editing sliders (SPEC 6.2) as offsets on the MediaPipe mesh, in canonical units.

The magnitudes are chosen so that each slider's full range gives a strong but plausible
expression on the canonical face (about 1.3 units wide).
"""

from __future__ import annotations

import numpy as np
import torch

from ...motion.editing import EditParams
from .anatomy import (
    BROWS,
    CHIN,
    EYE_CORNERS,
    IRISES,
    LOWER_LIDS,
    LOWER_LIPS,
    OUTER_LIPS,
    UPPER_LIDS,
    UPPER_LIPS,
)
from .motion import canonical_shape

__all__ = ["mesh_edits"]

_CORNERS = (61, 291, 78, 308)


#: How far a fully closing upper lid travels, in the canonical eye's gaps: the canonical
#: (smiling) eyes are narrow, so the lid overshoots and the renderer stops it at the lower lid
#: of whatever eye it closes.
LID_TRAVEL = 2.5


def _lid_closing(canonical: np.ndarray, eye: int, amount: float) -> np.ndarray:
    """Offsets closing one eye by ``amount`` (0 open .. 1 shut): the upper lid comes down."""
    delta = np.zeros_like(canonical)
    upper, lower = list(UPPER_LIDS[eye]), list(LOWER_LIDS[eye])
    gap = canonical[lower, 1] - canonical[upper, 1]
    delta[upper, 1] = amount * LID_TRAVEL * gap
    delta[lower, 1] = -amount * 0.1 * gap
    iris = [i for i in IRISES if (i < 473) == (eye == 0)]
    centre = canonical[iris, 1].mean()
    delta[iris, 1] = amount * (canonical[lower, 1].mean() - centre) * 0.5
    return delta


def _mouth_side(canonical: np.ndarray, points: list[int]) -> np.ndarray:
    centre_x = canonical[[61, 291], 0].mean()
    half = abs(canonical[291, 0] - canonical[61, 0]) / 2
    return np.clip((canonical[points, 0] - centre_x) / half, -1, 1)


def mesh_edits(exp: torch.Tensor, params: EditParams) -> torch.Tensor:
    """Add the sliders' offsets to a (1, 478, 3) expression; returns a copy."""
    c = canonical_shape()
    d = np.zeros_like(c)
    lips = list(OUTER_LIPS) + [i for i in UPPER_LIPS + LOWER_LIPS if i not in OUTER_LIPS]
    side = _mouth_side(c, lips)
    corners = list(_CORNERS)
    if params.smile:
        d[corners, 1] -= 0.06 * params.smile
        d[corners, 0] += 0.04 * params.smile * np.sign(_mouth_side(c, corners))
        d[lips, 1] -= 0.03 * params.smile * np.abs(side) ** 2
    if params.lip_open:
        drop = 0.0012 * params.lip_open
        lower = list(LOWER_LIPS)
        d[lower, 1] += drop * np.cos(np.abs(_mouth_side(c, lower)) * np.pi / 2) ** 0.5
        d[list(CHIN), 1] += 0.8 * drop
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
