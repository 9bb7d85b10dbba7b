"""Every stage of the networks on one source/driving pair, named as in the parity fixture
table of SYNTHETIC_WEIGHTS.md: the way to prove, or debug, parity with the reference."""

from __future__ import annotations

import numpy as np
import torch

from .engine import LivePortraitNetworks, image_to_tensor, tensor_to_image

__all__ = ["dump_stages", "DEFAULT_EYE_INPUT", "DEFAULT_LIP_INPUT"]

DEFAULT_EYE_INPUT = ((0.30, 0.32, 0.25),)
DEFAULT_LIP_INPUT = ((0.10, 0.40),)


def _motion_stages(nets: LivePortraitNetworks, image: torch.Tensor, who: str) -> dict:
    from .engine import KeypointInfo

    raw = nets.extract_motion_raw(image)
    info = KeypointInfo.from_raw(raw)
    out = {f"M_{who}_raw_{k}": v for k, v in vars(raw).items()}
    out |= {f"M_{who}_deg_{k}": getattr(info, k) for k in ("pitch", "yaw", "roll")}
    out[f"R_{who}"] = info.rotation
    out[f"x_{who}"] = info.keypoints()
    return out


def dump_stages(nets: LivePortraitNetworks, src_rgb: np.ndarray, drv_rgb: np.ndarray,
                eye_input: tuple = DEFAULT_EYE_INPUT,
                lip_input: tuple = DEFAULT_LIP_INPUT) -> dict[str, np.ndarray]:
    """Run F, M, S, R_eyes, R_lip, W and G on two 256x256x3 uint8 RGB images.

    Returns:
        Arrays named like the fixture keys: float32 stages, ``G_image_uint8`` (512, 512, 3).
    """
    for name, img in (("src_rgb", src_rgb), ("drv_rgb", drv_rgb)):
        if img.shape != (256, 256, 3) or img.dtype != np.uint8:
            raise ValueError(f"{name} must be (256, 256, 3) uint8, got {img.shape} {img.dtype}")
    src = image_to_tensor(src_rgb, nets.device)
    drv = image_to_tensor(drv_rgb, nets.device)
    stages: dict[str, torch.Tensor] = {"F_feature_3d": nets.extract_features(src)}
    stages |= _motion_stages(nets, src, "src")
    stages |= _motion_stages(nets, drv, "drv")
    x_s, x_d = stages["x_src"], stages["x_drv"]
    stages["S_stitched_x_d"] = nets.stitch(x_s, x_d)
    eye = torch.tensor(eye_input, dtype=torch.float32, device=nets.device)
    lip = torch.tensor(lip_input, dtype=torch.float32, device=nets.device)
    stages["R_eye_input"], stages["R_eye_delta"] = eye, nets.retarget_eyes(x_s, eye)
    stages["R_lip_input"], stages["R_lip_delta"] = lip, nets.retarget_lip(x_s, lip)
    warped = nets.warp(stages["F_feature_3d"], x_s, stages["S_stitched_x_d"])
    stages["W_occlusion_map"] = warped.occlusion_map
    stages["W_deformation"] = warped.deformation
    stages["W_out"] = warped.out
    stages["G_image"] = nets.decode(warped.out)
    out = {"src_rgb": src_rgb, "drv_rgb": drv_rgb}
    out |= {k: v.detach().float().cpu().numpy() for k, v in stages.items()}
    out["G_image_uint8"] = tensor_to_image(stages["G_image"])[0]
    return out
