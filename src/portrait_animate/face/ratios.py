"""Eye and lip open ratios on MediaPipe landmarks, calibrated to the reference's scale
(SPEC 3.5), on which the retargeting MLPs and the thresholds 0.03, 0.18 and 0.39 were tuned.

Calibration: MediaPipe's raw eye ratio (mid-lid distance over corner distance) reads about
0.30 for open eyes and 0.02-0.05 for closed ones on the driving videos d0 and d9, where the
reference's 203-point ratios read 0.33-0.37 and 0.00-0.05; the affine map
1.25 * raw - 0.025 sends 0.30 to 0.35 and 0.035 to 0.019. The raw lip ratio (inner-lip
midpoints over mouth corners) already reads 0.000-0.002 closed, as the reference's
0.000-0.007, and has the same anatomical definition, so it is kept as is.
"""

from __future__ import annotations

import numpy as np

from .anatomy import EYE_0, EYE_1, LIP

__all__ = ["raw_ratio", "eye_ratios", "lip_ratio", "EYE_SCALE", "EYE_OFFSET"]

EYE_SCALE = 1.25
EYE_OFFSET = -0.025


def raw_ratio(points: np.ndarray, a: int, b: int, c: int, d: int) -> float:
    """|p_a - p_b| / (|p_c - p_d| + 1e-6)."""
    return float(np.linalg.norm(points[a] - points[b])
                 / (np.linalg.norm(points[c] - points[d]) + 1e-6))


def eye_ratios(points: np.ndarray) -> tuple[float, float]:
    """(eye0, eye1) open ratios on the reference's scale; larger means more open."""
    return tuple(max(0.0, EYE_SCALE * raw_ratio(points, *eye) + EYE_OFFSET)
                 for eye in (EYE_0, EYE_1))


def lip_ratio(points: np.ndarray) -> float:
    """Lip open ratio on the reference's scale; larger means more open."""
    return raw_ratio(points, *LIP)
