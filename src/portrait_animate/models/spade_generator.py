"""G: the SPADE decoder (SPEC 2.6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .checks import check_shape

__all__ = ["SPADE", "SPADEResnetBlock", "SPADEDecoder"]


class SPADE(nn.Module):
    """Instance norm modulated per pixel by a segmentation map.

    Args:
        norm_nc: channels of the normalised input.
        label_nc: channels of the segmentation map.
        hidden_nc: channels of the shared MLP.
    """

    def __init__(self, norm_nc: int, label_nc: int, hidden_nc: int = 128) -> None:
        super().__init__()
        self.param_free_norm = nn.InstanceNorm2d(norm_nc, affine=False)
        self.mlp_shared = nn.Sequential(nn.Conv2d(label_nc, hidden_nc, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden_nc, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv2d(hidden_nc, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[2:], mode="nearest")
        actv = self.mlp_shared(segmap)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class SPADEResnetBlock(nn.Module):
    """Residual block of two spectral-normalised convs, each after SPADE and LeakyReLU 0.2;
    a learned (SPADE -> 1x1 conv) shortcut when the channel count changes."""

    def __init__(self, fin: int, fout: int, label_nc: int) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = spectral_norm(nn.Conv2d(fin, fmiddle, 3, padding=1))
        self.conv_1 = spectral_norm(nn.Conv2d(fmiddle, fout, 3, padding=1))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1, bias=False))
        self.norm_0 = SPADE(fin, label_nc)
        self.norm_1 = SPADE(fmiddle, label_nc)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, label_nc)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        shortcut = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 2e-1))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 2e-1))
        return shortcut + dx


class SPADEDecoder(nn.Module):
    """Decodes (B, 256, 64, 64) warped features into a (B, 3, 512, 512) image in [0, 1].

    Args:
        upscale: PixelShuffle factor of the last conv.
        max_features: channel ceiling.
        block_expansion: base channels.
        out_channels: channels before the image conv.
        num_down_blocks: down-sampling depth of the encoder whose features are decoded.
    """

    def __init__(self, upscale: int = 2, max_features: int = 512, block_expansion: int = 64,
                 out_channels: int = 64, num_down_blocks: int = 2) -> None:
        super().__init__()
        self.input_channels = min(max_features, block_expansion * (2**num_down_blocks))
        label_nc = self.input_channels
        width = 2 * self.input_channels
        self.fc = nn.Conv2d(self.input_channels, width, 3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(width, width, label_nc))
        self.up_0 = SPADEResnetBlock(width, self.input_channels, label_nc)
        self.up_1 = SPADEResnetBlock(self.input_channels, out_channels, label_nc)
        self.up = nn.Upsample(scale_factor=2)
        self.conv_img = nn.Sequential(
            nn.Conv2d(out_channels, 3 * upscale**2, 3, padding=1),
            nn.PixelShuffle(upscale),
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        check_shape(feature, (None, self.input_channels, None, None), "feature")
        seg = feature
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(self.up(x), seg)
        x = self.up_1(self.up(x), seg)
        x = self.conv_img(F.leaky_relu(x, 2e-1))
        return torch.sigmoid(x)
