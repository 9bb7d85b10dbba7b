"""The classic engine: training-free animation with MediaPipe landmarks and image warping."""

from .engine import ClassicAppearance, ClassicEngine
from .motion import classic_layout

__all__ = ["ClassicAppearance", "ClassicEngine", "classic_layout"]
