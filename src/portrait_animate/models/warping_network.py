"""W: the warping module (SPEC 2.5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SameBlock2d
from .checks import check_keypoints, check_shape
from .dense_motion import DenseMotionNetwork

__all__ = ["WarpingNetwork", "WarpingOutput"]


@dataclass
class WarpingOutput:
    """Attributes:
    occlusion_map: (B, 1, 64, 64) in [0, 1], or None without occlusion estimation.
    deformation: (B, 16, 64, 64, 3) sampling grid of the feature volume.
    out: (B, 256, 64, 64) warped features, the decoder's input.
    """

    occlusion_map: torch.Tensor | None
    deformation: torch.Tensor
    out: torch.Tensor


class WarpingNetwork(nn.Module):
    """Warps the source feature volume from source to driving keypoints.

    Args:
        num_kp: number of keypoints.
        block_expansion: base channels; the output has block_expansion * 2**num_down_blocks.
        max_features: channels of the flattened warped volume.
        num_down_blocks: down-sampling depth of the appearance encoder.
        reshape_channel: channels of the feature volume.
        estimate_occlusion_map: predict and apply the occlusion map.
        dense_motion_params: keyword arguments of :class:`DenseMotionNetwork`.
    """

    def __init__(self, num_kp: int = 21, block_expansion: int = 64, max_features: int = 512,
                 num_down_blocks: int = 2, reshape_channel: int = 32,
                 estimate_occlusion_map: bool = True,
                 dense_motion_params: dict[str, Any] | None = None) -> None:
        super().__init__()
        params = {"block_expansion": 32, "max_features": 1024, "num_blocks": 5,
                  "reshape_depth": 16, "compress": 4, **(dense_motion_params or {})}
        self.num_kp = num_kp
        self.reshape_channel = reshape_channel
        self.dense_motion_network = DenseMotionNetwork(
            num_kp=num_kp, feature_channel=reshape_channel,
            estimate_occlusion_map=estimate_occlusion_map, **params)
        out_features = block_expansion * (2**num_down_blocks)
        self.third = SameBlock2d(max_features, out_features, lrelu=True)
        self.fourth = nn.Conv2d(out_features, out_features, kernel_size=1)

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> WarpingOutput:
        """Args:
        feature_3d: (B, 32, 16, 64, 64) source feature volume f_s.
        kp_driving: (B, 21, 3) driving keypoints x_d.
        kp_source: (B, 21, 3) source keypoints x_s.
        """
        check_shape(feature_3d, (None, self.reshape_channel, None, None, None), "feature_3d")
        check_keypoints(kp_driving, self.num_kp, "kp_driving")
        check_keypoints(kp_source, self.num_kp, "kp_source")
        dense = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        warped = F.grid_sample(feature_3d, dense["deformation"], align_corners=False)
        b, c, d, h, w = warped.shape
        out = self.fourth(self.third(warped.view(b, c * d, h, w)))
        occlusion = dense.get("occlusion_map")
        if occlusion is not None:
            out = out * occlusion
        return WarpingOutput(occlusion_map=occlusion, deformation=dense["deformation"], out=out)
