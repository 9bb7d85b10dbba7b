"""What users pick by name: animation regions, neural precisions and the built-in presets.

Free of heavy imports (torch, numpy), so that the command line builds its help and lists the
presets without loading them.
"""

from __future__ import annotations

__all__ = ["REGIONS", "EXACT", "FACE_ORDERS", "FAST", "LARGEST_FIRST", "PRECISIONS",
           "PRESET_PREFIX", "PRESET_FPS", "PRESET_CATALOGUE"]

REGIONS = ("exp", "pose", "lip", "eyes", "all")

EXACT = "fp32-exact"
FAST = "bf16-fast"
PRECISIONS = ("auto", EXACT, FAST)

PRESET_PREFIX = "preset:"
PRESET_FPS = 25.0
#: name -> (seconds, one-line description); :mod:`.motion.presets` holds the trajectories.
PRESET_CATALOGUE: dict[str, tuple[float, str]] = {
    "blink": (3.0, "two blinks"),
    "smile": (3.0, "a smile that comes and goes"),
    "nod": (3.0, "nodding: pitch +-12 degrees"),
    "shake": (3.0, "shaking the head: yaw +-18 degrees"),
    "talk": (4.0, "talking mouth with small head motion and a blink"),
    "surprise": (3.0, "raised brows and an open mouth"),
}

#: How faces are numbered (``--face_order``): by size, largest first; by the box centre's x,
#: from the left or from the right; by its y, from the top; by its distance from the image's
#: centre, nearest first.
FACE_ORDERS = ("large-small", "left-right", "right-left", "top-bottom", "distance-from-center")
#: The default ``--face_order``: face 0 is the largest.
LARGEST_FIRST = FACE_ORDERS[0]
