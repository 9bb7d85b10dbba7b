"""M: the motion extractor (SPEC 2.3)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .checks import check_image_batch
from .convnextv2 import ConvNeXtV2

__all__ = ["MotionExtractor", "MotionExtractorOutput"]

BACKBONES = {"convnextv2_tiny": {"depths": (3, 3, 9, 3), "dims": (96, 192, 384, 768)}}


@dataclass
class MotionExtractorOutput:
    """Raw head outputs of M for a batch of B images.

    Attributes:
        pitch, yaw, roll: (B, 66) angle-bin logits.
        t: (B, 3) translation.
        exp: (B, 63) expression offsets, flattened.
        scale: (B, 1) scale, used as is.
        kp: (B, 63) canonical keypoints, flattened.
    """

    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    exp: torch.Tensor
    scale: torch.Tensor
    kp: torch.Tensor


class MotionExtractor(nn.Module):
    """Regresses canonical keypoints, head pose, translation, expression and scale from a
    (B, 3, 256, 256) image in [0, 1] (no mean/std normalisation).

    Args:
        num_kp: number of implicit keypoints.
        backbone: backbone name; only ``convnextv2_tiny`` is published.
    """

    def __init__(self, num_kp: int = 21, backbone: str = "convnextv2_tiny") -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; expected one of {list(BACKBONES)}")
        self.num_kp = num_kp
        self.detector = ConvNeXtV2(num_kp=num_kp, **BACKBONES[backbone])

    def forward(self, image: torch.Tensor) -> MotionExtractorOutput:
        check_image_batch(image, 3, "image")
        heads = self.detector(image)
        return MotionExtractorOutput(**{k: heads[k] for k in MotionExtractorOutput.__annotations__})
