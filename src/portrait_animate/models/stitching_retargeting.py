"""S, R_eyes and R_lip: the stitching and retargeting MLPs (SPEC 2.7)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["StitchingRetargetingNetwork", "STITCHING_RETARGETING_PARAMS"]

#: The published hyper-parameters, keyed by the checkpoint's sub-dict names.
STITCHING_RETARGETING_PARAMS: dict[str, dict[str, object]] = {
    "retarget_shoulder": {"input_size": 126, "hidden_sizes": (128, 128, 64), "output_size": 65},
    "retarget_mouth": {"input_size": 65, "hidden_sizes": (128, 128, 64), "output_size": 63},
    "retarget_eye": {"input_size": 66, "hidden_sizes": (256, 256, 128, 128, 64),
                     "output_size": 63},
}


class StitchingRetargetingNetwork(nn.Module):
    """A ReLU MLP; Linear layers sit at ``mlp.0, mlp.2, ...`` like the checkpoints.

    Args:
        input_size: input features.
        hidden_sizes: widths of the hidden layers.
        output_size: output features.
    """

    def __init__(self, input_size: int, hidden_sizes: tuple[int, ...], output_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        layers: list[nn.Module] = []
        widths = [input_size, *hidden_sizes]
        for cin, cout in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(cin, cout), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(widths[-1], output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"input must have shape (B, {self.input_size}), got {tuple(x.shape)}")
        return self.mlp(x)
