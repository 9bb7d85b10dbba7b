"""The classic engine: training-free animation with MediaPipe landmarks and image warping."""

from .engine import ClassicAppearance, ClassicEngine

__all__ = ["ClassicAppearance", "ClassicEngine"]
