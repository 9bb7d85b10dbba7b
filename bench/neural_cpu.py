"""Milliseconds per neural stage and per animated frame on the CPU: fp32-exact against
bf16-fast, both in one process on the same inputs, repetitions interleaved.

Runs on the cached synthetic weights (same shapes and cost as the published ones):

    .venv/bin/python bench/neural_cpu.py [--repeats 5] [--compile]

Per animated frame an image source needs M (driving), S, W and G; a video source also F.
The inputs are the parity pair of ../shared/reference when present, else the scikit-image
astronaut driving itself. One-time costs (loading, the first call of each network, and
with --compile the inductor compilation of bf16-fast) are printed apart from the medians.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from portrait_animate.engines.neural import (
    LivePortraitNetworks,
    cached_synthetic_weights,
    image_to_tensor,
    tensor_to_image,
)

PARITY_PAIR = Path(__file__).resolve().parents[2] / "shared/reference/parity_s0_d30_{}.png"
PATHS = ("fp32-exact", "bf16-fast")
STAGES = ("F", "M", "S", "W", "G")


def read_pair() -> tuple[np.ndarray, np.ndarray, str]:
    """Source and driving 256x256 RGB crops, and where they come from."""
    src, drv = (PARITY_PAIR.with_name(PARITY_PAIR.name.format(k)) for k in ("src", "drv"))
    if src.is_file() and drv.is_file():
        pair = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in (src, drv)]
        return pair[0], pair[1], "parity pair of ../shared"
    from skimage import data

    face = cv2.resize(data.astronaut()[30:230, 140:340], (256, 256))
    return face, np.ascontiguousarray(face[:, ::-1]), "scikit-image astronaut, mirrored"


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1e3


def stage_calls(nets: LivePortraitNetworks, src: torch.Tensor,
                drv: torch.Tensor) -> dict[str, Callable[[], object]]:
    """Each stage on the path's own intermediate results of the same pair."""
    f_s = nets.extract_features(src)
    x_s = nets.extract_motion(src).keypoints()
    x_d = nets.stitch(x_s, nets.extract_motion(drv).keypoints())
    warped = nets.warp(f_s, x_s, x_d).out
    return {"F": lambda: nets.extract_features(src), "M": lambda: nets.extract_motion(drv),
            "S": lambda: nets.stitch(x_s, x_d), "W": lambda: nets.warp(f_s, x_s, x_d),
            "G": lambda: nets.decode(warped)}


def frame(nets: LivePortraitNetworks, src: torch.Tensor, drv: torch.Tensor) -> np.ndarray:
    x_s = nets.extract_motion(src).keypoints()
    x_d = nets.stitch(x_s, nets.extract_motion(drv).keypoints())
    return tensor_to_image(nets.warp_decode(nets.extract_features(src), x_s, x_d))[0]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile W and G of bf16-fast (inductor, freezing)")
    args = parser.parse_args()

    src_rgb, drv_rgb, origin = read_pair()
    src, drv = image_to_tensor(src_rgb), image_to_tensor(drv_rgb)
    weights = cached_synthetic_weights()
    once: dict[str, dict[str, float]] = {p: {} for p in PATHS}
    nets = {}
    for path in PATHS:
        nets[path], once[path]["load"] = timed(lambda p=path: LivePortraitNetworks.from_pretrained(
            weights, force_cpu=True, precision=p))
        if args.compile and path != "fp32-exact":
            nets[path].compile()
        calls = stage_calls(nets[path], src, drv)  # first calls: primitives, compilation
        once[path]["first calls"] = sum(timed(fn)[1] for fn in calls.values())
    calls = {path: stage_calls(nets[path], src, drv) for path in PATHS}

    times: dict[str, dict[str, list[float]]] = {p: {s: [] for s in STAGES} for p in PATHS}
    for _ in range(args.repeats):
        for path in PATHS:
            for stage in STAGES:
                times[path][stage].append(timed(calls[path][stage])[1])
    ms = {p: {s: statistics.median(v) for s, v in times[p].items()} for p in PATHS}
    for path in PATHS:
        ms[path]["frame, image source (M+S+W+G)"] = sum(ms[path][s] for s in "MSWG")
        ms[path]["frame, video source (F+M+S+W+G)"] = sum(ms[path][s] for s in STAGES)

    exact, fast = PATHS
    print(f"threads: {torch.get_num_threads()}, repeats: {args.repeats} (interleaved), "
          f"compile: {args.compile}, inputs: {origin}")
    print(f"{'median ms':<34}{exact:>12}{fast:>12}{'ratio':>8}")
    for row in ms[exact]:
        print(f"{row:<34}{ms[exact][row]:>12.1f}{ms[fast][row]:>12.1f}"
              f"{ms[exact][row] / ms[fast][row]:>8.2f}")
    print(f"PSNR {fast} vs {exact} frame: "
          f"{psnr(frame(nets[exact], src, drv), frame(nets[fast], src, drv)):.2f} dB")
    print("one-time seconds: " + "; ".join(
        f"{path}: " + ", ".join(f"{k} {v / 1e3:.1f}" for k, v in once[path].items())
        for path in PATHS))


if __name__ == "__main__":
    main()
