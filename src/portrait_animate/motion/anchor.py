"""The neutral anchor of relative motion (``--driving_anchor auto``).

Relative motion moves the source by each driving frame's difference from one anchor frame,
the first in the reference. A driver that starts smiling, blinking or turned away then moves
the source the other way for the whole video. :func:`neutral_scores` rates every frame's
distance from a neutral face and :func:`choose_anchor` picks the best, keeping the first
frame unless another is clearly more neutral.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .model import Motion

__all__ = ["neutral_scores", "choose_anchor", "FIRST_FRAME_MARGIN"]

#: Lip open ratio that costs as much as a typical expression change (closed reads ~0.00-0.01).
LIP_SCALE = 0.05
#: Eye closure, below the driver's open eyes, that costs as much.
EYE_SCALE = 0.08
#: Head rotation away from frontal, in degrees, that costs as much.
POSE_SCALE_DEG = 10.0
#: How much less neutral the first frame may be and still be kept: a driver that starts
#: neutral keeps the reference's anchor.
FIRST_FRAME_MARGIN = 1.0
#: Keypoints, and frames, of the expressions widened to float64 at a time.
_COLUMNS, _ROWS = 32, 64


def _rotation_degrees(motions: Sequence[Motion]) -> np.ndarray:
    """(T,) angle of each frame's head rotation from frontal (the identity), in degrees."""
    R = np.stack([m.R[0].double().numpy() for m in motions])  # (T, 3, 3)
    cos = np.clip((np.trace(R, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)
    return np.degrees(np.arccos(cos))


def _expression_distances(motions: Sequence[Motion]) -> np.ndarray:
    """(T,) each frame's expression distance from the driver's median expression, in float64.

    The expressions are held once in their own precision (float32 but for float64 ones) and
    widened to float64 a slice at a time (:data:`_COLUMNS` keypoints for the median,
    :data:`_ROWS` frames for the distances): the same figures as of the whole (T, K, 3) in
    float64, whose copies of the classic engine's 478 points raised the peak by 113 MB on a
    3,000-frame driver (measured)."""
    wide = any(m.exp.dtype == torch.float64 for m in motions)
    dtype = torch.float64 if wide else torch.float32
    exp = torch.stack([m.exp[0].to(dtype) for m in motions]).numpy()  # (T, K, 3)
    median = np.empty(exp.shape[1:])
    for k in range(0, exp.shape[1], _COLUMNS):
        median[k:k + _COLUMNS] = np.median(exp[:, k:k + _COLUMNS].astype(np.float64), axis=0)
    distance = np.empty(len(exp))
    for t in range(0, len(exp), _ROWS):
        rows = exp[t:t + _ROWS].astype(np.float64) - median
        distance[t:t + _ROWS] = np.linalg.norm(rows.reshape(len(rows), -1), axis=1)
    return distance


def neutral_scores(motions: Sequence[Motion], eye_ratios: np.ndarray | None = None,
                   lip_ratios: np.ndarray | None = None) -> np.ndarray:
    """How far each driving frame is from a neutral face; lower is more neutral.

    The sum of: the expression's distance from the driver's median expression, in units of its
    median distance (so the scale suits either engine's expression); the mouth's opening; the
    eyes' closure below the driver's open eyes (its 90th percentile); the head's rotation from
    frontal.

    Args:
        motions: T driving motions, (1, K, 3) expressions.
        eye_ratios: (T, 2) eye open ratios, or None.
        lip_ratios: (T, 1) lip open ratios, or None.

    Returns:
        (T,) scores.
    """
    if not motions:
        raise ValueError("neutral_scores needs at least one motion")
    distance = _expression_distances(motions)
    scores = distance / max(float(np.median(distance)), 1e-9)
    scores = scores + _rotation_degrees(motions) / POSE_SCALE_DEG
    if lip_ratios is not None:
        scores = scores + np.asarray(lip_ratios, np.float64)[:, 0] / LIP_SCALE
    if eye_ratios is not None:
        eyes = np.asarray(eye_ratios, np.float64).mean(axis=1)
        scores = scores + np.maximum(np.percentile(eyes, 90) - eyes, 0.0) / EYE_SCALE
    return scores


def choose_anchor(motions: Sequence[Motion], eye_ratios: np.ndarray | None = None,
                  lip_ratios: np.ndarray | None = None,
                  usable: np.ndarray | None = None) -> int:
    """The most neutral frame by :func:`neutral_scores`, or 0 when the first frame is within
    :data:`FIRST_FRAME_MARGIN` of it; ``usable``, (T,) bool, leaves out the frames whose face
    was not found (their face is another frame's), unless no frame is usable."""
    scores = neutral_scores(motions, eye_ratios, lip_ratios)
    if usable is not None and np.any(usable):
        scores = np.where(np.asarray(usable, bool), scores, np.inf)
    best = int(np.argmin(scores))
    return 0 if scores[0] <= scores[best] + FIRST_FRAME_MARGIN else best
