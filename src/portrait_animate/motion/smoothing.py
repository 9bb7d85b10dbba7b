"""Kalman smoothing of motion tracks (SPEC 4.4), with pykalman's RTS smoother."""

from __future__ import annotations

import numpy as np

__all__ = ["kalman_smooth", "PROCESS_VARIANCE"]

PROCESS_VARIANCE = 1e-5


def kalman_smooth(track: np.ndarray, observation_variance: float) -> np.ndarray:
    """Smooth a (T, ...) track frame-wise flattened, element-wise (rotations included).

    Identity dynamics, process covariance 1e-5 I, observation covariance
    ``observation_variance`` I, initial state the first observation, no EM.

    Returns:
        The smoothed means, float32, with the input's shape.
    """
    from pykalman import KalmanFilter

    if track.ndim < 2 or len(track) == 0:
        raise ValueError(f"track must have shape (T, ...) with T >= 1, got {track.shape}")
    flat = track.reshape(len(track), -1).astype(np.float64)
    dim = flat.shape[1]
    kf = KalmanFilter(initial_state_mean=flat[0], n_dim_obs=dim,
                      transition_covariance=PROCESS_VARIANCE * np.eye(dim),
                      observation_covariance=observation_variance * np.eye(dim))
    means, _ = kf.smooth(flat)
    return means.astype(np.float32).reshape(track.shape)
