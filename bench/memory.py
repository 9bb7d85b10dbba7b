"""Peak memory of ``animate`` for a 100-frame and a 1,000-frame driving video.

Streaming means only small per-frame motion arrays are held for the whole video, so the two
peaks must differ by less than 20%. Each run is a fresh process driving the scikit-image
astronaut by ``d0.mp4`` looped to length; RSS is the process's ``ru_maxrss``.

The pipeline (decoding, MediaPipe tracking, cropping, motion composition, paste-back,
encoding, templates) runs as in production; the renderer is a stand-in that resizes the
source crop, because the neural engine needs ~4 s per frame on this CPU (67 minutes for
1,000 frames) and its memory per frame does not depend on the video's length. ``--neural N``
adds the real neural engine (synthetic weights) on N and 4N frames.

    .venv/bin/python bench/memory.py [--driving ../shared/assets/driving/d0.mp4] [--neural 5]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


class ResizeEngine:
    """Renders the source crop unchanged (upscaled); identity motion. Bench-only."""

    name = "resize"

    def __init__(self) -> None:
        from portrait_animate.motion.model import LIVEPORTRAIT_LAYOUT

        self.layout = LIVEPORTRAIT_LAYOUT

    def motion(self, crop: np.ndarray):
        from portrait_animate.motion.model import Motion

        level = float(crop.mean()) / 255
        return Motion(scale=torch.ones(1, 1), R=torch.eye(3)[None],
                      exp=torch.full((1, 21, 3), 0.01 * level), t=torch.zeros(1, 3),
                      kp=torch.linspace(-0.5, 0.5, 63).reshape(1, 21, 3))

    def appearance(self, crop: np.ndarray) -> np.ndarray:
        return crop

    def render(self, appearance: np.ndarray, x_s: torch.Tensor, x_d: torch.Tensor) -> np.ndarray:
        return cv2.resize(appearance, (512, 512))

    def stitch(self, x_s: torch.Tensor, x_d: torch.Tensor) -> torch.Tensor:
        return x_d

    def retarget_eyes(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x_s)

    def retarget_lip(self, x_s: torch.Tensor, ratios: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x_s)


def loop_video(src: Path, dst: Path, frames: int) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1",
                    "-i", str(src), "-frames:v", str(frames), "-an", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def child(driving: str, out: str, engine: str) -> None:
    from portrait_animate.pipeline.animate import animate
    from portrait_animate.pipeline.options import AnimateOptions

    options = AnimateOptions(source="sample:astronaut", driving=driving, output_dir=out,
                             quiet=True, flag_force_cpu=True, engine="neural")
    if engine == "neural":
        from portrait_animate.engines.neural import cached_synthetic_weights

        options.weights_dir = str(cached_synthetic_weights())
        result = animate(options)
    else:
        result = animate(options, engine=ResizeEngine())
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": result.n_frames, "peak_mib": peak_mib}))


def measure(driving: Path, out: Path, engine: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", str(driving), str(out),
                             engine], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(src: Path, tmp: Path, engine: str, short: int, long: int) -> None:
    rows = []
    for n in (short, long):
        video = loop_video(src, tmp / f"drive{n}.mp4", n)
        rows.append(measure(video, tmp / f"out-{engine}-{n}", engine))
    ratio = rows[1]["peak_mib"] / rows[0]["peak_mib"]
    print(f"engine {engine}")
    for row in rows:
        print(f"  {row['frames']:>5} frames: peak RSS {row['peak_mib']:8.1f} MiB")
    verdict = "ok" if ratio < 1.2 else "GROWS"
    print(f"  ratio long/short: {ratio:.3f} ({verdict}: must stay below 1.20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driving", default=str(REPO.parent / "shared/assets/driving/d0.mp4"))
    parser.add_argument("--neural", type=int, default=0,
                        help="also measure the neural engine on N and 4N frames")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        compare(Path(args.driving), Path(tmp), "resize", 100, 1000)
        if args.neural:
            compare(Path(args.driving), Path(tmp), "neural", args.neural, 4 * args.neural)


if __name__ == "__main__":
    main()
