"""F: the appearance feature extractor (SPEC 2.2)."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d
from .checks import check_image_batch

__all__ = ["AppearanceFeatureExtractor"]


class AppearanceFeatureExtractor(nn.Module):
    """Maps a (B, 3, 256, 256) image in [0, 1] to a (B, 32, 16, 64, 64) feature volume.

    Args:
        image_channel: input image channels.
        block_expansion: channels of the first block.
        num_down_blocks: number of 2x down-sampling blocks.
        max_features: channel ceiling of the 2-D encoder.
        reshape_channel: channels of the 3-D volume.
        reshape_depth: depth of the 3-D volume.
        num_resblocks: number of 3-D residual blocks.
    """

    def __init__(self, image_channel: int = 3, block_expansion: int = 64,
                 num_down_blocks: int = 2, max_features: int = 512,
                 reshape_channel: int = 32, reshape_depth: int = 16,
                 num_resblocks: int = 6) -> None:
        super().__init__()
        self.image_channel = image_channel
        self.reshape_channel = reshape_channel
        self.reshape_depth = reshape_depth

        self.first = SameBlock2d(image_channel, block_expansion)
        down_blocks = []
        for i in range(num_down_blocks):
            in_features = min(max_features, block_expansion * (2**i))
            out_features = min(max_features, block_expansion * (2 ** (i + 1)))
            down_blocks.append(DownBlock2d(in_features, out_features))
        self.down_blocks = nn.ModuleList(down_blocks)
        self.second = nn.Conv2d(out_features, max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(reshape_channel))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        check_image_batch(image, self.image_channel, "image")
        out = self.first(image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        volume = out.view(b, self.reshape_channel, self.reshape_depth, h, w)
        return self.resblocks_3d(volume)
