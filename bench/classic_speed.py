"""Frames per second of the classic engine and of ``animate`` end to end, at 512x512.

Engine: a 512x512 source driven by a 512x512 video, decoded beforehand; per frame the face
mesh on the driving frame, motion decomposition, relative composition with stitching, and the
full-resolution render (dense warp, eyes, mouth interior). A scattered-data warp (thin-plate
RBF of the landmark displacements on a coarse grid, no mouth or eye handling) runs in the
same process as the baseline.

End to end: ``animate`` from the call to the two encoded mp4s (engine and face-mesh loading,
decoding, face analysis, rendering, concat, the result and concat H.264 encodes), the same
source driven by the video looped to ``--loop_frames`` frames. It runs idle and beside a
competing CPU-bound process that the bench starts (a Python busy loop), alternately,
``--repeats`` times; it prints the medians and the loaded / idle slowdown.

Faces: ``animate --source_faces all`` end to end on a 960x360 group picture of 1, 2 and 3
copies of the source face (the same canvas each time, empty places grey), driven by the
video looped to ``--faces_frames`` frames, interleaved ``--repeats`` times; it prints the
median ms per frame, the ratio to one face and the cost of each added face.

    .venv/bin/python bench/classic_speed.py [--driving ../shared/assets/driving/d0.mp4]
        [--part all|engine|end-to-end|faces]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from scipy.interpolate import RBFInterpolator

from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.motion.composition import DrivingMode, compose_image_source
from portrait_animate.motion.retargeting import RetargetingOptions, finalize_keypoints
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions

REPO = Path(__file__).resolve().parents[1]
SIZE = 512
#: Targets of the end-to-end run: idle fps, and the most a competing process may slow it.
TARGET_FPS = 30.0
TARGET_SLOWDOWN = 2.5


def frames_of(video: Path, n: int) -> list[np.ndarray]:
    reader = imageio_ffmpeg.read_frames(str(video))
    w, h = next(reader)["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for _, b in zip(range(n), reader,
                                                                           strict=False)]
    return [cv2.resize(f, (SIZE, SIZE)) for f in frames]


def classic_fps(engine: ClassicEngine, mesh: FaceMesh, source: np.ndarray,
                frames: list[np.ndarray]) -> tuple[float, dict]:
    steps: dict[str, float] = defaultdict(float)

    def timed(name, fn, *args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        steps[name] += time.perf_counter() - start
        return out

    src_motion = engine.motion(source, mesh.landmarks3d(source))
    x_s = src_motion.keypoints()
    appearance = engine.appearance(source, source, None)
    mode = DrivingMode(relative=True, region="all", driving_is_video=True)
    first = None
    begin = time.perf_counter()
    for frame in frames:
        points = timed("landmarks", mesh.landmarks3d, frame)
        motion = timed("motion", engine.motion, frame, points)
        first = first or motion
        new = timed("composition", compose_image_source, src_motion, motion, first,
                    engine.layout, mode)
        x_d = timed("composition", finalize_keypoints, engine, x_s, new.keypoints(),
                    RetargetingOptions())
        timed("render", engine.render, appearance, x_s, x_d, driving_crop=frame,
              driving_motion=motion)
    total = time.perf_counter() - begin
    return len(frames) / total, {k: 1e3 * v / len(frames) for k, v in steps.items()}


def rbf_fps(mesh: FaceMesh, source: np.ndarray, frames: list[np.ndarray]) -> float:
    """The baseline: thin-plate RBF of the landmark displacements, 32 px grid, one remap."""
    src = mesh.landmarks3d(source)[:468, :2]
    gy, gx = np.mgrid[0:SIZE:32, 0:SIZE:32]
    grid = np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float64)
    border = np.unique([[x, y] for x in (0, SIZE - 1) for y in range(0, SIZE, 64)]
                       + [[x, y] for y in (0, SIZE - 1) for x in range(0, SIZE, 64)],
                       axis=0).astype(float)  # (0, 0) is in both lists: RBF needs it once
    begin = time.perf_counter()
    for frame in frames:
        dst = mesh.landmarks3d(frame)[:468, :2]
        points = np.concatenate([dst[::4], border])
        values = np.concatenate([(src - dst)[::4], np.zeros_like(border)])
        field = RBFInterpolator(points, values, kernel="thin_plate_spline")(grid)
        field = cv2.resize(field.reshape(*gx.shape, 2).astype(np.float32), (SIZE, SIZE))
        xs, ys = np.meshgrid(np.arange(SIZE, dtype=np.float32), np.arange(SIZE, dtype=np.float32))
        cv2.remap(source, xs + field[..., 0], ys + field[..., 1], cv2.INTER_LINEAR)
    return len(frames) / (time.perf_counter() - begin)


def looped(video: Path, dst: Path, frames: int) -> Path:
    """``video`` at 512x512, looped to ``frames`` frames (H.264, x264's default preset)."""
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1",
                    "-i", str(video), "-frames:v", str(frames), "-an", "-vf",
                    f"scale={SIZE}:{SIZE}", "-c:v", "libx264", "-crf", "18", "-pix_fmt",
                    "yuv420p", str(dst)], check=True)
    return dst


def animate_fps(source: Path, driving: Path, out: Path, faces: str = "largest") -> float:
    begin = time.perf_counter()
    result = animate(AnimateOptions(source=str(source), driving=str(driving),
                                    output_dir=str(out), engine="classic", quiet=True,
                                    source_faces=faces))
    return result.n_frames / (time.perf_counter() - begin)


def busy_loop() -> subprocess.Popen:
    """A competing CPU-bound process (one core's worth)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def end_to_end(source: np.ndarray, driving: Path, frames: int,
               repeats: int) -> tuple[list[float], list[float]]:
    """fps of ``animate`` idle and loaded, alternately ``repeats`` times each."""
    idle, loaded = [], []
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "source.png"
        cv2.imwrite(str(src), cv2.cvtColor(source, cv2.COLOR_RGB2BGR))
        video = looped(driving, Path(tmp) / "driving.mp4", frames)
        for _ in range(repeats):
            idle.append(animate_fps(src, video, Path(tmp) / "out"))
            competitor = busy_loop()
            try:
                loaded.append(animate_fps(src, video, Path(tmp) / "out"))
            finally:
                competitor.kill()
                competitor.wait()
    return idle, loaded


def faces_scaling(source: np.ndarray, driving: Path, frames: int,
                  repeats: int) -> dict[int, list[float]]:
    """ms per frame of ``animate --source_faces all`` with 1, 2 and 3 faces, interleaved."""
    tile = cv2.resize(source, (300, 300), interpolation=cv2.INTER_AREA)
    ms: dict[int, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        video = looped(driving, Path(tmp) / "driving.mp4", frames)
        pictures = {}
        for n in (1, 2, 3):
            canvas = np.full((360, 960, 3), 200, np.uint8)
            for k in range(n):
                canvas[30:330, 10 + 320 * k:310 + 320 * k] = tile
            pictures[n] = Path(tmp) / f"group{n}.png"
            cv2.imwrite(str(pictures[n]), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        for _ in range(repeats):
            for n, picture in pictures.items():
                ms[n].append(1e3 / animate_fps(picture, video, Path(tmp) / "out", "all"))
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--driving", default=str(REPO.parent / "shared/assets/driving/d0.mp4"))
    parser.add_argument("--frames", type=int, default=75, help="engine frames")
    parser.add_argument("--loop_frames", type=int, default=300, help="end-to-end frames")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs of each kind")
    parser.add_argument("--faces_frames", type=int, default=100,
                        help="frames of each run with 1, 2 and 3 faces")
    parser.add_argument("--part", choices=("all", "engine", "end-to-end", "faces"),
                        default="all", help="run one part only")
    args = parser.parse_args()
    frames = frames_of(Path(args.driving), args.frames)
    source = frames[0]
    print(f"{SIZE}x{SIZE} source, {os.cpu_count()} cores")
    if args.part in ("all", "engine"):
        # the face mesh animate runs on the driving frames (the engine's own is made only for
        # a crop that comes without its landmarks)
        engine = ClassicEngine()
        with FaceMesh(max_faces=1) as mesh:
            classic_fps(engine, mesh, source, frames[:5])  # warm-up
            fps, steps = classic_fps(engine, mesh, source, frames)
            baseline = rbf_fps(mesh, source, frames)
        engine.close()
        print(f"classic engine, {len(frames)} frames: {fps:7.1f} fps   "
              f"({1e3 / fps:.1f} ms/frame)")
        for name, ms in sorted(steps.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<16}{ms:7.2f} ms")
        print(f"RBF warp baseline   {baseline:7.1f} fps   classic / baseline = "
              f"{fps / baseline:.2f}")

    if args.part in ("all", "end-to-end"):
        idle, loaded = end_to_end(source, Path(args.driving), args.loop_frames, args.repeats)
        idle_fps, loaded_fps = statistics.median(idle), statistics.median(loaded)
        print(f"animate end to end, {args.loop_frames} frames (load, decode, face analysis, "
              "render, concat, two H.264 encodes), median of "
              f"{args.repeats}:")
        print(f"  idle              {idle_fps:7.1f} fps   (target >= {TARGET_FPS:.0f})   runs "
              + " ".join(f"{v:.1f}" for v in idle))
        print(f"  one busy process  {loaded_fps:7.1f} fps   runs "
              + " ".join(f"{v:.1f}" for v in loaded))
        print(f"  slowdown          {idle_fps / loaded_fps:7.2f} x     (target <= "
              f"{TARGET_SLOWDOWN})")

    if args.part in ("all", "faces"):
        ms = faces_scaling(source, Path(args.driving), args.faces_frames, args.repeats)
        one = statistics.median(ms[1])
        print(f"animate --source_faces all, 960x360 group picture, {args.faces_frames} frames, "
              f"median of {args.repeats} (target: at most linear in the faces):")
        for n, runs in ms.items():
            median = statistics.median(runs)
            added = "" if n == 1 else f"   +{(median - one) / (n - 1):.1f} ms per added face"
            faces = f"{n} face{'s' if n > 1 else ' '}"
            print(f"  {faces}  {median:7.1f} ms/frame   x{median / one:.2f} (linear: x{n})"
                  f"{added}   runs " + " ".join(f"{v:.1f}" for v in runs))


if __name__ == "__main__":
    main()
