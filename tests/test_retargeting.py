"""Algorithm 1 (SPEC 4.7) with recording stand-in networks: which deltas are added when."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portrait_animate.motion.retargeting import (
    RetargetingOptions,
    finalize_keypoints,
    normalize_lip_delta,
    source_eye_target,
    source_video_eye_delta,
)
from portrait_animate.motion.smoothing import kalman_smooth


class Recorder:
    """Stitching adds 1 to every coordinate; R_eyes returns 10 * target, R_lip 100 * target."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[float]]] = []

    def stitch(self, x_s, x_d):
        self.calls.append(("stitch", []))
        return x_d + 1

    def retarget_eyes(self, x_s, ratios):
        self.calls.append(("eyes", ratios[0].tolist()))
        return torch.full_like(x_s, 10 * ratios[0, -1].item())

    def retarget_lip(self, x_s, ratios):
        self.calls.append(("lip", ratios[0].tolist()))
        return torch.full_like(x_s, 100 * ratios[0, -1].item())


X_S = torch.zeros(1, 21, 3)
X_D = torch.full((1, 21, 3), 0.5)


def test_plain_stitching_then_precomputed_deltas():
    nets = Recorder()
    out = finalize_keypoints(nets, X_S, X_D, RetargetingOptions(),
                             lip_normalize=torch.full_like(X_S, 0.01),
                             source_eyes=torch.full_like(X_S, 0.02))
    torch.testing.assert_close(out, torch.full_like(X_S, 1.53))
    assert [c[0] for c in nets.calls] == ["stitch"]


def test_no_stitching_adds_deltas_to_composed_keypoints():
    out = finalize_keypoints(Recorder(), X_S, X_D, RetargetingOptions(stitching=False),
                             lip_normalize=torch.full_like(X_S, 0.01))
    torch.testing.assert_close(out, torch.full_like(X_S, 0.51))


def test_relative_retargeting_discards_driving_motion_and_uses_first_eye():
    nets = Recorder()
    options = RetargetingOptions(relative=True, stitching=False, eye_retargeting=True,
                                 lip_retargeting=True)
    out = finalize_keypoints(nets, X_S, X_D, options, lip_normalize=torch.ones_like(X_S),
                             source_eye_ratios=(0.3, 0.32), source_lip_ratio=0.05,
                             driving_eye_ratio=0.1, driving_lip_ratio=0.2)
    torch.testing.assert_close(out, torch.full_like(X_S, 1.0 + 20.0))
    assert nets.calls[0][0] == "eyes"
    np.testing.assert_allclose(nets.calls[0][1], [0.3, 0.32, 0.1], rtol=1e-6)
    np.testing.assert_allclose(nets.calls[1][1], [0.05, 0.2], rtol=1e-6)


def test_absolute_retargeting_keeps_driving_motion_then_stitches():
    options = RetargetingOptions(relative=False, eye_retargeting=True)
    out = finalize_keypoints(Recorder(), X_S, X_D, options, source_eye_ratios=(0.3, 0.3),
                             source_lip_ratio=0.0, driving_eye_ratio=0.2)
    torch.testing.assert_close(out, torch.full_like(X_S, 0.5 + 2.0 + 1))


def test_retargeting_without_source_landmarks_adds_nothing():
    options = RetargetingOptions(relative=True, stitching=False, eye_retargeting=True)
    out = finalize_keypoints(Recorder(), X_S, X_D, options, driving_eye_ratio=0.2)
    torch.testing.assert_close(out, X_S)


def test_driving_multiplier_scales_around_source():
    out = finalize_keypoints(Recorder(), X_S + 1, X_D + 1,
                             RetargetingOptions(stitching=False, driving_multiplier=1.5))
    torch.testing.assert_close(out, torch.full_like(X_S, 1.75))


def test_normalize_lip_threshold():
    nets = Recorder()
    assert normalize_lip_delta(nets, X_S, 0.0299) is None
    delta = normalize_lip_delta(nets, X_S, 0.2)
    assert nets.calls == [("lip", pytest.approx([0.2, 0.0]))]
    torch.testing.assert_close(delta, torch.zeros_like(X_S))


def test_source_video_eye_target_and_delta():
    assert source_eye_target((0.3, 0.34)) == pytest.approx(0.32)
    assert source_eye_target((0.1, 0.2)) == pytest.approx(0.39)
    nets = Recorder()
    source_video_eye_delta(nets, X_S, (0.2, 0.25), 0.39)
    np.testing.assert_allclose(nets.calls[0][1], [0.2, 0.25, 0.39], rtol=1e-6)


def rts_reference(obs: np.ndarray, r: float, q: float = 1e-5) -> np.ndarray:
    """Scalar Kalman filter + RTS smoother per element, written from the textbook."""
    n = len(obs)
    m_f, p_f, m_p, p_p = (np.zeros_like(obs) for _ in range(4))
    m, p = obs[0], np.ones_like(obs[0])
    for t in range(n):
        if t > 0:
            m, p = m, p + q
        m_p[t], p_p[t] = m, p
        k = p / (p + r)
        m = m + k * (obs[t] - m)
        p = (1 - k) * p
        m_f[t], p_f[t] = m, p
    out = m_f.copy()
    for t in range(n - 2, -1, -1):
        gain = p_f[t] / p_p[t + 1]
        out[t] = m_f[t] + gain * (out[t + 1] - m_p[t + 1])
    return out


@pytest.mark.parametrize("variance", [3e-7, 1e-4])
def test_kalman_smoothing_matches_textbook_rts(variance):
    rng = np.random.default_rng(0)
    track = np.cumsum(rng.normal(0, 0.01, (40, 21, 3)), axis=0).astype(np.float32)
    smoothed = kalman_smooth(track, variance)
    assert smoothed.dtype == np.float32 and smoothed.shape == track.shape
    np.testing.assert_allclose(smoothed, rts_reference(track.astype(np.float64), variance),
                               atol=1e-5)
    assert np.abs(np.diff(smoothed, axis=0)).mean() <= np.abs(np.diff(track, axis=0)).mean()
