"""Convolutional building blocks shared by the LivePortrait networks (SPEC 2.1).

Attribute names are state-dict key fragments of the published checkpoints, so they
must not be renamed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SameBlock2d",
    "DownBlock2d",
    "ResBlock3d",
    "DownBlock3d",
    "UpBlock3d",
]


class _ConvNorm(nn.Module):
    """``conv`` -> ``norm`` (BatchNorm) in 2-D or 3-D; subclasses add activation and resampling."""

    def __init__(self, dims: int, in_features: int, out_features: int, kernel_size: int = 3,
                 padding: int = 1) -> None:
        super().__init__()
        conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
        self.conv = conv(in_features, out_features, kernel_size, padding=padding)
        self.norm = norm(out_features, affine=True)

    def conv_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class SameBlock2d(_ConvNorm):
    """Conv2d -> BatchNorm2d -> ReLU (or LeakyReLU 0.01), spatial size kept."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3,
                 padding: int = 1, lrelu: bool = False) -> None:
        super().__init__(2, in_features, out_features, kernel_size, padding)
        self.lrelu = lrelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_norm(x)
        return F.leaky_relu(out, 0.01) if self.lrelu else F.relu(out)


class DownBlock2d(_ConvNorm):
    """Conv2d -> BatchNorm2d -> ReLU -> AvgPool2d(2): halves H and W."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(2, in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.conv_norm(x)), kernel_size=2)


class ResBlock3d(nn.Module):
    """Pre-activation residual block on a (B, C, D, H, W) volume."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_features, in_features, kernel_size, padding=padding)
        self.conv2 = nn.Conv3d(in_features, in_features, kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm3d(in_features, affine=True)
        self.norm2 = nn.BatchNorm3d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class DownBlock3d(_ConvNorm):
    """Conv3d -> BatchNorm3d -> ReLU -> AvgPool3d(1, 2, 2): halves H and W, keeps D."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(3, in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(F.relu(self.conv_norm(x)), kernel_size=(1, 2, 2))


class UpBlock3d(_ConvNorm):
    """Nearest x(1, 2, 2) upsampling -> Conv3d -> BatchNorm3d -> ReLU."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__(3, in_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv_norm(F.interpolate(x, scale_factor=(1, 2, 2))))
