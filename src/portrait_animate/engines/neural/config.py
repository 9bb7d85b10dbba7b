"""The published LivePortrait hyper-parameters (``models.yaml``, SPEC 1.2) and file layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from ...models import (
    STITCHING_RETARGETING_PARAMS,
    AppearanceFeatureExtractor,
    MotionExtractor,
    SPADEDecoder,
    StitchingRetargetingNetwork,
    WarpingNetwork,
)

__all__ = ["Checkpoint", "CHECKPOINTS", "build_network", "STITCHING_FILE"]

STITCHING_FILE = "liveportrait/retargeting_models/stitching_retargeting_module.pth"


@dataclass(frozen=True)
class Checkpoint:
    """One network's checkpoint.

    Attributes:
        name: short name of the network (``F``, ``M``, ``W``, ``G``, ``S``, ``R_lip``, ``R_eyes``).
        file: path of the ``.pth`` file relative to the weights folder.
        subdict: key of the network's state dict inside the file, or None for a plain file.
        factory: the network class.
        params: its published constructor arguments.
    """

    name: str
    file: str
    subdict: str | None
    factory: type[nn.Module]
    params: dict[str, Any]

    @property
    def fill_prefix(self) -> str:
        """Prefix of the synthetic-weights fill names (SYNTHETIC_WEIGHTS.md)."""
        stem = self.file.rsplit("/", 1)[-1].removesuffix(".pth")
        return f"{stem}/{self.subdict}/" if self.subdict else f"{stem}/"


CHECKPOINTS: tuple[Checkpoint, ...] = (
    Checkpoint("F", "liveportrait/base_models/appearance_feature_extractor.pth", None,
               AppearanceFeatureExtractor,
               {"image_channel": 3, "block_expansion": 64, "num_down_blocks": 2,
                "max_features": 512, "reshape_channel": 32, "reshape_depth": 16,
                "num_resblocks": 6}),
    Checkpoint("M", "liveportrait/base_models/motion_extractor.pth", None, MotionExtractor,
               {"num_kp": 21, "backbone": "convnextv2_tiny"}),
    Checkpoint("W", "liveportrait/base_models/warping_module.pth", None, WarpingNetwork,
               {"num_kp": 21, "block_expansion": 64, "max_features": 512, "num_down_blocks": 2,
                "reshape_channel": 32, "estimate_occlusion_map": True,
                "dense_motion_params": {"block_expansion": 32, "max_features": 1024,
                                        "num_blocks": 5, "reshape_depth": 16, "compress": 4}}),
    Checkpoint("G", "liveportrait/base_models/spade_generator.pth", None, SPADEDecoder,
               {"upscale": 2, "block_expansion": 64, "max_features": 512,
                "num_down_blocks": 2}),
    Checkpoint("S", STITCHING_FILE, "retarget_shoulder", StitchingRetargetingNetwork,
               STITCHING_RETARGETING_PARAMS["retarget_shoulder"]),
    Checkpoint("R_lip", STITCHING_FILE, "retarget_mouth", StitchingRetargetingNetwork,
               STITCHING_RETARGETING_PARAMS["retarget_mouth"]),
    Checkpoint("R_eyes", STITCHING_FILE, "retarget_eye", StitchingRetargetingNetwork,
               STITCHING_RETARGETING_PARAMS["retarget_eye"]),
)


def build_network(checkpoint: Checkpoint) -> nn.Module:
    """Instantiate the network of ``checkpoint`` with its published hyper-parameters."""
    return checkpoint.factory(**checkpoint.params)
