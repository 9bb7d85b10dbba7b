"""Peak memory of ``animate`` for a 100-frame and a 1,000-frame driving video.

Streaming means only small per-frame motion arrays are held for the whole video, so the two
peaks must differ by less than 20%. Each run is a fresh process driving the scikit-image
astronaut by ``d0.mp4`` looped to length, then (video to video) that looped video driving
itself as the source; RSS is the process's peak (VmHWM: ``ru_maxrss`` would carry a larger
parent's peak across exec).

Each pair runs at the engine's own batch size (1 on the CPU), and once more in chunks of 16
frames (``--batch_size 16``), whose queues hold a few chunks whatever the length. They use the
classic engine; the neural engine needs ~4 s per frame on this CPU
(67 minutes for 1,000 frames), so ``--neural N`` measures it (synthetic weights) on N and 4N
frames instead.

    .venv/bin/python bench/memory.py [--driving ../shared/assets/driving/d0.mp4] [--neural 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio_ffmpeg

REPO = Path(__file__).resolve().parents[1]


def loop_video(src: Path, dst: Path, frames: int) -> Path:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1",
                    "-i", str(src), "-frames:v", str(frames), "-an", "-c:v", "libx264",
                    "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def peak_rss_mib() -> float:
    """This process's peak resident memory since its exec, in MiB (Linux)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def child(source: str, driving: str, out: str, engine: str, batch: str) -> None:
    from portrait_animate.pipeline.animate import animate
    from portrait_animate.pipeline.options import AnimateOptions

    options = AnimateOptions(source=source, driving=driving, output_dir=out,
                             quiet=True, flag_force_cpu=True, engine=engine,
                             batch_size=int(batch))
    if engine == "neural":
        from portrait_animate.engines.neural import cached_synthetic_weights

        options.weights_dir = str(cached_synthetic_weights())
    result = animate(options)
    peak_mib = peak_rss_mib()
    print(json.dumps({"frames": result.n_frames, "peak_mib": peak_mib}))


def measure(source: str, driving: Path, out: Path, engine: str, batch: int) -> dict:
    result = subprocess.run([sys.executable, __file__, "--child", source, str(driving),
                             str(out), engine, str(batch)], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def compare(src: Path, tmp: Path, engine: str, short: int, long: int,
            video_source: bool = False, batch: int = 0) -> None:
    rows = []
    for n in (short, long):
        video = loop_video(src, tmp / f"drive{n}.mp4", n)
        source = str(video) if video_source else "sample:astronaut"
        out = tmp / f"out-{engine}-{n}-{video_source}-{batch}"
        rows.append(measure(source, video, out, engine, batch))
    ratio = rows[1]["peak_mib"] / rows[0]["peak_mib"]
    chunks = f"--batch_size {batch}" if batch else "the engine's batch"
    print(f"engine {engine}, {'video' if video_source else 'image'} source, {chunks}")
    for row in rows:
        print(f"  {row['frames']:>5} frames: peak RSS {row['peak_mib']:8.1f} MiB")
    verdict = "ok" if ratio < 1.2 else "GROWS"
    print(f"  ratio long/short: {ratio:.3f} ({verdict}: must stay below 1.20)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driving", default=str(REPO.parent / "shared/assets/driving/d0.mp4"))
    parser.add_argument("--neural", type=int, default=0,
                        help="also measure the neural engine on N and 4N frames")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        compare(Path(args.driving), Path(tmp), "classic", 100, 1000)
        compare(Path(args.driving), Path(tmp), "classic", 100, 1000, video_source=True)
        # rendered 16 frames at a time: the queues hold a few chunks, whatever the length
        compare(Path(args.driving), Path(tmp), "classic", 100, 1000, batch=16)
        if args.neural:
            compare(Path(args.driving), Path(tmp), "neural", args.neural, 4 * args.neural)


if __name__ == "__main__":
    main()
