"""The dense motion network of W: keypoint heatmaps and sparse motions through an
hourglass to a deformation field and an occlusion map (SPEC 2.5)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import DownBlock3d, UpBlock3d

__all__ = ["DenseMotionNetwork", "Hourglass", "make_coordinate_grid", "keypoint_gaussians"]


def make_coordinate_grid(spatial_size: tuple[int, int, int], ref: torch.Tensor) -> torch.Tensor:
    """Corner-aligned (x, y, z) coordinates in [-1, 1] of a (D, H, W) grid, shape (D, H, W, 3).

    The spacing is i / (n - 1) although grid_sample runs with ``align_corners=False``: the
    weights were trained with this half-voxel mismatch (SPEC 8.30).
    """
    d, h, w = spatial_size
    axes = []
    for n in (w, h, d):
        r = torch.arange(n, dtype=ref.dtype, device=ref.device)
        axes.append(2 * (r / (n - 1)) - 1)
    x, y, z = axes
    xx = x.view(1, 1, -1).expand(d, h, w)
    yy = y.view(1, -1, 1).expand(d, h, w)
    zz = z.view(-1, 1, 1).expand(d, h, w)
    return torch.stack([xx, yy, zz], dim=3)


def keypoint_gaussians(kp: torch.Tensor, grid: torch.Tensor, variance: float) -> torch.Tensor:
    """Isotropic Gaussians around keypoints.

    Args:
        kp: (B, K, 3) keypoints.
        grid: (D, H, W, 3) coordinates.
        variance: Gaussian variance.

    Returns:
        (B, K, D, H, W) heatmaps.
    """
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class Hourglass(nn.Module):
    """3-D U-Net: an encoder of down-blocks and a decoder whose up-block outputs are
    concatenated before the skip of the same resolution."""

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3,
                 max_features: int = 256) -> None:
        super().__init__()
        self.encoder = _HourglassEncoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = _HourglassDecoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


class _HourglassEncoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * (2**i))
            cout = min(max_features, block_expansion * (2 ** (i + 1)))
            blocks.append(DownBlock3d(cin, cout))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _HourglassDecoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int,
                 max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features,
                                                        block_expansion * (2 ** (i + 1)))
            cout = min(max_features, block_expansion * (2**i))
            blocks.append(UpBlock3d(cin, cout))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features
        self.conv = nn.Conv3d(self.out_filters, self.out_filters, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm3d(self.out_filters, affine=True)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor:
        skips = list(skips)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return F.relu(self.norm(self.conv(out)))


class DenseMotionNetwork(nn.Module):
    """Predicts a (B, D, H, W, 3) deformation and a (B, 1, H, W) occlusion map from a
    feature volume and source/driving keypoints.

    Args:
        block_expansion: hourglass base channels.
        num_blocks: hourglass depth.
        max_features: hourglass channel ceiling.
        num_kp: number of keypoints.
        feature_channel: channels of the feature volume.
        reshape_depth: depth of the feature volume.
        compress: channels the feature volume is compressed to.
        estimate_occlusion_map: predict the occlusion map.
        kp_variance: variance of the keypoint Gaussians.
    """

    def __init__(self, block_expansion: int = 32, num_blocks: int = 5, max_features: int = 1024,
                 num_kp: int = 21, feature_channel: int = 32, reshape_depth: int = 16,
                 compress: int = 4, estimate_occlusion_map: bool = True,
                 kp_variance: float = 0.01) -> None:
        super().__init__()
        self.num_kp = num_kp
        self.kp_variance = kp_variance
        self.hourglass = Hourglass(block_expansion, (num_kp + 1) * (compress + 1),
                                   num_blocks, max_features)
        self.mask = nn.Conv3d(self.hourglass.out_filters, num_kp + 1, kernel_size=7, padding=3)
        self.compress = nn.Conv3d(feature_channel, compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(compress, affine=True)
        self.occlusion = (
            nn.Conv2d(self.hourglass.out_filters * reshape_depth, 1, kernel_size=7, padding=3)
            if estimate_occlusion_map else None
        )

    def sparse_motions(self, grid: torch.Tensor, kp_driving: torch.Tensor,
                       kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, D, H, W, 3): the identity grid, then grid - x_d[k] + x_s[k] per keypoint."""
        b = kp_driving.shape[0]
        identity = grid[None, None]
        per_kp = identity - kp_driving[:, :, None, None, None, :]
        per_kp = per_kp + kp_source[:, :, None, None, None, :]
        return torch.cat([identity.expand(b, 1, *grid.shape), per_kp], dim=1)

    def deformed_features(self, feature: torch.Tensor, motions: torch.Tensor) -> torch.Tensor:
        """Sample the feature with every sparse motion: (B, K+1, C, D, H, W)."""
        b, c, d, h, w = feature.shape
        k1 = motions.shape[1]
        repeated = feature[:, None].expand(b, k1, c, d, h, w).reshape(b * k1, c, d, h, w)
        sampled = F.grid_sample(repeated, motions.reshape(b * k1, d, h, w, 3),
                                align_corners=False)
        return sampled.view(b, k1, c, d, h, w)

    def heatmaps(self, grid: torch.Tensor, kp_driving: torch.Tensor,
                 kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, 1, D, H, W): driving minus source Gaussians, a zero map first."""
        heat = (keypoint_gaussians(kp_driving, grid, self.kp_variance)
                - keypoint_gaussians(kp_source, grid, self.kp_variance))
        zeros = torch.zeros_like(heat[:, :1])
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> dict[str, torch.Tensor]:
        b, _, d, h, w = feature.shape
        feature = F.relu(self.norm(self.compress(feature)))
        grid = make_coordinate_grid((d, h, w), kp_source)
        motions = self.sparse_motions(grid, kp_driving, kp_source)
        deformed = self.deformed_features(feature, motions)
        heat = self.heatmaps(grid, kp_driving, kp_source)
        hourglass_in = torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(hourglass_in)

        mask = F.softmax(self.mask(prediction), dim=1)
        deformation = (motions.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)
        out = {"mask": mask, "deformation": deformation.permute(0, 2, 3, 4, 1)}
        if self.occlusion is not None:
            flat = prediction.reshape(b, -1, h, w)
            out["occlusion_map"] = torch.sigmoid(self.occlusion(flat))
        return out
