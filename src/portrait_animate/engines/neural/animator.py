"""The neural engine behind the pipeline's :class:`~portrait_animate.engines.base.Engine`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ...models.checks import check_shape
from ...motion.model import LIVEPORTRAIT_LAYOUT, Motion
from ..base import RenderItem
from .device import all_cores
from .engine import LivePortraitNetworks, image_to_tensor, tensor_to_image

__all__ = ["NeuralEngine"]

#: Peak GPU bytes per frame of a W + G batch: 35 GB at batch 8 in float32 on an H200
#: (issue 14's measurement); float16 taken as half of it.
GPU_BYTES_PER_FRAME = {False: 4_400_000_000, True: 2_200_000_000}
GPU_MEMORY_SHARE = 0.8
MAX_GPU_BATCH = 16


class NeuralEngine:
    """LivePortrait networks on 256x256 crops; renders 512x512."""

    name = "neural"
    layout = LIVEPORTRAIT_LAYOUT
    renders_full_frame = False
    input_size = 256
    uses_landmarks = False
    max_turn = None  # its generator draws what the source hides

    def __init__(self, networks: LivePortraitNetworks) -> None:
        self.networks = networks
        #: The one batch shape W and G see, under CUDA graphs (:meth:`batch_size` sets it);
        #: None: any.
        self.static_batch: int | None = 1 if networks.cuda_graphs else None
        #: W and G's CUDA stream, made at the first render on CUDA. The pipeline's producer
        #: thread runs M, F and S meanwhile on the default stream, whose every copy back
        #: would otherwise wait for the render in flight.
        self._render_stream: torch.cuda.Stream | None = None

    def _tensor(self, crop: np.ndarray) -> torch.Tensor:
        if not isinstance(crop, np.ndarray) or crop.shape != (256, 256, 3) \
                or crop.dtype != np.uint8:
            got = (f"{crop.shape} {crop.dtype}" if isinstance(crop, np.ndarray)
                   else type(crop).__name__)
            raise ValueError(f"crop must be a (256, 256, 3) uint8 RGB image, got {got}")
        return image_to_tensor(crop, self.networks.device)

    def motion(self, crop: np.ndarray, landmarks: np.ndarray | None = None) -> Motion:
        return self.motion_batch([crop], [landmarks])[0]

    def motion_batch(self, crops: Sequence[np.ndarray],
                     landmarks: Sequence[np.ndarray | None]) -> list[Motion]:
        """M over the crops as one batch (landmarks unused)."""
        if len(crops) != len(landmarks):
            raise ValueError(f"{len(crops)} crops but {len(landmarks)} landmark sets")
        if not crops:
            return []
        with all_cores():
            info = self.networks.extract_motion(torch.cat([self._tensor(c) for c in crops]))
        # each field copied back once for the batch, not once a frame (each copy waits)
        fields = {"scale": info.scale, "R": info.rotation, "exp": info.exp, "t": info.t,
                  "kp": info.kp}
        fields = {name: value.cpu() for name, value in fields.items()}
        return [Motion(**{name: value[i:i + 1].clone() for name, value in fields.items()})
                for i in range(len(crops))]

    def appearance(self, crop: np.ndarray, frame: np.ndarray | None = None,
                   M_c2o: np.ndarray | None = None) -> torch.Tensor:
        return self.appearance_batch([crop], [frame], [M_c2o])[0]

    def appearance_batch(self, crops: Sequence[np.ndarray],
                         frames: Sequence[np.ndarray | None],
                         maps: Sequence[np.ndarray | None]) -> list[torch.Tensor]:
        """F over the crops as one batch: a (1, 32, 16, 64, 64) feature volume each (frames
        and maps unused)."""
        if not len(crops) == len(frames) == len(maps):
            raise ValueError(f"{len(crops)} crops, {len(frames)} frames, {len(maps)} maps")
        if not crops:
            return []
        with all_cores():
            features = self.networks.extract_features(
                torch.cat([self._tensor(c) for c in crops]))
        return [features[i:i + 1] for i in range(len(crops))]

    def render(self, appearance: torch.Tensor, x_s: torch.Tensor, x_d: torch.Tensor,
               driving_crop: np.ndarray | None = None,
               driving_motion: Motion | None = None) -> np.ndarray:
        return self.render_batch([RenderItem(appearance, x_s, x_d)])[0]

    def render_batch(self, items: Sequence[RenderItem]) -> list[np.ndarray]:
        """W and G over the frames as one batch; a shared appearance (an image source's) is
        expanded, not copied. Under CUDA graphs (:attr:`static_batch`) every batch has that
        many frames: longer lists are split, and a short batch is padded with its last
        frame, whose extra renders are dropped."""
        if not items:
            return []
        for item in items:  # shapes only: no GPU tensor is read back to check its values
            check_shape(item.appearance, (1, None, None, None, None), "appearance")
            for name in ("x_s", "x_d"):
                check_shape(getattr(item, name), (1, self.layout.num_kp, 3), name)
        static = self.static_batch
        if static is not None and len(items) != static:
            chunks = [list(items[i:i + static]) for i in range(0, len(items), static)]
            return [image for chunk in chunks
                    for image in self._render(chunk + chunk[-1:] * (static - len(chunk)))
                    [:len(chunk)]]
        return self._render(items)

    def _render(self, items: Sequence[RenderItem]) -> list[np.ndarray]:
        if self.networks.device.type != "cuda":
            return self._render_here(items)
        if self._render_stream is None:
            self._render_stream = torch.cuda.Stream(self.networks.device)
        stream = self._render_stream
        # after the default stream's work (the appearance), and synchronised by the copy back
        stream.wait_stream(torch.cuda.default_stream(stream.device))
        with torch.cuda.stream(stream):
            return self._render_here(items)

    def _render_here(self, items: Sequence[RenderItem]) -> list[np.ndarray]:
        device = self.networks.device
        first = items[0].appearance
        if all(item.appearance is first for item in items):
            feature = first.expand(len(items), *first.shape[1:])
        else:
            feature = torch.cat([item.appearance for item in items])
        x_s = torch.cat([item.x_s for item in items]).to(device)
        x_d = torch.cat([item.x_d for item in items]).to(device)
        with all_cores():
            images = self.networks.warp_decode(feature, x_s, x_d)
        return list(tensor_to_image(images))

    def batch_size(self, requested: int = 0) -> int:
        """``requested``, or 1 on the CPU (a batch does not make a CPU frame cheaper), or as
        many frames as a share of the GPU's free memory holds (at most 16). Under CUDA graphs
        (W and G compiled on CUDA) the size is also fixed as :attr:`static_batch`."""
        size = self._batch_size(requested)
        if self.networks.cuda_graphs:
            self.static_batch = size
        return size

    def close(self) -> None:
        """Nothing to release: the networks are Python's memory, freed with the engine."""

    def _batch_size(self, requested: int) -> int:
        if requested > 0:
            return requested
        device = self.networks.device
        if device.type != "cuda":
            return 1
        free, _ = torch.cuda.mem_get_info(device)
        per_frame = GPU_BYTES_PER_FRAME[self.networks.dtype == torch.float16]
        return max(1, min(MAX_GPU_BATCH, int(GPU_MEMORY_SHARE * free) // per_frame))

    def _keypoints(self, kp: torch.Tensor, name: str) -> torch.Tensor:
        """``kp`` (B, K, 3) on the networks' device; a wrong type or shape is refused naming
        ``name`` (the networks' own checks name their arguments: ``kp_driving``)."""
        check_shape(kp, (None, self.layout.num_kp, 3), name)
        return kp.to(self.networks.device)

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        return self.networks.stitch(self._keypoints(x_s, "x_s"), self._keypoints(x_d, "x_d")).cpu()

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        return self.networks.retarget_eyes(self._keypoints(x_s, "x_s"), ratios).cpu()

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        return self.networks.retarget_lip(self._keypoints(x_s, "x_s"), ratios).cpu()
