"""Jitter of the classic engine's motion, with and without ``--driving_smooth``.

Self-reenactment (as in ``reenact.py``): frame 0 of each driving video is the source, its
first 100 frames drive it, and the video itself is the truth. MediaPipe's 468 landmarks are
taken on every result frame and every truth frame, in the track's mean inter-iris distance
(IOD; one scale per track, since a per-frame IOD turns its own noise into motion), and printed
for ``--driving_smooth 0`` (the reference's path, anchored at the first frame as
self-reenactment needs) and the default:

- jitter ratio: the result's mean landmark acceleration (second difference) over the truth's
  (ideal <= 1: no more shake than the real video);
- velocity error: mean distance between the result's and the truth's landmark velocities;
- NME and PSNR against the truth (they must not get worse by more than 2%), and NME with
  one offset, the same in every frame, taken out (:func:`offset_free_nme`).

Moving video source: the first 100 frames of s13 (a dancer filmed at a doubled frame rate, so
her head steps every other frame) driven by the d19 image (an open mouth) in relative motion:
the result's jitter against the source video's own, and how far its upper face (eye corners,
nose) lies from the source's, in IOD; beside the default, a baseline that warps from the
smoothed landmarks (how the source was warped before the warp took each frame's own).

Still driver: frame 0 of the first video repeated 60 times with sigma=3 camera noise,
H.264-encoded, drives that same frame. Printed: the result's mean landmark motion per frame
over the driver's raw landmarks' (target <= 0.3x). The result's landmarks are those the
engine renders the face to (the warp puts the source's landmarks exactly there): MediaPipe on
the result video, printed beside them, has a floor of its own (it moves about 0.0018 IOD per
frame on one image with sigma=0.5 noise) above the still driver's whole motion.

    .venv/bin/python bench/jitter.py [--videos ../shared/assets/driving/d0.mp4 ...]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

import cv2
import imageio_ffmpeg
import numpy as np
import torch

from portrait_animate.engines.base import Engine, RenderItem
from portrait_animate.engines.classic import ClassicEngine
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions
from portrait_animate.pipeline.source import SourceFrame
from reenact import FRAMES, MATCHED_CROPS, first_frames, psnr

REPO = Path(__file__).resolve().parents[1]
STILL_FRAMES = 60
DEFAULT = AnimateOptions.__dataclass_fields__["driving_smooth"].default


def pixel_track(mesh: FaceMesh, frames: list[np.ndarray]) -> np.ndarray:
    """(T, 478, 2) landmarks in pixels, a frame without a face borrowing the previous one's."""
    out, last = [], None
    for frame in frames:
        points = mesh.landmarks(frame)
        last = points if points is not None else last
        out.append(last)
    first = next(p for p in out if p is not None)
    return np.stack([first if p is None else p for p in out])


def mean_iod(track: np.ndarray) -> float:
    return float(np.linalg.norm(track[:, 468] - track[:, 473], axis=1).mean())


def landmarks(mesh: FaceMesh, frames: list[np.ndarray]) -> np.ndarray:
    """(T, 468, 2) landmarks in the track's mean IOD (one scale for the whole track: a
    per-frame IOD would turn its own noise into motion)."""
    track = pixel_track(mesh, frames)
    return track[:, :468] / mean_iod(track)


def motion(track: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(track, axis=0), axis=-1).mean())


def acceleration(track: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(track, 2, axis=0), axis=-1).mean())


def offset_free_nme(ours: np.ndarray, real: np.ndarray) -> float:
    """NME with one offset vector, the same for every frame, taken out: the face mesh's
    error on the anchor frame, which is also the source here, is cancelled in every frame by
    unsmoothed relative motion (the anchor's raw landmarks subtracted) and left in by the
    smoothed anchor, which another source would not show."""
    diff = ours - real
    return float(np.linalg.norm(diff - diff.mean(axis=(0, 1)), axis=-1).mean())


def read_video(path: Path) -> list[np.ndarray]:
    reader = imageio_ffmpeg.read_frames(str(path))
    w, h = next(reader)["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]


def render(source: Path, driving: Path, out: Path, smooth: float, video: bool = False,
           engine: Engine | None = None) -> list[np.ndarray]:
    """The result's frames: lossless PNGs, or with ``video`` the H.264 result as users see it."""
    result = animate(AnimateOptions(source=str(source), driving=str(driving),
                                    output_dir=str(out), engine="classic", save_frames=True,
                                    quiet=True, driving_smooth=smooth, driving_anchor="first",
                                    **MATCHED_CROPS), engine=engine)
    if video:
        return read_video(result.output)
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
            for p in sorted(result.frames_dir.glob("*.png"))]


def self_reenactment(video: Path, tmp: Path, mesh: FaceMesh,
                     strengths: list[float]) -> list[dict]:
    clip = tmp / f"{video.stem}.mp4"
    truth = first_frames(video, clip, FRAMES)
    source = tmp / f"{video.stem}_0.png"
    cv2.imwrite(str(source), cv2.cvtColor(truth[0], cv2.COLOR_RGB2BGR))
    real = landmarks(mesh, truth)
    rows = []
    print(f"{video.stem}: {len(truth)} frames; truth acceleration {acceleration(real):.4f} IOD")
    print(f"  {'smooth':>7}{'jitter':>9}{'vel err':>9}{'NME':>8}{'PSNR':>8}")
    for smooth in strengths:
        frames = render(source, clip, tmp / f"{video.stem}_{smooth}", smooth)
        ours = landmarks(mesh, frames)
        row = {"jitter": acceleration(ours) / acceleration(real),
               "velocity": float(np.linalg.norm(np.diff(ours, axis=0) - np.diff(real, axis=0),
                                                axis=-1).mean()),
               "nme": float(np.linalg.norm(ours[1:] - real[1:], axis=-1).mean()),
               "nme_offset": offset_free_nme(ours[1:], real[1:]),
               "psnr": float(np.mean([psnr(o, t) for o, t in zip(frames[1:], truth[1:],
                                                                 strict=True)]))}
        rows.append(row)
        print(f"  {smooth:7.2f}{row['jitter']:9.3f}{row['velocity']:9.4f}{row['nme']:8.4f}"
              f"{row['psnr']:8.2f}")
    off, on = rows[0], rows[strengths.index(DEFAULT)]
    print(f"  default vs 0: jitter x{on['jitter']:.3f} (target <= 1.1), NME "
          f"{on['nme'] / off['nme'] - 1:+.1%} ({on['nme_offset'] / off['nme_offset'] - 1:+.1%} "
          f"without one offset), PSNR {on['psnr'] - off['psnr']:+.2f} dB (neither worse by "
          "more than 2%)")
    return rows


class Recorder:
    """The classic engine, keeping the target landmarks x_d it renders each frame to (the
    result face's landmarks, exactly: the warp puts the source's landmarks there)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.targets: list[np.ndarray] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._engine, name)

    def render(self, appearance: object, x_s: torch.Tensor, x_d: torch.Tensor,
               **kwargs: object) -> np.ndarray:
        self.targets.append(x_d[0].numpy().copy())
        return self._engine.render(appearance, x_s, x_d, **kwargs)

    def render_batch(self, items: list[RenderItem]) -> list[np.ndarray]:
        self.targets.extend(item.x_d[0].numpy().copy() for item in items)
        return self._engine.render_batch(items)


def rendered_motion(targets: list[np.ndarray]) -> float:
    """Mean motion per frame of the rendered landmarks (T, 478, 3), in their IODs."""
    x = np.stack(targets)
    iod = np.linalg.norm(x[:, 468, :2] - x[:, 473, :2], axis=1).mean()
    return motion(x[:, :468, :2] / iod)


def still_driver(video: Path, tmp: Path, mesh: FaceMesh, strengths: list[float]) -> None:
    frame = first_frames(video, tmp / "still_src.mp4", 1)[0]
    source = tmp / "still.png"
    cv2.imwrite(str(source), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    rng = np.random.default_rng(0)
    h, w = frame.shape[:2]
    driving = tmp / "still.mp4"
    encode = subprocess.Popen(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo",
         "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", "25", "-i", "-", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", str(driving)], stdin=subprocess.PIPE)
    for _ in range(STILL_FRAMES):
        noisy = np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8)
        encode.stdin.write(noisy.tobytes())
    encode.stdin.close()
    encode.wait()
    raw = motion(landmarks(mesh, read_video(driving)))
    floor = motion(landmarks(mesh, [np.clip(frame + rng.normal(0, 0.5, frame.shape), 0, 255)
                                    .round().astype(np.uint8) for _ in range(20)]))
    print(f"still driver ({video.stem} frame 0 x{STILL_FRAMES}, sigma=3, H.264): its raw "
          f"landmarks move {raw:.4f} IOD/frame. MediaPipe's own floor: {floor:.4f} IOD/frame "
          "on one image with sigma=0.5 noise")
    print(f"  {'smooth':>7}{'rendered':>10}{'x driver':>10}{'MediaPipe on result':>21}")
    for smooth in strengths:
        engine = Recorder(ClassicEngine())
        shown = motion(landmarks(mesh, render(source, driving, tmp / f"still_{smooth}", smooth,
                                              video=True, engine=engine)))
        ours = rendered_motion(engine.targets)
        print(f"  {smooth:7.2f}{ours:10.4f}{ours / raw:10.3f}{shown:14.4f} x{shown / raw:.3f}")
    print("  target: the rendered face moves <= 0.3x as much as the driver's raw landmarks "
          "(MediaPipe on the result video is shown for context: it cannot see below its floor)")


#: Points of the upper face that no expression moves far: eye corners and the nose's ridge.
UPPER_FACE = [33, 133, 362, 263, 168, 6, 197, 195, 5]


def moving_source(video: Path, driver: Path, tmp: Path, mesh: FaceMesh,
                  strengths: list[float]) -> None:
    clip = tmp / f"{video.stem}_moving.mp4"
    truth = first_frames(video, clip, FRAMES)
    pixels = pixel_track(mesh, truth)
    iod = mean_iod(pixels)  # one scale for both tracks, which are compared point by point
    real = pixels[:, :468] / iod
    print(f"moving video source ({video.stem}, {len(truth)} frames) driven by {driver.name}: "
          f"its acceleration {acceleration(real):.4f} IOD")
    print(f"  {'smooth':>7}  {'warp from':<20}{'jitter':>8}{'upper face off':>16}")
    for smooth in strengths:
        for smoothed in (False, True) if smooth > 0 else (False,):
            out = tmp / f"moving_{smooth}_{smoothed}"
            with contextlib.ExitStack() as stack:
                if smoothed:  # the baseline: the warp starts from the smoothed landmarks
                    stack.enter_context(mock.patch.object(
                        SourceFrame, "warp", lambda self, x_d: (self.x_s, x_d)))
                result = animate(AnimateOptions(
                    source=str(clip), driving=str(driver), output_dir=str(out),
                    engine="classic", save_frames=True, quiet=True, driving_smooth=smooth))
            ours = pixel_track(mesh, [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                                      for p in sorted(result.frames_dir.glob("*.png"))])
            ours = ours[:, :468] / iod
            off = np.linalg.norm(ours[:, UPPER_FACE] - real[:, UPPER_FACE], axis=-1).mean()
            where = "smoothed landmarks" if smoothed else "each frame's own" if smooth else "-"
            print(f"  {smooth:7.2f}  {where:<20}{acceleration(ours) / acceleration(real):8.3f}"
                  f"{off:16.4f}")
    print("  target: jitter 1 (the result moves as the source does)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [str(REPO.parent / f"shared/assets/driving/{n}.mp4") for n in ("d0", "d9")]
    parser.add_argument("--videos", nargs="+", default=default)
    parser.add_argument("--moving", default=str(REPO.parent / "shared/assets/source/s13.mp4"),
                        help="a video source whose head moves")
    parser.add_argument("--moving_driver",
                        default=str(REPO.parent / "shared/assets/driving/d19.jpg"))
    parser.add_argument("--strengths", nargs="+", type=float, default=[],
                        help="--driving_smooth values to try besides 0 and the default")
    args = parser.parse_args()
    strengths = sorted({0.0, DEFAULT, *args.strengths})
    with FaceMesh() as mesh, tempfile.TemporaryDirectory() as tmp:
        for video in args.videos:
            self_reenactment(Path(video), Path(tmp), mesh, strengths)
        still_driver(Path(args.videos[0]), Path(tmp), mesh, strengths)
        moving_source(Path(args.moving), Path(args.moving_driver), Path(tmp), mesh, strengths)


if __name__ == "__main__":
    main()
