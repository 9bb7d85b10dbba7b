"""Expression without identity: what a single driving image adds to a source face.

On the mesh, a frame's expression offsets are its residual to one generic face, so they
also hold the face's own shape: adding a driver's offsets to a source would give the source
the driver's jaw, nose and eye spacing. A single driving image has no first frame to
subtract, so the driver is compared with its own neutral estimate instead: a few
measurements that say how far its face is from rest, each read in the driver's own units
(mouth width, eye width, inter-pupil distance) against a resting band, then replayed on the
source's own geometry:

- mouth opening: the gap between the inner lips at nine places across the mouth (a closed
  mouth is the rest for everyone); the lower lip, the chin and, in a smile, the upper lip
  move;
- smile: the mouth's width over the inter-pupil distance beyond a resting band widens the
  source's mouth by the same fraction and lifts its corners and cheeks;
- eyes: each eye's lid gap over its width outside a resting band scales the source's gap;
- gaze: the iris's offset from the eye's centre, in eye widths;
- brows: the brows' height over the lids outside a resting band.

The measurements are made with the head's rotation removed (the face as seen from the
front), and the moves are rotated back into the source's pose.

Absolute driving reads the source the same way and moves it from its own reading to the
driver's, so the source takes the driver's expression (its open mouth closes to a closed
one) and keeps its own face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...motion.model import Motion
from .anatomy import (
    BROWS,
    EYE_CORNERS,
    INNER_PAIRS,
    IRIS_CENTERS,
    IRISES,
    LIP_RINGS,
    LOWER_LIDS,
    NUM_POINTS,
    UPPER_LIDS,
)
from .edits import carry_skin_above_mouth, skin_below_mouth, smile_offsets

__all__ = ["FaceReading", "REST", "read_face", "image_expression", "absolute_expression",
           "video_expression", "RESTING_MOUTH_WIDTH"]

_BROW_HEIGHT_POINTS = (105, 334, 66, 296)

#: A resting mouth is this wide in inter-pupil distances (0.62-0.82 on the resting faces
#: measured; a broad smile reads 1.0-1.2); within the dead zone around it nothing moves.
RESTING_MOUTH_WIDTH = 0.70
MOUTH_WIDTH_DEAD_ZONE = 0.03
#: Closed lips read inner-lip gaps up to this many mouth widths.
CLOSED_LIP_GAP = 0.01
#: How the corners rise as the mouth widens (both in inter-pupil distances): steeply in a
#: gentle smile, levelling off at SMILE_LIFT in a broad one, which bares the teeth instead.
SMILE_LIFT = 0.16
SMILE_LIFT_SCALE = 0.2
#: Share of an opening taken by the upper lip: little when the jaw drops, about half in a
#: broad smile, which bares the upper teeth.
UPPER_LIP_SHARE = (0.1, 0.6)
#: Resting lid gap over eye width (the middle lid points), and the gap's share that the
#: upper lid travels when an eye closes or widens.
RESTING_EYE_OPENING = (0.28, 0.44)
UPPER_LID_SHARE = 0.8
#: The iris's offset from the eye's centre, in eye widths, taken as rest.
GAZE_DEAD_ZONE = 0.04
#: Brows' height over the lids in inter-pupil distances taken as rest.
RESTING_BROW_HEIGHT = (0.22, 0.40)


@dataclass(frozen=True)
class FaceReading:
    """A face's distance from rest, in its own units.

    Attributes:
        lip_gaps: (9,) inner-lip gaps over the mouth width, left to right.
        widening: mouth width beyond the resting band, in inter-pupil distances.
        eye_scale: (2,) lid gap over the nearest resting gap, per eye (1 at rest).
        gaze: (2, 2) iris offsets beyond the dead zone, in eye widths, per eye (x, y).
        brow_raise: brows' height beyond the resting band, in inter-pupil distances.
    """

    lip_gaps: np.ndarray
    widening: float
    eye_scale: np.ndarray
    gaze: np.ndarray
    brow_raise: float


def _beyond(value: float | np.ndarray, low: float, high: float) -> float | np.ndarray:
    """How far ``value`` lies outside [low, high] (signed; 0 inside)."""
    return value - np.clip(value, low, high)


def _frontal(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) points with the head's rotation removed, x_c + delta @ R^T, and R (3, 3)."""
    R = motion.R[0].double().numpy()
    return motion.kp[0].double().numpy() + motion.exp[0].double().numpy() @ R.T, R


def _ipd(q: np.ndarray) -> float:
    return max(float(np.linalg.norm(q[IRIS_CENTERS[0], :2] - q[IRIS_CENTERS[1], :2])), 1e-9)


def _mouth_width(q: np.ndarray) -> float:
    return max(float(np.linalg.norm(q[61, :2] - q[291, :2])), 1e-9)


def _eye_geometry(q: np.ndarray, eye: int) -> tuple[np.ndarray, float]:
    a, b = q[EYE_CORNERS[eye][0], :2], q[EYE_CORNERS[eye][1], :2]
    return (a + b) / 2, max(float(np.linalg.norm(b - a)), 1e-9)


def _eye_opening(q: np.ndarray, eye: int) -> float:
    upper, lower = UPPER_LIDS[eye][3], LOWER_LIDS[eye][3]
    return float(q[lower, 1] - q[upper, 1]) / _eye_geometry(q, eye)[1]


def read_face(q: np.ndarray) -> FaceReading:
    """How far a face's (478, 3) frontal points are from rest."""
    width, ipd = _mouth_width(q), _ipd(q)
    upper, lower = (list(p) for p in zip(*INNER_PAIRS, strict=True))
    gaps = np.maximum((q[lower, 1] - q[upper, 1]) / width - CLOSED_LIP_GAP, 0.0)
    widening = float(_beyond(width / ipd, RESTING_MOUTH_WIDTH - MOUTH_WIDTH_DEAD_ZONE,
                             RESTING_MOUTH_WIDTH + MOUTH_WIDTH_DEAD_ZONE))
    scale, gaze = np.ones(2), np.zeros((2, 2))
    for eye in range(2):
        opening = _eye_opening(q, eye)
        scale[eye] = max(opening, 0.0) / np.clip(opening, *RESTING_EYE_OPENING)
        centre, eye_width = _eye_geometry(q, eye)
        lids_mid = (q[UPPER_LIDS[eye][3], 1] + q[LOWER_LIDS[eye][3], 1]) / 2
        offset = (q[IRIS_CENTERS[eye], :2] - [centre[0], lids_mid]) / eye_width
        gaze[eye] = _beyond(offset, -GAZE_DEAD_ZONE, GAZE_DEAD_ZONE)
    lids = q[[UPPER_LIDS[0][3], UPPER_LIDS[1][3]], 1].mean()
    brows = (lids - q[list(_BROW_HEIGHT_POINTS), 1].mean()) / ipd
    return FaceReading(lip_gaps=gaps, widening=widening, eye_scale=scale, gaze=gaze,
                       brow_raise=float(_beyond(brows, *RESTING_BROW_HEIGHT)))


def _open_mouth(q: np.ndarray, gaps: np.ndarray, upper_share: float) -> np.ndarray:
    """Frontal moves opening q's mouth by ``gaps`` (9,) mouth widths, pair by pair."""
    moves = np.zeros_like(q)
    opening = gaps * _mouth_width(q)
    for pairs in LIP_RINGS:
        upper, lower = (list(p) for p in zip(*pairs, strict=True))
        moves[upper, 1] -= upper_share * opening
        moves[lower, 1] += (1 - upper_share) * opening
    return moves + skin_below_mouth(q, (1 - upper_share) * opening[4])


def _eyes(q: np.ndarray, scale: np.ndarray, gaze: np.ndarray) -> np.ndarray:
    """Frontal moves scaling each eye's lid gap by ``scale`` (2,) and shifting its iris by
    ``gaze`` (2, 2) eye widths."""
    moves = np.zeros_like(q)
    for eye in range(2):
        upper, lower = list(UPPER_LIDS[eye]), list(LOWER_LIDS[eye])
        change = (q[lower, 1] - q[upper, 1]) * (scale[eye] - 1)
        moves[upper, 1] -= UPPER_LID_SHARE * change
        moves[lower, 1] += (1 - UPPER_LID_SHARE) * change
        iris = [i for i in IRISES if (i < IRIS_CENTERS[1]) == (eye == 0)]
        moves[iris, :2] += gaze[eye] * _eye_geometry(q, eye)[1]
    return moves


def _smile_lift(widening: float) -> float:
    """Corner lift, in inter-pupil distances, of a mouth ``widening`` beyond rest."""
    return SMILE_LIFT * float(np.tanh(max(widening, 0.0) / SMILE_LIFT_SCALE))


#: A face at rest: what a single driving image is read against in relative driving.
REST = FaceReading(lip_gaps=np.zeros(len(INNER_PAIRS)), widening=0.0, eye_scale=np.ones(2),
                   gaze=np.zeros((2, 2)), brow_raise=0.0)
#: The least lid gap, in resting gaps, that an eye is read to have when it is taken to another
#: opening: a shut eye has no gap to scale.
MIN_EYE_SCALE = 0.05


def _replay(target: FaceReading, source: Motion, from_source: bool) -> torch.Tensor:
    """Expression offsets (1, K, 3) that take ``source`` to the reading ``target`` on its
    own geometry, in its posed canonical frame: from its own reading (``from_source``), or
    from rest."""
    q_s, R_s = _frontal(source)
    current = read_face(q_s) if from_source else REST
    share = float(np.interp(target.widening / RESTING_MOUTH_WIDTH, (0.0, 0.5),
                            UPPER_LIP_SHARE))
    ipd = _ipd(q_s)
    lift = _smile_lift(target.widening) - _smile_lift(current.widening)
    eye_scale = target.eye_scale / np.maximum(current.eye_scale, MIN_EYE_SCALE)
    moves = (_open_mouth(q_s, target.lip_gaps - current.lip_gaps, share)
             + smile_offsets(q_s, (target.widening - current.widening) * ipd / 2, lift * ipd)
             + _eyes(q_s, eye_scale, target.gaze - current.gaze))
    moves = carry_skin_above_mouth(q_s, moves)
    moves[list(BROWS), 1] -= (target.brow_raise - current.brow_raise) * ipd
    offsets = moves @ R_s  # frontal -> posed: delta = (q - x_c) @ R
    return torch.from_numpy(offsets.reshape(1, NUM_POINTS, 3)).to(source.exp)


def _driver_reading(driver: Motion, source: Motion) -> FaceReading:
    if driver.kp is None or source.kp is None:
        raise ValueError("expression transfer needs the canonical keypoints of both faces")
    return read_face(_frontal(driver)[0])


def image_expression(driver: Motion, source: Motion) -> torch.Tensor:
    """Expression offsets (1, K, 3) that give ``source`` the driver's expression.

    The driver is read against its own neutral estimate (:func:`read_face`) and the reading
    replayed on the source's geometry, so nothing of the driver's face shape carries over;
    a driver at rest adds nothing. The offsets are in the source's posed canonical frame,
    ready to add to ``source.exp``.
    """
    return _replay(_driver_reading(driver, source), source, from_source=False)


def absolute_expression(driver: Motion, source: Motion) -> torch.Tensor:
    """Expression offsets (1, K, 3) that take ``source``'s expression to the driver's.

    Absolute driving without the driver's face shape: both faces are read
    (:func:`read_face`) and the source moved from its reading to the driver's, on its own
    geometry: its open mouth closes to a driver's closed one, its eyes take the driver's
    opening, its smile the driver's. A driver reading as the source does moves nothing. The
    offsets are in the source's posed canonical frame, ready to add to ``source.exp``.
    """
    return _replay(_driver_reading(driver, source), source, from_source=True)


#: The most a driver's eye may open past its anchor's opening, as a share of that opening,
#: in :func:`video_expression`.
MAX_EYE_SCALE = 1.5
#: The lid pairs (of each eye's seven) whose gaps measure its opening in
#: :func:`video_expression`: the middle three, clear of the corners.
_MIDDLE_LIDS = slice(2, 5)


def _lid_gaps(q: np.ndarray, eye: int) -> np.ndarray:
    """(7,) frontal gaps between the facing lid points of one eye of (K, 3) points."""
    return q[list(LOWER_LIDS[eye]), 1] - q[list(UPPER_LIDS[eye]), 1]


def video_expression(driver: Motion, anchor: Motion, source: Motion) -> torch.Tensor:
    """Expression offsets (1, K, 3) that move ``source`` as a driving video moves from its
    ``anchor`` frame to frame ``driver``: the driver's expression change, with each eye's
    lids taking the source's opening by the share the driver's opening took of its anchor's
    (at most :data:`MAX_EYE_SCALE`). The change alone moves the lids by the driver's own gap,
    so a blink of eyes narrower than the source's left its eyes half open, and two eyes open
    by different amounts closed to a wink; now a shut driving eye shuts the source's.
    The offsets are in the source's posed canonical frame, ready to add to ``source.exp``.
    """
    if source.kp is None:
        raise ValueError("expression transfer needs the source's canonical keypoints")
    change = driver.exp - anchor.exp
    # every mesh motion's canonical keypoints are the one generic face (a preset's has none)
    q_d, q_0 = (_frontal(m.with_(kp=source.kp) if m.kp is None else m)[0]
                for m in (driver, anchor))
    q_s, R_s = _frontal(source)
    moved = q_s + change[0].double().numpy() @ R_s.T  # frontal, after the change alone
    moves = np.zeros_like(q_s)
    for eye in range(2):
        opened = _lid_gaps(q_d, eye)[_MIDDLE_LIDS].mean()
        was = _lid_gaps(q_0, eye)[_MIDDLE_LIDS].mean()
        if was <= 0:  # the anchor's eye is shut: it gives no opening to share
            continue
        share = float(np.clip(opened / was, 0.0, MAX_EYE_SCALE))
        wanted = np.maximum(_lid_gaps(q_s, eye), 0.0) * share
        more = wanted - _lid_gaps(moved, eye)  # the gap's change still to make
        moves[list(UPPER_LIDS[eye]), 1] -= UPPER_LID_SHARE * more
        moves[list(LOWER_LIDS[eye]), 1] += (1 - UPPER_LID_SHARE) * more
    offsets = torch.from_numpy((moves @ R_s).reshape(1, NUM_POINTS, 3)).to(source.exp)
    return change + offsets
