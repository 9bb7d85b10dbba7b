"""The O(T·D) smoother is pykalman's full-covariance RTS smoother, to 1e-9."""

import time

import numpy as np
import pytest

from portrait_animate.motion.smoothing import PROCESS_VARIANCE, kalman_smooth

pykalman = pytest.importorskip("pykalman", reason="pykalman (a test dependency) is not installed")


def pykalman_smooth(flat: np.ndarray, variance: float) -> np.ndarray:
    dim = flat.shape[1]
    kf = pykalman.KalmanFilter(initial_state_mean=flat[0], n_dim_obs=dim,
                               transition_covariance=PROCESS_VARIANCE * np.eye(dim),
                               observation_covariance=variance * np.eye(dim))
    return kf.smooth(flat)[0]


@pytest.mark.parametrize(("frames", "dim", "variance"),
                         [(2, 9, 3e-7), (40, 63, 3e-7), (25, 30, 1e-4),
                          (60, 12, 1e-2)])
def test_scalar_smoother_equals_pykalman(frames, dim, variance):
    rng = np.random.default_rng(frames * dim)
    track = np.cumsum(rng.normal(0, 0.02, (frames, dim)), axis=0)
    ours = kalman_smooth(track, variance, dtype=np.float64)
    np.testing.assert_allclose(ours, pykalman_smooth(track, variance), rtol=0, atol=1e-9)


def test_smoother_keeps_shape_and_scales_to_the_classic_mesh():
    rng = np.random.default_rng(1)
    track = rng.normal(0, 0.01, (300, 478, 3)).astype(np.float32)  # the classic mesh, 10 s
    start = time.perf_counter()
    smoothed = kalman_smooth(track, 3e-7)
    elapsed = time.perf_counter() - start
    assert smoothed.shape == track.shape and smoothed.dtype == np.float32
    assert np.abs(np.diff(smoothed, axis=0)).mean() < np.abs(np.diff(track, axis=0)).mean()
    assert elapsed < 2.0, f"{elapsed:.2f} s for 300 frames of D=1434: not O(T*D)"


def test_a_single_frame_is_its_own_estimate():  # pykalman itself fails on one frame
    track = np.arange(6.0).reshape(1, 2, 3)
    np.testing.assert_array_equal(kalman_smooth(track, 3e-7, dtype=np.float64), track)


def test_smoother_rejects_a_bad_variance():
    with pytest.raises(ValueError, match="positive"):
        kalman_smooth(np.zeros((3, 2)), 0.0)

