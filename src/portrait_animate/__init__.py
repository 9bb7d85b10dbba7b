"""portrait-animate: a portrait animated by a driving video, image, motion template or preset.

The Python API is ``from portrait_animate import animate, AnimateOptions`` (README, "Animate").
Its names are imported when first used, so that ``import portrait_animate`` (as the command
line's start-up does) loads neither PyTorch nor MediaPipe.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AnimateOptions", "AnimateResult", "InputError", "WeightsError", "animate"]

_MODULES = {"animate": ".pipeline.animate", "AnimateResult": ".pipeline.animate",
            "AnimateOptions": ".pipeline.options", "InputError": ".errors",
            "WeightsError": ".errors"}


def __getattr__(name: str) -> Any:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_MODULES[name], __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
