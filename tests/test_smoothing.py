"""The O(T·D) smoother is pykalman's full-covariance RTS smoother, to 1e-9; the zero-phase
smoothing of ``--driving_smooth`` removes noise without lag and keeps blinks."""

import time

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from portrait_animate.motion.model import Motion
from portrait_animate.motion.smoothing import (
    PROCESS_VARIANCE,
    kalman_smooth,
    smooth_motion_stream,
    zero_phase_smooth,
)

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


def test_the_blocked_smoother_is_the_whole_track_in_a_fraction_of_the_memory():
    """Smoothed KALMAN_BLOCK columns at a time, the classic mesh's track is the whole-array
    recursion's bit for bit, and NumPy holds under twice the track at once (the whole
    array's float64 copies took five times it)."""
    import tracemalloc

    from portrait_animate.motion.smoothing import KALMAN_BLOCK, _scalar_gains

    rng = np.random.default_rng(2)
    track = rng.normal(0, 0.01, (200, 478, 3)).astype(np.float32)
    assert track[0].size > 3 * KALMAN_BLOCK  # several blocks, the last a part one
    gains, smoother = _scalar_gains(len(track), 1e-4)
    whole = track.reshape(len(track), -1).astype(np.float64)
    for t in range(len(whole)):  # the recursion on every column at once
        whole[t] = (whole[0] if t == 0 else whole[t - 1]) + gains[t] * (
            whole[t] - (whole[0] if t == 0 else whole[t - 1]))
    for t in range(len(whole) - 2, -1, -1):
        whole[t] = whole[t] + smoother[t] * (whole[t + 1] - whole[t])
    tracemalloc.start()
    smoothed = kalman_smooth(track, 1e-4)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(smoothed, whole.astype(np.float32).reshape(track.shape))
    assert peak < 2 * track.nbytes, (peak, track.nbytes)


def test_a_whole_track_is_smoothed_in_little_more_memory_than_its_result():
    """A video source's 600 frames of landmarks: each frame is the float64 smoothing of its
    window, rounded as it is written, and the noise level the median over every frame's
    second differences, taken 64 frames at a time; NumPy holds little more than the result
    at once (float64 results and whole differences took three times the track)."""
    import tracemalloc

    from portrait_animate.motion.smoothing import noise_level, smooth_frame, smoothing_radius

    rng = np.random.default_rng(3)
    track = (rng.normal(0, 1, (600, 478, 3)) + 200).astype(np.float32)
    second = track[2:] - 2 * track[1:-1] + track[:-2]
    noise = float(np.median(np.linalg.norm(second, axis=-1))) / np.sqrt(6.0)
    radius = smoothing_radius(2.5)
    expected = np.stack([smooth_frame(track[max(0, t - radius):t + radius + 1],
                                      t - max(0, t - radius), 2.5, noise)
                         for t in range(len(track))]).astype(np.float32)
    assert noise_level(track) == noise
    tracemalloc.start()
    smoothed = zero_phase_smooth(track, 2.5)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    np.testing.assert_array_equal(smoothed, expected)
    assert smoothed.dtype == np.float32 and peak < 1.3 * track.nbytes, (peak, track.nbytes)


def test_a_single_frame_is_its_own_estimate():  # pykalman itself fails on one frame
    track = np.arange(6.0).reshape(1, 2, 3)
    np.testing.assert_array_equal(kalman_smooth(track, 3e-7, dtype=np.float64), track)


def test_smoother_rejects_a_bad_variance():
    with pytest.raises(ValueError, match="positive"):
        kalman_smooth(np.zeros((3, 2)), 0.0)


def _stream(exp: np.ndarray):
    for i, e in enumerate(exp):
        rot = Rotation.from_euler("xyz", [0.01 * np.sin(i), 0.02, 0.0]).as_matrix()
        yield i, Motion(scale=torch.ones(1, 1), R=torch.from_numpy(rot[None]).float(),
                        exp=torch.from_numpy(e[None]).float(), t=torch.zeros(1, 3))


def test_stream_smoothing_removes_noise_and_keeps_a_blink():
    rng = np.random.default_rng(2)
    frames, points = 60, 40
    truth = np.zeros((frames, points, 3))
    truth[30:34, :10, 1] = 0.1  # a four-frame blink on ten points, 50 noise levels deep
    noisy = truth + rng.normal(0, 0.002, truth.shape)
    out = list(smooth_motion_stream(_stream(noisy), strength=2.0))
    assert [i for i, _ in out] == list(range(frames))
    exp = np.stack([m.exp[0].numpy() for _, m in out])
    still = slice(0, 25)
    raw_motion = np.linalg.norm(np.diff(noisy[still], axis=0), axis=-1).mean()
    smooth_motion = np.linalg.norm(np.diff(exp[still], axis=0), axis=-1).mean()
    assert smooth_motion < 0.3 * raw_motion
    assert np.abs(exp[30:34, :10, 1] - 0.1).max() < 0.01  # the blink keeps its depth
    assert np.abs(exp[28, :10, 1]).max() < 0.01 and np.abs(exp[35, :10, 1]).max() < 0.01
    for _, m in out:  # rotations stay rotations
        r = m.R[0].double().numpy()
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-6)


def test_stream_smoothing_at_zero_is_the_stream_itself():
    items = list(_stream(np.random.default_rng(3).normal(size=(5, 4, 3))))
    assert all(a[1] is b[1] for a, b in zip(smooth_motion_stream(iter(items), 0), items,
                                            strict=True))


def test_zero_phase_smoothing_has_no_lag():
    ramp = np.linspace(0, 1, 30)[:, None, None] * np.ones((1, 5, 2))  # steady motion
    np.testing.assert_allclose(zero_phase_smooth(ramp, 2.5)[5:-5], ramp[5:-5], atol=1e-9)
