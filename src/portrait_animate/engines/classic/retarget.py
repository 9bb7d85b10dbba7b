"""Stitching and eye/lip retargeting for the classic engine, as geometry on the mesh.

Each returns a keypoint delta in the crop's normalised frame, the same contract as the
neural engine's S, R_eyes and R_lip networks, so the shared Algorithm 1 drives both.
"""

from __future__ import annotations

import numpy as np
import torch

from ...face.ratios import EYE_OFFSET, EYE_SCALE
from .anatomy import (
    EYE_CORNERS,
    INNER_PAIRS,
    INSIDE_PAIRS,
    JAW,
    LOWER_LIDS,
    MIDDLE_PAIRS,
    NUM_POINTS,
    OUTER_PAIRS,
    UPPER_LIDS,
)
from .edits import corner_frame, skin_below_mouth
from .motion import canonical_shape

__all__ = ["stitch", "eye_delta", "lip_delta", "ratio_expression", "STITCH_REACH"]

#: How far (in face sizes) the jaw line may drift from the source before stitching holds
#: it back: the renderer already keeps body and background still, so stitching only has
#: to stop a driver's large moves from tearing the face off the neck.
STITCH_REACH = 0.12
#: How much of a closing eye's way the upper lid travels (the rest is the lower lid's).
UPPER_LID_SHARE = 0.8
_IRIS_OF_EYE = ((468, 469, 470, 471, 472), (473, 474, 475, 476, 477))


def stitch(x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
    """Shift x_d (1, K, 3) so its jaw line's drift from x_s is softly limited to
    ``STITCH_REACH`` face sizes; small moves pass unchanged."""
    jaw = list(JAW)
    drift = (x_d[0, jaw, :2] - x_s[0, jaw, :2]).mean(0)
    reach = STITCH_REACH * float((x_s[0, :, :2].amax(0) - x_s[0, :, :2].amin(0)).max())
    norm = float(drift.norm())
    limited = drift * (reach / max(norm, 1e-12)) * float(np.tanh(norm / reach)) if norm else drift
    out = x_d.clone()
    out[..., :2] += limited - drift
    return out


#: MediaPipe reads closed eyes at raw ratios 0.02-0.05; a target below this shuts the lids
#: (the renderer keeps them a pixel apart) rather than leaving a slit of squeezed iris.
SHUT_RAW_RATIO = 0.04


def _raw_eye_target(ratio: float) -> float:
    raw = (ratio - EYE_OFFSET) / EYE_SCALE
    return 0.0 if raw < SHUT_RAW_RATIO else raw


def _eyes_delta(points: np.ndarray, targets: tuple[float, float]) -> np.ndarray:
    """(K, 3) delta that opens or closes eye 0 (image-left) and eye 1 of ``points`` to their
    raw ratios ``targets`` (:func:`_raw_eye_target`)."""
    delta = np.zeros((NUM_POINTS, 3))
    for eye, ((top, bottom), target) in enumerate(zip(((159, 145), (386, 374)), targets,
                                                      strict=True)):
        mid, _, normal, width = corner_frame(points, EYE_CORNERS[eye])
        current = float(np.dot(points[bottom, :2] - points[top, :2], normal)) / width
        upper, lower = list(UPPER_LIDS[eye]), list(LOWER_LIDS[eye])
        if target < current:
            gaps = (points[lower, :2] - points[upper, :2]) @ normal
            closing = gaps * (1 - target / current)
            delta[upper, :2] += (UPPER_LID_SHARE * closing)[:, None] * normal
            delta[lower, :2] -= ((1 - UPPER_LID_SHARE) * closing)[:, None] * normal
            continue
        moved = upper + lower + list(_IRIS_OF_EYE[eye])
        offsets = (points[moved, :2] - mid) @ normal
        if current > 0.02:
            shift = offsets * (target / current - 1)
        else:  # a closed eye has no gap to scale: part the lids
            shift = np.sign(offsets) * (target - current) * width / 2
        delta[moved, :2] += shift[:, None] * normal
    return delta


def eye_delta(x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """Open or close both eyes of x_s to the target ratio (ratios (1, 3): eye0, eye1, target).

    A closing eye shuts like a blink, the upper lid taking most of the way down; an opening
    eye has its lids and iris scaled across the line through its corners."""
    target = _raw_eye_target(float(ratios[0, 2]))
    delta = _eyes_delta(x_s[0].double().numpy(), (target, target))
    return torch.from_numpy(delta[None]).float()


#: The lower lip's rings outside the inner one, each with its corners (image-left, right),
#: which move with the inner lip at the same share of the way to their own corner.
_OUTER_LOWER = tuple((tuple(lower for _, lower in ring), corners) for ring, corners in
                     ((INSIDE_PAIRS, (62, 292)), (MIDDLE_PAIRS, (76, 306)),
                      (OUTER_PAIRS, (61, 291))))


def _ring_place(points: np.ndarray, ring: list[int], corners: tuple[int, int],
                mid: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Where each of a lip ring's points lies between the ring's own ``corners``: -1 at the
    image-left one, 1 at the other, 0 in the middle (along ``across``, from ``mid``)."""
    place = (points[ring, :2] - mid) @ across
    left, right = ((points[c, :2] - mid) @ across for c in corners)
    return np.where(place < 0, -place / min(left, -1e-9), place / max(right, 1e-9))


def lip_delta(x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
    """Open or close the mouth of x_s to the target lip ratio (ratios (1, 2): lip_s, target):
    each lower inner-lip point moves across the mouth-corner line to the gap the target asks
    for at its place, the rest of the lower lip along with it, the chin and the skin beneath the
    lip with the middle (:func:`~.edits.skin_below_mouth`)."""
    points = x_s[0].double().numpy()
    mid, across, normal, width = corner_frame(points, (61, 291))
    upper, lower = [list(p) for p in zip(*INNER_PAIRS, strict=True)]
    gaps = (points[lower, :2] - points[upper, :2]) @ normal
    target = float(ratios[0, 1]) * width
    place = (points[lower, :2] - mid) @ across / (width / 2)
    delta = np.zeros((NUM_POINTS, 3))
    if gaps[4] > 0.02 * width:
        # Scale each facing pair's offset, so a closing mouth meets point on point.
        scale = target / gaps[4]
        delta[lower, :2] = (points[lower, :2] - points[upper, :2]) * (scale - 1)
        moves = gaps * (scale - 1)
    else:  # a closed mouth has no gap to scale: part the lips, most in the middle
        moves = target * np.cos(np.clip(np.abs(place), 0, 1) * np.pi / 2) ** 0.5 - gaps
        delta[lower, :2] = moves[:, None] * normal
    # the rings fan out towards the corners: a point of an outer ring moves as the inner lip
    # does at the same share of the way to its ring's corner, where nothing moves (at the same
    # place along the mouth, the outer lip's end took the inner lip's full move and folded
    # over the skin beside the corner)
    inner_place = _ring_place(points, lower, (78, 308), mid, across)
    order = np.argsort(inner_place)
    known = np.r_[-1.0, inner_place[order], 1.0], np.r_[0.0, moves[order], 0.0]
    for ring, corners in _OUTER_LOWER:
        ring_moves = np.interp(_ring_place(points, list(ring), corners, mid, across), *known)
        delta[list(ring), :2] += ring_moves[:, None] * normal
    delta += skin_below_mouth(points, float(moves[4]))
    return torch.from_numpy(delta[None]).float()


#: A closed neutral mouth's width over the outer eye corners' distance: 0.43 to 0.55 on s0,
#: s5, s11, s13, d0 and d9. The canonical face (the astronaut) smiles at 0.71, so its lips
#: opened to a ratio of its own width gaped 1.5 times as wide on s0 as the ratio asked.
NEUTRAL_MOUTH_WIDTH = 0.52


def ratio_expression(eye_ratios: tuple[float, float], lip_ratio: float) -> torch.Tensor:
    """(1, 478, 3) expression of the canonical face with eye 0 (image-left), eye 1 and the lips
    opened to the given open ratios (the reference's scale, :mod:`~...face.ratios`; the lips'
    of a neutral mouth's width): the part of a LivePortrait motion template that the mesh can
    take."""
    points = canonical_shape()
    eyes = _eyes_delta(points, (_raw_eye_target(eye_ratios[0]), _raw_eye_target(eye_ratios[1])))
    own_width = (np.linalg.norm(points[61, :2] - points[291, :2])
                 / np.linalg.norm(points[33, :2] - points[263, :2]))
    target = float(lip_ratio) * NEUTRAL_MOUTH_WIDTH / own_width
    lips = lip_delta(torch.from_numpy(points[None]), torch.tensor([[0.0, target]]))
    return torch.from_numpy(eyes[None]).float() + lips
