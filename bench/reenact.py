"""Self-reenactment quality of the classic engine against the static baseline, and the
same-person image-driven measure.

For each driving video, frame 0 is the source and the first 100 frames drive it; the ideal
output is the video itself. Printed per video, for the result and for the static baseline
(frame 0 repeated): PSNR and SSIM over whole frames, and landmark NME (mean distance of
MediaPipe's 468 points between output and video frame, over the inter-iris distance).
Runs the production ``animate`` path (crop, composition, stitching, render) with lossless
frames. By default the driving video is cropped exactly like the source (same scale and
offset, both axis-aligned), so source and driver share one crop frame: the relative
composition (SPEC 4.5) adds driving translations in the driver's crop units, so differently
framed crops would measure that mismatch rather than the engine. ``--reference_crops``
runs with the CLI's default crops instead.

Image driving, same person: the source is frame 0, the driver the frame with the widest
mouth, which is also the truth. Relative and absolute driving by that one image are scored
by the mouth, eye and brow landmarks of the result after a 2-D similarity fit to the truth's
(mean distance over the inter-pupil distance), over the same score of the static baseline
(frame 0 itself): a relative result that took the driver's face shape instead of its
expression scores about 1.0x or worse.

    .venv/bin/python bench/reenact.py [--videos ../shared/assets/driving/d0.mp4 ...]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np
from skimage.metrics import structural_similarity

from portrait_animate.engines.classic.anatomy import BROWS, EYES, INNER_LIPS, OUTER_LIPS
from portrait_animate.engines.classic.motion import similarity_fit
from portrait_animate.face.mesh import FaceMesh
from portrait_animate.face.ratios import lip_ratio
from portrait_animate.pipeline.animate import animate
from portrait_animate.pipeline.options import AnimateOptions

REPO = Path(__file__).resolve().parents[1]
FRAMES = 100
#: The lips' contours (not their middle rings, so figures compare with earlier runs), eyes, brows.
EXPRESSION_POINTS = sorted(set(INNER_LIPS) | set(OUTER_LIPS) | set(EYES) | set(BROWS))
MATCHED_CROPS = {"flag_crop_driving_video": True, "scale_crop_driving_video": 2.3,
                 "vy_ratio_crop_driving_video": -0.125, "flag_do_rot": False}


def first_frames(video: Path, dst: Path, n: int) -> list[np.ndarray]:
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(video),
                    "-frames:v", str(n), "-an", "-c:v", "libx264", "-crf", "0",
                    "-pix_fmt", "yuv444p", str(dst)], check=True)
    reader = imageio_ffmpeg.read_frames(str(dst))
    meta = next(reader)
    w, h = meta["size"]
    return [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in reader]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


def nme(mesh: FaceMesh, out: np.ndarray, truth: np.ndarray) -> float:
    a, b = mesh.landmarks(out), mesh.landmarks(truth)
    if a is None or b is None:
        return float("nan")
    return float(np.linalg.norm(a[:468] - b[:468], axis=1).mean()
                 / np.linalg.norm(b[468] - b[473]))


def scores(mesh: FaceMesh, outputs: list[np.ndarray], truth: list[np.ndarray]) -> dict:
    pairs = list(zip(outputs[1:], truth[1:], strict=True))
    return {"psnr": np.mean([psnr(o, t) for o, t in pairs]),
            "ssim": np.mean([structural_similarity(o, t, channel_axis=2) for o, t in pairs]),
            "nme": np.nanmean([nme(mesh, o, t) for o, t in pairs])}


def expression_error(mesh: FaceMesh, out: np.ndarray, truth: np.ndarray) -> float:
    """Mouth, eye and brow landmarks of ``out`` against ``truth`` after a least-squares 2-D
    similarity fit, over the truth's inter-pupil distance."""
    a, b = mesh.landmarks(out), mesh.landmarks(truth)
    if a is None:
        return float("nan")
    ipd = np.linalg.norm(b[468] - b[473])
    a, b = (np.c_[p[EXPRESSION_POINTS], np.zeros(len(EXPRESSION_POINTS))] for p in (a, b))
    scale, R, t = similarity_fit(a, b)
    return float(np.linalg.norm(scale * a @ R + t - b, axis=1).mean() / ipd)


def image_driven(name: str, truth: list[np.ndarray], tmp: Path, mesh: FaceMesh) -> list[float]:
    """Relative and absolute ratios to the static baseline for one video."""
    ratios = [lip_ratio(p) if (p := mesh.landmarks(f)) is not None else -1.0 for f in truth]
    k = int(np.argmax(ratios))
    paths = []
    for tag, frame in (("rest", truth[0]), ("expression", truth[k])):
        paths.append(tmp / f"{name}_{tag}.png")
        cv2.imwrite(str(paths[-1]), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    static = expression_error(mesh, truth[0], truth[k])
    print(f"{name}: image driving by frame {k} (lip ratio {ratios[k]:.3f}), static "
          f"{static:.4f}")
    out = []
    for relative in (True, False):
        result = animate(AnimateOptions(
            source=str(paths[0]), driving=str(paths[1]), output_dir=str(tmp / f"img{relative}"),
            engine="classic", save_frames=True, quiet=True, flag_relative_motion=relative))
        frame = cv2.imread(str(next(result.frames_dir.glob("*.png"))))
        error = expression_error(mesh, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), truth[k])
        out.append(error / static)
        label = "relative" if relative else "absolute"
        print(f"  {label:8} {error:.4f}  x{error / static:.3f} of static")
    return out


def run(video: Path, tmp: Path, mesh: FaceMesh, extra: dict) -> list[float]:
    clip = tmp / f"{video.stem}.mp4"
    truth = first_frames(video, clip, FRAMES)
    source = tmp / f"{video.stem}_0.png"
    cv2.imwrite(str(source), cv2.cvtColor(truth[0], cv2.COLOR_RGB2BGR))
    options = AnimateOptions(source=str(source), driving=str(clip), output_dir=str(tmp / "out"),
                             engine="classic", save_frames=True, quiet=True, **extra)
    result = animate(options)
    outputs = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
               for p in sorted(result.frames_dir.glob("*.png"))]
    ours = scores(mesh, outputs, truth)
    static = scores(mesh, [truth[0]] * len(truth), truth)
    print(f"{video.stem}: {len(outputs)} frames {truth[0].shape[1]}x{truth[0].shape[0]}")
    print(f"  {'':8}{'PSNR dB':>9}{'SSIM':>8}{'NME':>8}")
    for name, s in (("static", static), ("classic", ours)):
        print(f"  {name:8}{s['psnr']:9.2f}{s['ssim']:8.4f}{s['nme']:8.4f}")
    print(f"  classic vs static: PSNR {ours['psnr'] - static['psnr']:+.2f} dB (target >= +2.5), "
          f"NME x{ours['nme'] / static['nme']:.3f} (target <= 0.15)")
    return image_driven(video.stem, truth, tmp, mesh)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = [str(REPO.parent / f"shared/assets/driving/{n}.mp4") for n in ("d0", "d9")]
    parser.add_argument("--videos", nargs="+", default=default)
    parser.add_argument("--reference_crops", action="store_true",
                        help="the CLI's default crops instead of matched ones")
    args = parser.parse_args()
    extra = {} if args.reference_crops else MATCHED_CROPS
    with FaceMesh() as mesh, tempfile.TemporaryDirectory() as tmp:
        image = np.array([run(Path(video), Path(tmp), mesh, extra) for video in args.videos])
    print(f"image driving, same person, over static: relative mean x{image[:, 0].mean():.3f} "
          f"(target <= 0.5, each <= 0.8; worst x{image[:, 0].max():.3f}), absolute mean "
          f"x{image[:, 1].mean():.3f}")


if __name__ == "__main__":
    main()
