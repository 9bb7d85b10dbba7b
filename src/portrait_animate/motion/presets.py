"""Built-in driving motion: procedural trajectories of editing parameters.

A preset drives any engine: each frame's edits become a driving motion on the engine's own
keypoint layout (neutral expression plus the edits, head rotation from the angles), and the
usual relative composition applies it to the source. Frame 0 is always the neutral pose.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..choices import PRESET_CATALOGUE, PRESET_FPS, PRESET_PREFIX
from .editing import EditParams
from .model import KeypointLayout, Motion
from .template import MotionTemplate
from .transform import rotation_matrix

__all__ = ["PRESETS", "PRESET_PREFIX", "preset_names", "preset_edits", "preset_template"]


def _bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth 0 -> 1 -> 0 pulse around ``centre`` (seconds)."""
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def _ramp(t: np.ndarray, start: float, end: float) -> np.ndarray:
    x = np.clip((t - start) / (end - start), 0, 1)
    return x * x * (3 - 2 * x)


def _blink(t: np.ndarray) -> list[EditParams]:
    closed = np.maximum(_bump(t, 0.8, 0.07), _bump(t, 2.2, 0.07))
    return [EditParams(blink=30 * c) for c in closed]


def _smile(t: np.ndarray) -> list[EditParams]:
    amount = _ramp(t, 0.2, 1.0) * (1 - _ramp(t, 2.0, 2.8))
    return [EditParams(smile=1.0 * a, eyebrow=4 * a) for a in amount]


def _nod(t: np.ndarray) -> list[EditParams]:
    return [EditParams(pitch=12 * np.sin(2 * np.pi * x / 1.5)) for x in t]


def _shake(t: np.ndarray) -> list[EditParams]:
    return [EditParams(yaw=18 * np.sin(2 * np.pi * x / 1.5)) for x in t]


def _talk(t: np.ndarray) -> list[EditParams]:
    syllables = np.abs(np.sin(2 * np.pi * 2.3 * t) * np.sin(2 * np.pi * 0.7 * t + 0.5))
    envelope = _ramp(t, 0.0, 0.3)
    return [EditParams(lip_open=55 * s * e, pitch=2.5 * np.sin(2 * np.pi * 0.4 * x),
                       yaw=4 * np.sin(2 * np.pi * 0.25 * x), blink=30 * _bump(x, 2.4, 0.07))
            for s, e, x in zip(syllables, envelope, t, strict=True)]


def _surprise(t: np.ndarray) -> list[EditParams]:
    a = _ramp(t, 0.3, 0.8) * (1 - _ramp(t, 2.0, 2.6))
    return [EditParams(eyebrow=25 * x, lip_open=70 * x, pitch=-4 * x) for x in a]


_TRAJECTORIES: dict[str, Callable[[np.ndarray], list[EditParams]]] = {
    "blink": _blink, "smile": _smile, "nod": _nod, "shake": _shake, "talk": _talk,
    "surprise": _surprise}
#: name -> (seconds, trajectory, one-line description)
PRESETS: dict[str, tuple[float, Callable[[np.ndarray], list[EditParams]], str]] = {
    name: (seconds, _TRAJECTORIES[name], description)
    for name, (seconds, description) in PRESET_CATALOGUE.items()}


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_edits(name: str) -> list[EditParams]:
    """Per-frame edits at 25 fps; frame 0 is neutral."""
    if name not in PRESETS:
        raise KeyError(name)
    seconds, trajectory, _ = PRESETS[name]
    t = np.arange(int(seconds * PRESET_FPS)) / PRESET_FPS
    return [EditParams(), *trajectory(t[1:])]


def preset_template(name: str, layout: KeypointLayout) -> MotionTemplate:
    """The preset as driving motion on ``layout``."""
    if layout.edit is None:
        raise ValueError(f"layout {layout.name} has no editing map")
    neutral = torch.zeros(1, layout.num_kp, 3)
    motions = []
    for p in preset_edits(name):
        angles = [torch.tensor([[float(a)]]) for a in (p.pitch, p.yaw, p.roll)]
        motions.append(Motion(scale=torch.tensor([[float(p.mov_z)]]), R=rotation_matrix(*angles),
                              exp=layout.edit(neutral, p), t=torch.zeros(1, 3)))
    return MotionTemplate(motions=motions, fps=PRESET_FPS, layout=layout.name)
