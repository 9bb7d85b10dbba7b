"""Median milliseconds of each neural stage per animated frame, float32 on the CPU.

Runs on the cached synthetic weights (same shapes and cost as the published ones):

    .venv/bin/python bench/neural_cpu.py [--repeats 5]

Per animated frame an image source needs M (driving), S, W and G; a video source also F.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from portrait_animate.engines.neural import LivePortraitNetworks, cached_synthetic_weights


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocator and oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    nets = LivePortraitNetworks.from_pretrained(cached_synthetic_weights(), force_cpu=True,
                                                use_half_precision=False)
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 256, 256, generator=gen)
    f_s = nets.extract_features(image)
    x_s = nets.extract_motion(image).keypoints()
    x_d = x_s + 0.01 * torch.randn(x_s.shape, generator=gen)
    warped = nets.warp(f_s, x_s, x_d).out

    stages = {
        "F": lambda: nets.extract_features(image),
        "M": lambda: nets.extract_motion(image),
        "S": lambda: nets.stitch(x_s, x_d),
        "W": lambda: nets.warp(f_s, x_s, x_d),
        "G": lambda: nets.decode(warped),
    }
    ms = {name: median_ms(fn, args.repeats) for name, fn in stages.items()}
    per_frame_image = ms["M"] + ms["S"] + ms["W"] + ms["G"]
    print(f"threads: {torch.get_num_threads()}, repeats: {args.repeats}, float32, CPU")
    print(f"{'stage':<32}{'median ms':>12}")
    for name, value in ms.items():
        print(f"{name:<32}{value:>12.2f}")
    print(f"{'frame, image source (M+S+W+G)':<32}{per_frame_image:>12.1f}")
    print(f"{'frame, video source (+F)':<32}{per_frame_image + ms['F']:>12.1f}")


if __name__ == "__main__":
    main()
