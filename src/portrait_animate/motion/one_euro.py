"""The One-Euro filter on live motion (``live --live_smooth``).

A causal filter for a camera, which cannot look ahead: G. Casiez, N. Roussel and D. Vogel,
"1€ Filter: A Simple Speed-based Low-pass Filter for Noisy Input in Interactive Systems",
CHI 2012. A first-order low-pass filter whose cutoff rises with the signal's speed:
``fc = min_cutoff + beta * |speed|``, the speed itself low-passed at ``d_cutoff``. A still face
gets a low cutoff (its tremble removed); a blink or a mouth opening a high one (little lag).

The paper's recommended starting point is ``min_cutoff`` = 1 Hz, ``d_cutoff`` = 1 Hz, then
``beta`` raised until fast motion stops lagging. Speeds here are measured in face sizes per
second (the spread of the anchor's keypoints) for positions, radians per second for the
rotation and relative change per second for the scale, so one ``beta`` suits every group and
both engines; ``bench/live.py`` measures the jitter and the lag it gives.
"""

from __future__ import annotations

import math

import numpy as np

from .model import Motion
from .smoothing import motion_from_parts, motion_parts

__all__ = ["OneEuroFilter", "OneEuroMotionFilter", "MIN_CUTOFF_HZ", "BETA", "D_CUTOFF_HZ"]

#: The paper's starting values (Hz), and a beta measured on landmarks (Hz per unit/s).
MIN_CUTOFF_HZ = 1.0
D_CUTOFF_HZ = 1.0
BETA = 20.0


def _alpha(cutoff: float | np.ndarray, dt: float) -> float | np.ndarray:
    """The smoothing factor of a first-order low-pass at ``cutoff`` Hz, ``dt`` s apart."""
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))


class OneEuroFilter:
    """One-Euro filter of a stream of (N, C) points, the speed taken per point.

    Args:
        min_cutoff: cutoff in Hz of a still signal (lower: smoother).
        beta: cutoff added per unit of speed (higher: less lag).
        d_cutoff: cutoff in Hz of the speed estimate.
        unit: the length a speed is measured in (speeds are divided by it).
    """

    def __init__(self, min_cutoff: float = MIN_CUTOFF_HZ, beta: float = BETA,
                 d_cutoff: float = D_CUTOFF_HZ, unit: float = 1.0) -> None:
        if not (min_cutoff > 0 and beta >= 0 and d_cutoff > 0 and unit > 0):
            raise ValueError("min_cutoff, d_cutoff and unit must be positive and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff, self.unit = min_cutoff, beta, d_cutoff, unit
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """The filtered value of ``x`` (N, C), observed at ``t`` seconds."""
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._t is None or t <= self._t:
            self._x, self._dx, self._t = x, np.zeros(x.shape[:-1]), t
            return x
        dt = t - self._t
        speed = np.linalg.norm(x - self._x, axis=-1) / (dt * self.unit)  # (N,)
        self._dx = self._dx + _alpha(self.d_cutoff, dt) * (speed - self._dx)
        cutoff = self.min_cutoff + self.beta * self._dx
        self._x = self._x + _alpha(cutoff, dt)[:, None] * (x - self._x)
        self._t = t
        return self._x


class OneEuroMotionFilter:
    """:class:`OneEuroFilter` on every part of a stream of motions (expression, keypoints,
    rotation, translation, scale), each with its own unit of speed (see the module).

    Args:
        strength: 1 gives the paper's ``min_cutoff`` (1 Hz); 2 halves it (smoother), 0.5
            doubles it. 0 passes motions through.
    """

    def __init__(self, strength: float = 1.0, beta: float = BETA) -> None:
        if not strength >= 0:
            raise ValueError(f"strength must be >= 0, got {strength}")
        self.strength, self.beta = strength, beta
        self._filters: dict[str, OneEuroFilter] = {}

    def reset(self) -> None:
        """Forget the past: the next motion passes unfiltered."""
        self._filters.clear()

    def _units(self, parts: dict[str, np.ndarray]) -> dict[str, float]:
        points = parts.get("kp", parts["exp"])[:, :2]
        face = float(np.ptp(points, axis=0).max()) or 1.0
        return {"exp": face, "kp": face, "t": face, "R": 1.0,
                "scale": float(abs(parts["scale"]).max()) or 1.0}

    def __call__(self, motion: Motion, t: float) -> Motion:
        """The filtered motion of a frame captured at ``t`` seconds."""
        if self.strength == 0:
            return motion
        parts = motion_parts(motion)
        if not self._filters:
            units = self._units(parts)
            self._filters = {name: OneEuroFilter(MIN_CUTOFF_HZ / self.strength, self.beta,
                                                 D_CUTOFF_HZ, units[name]) for name in parts}
        return motion_from_parts({name: self._filters[name](value, t)
                                  for name, value in parts.items()}, motion)
