"""Portrait editing parameters (SPEC 6.2) and their keypoint offsets for each layout.

A set of edits is head pitch/yaw/roll, movement, and expression sliders. The LivePortrait
layout maps expression sliders onto its 21 keypoints exactly as the reference does (same
order, for float32 parity); the mesh layout maps them onto the lips, eyes, irises and brows
of MediaPipe's face mesh. Both return offsets to add to a motion's expression ``exp``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from ..ranges import Range

__all__ = ["EditParams", "liveportrait_edits", "EXPRESSION_SLIDERS", "EDIT_RANGES",
           "RATIO_RANGE"]

EXPRESSION_SLIDERS = ("pouting", "pursing", "grin", "lip_open", "smile", "wink", "eyebrow",
                      "gaze_x", "gaze_y", "blink")
_SLIDER = "the app's slider reaches that far"
#: Each edit's range: the reference app's sliders (SPEC 6.2); ``blink`` is ``wink``'s.
EDIT_RANGES: dict[str, Range] = {name: Range(low, high, _SLIDER) for name, (low, high) in {
    "pitch": (-15, 15), "yaw": (-25, 25), "roll": (-15, 15), "mov_x": (-0.19, 0.19),
    "mov_y": (-0.19, 0.19), "mov_z": (0.9, 1.2), "pouting": (-0.09, 0.09),
    "pursing": (-20, 15), "grin": (0, 15), "lip_open": (-90, 120), "smile": (-0.3, 1.3),
    "wink": (0, 39), "eyebrow": (-30, 30), "gaze_x": (-30, 30), "gaze_y": (-63, 63),
    "blink": (0, 39)}.items()}
#: The target eyes-open and lip-open ratios an edit may ask for (the reference app's).
RATIO_RANGE = Range(0.0, 0.8, "an eyes- or lip-open ratio the app's slider reaches")


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

    def problems(self) -> list[str]:
        """The edits out of :data:`EDIT_RANGES` (or not numbers), each as 'problem; fix'."""
        found = (EDIT_RANGES[name].problem(f"edit {name}", getattr(self, name))
                 for name in self.names())
        return [problem for problem in found if problem]


X, Y, Z = 0, 1, 2

#: Slider -> (keypoint, axis, coefficient) added to exp, as in the reference (SPEC 6.2).
_LINEAR: dict[str, tuple[tuple[int, int, float], ...]] = {
    "smile": ((20, Y, -0.01), (14, Y, -0.02), (17, Y, 0.0065), (17, Z, 0.003),
              (13, Y, -0.00275), (16, Y, -0.00275), (3, Y, -0.0035), (7, Y, -0.0035)),
    "wink": ((11, Y, 0.001), (13, Y, -0.0003), (17, X, 0.0003), (17, Y, 0.0003),
             (3, Y, -0.0003)),
    "blink": ((11, Y, 0.001), (13, Y, -0.0003), (15, Y, 0.001), (16, Y, -0.0003)),
    "pouting": ((19, X, 1.0),),
    "pursing": ((14, Y, 0.001), (3, Y, -0.0005), (7, Y, -0.0005), (17, Z, -0.0005)),
    "grin": ((20, Z, -0.001), (20, Y, -0.001), (14, Y, -0.001)),
    "lip_open": ((19, Y, 0.001), (19, Z, 0.0001), (17, Y, -0.0001)),
    "mov_x": ((5, X, -1.0),),
    "mov_y": ((5, Y, 1.0),),
}


def _gaze_terms(params: EditParams) -> list[tuple[int, int, float, str]]:
    near, far = (0.0007, 0.001) if params.gaze_x > 0 else (0.001, 0.0007)
    # The vertical gaze is applied, then half of it undone with other weights (b = -u/2).
    return [(11, X, near, "gaze_x"), (15, X, far, "gaze_x"),
            (11, Y, -0.001, "gaze_y"), (15, Y, -0.001, "gaze_y"),
            (11, Y, -0.001, "half_gaze_y"), (13, Y, 0.0003, "half_gaze_y"),
            (15, Y, -0.001, "half_gaze_y"), (16, Y, 0.0003, "half_gaze_y")]


def _eyebrow_terms(params: EditParams) -> tuple[tuple[int, int, float], ...]:
    if params.eyebrow > 0:
        return ((1, Y, 0.001), (2, Y, -0.001))
    return ((1, X, -0.001), (2, X, 0.001), (1, Y, 0.0003), (2, Y, -0.0003))


def liveportrait_edits(exp: torch.Tensor, params: EditParams) -> torch.Tensor:
    """SPEC 6.2 edits on a (1, 21, 3) expression, in the reference's order; returns a copy.

    Slider values act as float32 scalars, as in the reference. mov_x and mov_y move
    keypoint 5 like the reference; head angles and mov_z are the caller's.
    """
    exp = exp.clone()
    value = {name: torch.tensor(getattr(params, name), dtype=torch.float32)
             for name in EditParams.names()}
    value["half_gaze_y"] = -value["gaze_y"] / 2
    if params.gaze_x != 0 or params.gaze_y != 0:
        for kp, axis, coefficient, name in _gaze_terms(params):
            exp[0, kp, axis] += coefficient * value[name]
    for slider in ("smile", "wink", "blink", "eyebrow", "pouting", "pursing", "grin",
                   "lip_open", "mov_x", "mov_y"):
        if getattr(params, slider) == 0:
            continue
        terms = _eyebrow_terms(params) if slider == "eyebrow" else _LINEAR[slider]
        for kp, axis, coefficient in terms:
            exp[0, kp, axis] += coefficient * value[slider]
    return exp
