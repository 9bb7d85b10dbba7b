"""The neural engine: the LivePortrait networks behind small, typed calls."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ...io.images import check_rgb
from ...models import MotionExtractorOutput, WarpingOutput
from ...models.checks import check_keypoints, check_shape
from ...motion import apply_stitching_delta, bins_to_degrees, rotation_matrix, transform_keypoints
from .acceleration import EXACT, FAST, accelerate
from .config import CHECKPOINTS, build_network
from .device import select_device, select_dtype
from .precision import PathTimings, check_precision, measure_paths, resolve_precision
from .synthetic import is_synthetic
from .weights import load_network, read_network_state_dict, resolve_weights_dir

__all__ = ["KeypointInfo", "LivePortraitNetworks", "image_to_tensor", "tensor_to_image",
           "exact_float32"]


@dataclass
class KeypointInfo:
    """A frame's motion as decoded from M (SPEC 2.3 ``get_kp_info``).

    Attributes:
        pitch, yaw, roll: (B, 1) degrees.
        t: (B, 3) translation.
        exp: (B, 21, 3) expression offsets.
        scale: (B, 1).
        kp: (B, 21, 3) canonical keypoints.
    """

    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    exp: torch.Tensor
    scale: torch.Tensor
    kp: torch.Tensor

    @classmethod
    def from_raw(cls, raw: MotionExtractorOutput) -> KeypointInfo:
        b = raw.kp.shape[0]
        return cls(pitch=bins_to_degrees(raw.pitch), yaw=bins_to_degrees(raw.yaw),
                   roll=bins_to_degrees(raw.roll), t=raw.t, exp=raw.exp.reshape(b, -1, 3),
                   scale=raw.scale, kp=raw.kp.reshape(b, -1, 3))

    @property
    def rotation(self) -> torch.Tensor:
        """(B, 3, 3) rotation for row vectors."""
        return rotation_matrix(self.pitch, self.yaw, self.roll)

    def keypoints(self) -> torch.Tensor:
        """(B, 21, 3) transformed keypoints s * (kp @ R + exp) + t, tz dropped."""
        return transform_keypoints(self.kp, self.rotation, self.exp, self.scale, self.t)


def image_to_tensor(image: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1] (SPEC 2.8 ``prepare_source``)."""
    check_rgb(image)
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device, dtype=torch.float32)
    return (x / 255.0).clamp(0, 1).permute(2, 0, 1)[None]


def tensor_to_image(image: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) in [0, 1] -> (B, H, W, 3) uint8; truncates like the reference, on the
    image's device (a quarter of the bytes to copy back from a GPU)."""
    check_shape(image, (None, 3, None, None), "image")
    x = image.detach().float().permute(0, 2, 3, 1).clamp(0, 1) * 255
    return x.clamp(0, 255).to(torch.uint8).cpu().numpy()


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """TF32 off for cuDNN convolutions and CUDA matmuls while the block runs, then as before.

    PyTorch leaves TF32 on for cuDNN convolutions by default, so "fp32" convolutions on an
    Ampere or newer GPU round their inputs to 10 mantissa bits: the fp32-exact path measured
    54.95 dB against the reference on an H200 with it, 77.9 dB without. The flags do nothing
    on the CPU.
    """
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


class LivePortraitNetworks:
    """F, M, W, G, S, R_lip and R_eyes on one device, in eval mode.

    Build with :meth:`from_pretrained`. Every call runs without autograd; F, M, W and G run
    under float16 autocast when ``dtype`` is float16 (CUDA only), S and the retargeting MLPs
    always in float32. With ``precision`` ``bf16-fast``, W and G are the fast CPU versions
    of :mod:`.acceleration` (float32 in and out). ``synthetic``: the weights are the test
    weights of ``weights synth``, which animate nothing meaningful.
    """

    def __init__(self, networks: dict[str, nn.Module], device: torch.device,
                 dtype: torch.dtype = torch.float32, precision: str = EXACT,
                 synthetic: bool = False) -> None:
        missing = [c.name for c in CHECKPOINTS if c.name not in networks]
        if missing:
            raise ValueError(f"networks missing: {missing}")
        self.networks = networks
        self.device = device
        self.dtype = dtype
        self.precision = precision
        self.synthetic = synthetic
        #: W and G are compiled into CUDA graphs (:meth:`compile` on CUDA): every call must
        #: have one batch shape, which the engine keeps (``NeuralEngine.static_batch``).
        self.cuda_graphs = False

    @classmethod
    def from_pretrained(cls, weights_dir: str | os.PathLike | None = None, *,
                        force_cpu: bool = False, use_half_precision: bool = False,
                        device_id: int = 0,
                        precision: str = EXACT) -> LivePortraitNetworks:
        """Load the published checkpoints (or synthetic ones of the same layout).

        Args:
            weights_dir: folder containing ``liveportrait/`` (or that folder itself); when
                None, ``$PORTRAIT_ANIMATE_WEIGHTS`` when set, else the user cache.
            force_cpu: run on the CPU even when CUDA or MPS is present.
            use_half_precision: float16 autocast for F, M, W and G; honoured on CUDA only,
                with the plain networks, and unless ``fp32-exact`` is asked for by name
                (which is then really float32, TF32 off: :func:`exact_float32`).
            device_id: CUDA device index.
            precision: ``fp32-exact`` (the plain networks: the parity path), ``bf16-fast``
                (CPU only) or ``auto`` (the faster of the two, measured once per CPU and
                library versions: see :func:`~.precision.resolve_precision`).
        """
        folder = resolve_weights_dir(weights_dir)
        device = select_device(force_cpu, device_id)
        check_precision(precision, device)
        networks, cache, synthetic = {}, {}, False
        for checkpoint in CHECKPOINTS:
            state, path = read_network_state_dict(folder, checkpoint, cache)
            synthetic = synthetic or is_synthetic(folder, checkpoint, state)
            network = load_network(build_network(checkpoint), state, path, checkpoint.name)
            networks[checkpoint.name] = network.to(device)
        fast: dict[str, nn.Module] = {}

        def measure() -> PathTimings:
            fast.update(accelerate(networks))
            return measure_paths(networks, fast)

        dtype = select_dtype(device, use_half_precision, precision)
        precision = resolve_precision(precision, device, measure)
        if precision == FAST:
            return cls(fast or accelerate(networks), device, torch.float32, precision,
                       synthetic)
        return cls(networks, device, dtype, precision, synthetic)

    def compile(self) -> None:
        """Wrap W and G in ``torch.compile``; the first frame (and on CUDA, each new batch
        shape) then takes a while longer. On CUDA they are captured into CUDA graphs
        (``mode="reduce-overhead"``), which replay a batch in one launch: W and G are
        launch-bound at small batches (issue 14: 21.6 ms a frame at batch 1 eager fp16,
        13.2 ms compiled with graphs, on an H200). The fast CPU networks are compiled with
        inductor's freezing, which folds their constant weights into prepacked oneDNN ones."""
        graphs = self.device.type == "cuda"  # bf16-fast is CPU-only: no freezing there
        how = ({"mode": "reduce-overhead"} if graphs
               else {"options": {"freezing": True}} if self.precision == FAST else {})
        for name in ("W", "G"):
            self.networks[name] = torch.compile(self.networks[name], **how)
        self.cuda_graphs = graphs

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float16:
            return torch.autocast(device_type=self.device.type, dtype=torch.float16)
        if self.precision == EXACT:
            return exact_float32()
        return contextlib.nullcontext()

    @torch.no_grad()
    def extract_features(self, image: torch.Tensor) -> torch.Tensor:
        """F: (B, 3, 256, 256) -> (B, 32, 16, 64, 64) float32 feature volume f_s."""
        with self._autocast():
            return self.networks["F"](image.to(self.device)).float()

    @torch.no_grad()
    def extract_motion_raw(self, image: torch.Tensor) -> MotionExtractorOutput:
        """M: raw head outputs of a (B, 3, 256, 256) image, as float32."""
        with self._autocast():
            raw = self.networks["M"](image.to(self.device))
        return MotionExtractorOutput(**{k: v.float() for k, v in vars(raw).items()})

    def extract_motion(self, image: torch.Tensor) -> KeypointInfo:
        """M with pose decoded to degrees and keypoints reshaped to (B, 21, 3)."""
        return KeypointInfo.from_raw(self.extract_motion_raw(image))

    @torch.no_grad()
    def warp(self, feature_3d: torch.Tensor, x_s: torch.Tensor,
             x_d: torch.Tensor) -> WarpingOutput:
        """W: warp f_s from x_s (B, 21, 3) to x_d (B, 21, 3)."""
        if self.cuda_graphs:  # a new step: the last replay's outputs are no longer read
            torch.compiler.cudagraph_mark_step_begin()
        with self._autocast():
            out = self.networks["W"](feature_3d, x_d, x_s)
        occ = None if out.occlusion_map is None else out.occlusion_map.float()
        return WarpingOutput(occ, out.deformation.float(), out.out.float())

    @torch.no_grad()
    def decode(self, warped: torch.Tensor) -> torch.Tensor:
        """G: (B, 256, 64, 64) -> (B, 3, 512, 512) image in [0, 1]."""
        with self._autocast():
            return self.networks["G"](warped).float()

    def warp_decode(self, feature_3d: torch.Tensor, x_s: torch.Tensor,
                    x_d: torch.Tensor) -> torch.Tensor:
        """G(W(f_s; x_s, x_d)): (B, 3, 512, 512) in [0, 1]."""
        return self.decode(self.warp(feature_3d, x_s, x_d).out)

    @torch.no_grad()
    def stitching_delta(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """S([x_s, x_d]): (B, 65) keypoint offsets plus a shared (dx, dy)."""
        check_keypoints(x_s, 21, "x_s")
        check_keypoints(x_d, 21, "x_d")
        b = x_s.shape[0]
        return self.networks["S"](torch.cat([x_s.reshape(b, -1), x_d.reshape(b, -1)], dim=1))

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        """x_d moved so that the animated crop lines up with the source (SPEC 2.7)."""
        return apply_stitching_delta(x_d, self.stitching_delta(x_s, x_d))

    @torch.no_grad()
    def _retarget(self, name: str, x_s: torch.Tensor, ratios: torch.Tensor,
                  num_ratios: int) -> torch.Tensor:
        check_keypoints(x_s, 21, "x_s")
        b = x_s.shape[0]
        check_shape(ratios, (b, num_ratios), "ratios")
        inp = torch.cat([x_s.reshape(b, -1), ratios.to(x_s)], dim=1)
        return self.networks[name](inp).reshape(b, 21, 3)

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        """R_eyes: keypoint delta (B, 21, 3) for ratios (B, 3) = [eye0_s, eye1_s, target]."""
        return self._retarget("R_eyes", x_s, ratios, 3)

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        """R_lip: keypoint delta (B, 21, 3) for ratios (B, 2) = [lip_s, target]."""
        return self._retarget("R_lip", x_s, ratios, 2)
