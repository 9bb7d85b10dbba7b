"""``portrait-animate doctor``: the versions, CPU, thread settings, weights and tools found,
which is what a bug report needs."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
from importlib import metadata
from pathlib import Path

from .options import add_weights_option

__all__ = ["configure"]

PACKAGES = ("portrait-animate", "torch", "mediapipe", "numpy", "opencv-contrib-python",
            "scikit-image", "imageio-ffmpeg", "pillow", "pillow-heif", "gradio")
#: The CPU features the engines' speed depends on (AVX-512 BF16 and AMX: bf16-fast).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

Row = tuple[str, str]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Print the versions, the CPU, the thread settings, the weights' status "
                          "and whether ffmpeg and chromium are found: what a bug report needs.")
    add_weights_option(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    rows = [*_versions(), *_cpu(), *_threads(), *_weights(args.weights_dir), *_tools()]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    return 0


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _versions() -> list[Row]:
    return [("python", f"{platform.python_version()} ({platform.platform()})"),
            *((package, _version(package)) for package in PACKAGES)]


def _cpu() -> list[Row]:
    import torch

    from ..engines.neural.precision import cpu_description

    model, flags = cpu_description()
    has = " ".join(f for f in CPU_FLAGS if f in flags) or "none"
    lacks = " ".join(f for f in CPU_FLAGS if f not in flags) or "none"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cuda = torch.cuda.get_device_name() if torch.cuda.is_available() else "no"
    return [("cpu", model),
            ("cpu cores", f"{os.cpu_count()} ({usable} usable by this process)"),
            ("cpu flags", f"{has}; lacks {lacks}" if flags else "unknown (no /proc/cpuinfo)"),
            ("torch cpu capability", torch.backends.cpu.get_cpu_capability()),
            ("cuda", cuda),
            ("mps", "yes" if torch.backends.mps.is_available() else "no")]


def _threads() -> list[Row]:
    import cv2
    import torch
    from threadpoolctl import threadpool_info

    pools = ", ".join(f"{p['internal_api']} {p['num_threads']} ({_owner(p['filepath'])})"
                      for p in threadpool_info())
    return [("torch threads", f"{torch.get_num_threads()} (inter-op "
                              f"{torch.get_num_interop_threads()})"),
            ("opencv threads", str(cv2.getNumThreads())),
            ("native thread pools", pools or "none loaded"),
            *((name, os.environ.get(name, "unset")) for name in THREAD_VARIABLES)]


def _owner(library: str) -> str:
    """The package that ships a native library (``numpy`` for
    ``site-packages/numpy.libs/libopenblas...so``), else its file name: two packages may each
    load their own OpenBLAS, with its own threads."""
    parts = Path(library).parts
    if "site-packages" in parts[:-2]:
        return parts[parts.index("site-packages") + 1].removesuffix(".libs")
    return Path(library).name


def _weights(weights_dir: str | None) -> list[Row]:
    from ..engines.neural.weights import (
        check_weights_dir,
        liveportrait_dir,
        weights_location,
        weights_problem,
    )

    origin, folder = weights_location(weights_dir)
    problem = weights_problem(weights_dir)
    if not folder.is_dir():
        return [("weights", f"not found ({problem}); the classic engine needs none")]
    return [("weights", f"{liveportrait_dir(folder)} ({origin})"
             + ("" if problem is None else f": {problem}; the classic engine needs none")),
            *((f"weights: {r.name}", f"{r.status}: {r.detail}")
              for r in check_weights_dir(folder))]


def _tools() -> list[Row]:
    import imageio_ffmpeg

    try:
        ffmpeg = (f"{imageio_ffmpeg.get_ffmpeg_exe()} "
                  f"(version {imageio_ffmpeg.get_ffmpeg_version()})")
    except RuntimeError as exc:
        ffmpeg = f"not found ({exc}); reinstall imageio-ffmpeg"
    chromium = shutil.which("chromium") or ("not found; only the app's browser tests need it "
                                            "(`make test` installs it)")
    return [("ffmpeg", ffmpeg), ("chromium", chromium)]
