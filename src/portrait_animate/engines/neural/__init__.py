"""The neural engine: LivePortrait networks loaded from the published checkpoint files."""

from .engine import KeypointInfo, LivePortraitNetworks, image_to_tensor, tensor_to_image
from .synthetic import cached_synthetic_weights, write_synthetic_weights
from .weights import check_weights_dir, resolve_weights_dir

__all__ = [
    "KeypointInfo",
    "LivePortraitNetworks",
    "cached_synthetic_weights",
    "check_weights_dir",
    "image_to_tensor",
    "resolve_weights_dir",
    "tensor_to_image",
    "write_synthetic_weights",
]
