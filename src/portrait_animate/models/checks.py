"""Up-front shape checks whose errors name the expected shape."""

from __future__ import annotations

import torch

__all__ = ["check_image_batch", "check_keypoints", "check_shape"]


def check_shape(tensor: torch.Tensor, expected: tuple[int | None, ...], name: str) -> None:
    """Raise ``ValueError`` unless ``tensor`` matches ``expected`` (``None`` = any size)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    ok = tensor.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, tensor.shape, strict=True)
    )
    if not ok:
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {tuple(tensor.shape)}")


def check_image_batch(image: torch.Tensor, channels: int, name: str) -> None:
    """An image batch is (B, C, H, W)."""
    check_shape(image, (None, channels, None, None), name)


def check_keypoints(kp: torch.Tensor, num_kp: int, name: str) -> None:
    """Keypoints are (B, K, 3) row vectors."""
    check_shape(kp, (None, num_kp, 3), name)
