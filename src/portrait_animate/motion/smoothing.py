"""Kalman smoothing of motion tracks (SPEC 4.4): the reference's RTS smoother, in O(T·D).

The reference runs a full-covariance Kalman smoother on the flattened track with identity
dynamics, process covariance ``q I``, observation covariance ``r I`` and initial covariance
``I``. Every covariance in that recursion stays a multiple of the identity, so the smoother
decouples into one scalar gain sequence shared by all D dimensions: the same means as the
matrix form, without a D x D matrix (D = 1,434 for the classic mesh)."""

from __future__ import annotations

import numpy as np

__all__ = ["kalman_smooth", "PROCESS_VARIANCE"]

PROCESS_VARIANCE = 1e-5
INITIAL_VARIANCE = 1.0


def _scalar_gains(n: int, observation_variance: float) -> tuple[np.ndarray, np.ndarray]:
    """Filter gains ``K_t`` and smoother gains ``J_t`` of the scalar recursion, each (T,)."""
    q, r = PROCESS_VARIANCE, observation_variance
    predicted = np.empty(n)
    filtered = np.empty(n)
    p = INITIAL_VARIANCE
    for t in range(n):
        if t > 0:
            p = filtered[t - 1] + q
        predicted[t] = p
        filtered[t] = p - p * p / (p + r)
    gains = predicted / (predicted + r)
    smoother = np.zeros(n)
    smoother[:-1] = filtered[:-1] / predicted[1:]
    return gains, smoother


def kalman_smooth(track: np.ndarray, observation_variance: float,
                  dtype: type = np.float32) -> np.ndarray:
    """Smooth a (T, ...) track frame-wise flattened, element-wise (rotations included).

    Identity dynamics, process variance 1e-5, observation variance ``observation_variance``,
    initial state the first observation with unit variance, no EM: pykalman's
    ``KalmanFilter(...).smooth`` with those settings, in O(T·D) time and memory.

    Returns:
        The smoothed means, ``dtype`` (computed in float64), with the input's shape.
    """
    if track.ndim < 2 or len(track) == 0:
        raise ValueError(f"track must have shape (T, ...) with T >= 1, got {track.shape}")
    if not observation_variance > 0:
        raise ValueError(f"observation_variance must be positive, got {observation_variance}")
    flat = track.reshape(len(track), -1).astype(np.float64)
    n = len(flat)
    gains, smoother = _scalar_gains(n, observation_variance)
    filtered = np.empty_like(flat)
    mean = flat[0]
    for t in range(n):
        mean = mean + gains[t] * (flat[t] - mean)
        filtered[t] = mean
    out = filtered
    for t in range(n - 2, -1, -1):
        # The prediction for t + 1 is the filtered mean at t (identity dynamics).
        out[t] = filtered[t] + smoother[t] * (out[t + 1] - filtered[t])
    return out.astype(dtype).reshape(track.shape)

