"""``live`` under a paced camera: fps, latency, dropped frames, peak memory, and the One-Euro
filter's effect on jitter and lag.

1. A 640x480, 30 fps "camera": ``d0.mp4`` scaled and padded, looped to ``--seconds`` (60),
   played in real time by ``live`` (classic engine, the astronaut, no window) in a fresh
   process; its stats and peak RSS are printed. Targets: >= 30 fps with <= 5% dropped, p95
   latency <= 60 ms.
2. Jitter: a still driver (d0's frame 0 with sigma=3 noise, H.264, 60 frames) through a live
   session with ``--live_smooth 0`` and the default; printed: the mean acceleration of the
   landmarks the engine renders to, in inter-pupil distances (target: the filter halves it).
3. Lag: d0's talking frames through both; the delay of the filtered mouth opening behind the
   unfiltered one, by cross-correlation (target <= 1 frame).

    .venv/bin/python bench/live.py [--seconds 60] [--neural 10]

``--neural S`` also runs the neural engine (synthetic weights) live for S seconds, to say how
many frames it drops on this machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from jitter import Recorder, read_video
from memory import peak_rss_mib

REPO = Path(__file__).resolve().parents[1]
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
FPS = 30.0


def camera_video(src: Path, dst: Path, seconds: float) -> Path:
    """``src`` as a 640x480 camera at 30 fps, looped to ``seconds``."""
    vf = "scale=-2:480,crop=min(iw\\,640):480,pad=640:480:(ow-iw)/2:0,fps=30"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src),
                    "-vf", vf, "-t", str(seconds), "-an", "-c:v", "libx264", "-crf", "18",
                    "-pix_fmt", "yuv420p", str(dst)], check=True)
    return dst


def child(camera: str, seconds: str, engine: str) -> None:
    from portrait_animate.live.options import LiveOptions
    from portrait_animate.live.run import run_live
    from portrait_animate.pipeline.options import AnimateOptions

    options = AnimateOptions(source="sample:astronaut", driving="", engine=engine, quiet=True)
    if engine == "neural":
        from portrait_animate.engines.neural import cached_synthetic_weights

        options.weights_dir = str(cached_synthetic_weights())
    stats = run_live(LiveOptions(animate=options, camera=camera, window=False,
                                 max_seconds=float(seconds)))
    peak = peak_rss_mib()
    print(json.dumps({**asdict(stats), "peak_mib": peak}))


def paced(camera: Path, seconds: float, engine: str) -> None:
    run = subprocess.run([sys.executable, __file__, "--child", str(camera), str(seconds),
                          engine], capture_output=True, text=True, check=True)
    s = json.loads(run.stdout.strip().splitlines()[-1])
    dropped = s["frames_dropped"] / max(s["frames_in"], 1)
    print(f"{engine}, {seconds:g} s of a 640x480 {s['camera_fps']:g} fps camera: "
          f"{s['fps']:.1f} fps, {s['frames_dropped']} of {s['frames_in']} dropped "
          f"({dropped:.1%}), latency p50 {s['latency_ms_p50']:.0f} ms, p95 "
          f"{s['latency_ms_p95']:.0f} ms, render {s['render_latency_ms']:.1f} ms, "
          f"peak RSS {s['peak_mib']:.0f} MiB")
    if engine == "classic":
        keeps_up = s["fps"] >= 0.98 * s["camera_fps"]  # it cannot render more than arrive
        print(f"  targets: >= 30 fps, the camera's rate ({'ok' if keeps_up else 'MISSED'}), "
              f"<= 5% dropped "
              f"({'ok' if dropped <= 0.05 else 'MISSED'}), p95 <= 60 ms "
              f"({'ok' if s['latency_ms_p95'] <= 60 else 'MISSED'})")


def targets(frames: list[np.ndarray], smooth: float) -> np.ndarray:
    """(T, 478, 3) landmarks the classic engine renders to for ``frames`` at 30 fps."""
    from portrait_animate.engines.classic import ClassicEngine
    from portrait_animate.face.mesh import FaceMesh
    from portrait_animate.live.session import LiveSession, prepare_live_source
    from portrait_animate.pipeline.options import AnimateOptions
    from portrait_animate.pipeline.progress import Reporter

    options = AnimateOptions(source="sample:astronaut", driving="", engine="classic")
    engine = Recorder(ClassicEngine())
    with FaceMesh() as mesh:
        source = prepare_live_source(options, engine, mesh, Reporter(quiet=True))
        session = LiveSession(engine, options, source, mesh, smooth)
        engine.targets.clear()  # the rest frame
        for i, frame in enumerate(frames):
            session.process(frame, i / FPS)
    x = np.stack(engine.targets)
    return x / np.linalg.norm(x[:, 468, :2] - x[:, 473, :2], axis=1).mean()


def lag(a: np.ndarray, b: np.ndarray) -> float:
    """Frames by which ``b`` trails ``a`` (cross-correlation peak, parabolic sub-frame)."""
    a, b = a - a.mean(), b - b.mean()
    shifts = np.arange(-5, 6)
    corr = np.array([np.dot(a[max(0, -k):len(a) - max(0, k)], b[max(0, k):len(b) - max(0, -k)])
                     for k in shifts])
    i = int(np.argmax(corr))
    if 0 < i < len(corr) - 1:
        y0, y1, y2 = corr[i - 1:i + 2]
        return float(shifts[i] + 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2))
    return float(shifts[i])


def filter_effect(driving: Path, tmp: Path) -> None:
    from portrait_animate.live.options import LiveOptions

    default = LiveOptions.live_smooth
    first = read_video(camera_video(driving, tmp / "first.mp4", 1 / FPS))[0]
    rng = np.random.default_rng(0)
    noisy = [np.clip(first + rng.normal(0, 3, first.shape), 0, 255).astype(np.uint8)
             for _ in range(60)]
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s",
                    "640x480", "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-pix_fmt",
                    "yuv420p", str(tmp / "still.mp4")],
                   input=b"".join(f.tobytes() for f in noisy), check=True)
    still = read_video(tmp / "still.mp4")
    talk = read_video(camera_video(driving, tmp / "talk.mp4", 2.6))
    accel, mouth = {}, {}
    for smooth in (0.0, default):
        x = targets(still, smooth)[:, :468, :2]
        accel[smooth] = float(np.linalg.norm(np.diff(x, 2, axis=0), axis=-1).mean())
        y = targets(talk, smooth)
        mouth[smooth] = np.linalg.norm(y[:, 13, :2] - y[:, 14, :2], axis=1)
    print(f"still driver ({len(still)} frames, sigma=3 noise, H.264): landmark acceleration "
          f"{accel[0.0]:.5f} IOD/frame^2 unfiltered, {accel[default]:.5f} with --live_smooth "
          f"{default:g}: x{accel[default] / accel[0.0]:.2f} (target <= 0.5)")
    print(f"talking driver ({len(talk)} frames): the filtered mouth opening trails by "
          f"{lag(mouth[0.0], mouth[default]):.2f} frames (target <= 1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driving", default=str(REPO.parent / "shared/assets/driving/d0.mp4"))
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--neural", type=float, default=0.0)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        camera = camera_video(Path(args.driving), Path(tmp) / "camera.mp4", args.seconds)
        paced(camera, args.seconds, "classic")
        if args.neural:
            paced(camera, args.neural, "neural")
        filter_effect(Path(args.driving), Path(tmp))


if __name__ == "__main__":
    main()
