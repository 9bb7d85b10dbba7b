"""Portrait editing parameters (SPEC 6.2) and their keypoint offsets for each layout.

A set of edits is head pitch/yaw/roll, movement, and expression sliders. The LivePortrait
layout maps expression sliders onto its 21 keypoints exactly as the reference does (same
order, for float32 parity); the mesh layout maps them onto the lips, eyes, irises and brows
of MediaPipe's face mesh. Both return offsets to add to a motion's expression ``exp``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["EditParams", "liveportrait_edits", "EXPRESSION_SLIDERS"]

EXPRESSION_SLIDERS = ("pouting", "pursing", "grin", "lip_open", "smile", "wink", "eyebrow",
                      "gaze_x", "gaze_y", "blink")


@dataclass(frozen=True)
class EditParams:
    """Slider values; the ranges are those of the reference app (SPEC 6.2).

    ``blink`` (0-39, like ``wink`` but both eyes) is ours, for the blink preset.
    """

    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    mov_x: float = 0.0
    mov_y: float = 0.0
    mov_z: float = 1.0
    pouting: float = 0.0
    pursing: float = 0.0
    grin: float = 0.0
    lip_open: float = 0.0
    smile: float = 0.0
    wink: float = 0.0
    eyebrow: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    blink: float = 0.0

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


def _add(exp: torch.Tensor, kp: int, axis: int, value: torch.Tensor) -> None:
    exp[0, kp, axis] += value


def liveportrait_edits(exp: torch.Tensor, params: EditParams) -> torch.Tensor:
    """SPEC 6.2 edits on a (1, 21, 3) expression, in the reference's order; returns a copy.

    mov_x and mov_y move keypoint 5 like the reference; head angles and mov_z are applied to
    the pose by the caller.
    """
    exp = exp.clone()
    v = {name: torch.tensor(getattr(params, name), dtype=torch.float32)
         for name in EditParams.names()}
    x, y, z = 0, 1, 2
    if params.gaze_x != 0 or params.gaze_y != 0:
        gx, gy = v["gaze_x"], v["gaze_y"]
        if params.gaze_x > 0:
            _add(exp, 11, x, 0.0007 * gx)
            _add(exp, 15, x, 0.001 * gx)
        else:
            _add(exp, 11, x, 0.001 * gx)
            _add(exp, 15, x, 0.0007 * gx)
        _add(exp, 11, y, -0.001 * gy)
        _add(exp, 15, y, -0.001 * gy)
        b = -gy / 2
        _add(exp, 11, y, -0.001 * b)
        _add(exp, 13, y, 0.0003 * b)
        _add(exp, 15, y, -0.001 * b)
        _add(exp, 16, y, 0.0003 * b)
    if params.smile != 0:
        s = v["smile"]
        _add(exp, 20, y, -0.01 * s)
        _add(exp, 14, y, -0.02 * s)
        _add(exp, 17, y, 0.0065 * s)
        _add(exp, 17, z, 0.003 * s)
        _add(exp, 13, y, -0.00275 * s)
        _add(exp, 16, y, -0.00275 * s)
        _add(exp, 3, y, -0.0035 * s)
        _add(exp, 7, y, -0.0035 * s)
    if params.wink != 0:
        w = v["wink"]
        _add(exp, 11, y, 0.001 * w)
        _add(exp, 13, y, -0.0003 * w)
        _add(exp, 17, x, 0.0003 * w)
        _add(exp, 17, y, 0.0003 * w)
        _add(exp, 3, y, -0.0003 * w)
    if params.blink != 0:  # the eye half of wink, on both eyes
        b = v["blink"]
        _add(exp, 11, y, 0.001 * b)
        _add(exp, 13, y, -0.0003 * b)
        _add(exp, 15, y, 0.001 * b)
        _add(exp, 16, y, -0.0003 * b)
    if params.eyebrow != 0:
        e = v["eyebrow"]
        if params.eyebrow > 0:
            _add(exp, 1, y, 0.001 * e)
            _add(exp, 2, y, -0.001 * e)
        else:
            _add(exp, 1, x, -0.001 * e)
            _add(exp, 2, x, 0.001 * e)
            _add(exp, 1, y, 0.0003 * e)
            _add(exp, 2, y, -0.0003 * e)
    if params.pouting != 0:
        _add(exp, 19, x, v["pouting"])
    if params.pursing != 0:
        p = v["pursing"]
        _add(exp, 14, y, 0.001 * p)
        _add(exp, 3, y, -0.0005 * p)
        _add(exp, 7, y, -0.0005 * p)
        _add(exp, 17, z, -0.0005 * p)
    if params.grin != 0:
        g = v["grin"]
        _add(exp, 20, z, -0.001 * g)
        _add(exp, 20, y, -0.001 * g)
        _add(exp, 14, y, -0.001 * g)
    if params.lip_open != 0:
        lo = v["lip_open"]
        _add(exp, 19, y, 0.001 * lo)
        _add(exp, 19, z, 0.0001 * lo)
        _add(exp, 17, y, -0.0001 * lo)
    if params.mov_x != 0:
        _add(exp, 5, x, -v["mov_x"])
    if params.mov_y != 0:
        _add(exp, 5, y, v["mov_y"])
    return exp

