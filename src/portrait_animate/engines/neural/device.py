"""Device and precision choice (SPEC 1.3, with half precision on CUDA only)."""

from __future__ import annotations

import torch

__all__ = ["select_device", "select_dtype"]


def select_device(force_cpu: bool = False, device_id: int = 0) -> torch.device:
    """CUDA if present, then MPS, then the CPU; ``force_cpu`` forces the CPU."""
    if force_cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device(f"cuda:{device_id}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def select_dtype(device: torch.device, use_half_precision: bool) -> torch.dtype:
    """float16 autocast only when asked for and on CUDA; float32 everywhere else."""
    return torch.float16 if use_half_precision and device.type == "cuda" else torch.float32
