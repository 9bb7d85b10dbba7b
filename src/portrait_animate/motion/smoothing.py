"""Smoothing of motion tracks.

- :func:`kalman_smooth`: the reference's RTS smoother of a video source's tracks (SPEC 4.4),
  in O(T·D). The reference runs a full-covariance Kalman smoother on the flattened track with
  identity dynamics, process covariance ``q I``, observation covariance ``r I`` and initial
  covariance ``I``. Every covariance in that recursion stays a multiple of the identity, so
  the smoother decouples into one scalar gain sequence shared by all D dimensions: the same
  means as the matrix form, without a D x D matrix (D = 1,434 for the classic mesh).
- :func:`zero_phase_smooth` and :func:`smooth_motion_stream`: ours, for ``--driving_smooth``.
  Landmark detectors tremble on a still face; a Gaussian in time, weighted down where a point
  moves many noise levels within a frame (a bilateral filter in time), averages the tremble
  out without lag (it looks ahead as far as it looks back) and without smearing a blink.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import TypeVar

import numpy as np
import torch

from .model import Motion

__all__ = ["kalman_smooth", "PROCESS_VARIANCE", "noise_level", "smooth_frame", "smoothing_radius",
           "zero_phase_smooth", "smooth_motion_stream", "motion_parts", "motion_from_parts",
           "blend_motion"]

P = TypeVar("P")

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


#: Columns of a track smoothed together by :func:`kalman_smooth`: its float64 scratch is
#: one (T, 256) block, not two copies of the whole track.
KALMAN_BLOCK = 256


def kalman_smooth(track: np.ndarray, observation_variance: float,
                  dtype: type = np.float32) -> np.ndarray:
    """Smooth a (T, ...) track frame-wise flattened, element-wise (rotations included).

    Identity dynamics, process variance 1e-5, observation variance ``observation_variance``,
    initial state the first observation with unit variance, no EM: pykalman's
    ``KalmanFilter(...).smooth`` with those settings, in O(T·D) time. Every dimension runs the
    same scalar recursion, so the track is smoothed :data:`KALMAN_BLOCK` columns at a time:
    beside the input and the output, memory holds one float64 block (a video source's
    whole expression track, copied twice in float64, was 23 KB a frame).

    Returns:
        The smoothed means, ``dtype`` (computed in float64), with the input's shape.
    """
    if track.ndim < 2 or len(track) == 0:
        raise ValueError(f"track must have shape (T, ...) with T >= 1, got {track.shape}")
    if not observation_variance > 0:
        raise ValueError(f"observation_variance must be positive, got {observation_variance}")
    flat = track.reshape(len(track), -1)
    n, dims = flat.shape
    gains, smoother = _scalar_gains(n, observation_variance)
    out = np.empty((n, dims), dtype)
    for lo in range(0, dims, KALMAN_BLOCK):
        # the block's observations, overwritten by the filtered means, then the smoothed
        block = flat[:, lo:lo + KALMAN_BLOCK].astype(np.float64)
        mean = block[0]
        for t in range(n):
            mean = mean + gains[t] * (block[t] - mean)
            block[t] = mean
        for t in range(n - 2, -1, -1):
            # The prediction for t + 1 is the filtered mean at t (identity dynamics).
            block[t] = block[t] + smoother[t] * (block[t + 1] - block[t])
        out[:, lo:lo + KALMAN_BLOCK] = block
    return out.reshape(track.shape)


#: The range kernel's sigma in noise levels: a point this far from its value at the centre
#: frame keeps 0.61 of its temporal weight, one three times as far 0.01.
RANGE_NOISE_LEVELS = 10.0
#: The head's rotation, translation and scale keep more of their motion: a handheld camera's
#: shake is real motion of the face in the frame (measured in ``bench/jitter.py``).
GROUP_LEVELS = {"R": 3.0, "t": 3.0, "scale": 3.0}
#: Second differences over this many recent frames set the noise level of a stream.
NOISE_MEMORY = 90
#: Frames whose second differences :func:`noise_level` takes at a time (a whole video's, at
#: once, were two more copies of its landmarks).
NOISE_CHUNK = 64


def noise_level(track: np.ndarray) -> float:
    """Robust per-coordinate noise of a (T, N, C) track: the median norm of its points'
    second differences over sqrt(6), as white noise of unit variance gives; 0 under 3 frames."""
    if len(track) < 3:
        return 0.0
    norms = np.empty((len(track) - 2, *track.shape[1:-1]), track.dtype)  # (T - 2, N)
    for lo in range(0, len(norms), NOISE_CHUNK):  # the (T, N, C) differences a chunk at a time
        hi = min(lo + NOISE_CHUNK, len(norms))
        second = track[lo + 2:hi + 2] - 2 * track[lo + 1:hi + 1] + track[lo:hi]
        norms[lo:hi] = np.linalg.norm(second, axis=-1)
    return float(np.median(norms)) / np.sqrt(6.0)


def smooth_frame(window: np.ndarray, center: int, strength: float, noise: float,
                 levels: float = RANGE_NOISE_LEVELS) -> np.ndarray:
    """One frame of an edge-preserving, zero-phase (bilateral in time) smoothing.

    Each point is averaged with itself in the nearby frames, weighted by a Gaussian of the time
    apart (sigma ``strength`` frames) times a Gaussian of its distance from its value at the
    centre frame (sigma ``levels`` x ``noise``): noise averages out, a blink or a mouth opening
    (many noise levels in a frame or two) keeps its edges.

    Args:
        window: (W, N, C) points of the frames around the centre.
        center: index of the frame smoothed, in the window.
        strength: temporal sigma in frames, > 0.
        noise: per-coordinate noise level (:func:`noise_level`); 0 weights by time alone.
        levels: the range kernel's sigma in noise levels.

    Returns:
        (N, C) the smoothed points, float64.
    """
    offsets = np.arange(len(window)) - center
    weights = np.exp(-0.5 * (offsets / strength) ** 2)[:, None]  # (W, 1)
    if noise > 0:
        dist = np.linalg.norm(window - window[center], axis=-1)  # (W, N)
        weights = weights * np.exp(-0.5 * (dist / (levels * noise)) ** 2)
    weights = weights / weights.sum(axis=0)
    return np.einsum("wn,wnc->nc", weights, window.astype(np.float64))


def smoothing_radius(strength: float) -> int:
    """Frames on each side that :func:`smooth_frame` weighs (3 sigma)."""
    return int(np.ceil(3 * strength))


def zero_phase_smooth(track: np.ndarray, strength: float) -> np.ndarray:
    """A whole (T, N, C) track smoothed by :func:`smooth_frame`, its noise level measured on
    the track itself; ``strength`` 0 returns it unchanged."""
    if track.ndim != 3:
        raise ValueError(f"track must have shape (T, N, C), got {track.shape}")
    if strength <= 0 or len(track) < 2:
        return track
    radius, noise = smoothing_radius(strength), noise_level(track)
    out = np.empty_like(track)  # each frame's float64 result rounded as it is written
    for t in range(len(track)):
        lo = max(0, t - radius)
        out[t] = smooth_frame(track[lo:t + radius + 1], t - lo, strength, noise)
    return out


def motion_parts(motion: Motion) -> dict[str, np.ndarray]:
    """A motion as float64 groups of points (N, C): ``exp``, ``R`` (one 9-D point), ``t``,
    ``scale`` and ``kp`` when it has canonical keypoints; each is filtered as points."""
    parts = {"exp": motion.exp[0].double().numpy(), "R": motion.R.reshape(1, 9).double().numpy(),
             "t": motion.t.double().numpy(), "scale": motion.scale.double().numpy()}
    if motion.kp is not None:
        parts["kp"] = motion.kp[0].double().numpy()
    return parts


def _nearest_rotation(m: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(m.reshape(3, 3))
    r = u @ vt
    if np.linalg.det(r) < 0:
        r = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    return r


def motion_from_parts(parts: dict[str, np.ndarray], like: Motion) -> Motion:
    """The motion of (filtered) :func:`motion_parts`, shaped as ``like``; R is made a rotation
    again (the nearest, by SVD), and ``like``'s ``kp`` is kept where the parts hold none."""
    def tensor(a: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32).reshape(shape))

    return like.with_(exp=tensor(parts["exp"], tuple(like.exp.shape)),
                      R=tensor(_nearest_rotation(parts["R"]), (1, 3, 3)),
                      t=tensor(parts["t"], (1, 3)), scale=tensor(parts["scale"], (1, 1)),
                      **({"kp": tensor(parts["kp"], tuple(like.kp.shape))}
                         if "kp" in parts else {}))


def blend_motion(a: Motion, b: Motion, weight: float) -> Motion:
    """``a`` moved ``weight`` (0-1) of the way to ``b``, part by part (R re-orthonormalised)."""
    pa, pb = motion_parts(a), motion_parts(b)
    return motion_from_parts({k: (1 - weight) * pa[k] + weight * pb[k] for k in pa}, a)


def smooth_motion_stream(items: Iterable[tuple[P, Motion]],
                         strength: float) -> Iterator[tuple[P, Motion]]:
    """Zero-phase, edge-preserving smoothing of a stream of (payload, motion) pairs.

    Each motion's expression, keypoints, rotation, translation and scale are smoothed by
    :func:`smooth_frame` (the rigid ones with the tighter range of :data:`GROUP_LEVELS`), with
    each group's noise level measured on the last
    :data:`NOISE_MEMORY` frames; a frame comes out once the frames :func:`smoothing_radius`
    after it are in, with its payload, so memory holds a window, not the stream.
    ``strength`` 0 passes the stream through untouched.
    """
    if strength <= 0:
        yield from items
        return
    radius = smoothing_radius(strength)
    window: deque[tuple[P, Motion, dict[str, np.ndarray]]] = deque()
    history: deque[dict[str, np.ndarray]] = deque(maxlen=NOISE_MEMORY)
    noise: dict[str, float] = {}
    center = 0  # index in the window of the next frame out

    def smoothed() -> tuple[P, Motion]:
        payload, motion, _ = window[center]
        # keypoints one tensor shares (the classic engine's canonical face) stay shared
        shared_kp = all(w[1].kp is motion.kp for w in window)
        parts = {name: smooth_frame(np.stack([w[2][name] for w in window]), center, strength,
                                    noise[name], GROUP_LEVELS.get(name, RANGE_NOISE_LEVELS))
                 for name in window[center][2] if not (name == "kp" and shared_kp)}
        return payload, motion_from_parts(parts, motion)

    for seen, (payload, motion) in enumerate(items):
        parts = motion_parts(motion)
        window.append((payload, motion, parts))
        history.append(parts)
        if seen % 8 == 0 or len(history) < 8:
            noise = {name: noise_level(np.stack([h[name] for h in history])) for name in parts}
        if len(window) - 1 - center == radius:
            yield smoothed()
            if center == radius:
                window.popleft()
            else:
                center += 1
    while center < len(window):
        yield smoothed()
        center += 1
