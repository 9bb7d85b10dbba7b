"""Milliseconds per neural stage and per animated frame on the CPU: fp32-exact against
bf16-fast, both in one process on the same inputs, repetitions interleaved; then what
``--precision auto`` measures and picks, and ``animate``'s own time per frame.

Runs on the cached synthetic weights (same shapes and cost as the published ones):

    .venv/bin/python bench/neural_cpu.py [--repeats 5] [--compile] [--cli-frames 2 6]

Per animated frame an image source needs M (driving), S, W and G; a video source also F.
The inputs are the parity pair of ../shared/reference when present, else the scikit-image
astronaut driving itself. One-time costs (loading, the first call of each network, and
with --compile the inductor compilation of bf16-fast) are printed apart from the medians.
On a CPU without native bfloat16, bf16-fast runs emulated (or in PyTorch's slow reference
convolution) and is left out unless asked for with ``--paths``.

The command line's time per frame is that of ``animate --engine neural`` (a fresh process
each, the astronaut driven by the driving crop as a still video) on the two frame counts
of ``--cli-frames``: the difference over the extra frames leaves out the start-up (imports,
loading, the source's preparation). Everything else running on the machine slows both
paths alike within a repetition, not across repetitions: the medians are what to compare.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import torch

from portrait_animate.choices import EXACT, FAST
from portrait_animate.engines.neural import (
    LivePortraitNetworks,
    cached_synthetic_weights,
    image_to_tensor,
    tensor_to_image,
)
from portrait_animate.engines.neural.device import CPU_CORES, all_cores
from portrait_animate.engines.neural.precision import (
    bf16_supported,
    choice_cache_path,
    choose_precision,
    cpu_description,
    measure_paths,
    resolve_precision,
)

PARITY_PAIR = Path(__file__).resolve().parents[2] / "shared/reference/parity_s0_d30_{}.png"
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


def cpu_line() -> str:
    model, flags = cpu_description()
    bf16 = sorted(flags & {"avx512f", "avx512_bf16", "amx_bf16", "bf16"})
    return (f"CPU: {model}; {CPU_CORES} cores; flags {', '.join(bf16) or 'no avx512/bf16'}; "
            f"native bfloat16: {'yes' if bf16_supported() else 'no'}; torch {torch.__version__}")


def auto_lines(nets: dict[str, LivePortraitNetworks]) -> list[str]:
    """What auto's micro-benchmark measures here (when both paths are loaded) and what auto
    resolves to: the cached choice, else the one of this measurement, then cached."""
    lines, timings = [], None
    if FAST in nets and EXACT in nets:
        with all_cores():
            timings = measure_paths(nets[EXACT].networks, nets[FAST].networks)
        lines.append("auto's micro-benchmark (G on a 16x16 map, ms per frame's worth, rounds): "
                     f"{EXACT} {[round(t) for t in timings.exact_ms]}, "
                     f"{FAST} {[round(t) for t in timings.fast_ms]} -> "
                     f"{choose_precision(timings)}")
    choice = resolve_precision("auto", torch.device("cpu"),
                               None if timings is None else (lambda: timings))
    lines.append(f"--precision auto here: {choice} (cache {choice_cache_path()})")
    return lines


def still_video(image: np.ndarray, frames: int, path: Path) -> Path:
    png = path.with_suffix(".png")
    cv2.imwrite(str(png), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-loop", "1",
                    "-framerate", "25", "-i", str(png), "-frames:v", str(frames), "-c:v",
                    "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
                   check=True)
    return path


def cli_seconds(driving: Path, precision: str, weights: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "portrait_animate", "animate", "-s",
                    "sample:astronaut", "-d", str(driving), "-o", str(out), "--engine",
                    "neural", "--precision", precision, "--weights_dir", str(weights),
                    "--flag_force_cpu", "--quiet"], check=True)
    return time.perf_counter() - start


def cli_per_frame(paths: list[str], drv_rgb: np.ndarray, weights: Path, counts: list[int],
                  repeats: int) -> dict[str, list[float]]:
    """Seconds per extra frame of ``animate`` per path and repetition, interleaved."""
    seconds: dict[str, list[float]] = {p: [] for p in paths}
    with tempfile.TemporaryDirectory() as tmp:
        videos = [still_video(drv_rgb, n, Path(tmp) / f"drive{n}.mp4") for n in counts]
        for r in range(repeats):
            for path in paths:
                t = [cli_seconds(v, path, weights, Path(tmp) / f"{path}-{r}-{i}")
                     for i, v in enumerate(videos)]
                seconds[path].append((t[1] - t[0]) / (counts[1] - counts[0]))
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile W and G of bf16-fast (inductor, freezing)")
    parser.add_argument("--paths", nargs="+", choices=(EXACT, FAST),
                        help="paths to time (default: both where bfloat16 is native, else "
                             f"{EXACT})")
    parser.add_argument("--cli-frames", nargs=2, type=int, default=[2, 6], metavar=("A", "B"),
                        help="frame counts of the two animate runs (0 0: skip them)")
    parser.add_argument("--cli-repeats", type=int, default=1)
    args = parser.parse_args()
    paths = args.paths or ([EXACT, FAST] if bf16_supported() else [EXACT])

    print(cpu_line())
    if FAST not in paths:
        print(f"{FAST} left out: no native bfloat16 here (--paths {EXACT} {FAST} to time it)")
    src_rgb, drv_rgb, origin = read_pair()
    src, drv = image_to_tensor(src_rgb), image_to_tensor(drv_rgb)
    weights = cached_synthetic_weights()
    once: dict[str, dict[str, float]] = {p: {} for p in paths}
    nets = {}
    for path in paths:
        nets[path], once[path]["load"] = timed(lambda p=path: LivePortraitNetworks.from_pretrained(
            weights, force_cpu=True, precision=p))
        if args.compile and path != EXACT:
            nets[path].compile()
        calls = stage_calls(nets[path], src, drv)  # first calls: primitives, compilation
        once[path]["first calls"] = sum(timed(fn)[1] for fn in calls.values())
    calls = {path: stage_calls(nets[path], src, drv) for path in paths}

    times: dict[str, dict[str, list[float]]] = {p: {s: [] for s in STAGES} for p in paths}
    for _ in range(args.repeats):
        for path in paths:
            for stage in STAGES:
                times[path][stage].append(timed(calls[path][stage])[1])
    ms = {p: {s: statistics.median(v) for s, v in times[p].items()} for p in paths}
    for path in paths:
        ms[path]["frame, image source (M+S+W+G)"] = sum(ms[path][s] for s in "MSWG")
        ms[path]["frame, video source (F+M+S+W+G)"] = sum(ms[path][s] for s in STAGES)

    print(f"threads: {torch.get_num_threads()}, repeats: {args.repeats} (interleaved), "
          f"compile: {args.compile}, inputs: {origin}")
    print(f"{'median ms':<34}" + "".join(f"{p:>12}" for p in paths)
          + (f"{'ratio':>8}" if len(paths) == 2 else ""))
    for row in ms[paths[0]]:
        print(f"{row:<34}" + "".join(f"{ms[p][row]:>12.1f}" for p in paths)
              + (f"{ms[EXACT][row] / ms[FAST][row]:>8.2f}" if len(paths) == 2 else ""))
    if len(paths) == 2:
        print(f"PSNR {FAST} vs {EXACT} frame: "
              f"{psnr(frame(nets[EXACT], src, drv), frame(nets[FAST], src, drv)):.2f} dB")
    print("one-time seconds: " + "; ".join(
        f"{path}: " + ", ".join(f"{k} {v / 1e3:.1f}" for k, v in once[path].items())
        for path in paths))
    print("\n".join(auto_lines(nets)))

    if args.cli_frames[1] > args.cli_frames[0]:
        seconds = cli_per_frame(paths, drv_rgb, weights, args.cli_frames, args.cli_repeats)
        print(f"animate --engine neural, seconds per extra frame ({args.cli_frames[0]} -> "
              f"{args.cli_frames[1]} frames, median of {args.cli_repeats}, interleaved): "
              + ", ".join(f"{p} {statistics.median(s):.2f} {[round(x, 2) for x in s]}"
                          for p, s in seconds.items()))


if __name__ == "__main__":
    main()
