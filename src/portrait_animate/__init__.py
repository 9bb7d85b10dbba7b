"""portrait-animate: a portrait animated by a driving video, image, motion template or preset.

The Python API is ``from portrait_animate import animate, AnimateOptions`` (README, "Animate").
Its names are imported when first used, so that ``import portrait_animate`` (as the command
line's start-up does) loads neither PyTorch nor MediaPipe.
"""

from __future__ import annotations

from .lazy import lazy_names

__all__ = ["AnimateOptions", "AnimateResult", "InputError", "WeightsError", "animate"]

__getattr__, __dir__ = lazy_names(__name__, {
    "animate": ".pipeline.animate", "AnimateResult": ".pipeline.animate",
    "AnimateOptions": ".pipeline.options", "InputError": ".errors", "WeightsError": ".errors"})
