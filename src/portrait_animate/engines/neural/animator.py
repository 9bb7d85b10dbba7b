"""The neural engine behind the pipeline's :class:`~portrait_animate.engines.base.Engine`."""

from __future__ import annotations

import numpy as np
import torch

from ...motion.model import LIVEPORTRAIT_LAYOUT, Motion
from .device import all_cores
from .engine import LivePortraitNetworks, image_to_tensor, tensor_to_image

__all__ = ["NeuralEngine"]


class NeuralEngine:
    """LivePortrait networks on 256x256 crops; renders 512x512."""

    name = "neural"
    layout = LIVEPORTRAIT_LAYOUT
    renders_full_frame = False
    input_size = 256
    uses_landmarks = False

    def __init__(self, networks: LivePortraitNetworks) -> None:
        self.networks = networks

    def _tensor(self, crop: np.ndarray) -> torch.Tensor:
        if crop.shape != (256, 256, 3):
            raise ValueError(f"crop must have shape (256, 256, 3), got {crop.shape}")
        return image_to_tensor(crop, self.networks.device)

    def motion(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> Motion:
        with all_cores():
            info = self.networks.extract_motion(self._tensor(crop))
        return Motion(scale=info.scale.cpu(), R=info.rotation.cpu(), exp=info.exp.cpu(),
                      t=info.t.cpu(), kp=info.kp.cpu())

    def appearance(self, crop: np.ndarray, frame: np.ndarray | None = None,
                   M_c2o: np.ndarray | None = None) -> torch.Tensor:
        with all_cores():
            return self.networks.extract_features(self._tensor(crop))

    def render(self, appearance: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor,
               driving_crop: np.ndarray | None = None,
               driving_motion: Motion | None = None) -> np.ndarray:
        device = self.networks.device
        with all_cores():
            image = self.networks.warp_decode(appearance, x_s.to(device), x_d.to(device))
        return tensor_to_image(image)[0]

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        device = self.networks.device
        return self.networks.stitch(x_s.to(device), x_d.to(device)).cpu()

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        return self.networks.retarget_eyes(x_s.to(self.networks.device), ratios).cpu()

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        return self.networks.retarget_lip(x_s.to(self.networks.device), ratios).cpu()
