"""What the pipeline needs from an engine; both engines provide it."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from ..motion.model import KeypointLayout, Motion

__all__ = ["Engine"]


class Engine(Protocol):
    """An animation engine on 256x256 face crops.

    Attributes:
        name: ``neural`` or ``classic``.
        layout: the keypoints its motion lives on.
    """

    name: str
    layout: KeypointLayout

    def motion(self, crop: np.ndarray) -> Motion:
        """The motion of a (256, 256, 3) uint8 RGB crop, with canonical keypoints."""

    def appearance(self, crop: np.ndarray) -> Any:
        """Per-source data the renderer needs (the feature volume for the neural engine)."""

    def render(self, appearance: Any, x_s: torch.Tensor, x_d: torch.Tensor) -> np.ndarray:
        """(512, 512, 3) uint8 RGB: the source moved from keypoints x_s to x_d (1, K, 3)."""

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor: ...

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor: ...

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor: ...
