"""The neural engine's networks on a GPU: milliseconds per frame of M and of W + G, one frame
at a time against batches, for each numeric path, with peak memory and PSNR against fp32-exact.

Paths: ``fp32-exact`` (TF32 off: :func:`exact_float32`), ``tf32`` (PyTorch's defaults),
``fp16`` (autocast, the reference's default) and ``fp16-compiled`` (W and G under
``torch.compile`` with CUDA graphs, ``mode="reduce-overhead"``, fixed batch shapes). The
table is printed and written as JSON.

It needs only PyTorch and numpy: the synthetic weights (the published shapes and FLOPs, the
fill rule of ``../shared/reference``) are built in memory, so it runs on a bare GPU machine
with this checkout and nothing installed:

    PYTHONPATH=src python3 bench/neural_gpu.py [--batch 8] [--frames 32] [--json gpu.json]

``animate`` end to end also needs MediaPipe (face analysis) and ffmpeg; it is not measured
here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Callable

import numpy as np
import torch

from portrait_animate.engines.neural.config import CHECKPOINTS, build_network
from portrait_animate.engines.neural.engine import LivePortraitNetworks, exact_float32
from portrait_animate.engines.neural.synthetic import synthetic_state_dict

PATHS = ("fp32-exact", "tf32", "fp16", "fp16-compiled")


def networks(device: torch.device, path: str) -> LivePortraitNetworks:
    modules = {}
    for checkpoint in CHECKPOINTS:
        module = build_network(checkpoint)
        module.load_state_dict(synthetic_state_dict(checkpoint))
        modules[checkpoint.name] = module.to(device).eval()
    dtype = torch.float16 if path.startswith("fp16") else torch.float32
    nets = LivePortraitNetworks(modules, device, dtype,
                                "fp32-exact" if path == "fp32-exact" else "auto")
    if path == "fp16-compiled":
        for name in ("W", "G"):
            nets.networks[name] = torch.compile(nets.networks[name], mode="reduce-overhead")
    return nets


def image(batch: int, device: torch.device) -> torch.Tensor:
    """(B, 3, 256, 256) smooth test images in [0, 1]."""
    y, x = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    base = torch.stack([x, y, 0.5 + 0.4 * torch.sin(6 * x * y)])
    return base.expand(batch, -1, -1, -1).contiguous().to(device)


def timed(fn: Callable[[], object], repeats: int) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.float() - b.float()) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def run(path: str, batch: int, frames: int, device: torch.device,
        reference: torch.Tensor | None) -> tuple[dict, torch.Tensor]:
    nets = networks(device, path)
    if path == "tf32":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    guard = exact_float32() if path == "fp32-exact" else contextlib.nullcontext()
    row = {"path": path}
    with guard:
        feature = nets.extract_features(image(1, device))
        x_s = nets.extract_motion(image(1, device)).keypoints()
        gen = torch.Generator(device="cpu").manual_seed(0)
        x_d = x_s + 0.01 * torch.randn(batch, *x_s.shape[1:], generator=gen).to(device)
        for b in (1, batch):
            feats, srcs = feature.expand(b, -1, -1, -1, -1), x_s.expand(b, -1, -1)
            crops = image(b, device)
            for _ in range(3):  # warm-up (and compilation)
                nets.warp_decode(feats, srcs, x_d[:b])
            torch.cuda.reset_peak_memory_stats(device)
            repeats = max(1, frames // b)
            row[f"M_ms_b{b}"] = 1000 * timed(lambda c=crops: nets.extract_motion_raw(c),
                                             repeats) / b
            row[f"WG_ms_b{b}"] = 1000 * timed(
                lambda f=feats, s=srcs, d=x_d[:b]: nets.warp_decode(f, s, d), repeats) / b
            row[f"peak_gib_b{b}"] = torch.cuda.max_memory_allocated(device) / 2**30
        out = nets.warp_decode(feature.expand(batch, -1, -1, -1, -1),
                               x_s.expand(batch, -1, -1), x_d)
    row["psnr_vs_fp32_exact"] = None if reference is None else psnr(out, reference)
    return row, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--json", default="neural_gpu.json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this bench measures the GPU path")
    device = torch.device("cuda:0")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    rows, reference = [], None
    for path in PATHS:
        row, out = run(path, args.batch, args.frames, device, reference)
        reference = out if reference is None else reference
        rows.append(row)
        print(json.dumps(row))
    with open(args.json, "w") as f:
        json.dump({"device": torch.cuda.get_device_name(device), "batch": args.batch,
                   "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
