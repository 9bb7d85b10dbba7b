"""Build ``.gpu/``: what ``animate`` needs on the GPU machine besides the checkout.

The GPU machine lent to some sessions (x86-64, CPython 3.12, torch with CUDA, numpy 2,
opencv-python-headless, matplotlib, pillow, rich, safetensors, huggingface-hub, protobuf 5 or
6, absl-py, attrs, flatbuffers, sentencepiece) has no network, no mediapipe, no imageio-ffmpeg
and no ffmpeg, and only the checkout travels to it (64 MiB at most, git-ignored folders
included). This script, run here (it downloads wheels with pip), writes a git-ignored folder
(``.gpu/`` in the repository root by default) with:

- ``site.tar.xz``: a site-packages tree for CPython 3.12 x86-64, to extract and put first on
  ``PYTHONPATH``:

  - mediapipe 0.10.21, trimmed to what :mod:`portrait_animate.face.mesh` loads: the face mesh
    with refined landmarks (``face_landmark_front_cpu`` with ``face_landmark_with_attention``,
    whose 478 points include the irises, so the separate iris model is not needed) and the
    full-range face detector; every other model (hands, pose, holistic, selfie, objectron,
    iris, ...) is left out, the Python modules all kept so that ``import mediapipe`` works;
  - protobuf 4.25 (mediapipe 0.10.21 needs protobuf < 5; first on the path, it takes
    precedence over the machine's own protobuf);
  - imageio-ffmpeg 0.8.1's Python package with the static ffmpeg 4.2.2 of imageio-ffmpeg 0.4.9
    (H.264 decoding, libx264 encoding; 74 MB against 0.8.1's 173 MB), found through
    ``IMAGEIO_FFMPEG_EXE``;
  - what the classic engine and the face mesh's warm-up image import and the machine lacks:
    scipy (only ``scipy.spatial`` and what it imports), scikit-image (only ``skimage.data``'s
    astronaut and what loading it imports), imageio, tifffile, lazy_loader, threadpoolctl.

  numpy is not included: mediapipe 0.10.21 declares numpy < 2, but its bindings run its face
  mesh and face detection with numpy 2.5 (checked with ``animate`` end to end).
- ``inputs/``: the source portrait ``s0.jpg`` and ``d0_512.mp4``, the driving video ``d0.mp4``
  played forwards and backwards (no jump where it wraps) to ``--frames`` frames, centre-cropped
  to a square and scaled to 512x512, H.264 yuv420p at its own frame rate, no audio.

Usage, here (reads ``../shared/assets`` beside the checkout; wheels are cached in
``~/.cache/portrait-animate-gpu-payload``)::

    .venv/bin/python bench/gpu_payload.py [--out .gpu] [--frames 300]

On the GPU machine, from the repository root (Python 3.12's ``data`` filter keeps the
executable bits)::

    mkdir -p /tmp/site && python3 -c "import tarfile; tarfile.open('.gpu/site.tar.xz')\
.extractall('/tmp/site', filter='data')" && export PYTHONPATH=/tmp/site:$PWD/src \
IMAGEIO_FFMPEG_EXE=/tmp/site/imageio_ffmpeg/binaries/ffmpeg-linux64-v4.2.2 && python3 -m \
portrait_animate.cli.main animate -s .gpu/inputs/s0.jpg -d .gpu/inputs/d0_512.mp4 -o \
$OUT/anim --engine classic

The script prints that command, with an import check, for the folder it wrote.
"""

from __future__ import annotations

import argparse
import io
import lzma
import platform
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import imageio_ffmpeg
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT.parent / "shared" / "assets"
CACHE = Path.home() / ".cache" / "portrait-animate-gpu-payload" / "wheels"
#: Where the device command extracts the site tree.
SITE = "/tmp/site"
FFMPEG = "imageio_ffmpeg/binaries/ffmpeg-linux64-v4.2.2"
SIZE = 512
#: x264 quality of the driving video (visually clean, about 0.2 MB a second at 512x512).
DRIVING_CRF = 20
DEVICE_COMMAND_LIMIT = 2000

PIP_TARGET = ["--python-version", "3.12", "--implementation", "cp",
              "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
              "--platform", "manylinux2014_x86_64", "--platform", "manylinux2010_x86_64"]

#: The models (and their graphs) that FaceMesh loads: the mesh with refined landmarks and its
#: own short-range detector, and the full-range detector (model_selection=1).
MEDIAPIPE_MODELS = frozenset({
    "mediapipe/modules/face_landmark/face_landmark_front_cpu.binarypb",
    "mediapipe/modules/face_landmark/face_landmark_with_attention.tflite",
    "mediapipe/modules/face_detection/face_detection_short_range.tflite",
    "mediapipe/modules/face_detection/face_detection_full_range_cpu.binarypb",
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
})
#: scipy's subpackages that ``import scipy.spatial`` loads.
SCIPY_PACKAGES = frozenset({"_lib", "constants", "linalg", "sparse", "spatial", "special"})
#: Parts of those that it does not load (extension modules of several MB).
SCIPY_UNUSED = ("scipy/sparse/linalg/", "scipy/sparse/csgraph/", "scipy/special/cython_special",
                "scipy/linalg/_decomp_interpolative")
#: scikit-image's subpackages that ``skimage.data.astronaut()`` loads.
SKIMAGE_PACKAGES = frozenset({"_shared", "_vendored", "color", "data", "exposure", "io",
                              "util"})
#: Never needed at run time: byte code, C/Cython sources and headers, test suites.
DEV_SUFFIXES = (".pyc", ".pxd", ".pyx", ".pxi", ".h", ".hpp", ".c", ".cpp", ".f", ".f90")
TEST_DIRS = frozenset({"__pycache__", "tests", "test", "testdata"})


def _runtime(name: str) -> bool:
    """Whether a wheel member is needed at run time at all."""
    return not name.endswith(DEV_SUFFIXES) and not TEST_DIRS & set(name.split("/")[:-1])


def _mediapipe(name: str) -> bool:
    if name.startswith("mediapipe/modules/"):
        return name.endswith(".py") or name in MEDIAPIPE_MODELS
    return True


def _scipy(name: str) -> bool:
    parts = name.split("/")
    if parts[0] == "scipy" and len(parts) > 2 and parts[1] not in SCIPY_PACKAGES:
        return False
    name = name.removeprefix("scipy/")
    return not name.startswith(SCIPY_UNUSED) and "/_test_" not in name


def _skimage(name: str) -> bool:
    parts = name.split("/")
    if parts[0] != "skimage" or len(parts) < 3:
        return True
    if parts[1] == "data":
        return name.endswith((".py", ".pyi")) or parts[-1] == "astronaut.png"
    return parts[1] in SKIMAGE_PACKAGES


def _without_ffmpeg(name: str) -> bool:
    return not name.startswith("imageio_ffmpeg/binaries/ffmpeg")


def _only_ffmpeg(name: str) -> bool:
    return name == FFMPEG


def _everything(name: str) -> bool:
    return True


@dataclass(frozen=True)
class Wheel:
    """A pinned wheel and which of its members go into the site tree."""

    name: str
    version: str
    keep: Callable[[str], bool] = _everything

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


WHEELS = (
    Wheel("mediapipe", "0.10.21", _mediapipe),
    Wheel("protobuf", "4.25.9"),
    Wheel("imageio-ffmpeg", "0.8.1", _without_ffmpeg),
    Wheel("imageio-ffmpeg", "0.4.9", _only_ffmpeg),
    Wheel("scipy", "1.17.1", _scipy),
    Wheel("scikit-image", "0.26.0", _skimage),
    Wheel("imageio", "2.38.1"),
    Wheel("tifffile", "2026.3.3"),
    Wheel("lazy-loader", "0.6"),
    Wheel("threadpoolctl", "3.8.0"),
)


def _cached_wheel(wheel: Wheel) -> Path | None:
    prefix = f"{re.sub(r'[-_.]+', '_', wheel.name)}-{wheel.version}-".lower()
    found = sorted(p for p in CACHE.glob("*.whl") if p.name.lower().startswith(prefix))
    return found[0] if found else None


def fetch(wheel: Wheel) -> Path:
    """The wheel's file in the cache, downloaded with pip when missing."""
    path = _cached_wheel(wheel)
    if path is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--only-binary=:all:", *PIP_TARGET, "--dest", str(CACHE),
                        wheel.requirement], check=True)
        path = _cached_wheel(wheel)
        if path is None:
            raise SystemExit(f"pip downloaded no wheel for {wheel.requirement} into {CACHE}")
    return path


def _members(path: Path, keep: Callable[[str], bool]) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
    """The kept files of a wheel as tar entries (their unix modes kept)."""
    with zipfile.ZipFile(path) as archive:
        for entry in archive.infolist():
            name = entry.filename
            if entry.is_dir() or not _runtime(name) or not keep(name):
                continue
            data = archive.read(entry)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            mode = (entry.external_attr >> 16) & 0o777
            info.mode = mode | 0o644 if mode else 0o644
            info.mtime = int(time.mktime((*entry.date_time, 0, 0, -1)))
            yield info, data


def build_site(out: Path) -> dict[str, int]:
    """Write ``out`` (a .tar.xz site tree) from :data:`WHEELS`; return the uncompressed bytes
    kept from each wheel."""
    entries: dict[str, tuple[tarfile.TarInfo, bytes]] = {}
    kept: dict[str, int] = {}
    for wheel in WHEELS:
        path = fetch(wheel)
        kept[path.name] = 0
        for info, data in _members(path, wheel.keep):
            entries[info.name] = (info, data)
            kept[path.name] += info.size
    tmp = out.with_name(out.name + ".partial")
    with tarfile.open(tmp, "w:xz", preset=9 | lzma.PRESET_EXTREME) as tar:
        for name in sorted(entries):
            info, data = entries[name]
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return kept


def check_ffmpeg(site_tar: Path) -> str:
    """Run the payload's ffmpeg (when this machine can): its version line, after checking
    that it decodes H.264 and encodes with libx264."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return "not run (not linux x86-64)"
    with tarfile.open(site_tar) as tar, tempfile.TemporaryDirectory() as tmp:
        source = tar.extractfile(FFMPEG)
        if source is None:
            raise SystemExit(f"{FFMPEG} is missing from {site_tar}")
        exe = Path(tmp) / "ffmpeg"
        exe.write_bytes(source.read())
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
        codecs = subprocess.run([str(exe), "-hide_banner", "-codecs"], capture_output=True,
                                text=True, check=True).stdout
        version = subprocess.run([str(exe), "-version"], capture_output=True, text=True,
                                 check=True).stdout.splitlines()[0]
    h264 = next((line for line in codecs.splitlines() if " h264 " in line), "")
    if not h264.lstrip().startswith("DE") or "libx264" not in h264:
        raise SystemExit(f"the payload's ffmpeg cannot decode H.264 and encode libx264: {h264}")
    return version


def make_driving(src: Path, dst: Path, frames: int) -> float:
    """Write ``dst``: ``src`` played forwards then backwards until ``frames`` frames,
    centre-cropped to a square, scaled to SIZE x SIZE, H.264 yuv420p at ``src``'s frame rate,
    without audio; return that frame rate."""
    reader = imageio_ffmpeg.read_frames(str(src))
    meta = next(reader)
    w, h = meta["size"]
    side = min(w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    interpolation = cv2.INTER_AREA if side >= SIZE else cv2.INTER_CUBIC
    clip = []
    try:
        for buffer in reader:
            frame = np.frombuffer(buffer, dtype=np.uint8).reshape(h, w, 3)
            clip.append(cv2.resize(frame[y0:y0 + side, x0:x0 + side], (SIZE, SIZE),
                                   interpolation=interpolation))
    finally:
        reader.close()
    if not clip:
        raise SystemExit(f"{src} has no frame")
    cycle = list(range(len(clip))) + list(range(len(clip) - 2, 0, -1))
    fps = float(meta["fps"])
    writer = imageio_ffmpeg.write_frames(
        str(dst), (SIZE, SIZE), fps=fps, codec="libx264", quality=None, pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
        output_params=["-crf", str(DRIVING_CRF), "-preset", "slow", "-an"])
    writer.send(None)
    try:
        for i in range(frames):
            writer.send(np.ascontiguousarray(clip[cycle[i % len(cycle)]]))
    finally:
        writer.close()
    return fps


def exclude_from_git(out: Path) -> None:
    """Add ``out`` to ``.git/info/exclude`` when it lies in the checkout and is not there."""
    try:
        rel = out.resolve().relative_to(ROOT)
    except ValueError:
        return
    info = ROOT / ".git" / "info"
    if not info.parent.is_dir():
        return
    exclude = info / "exclude"
    line = f"/{rel.as_posix()}/"
    lines = exclude.read_text().splitlines() if exclude.is_file() else []
    if line not in lines:
        info.mkdir(exist_ok=True)
        exclude.write_text("".join(f"{x}\n" for x in [*lines, line]))


def device_command(out: Path, source: str, driving: str) -> str:
    """The command that sets the payload up on the GPU machine, checks it and runs the
    classic engine once, from the repository root there."""
    try:
        where = PurePosixPath(out.resolve().relative_to(ROOT))
    except ValueError:
        where = PurePosixPath(out.resolve())
    check = ("import numpy, google.protobuf as pb, mediapipe as mp, imageio_ffmpeg as iio, "
             "scipy, skimage, torch; print(numpy.__version__, pb.__version__, mp.__version__, "
             "iio.get_ffmpeg_exe(), torch.__version__, torch.cuda.is_available())")
    return (f"mkdir -p {SITE} && python3 -c \"import tarfile; tarfile.open('{where}/site.tar.xz')"
            f".extractall('{SITE}', filter='data')\" && export PYTHONPATH={SITE}:$PWD/src "
            f"IMAGEIO_FFMPEG_EXE={SITE}/{FFMPEG} && python3 -c '{check}' && "
            f"python3 -m portrait_animate.cli.main animate -s {where}/inputs/{source} "
            f"-d {where}/inputs/{driving} -o $OUT/anim --engine classic")


def _mib(n: int) -> str:
    return f"{n / 2**20:6.2f} MiB"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu",
                        help="folder to write (default: .gpu in the repository root)")
    parser.add_argument("--frames", type=int, default=300,
                        help="frames of the 512x512 driving video (default: 300)")
    parser.add_argument("--source", type=Path, default=ASSETS / "source" / "s0.jpg")
    parser.add_argument("--driving", type=Path, default=ASSETS / "driving" / "d0.mp4")
    args = parser.parse_args()
    if args.frames < 1:
        parser.error("--frames must be at least 1")
    for path in (args.source, args.driving):
        if not path.is_file():
            parser.error(f"{path} not found")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    exclude_from_git(out)

    started = time.perf_counter()
    kept = build_site(out / "site.tar.xz")
    for name, size in kept.items():
        print(f"  {_mib(size)} kept from {name}")
    print(f"site.tar.xz written in {time.perf_counter() - started:.0f} s; "
          f"ffmpeg: {check_ffmpeg(out / 'site.tar.xz')}")

    inputs = out / "inputs"
    if inputs.exists():
        shutil.rmtree(inputs)
    inputs.mkdir()
    shutil.copyfile(args.source, inputs / args.source.name)
    driving = f"{args.driving.stem}_{SIZE}.mp4"
    fps = make_driving(args.driving, inputs / driving, args.frames)
    print(f"{driving}: {args.frames} frames, {SIZE}x{SIZE}, {fps:g} fps")

    total = 0
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        size = path.stat().st_size
        total += size
        print(f"{_mib(size)}  {path.relative_to(out)}")
    print(f"{_mib(total)}  total in {out}")
    command = device_command(out, args.source.name, driving)
    if len(command) > DEVICE_COMMAND_LIMIT:
        print(f"warning: the device command is {len(command)} characters, over "
              f"{DEVICE_COMMAND_LIMIT}", file=sys.stderr)
    print(f"\nDevice command ({len(command)} characters, from the repository root; $OUT is "
          f"the folder that comes back):\n{command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
