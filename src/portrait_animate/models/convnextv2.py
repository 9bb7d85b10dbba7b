"""ConvNeXt V2 backbone with the seven regression heads of the motion extractor (SPEC 2.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvNeXtV2", "LayerNormChannelsFirst", "GRN", "ConvNeXtV2Block"]

HEAD_SIZES = {"kp": 63, "scale": 1, "pitch": 66, "yaw": 66, "roll": 66, "t": 3, "exp": 63}


class LayerNormChannelsFirst(nn.Module):
    """LayerNorm over the channel axis of a (B, C, H, W) tensor, computed by hand as in the
    reference so that the float32 rounding matches."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    """Global response normalisation on a (B, H, W, C) tensor."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.gamma * (x * nx) + self.beta + x


class ConvNeXtV2Block(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, inverted-bottleneck MLP with GRN, residual add."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)
        out = self.pwconv1(self.norm(out))
        out = self.pwconv2(self.grn(F.gelu(out)))
        return x + out.permute(0, 3, 1, 2)


class ConvNeXtV2(nn.Module):
    """ConvNeXt V2 trunk plus linear heads; returns the raw head outputs by name.

    Args:
        in_chans: input channels.
        depths: blocks per stage.
        dims: channels per stage.
        num_kp: implicit keypoints (heads ``kp`` and ``exp`` have ``3 * num_kp`` outputs).
        num_bins: head-pose bins of ``pitch``, ``yaw`` and ``roll``.
    """

    def __init__(self, in_chans: int = 3, depths: tuple[int, ...] = (3, 3, 9, 3),
                 dims: tuple[int, ...] = (96, 192, 384, 768), num_kp: int = 21,
                 num_bins: int = 66) -> None:
        super().__init__()
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(nn.Sequential(
            nn.Conv2d(in_chans, dims[0], kernel_size=4, stride=4),
            LayerNormChannelsFirst(dims[0]),
        ))
        for i in range(len(dims) - 1):
            self.downsample_layers.append(nn.Sequential(
                LayerNormChannelsFirst(dims[i]),
                nn.Conv2d(dims[i], dims[i + 1], kernel_size=2, stride=2),
            ))
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtV2Block(dim) for _ in range(depth)])
            for depth, dim in zip(depths, dims, strict=True)
        )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        sizes = {**HEAD_SIZES, "kp": 3 * num_kp, "exp": 3 * num_kp,
                 "pitch": num_bins, "yaw": num_bins, "roll": num_bins}
        for name, size in sizes.items():
            self.add_module(f"fc_{name}", nn.Linear(dims[-1], size))
        self.head_names = tuple(sizes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        for down, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(down(x))
        pooled = self.norm(x.mean([-2, -1]))
        return {name: getattr(self, f"fc_{name}")(pooled) for name in self.head_names}
