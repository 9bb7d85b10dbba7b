"""Latency of one slider tick in the app's image-editing panel, per engine.

The app caches the per-image work (detection, crop, motion, appearance features, paste-back
mask), so a tick only decides keypoints, renders and pastes back. The baseline, run in the
same process on the same image and sliders, redoes the per-image work on every tick, as the
reference app does.

    .venv/bin/python bench/app_ticks.py [--image PATH] [--ticks 5] [--engines classic neural]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from portrait_animate.app import AppBackend, AppLimits
from portrait_animate.engines.neural import cached_synthetic_weights
from portrait_animate.io.images import read_image_rgb, write_image_rgb
from portrait_animate.motion.editing import EditParams
from portrait_animate.pipeline.options import AnimateOptions
from portrait_animate.pipeline.retargeting import prepare_editable_image, render_edit


def ticks(n: int) -> list[EditParams]:
    return [EditParams(smile=0.1 * (i + 1), yaw=2.0 * i, lip_open=5.0 * i) for i in range(n)]


def cached_ms(backend: AppBackend, image: str, engine: str, n: int) -> tuple[float, float]:
    """(first call incl. the per-image work, median of the following ticks), in ms."""
    start = time.perf_counter()
    backend.edit(image, EditParams(), engine=engine)
    first = (time.perf_counter() - start) * 1000
    return first, statistics.median(backend.edit(image, p, engine=engine).render_ms
                                    for p in ticks(n))


def uncached_ms(backend: AppBackend, image: str, engine: str, n: int) -> float:
    model = backend.engines.get(engine)
    times = []
    for p in ticks(n):
        start = time.perf_counter()
        render_edit(model, prepare_editable_image(image, model), p)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="sample:astronaut")
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--engines", nargs="+", default=["classic", "neural"])
    parser.add_argument("--precision", default="auto", help="the neural engine's --precision")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="app-ticks-"))
    image = str(work / "source.png")
    write_image_rgb(image, read_image_rgb(args.image))
    base = AnimateOptions(source="", driving="", quiet=True, precision=args.precision,
                          weights_dir=str(cached_synthetic_weights()))
    backend = AppBackend(base, AppLimits(), work)
    print(f"image {args.image}, {args.ticks} ticks per engine (median ms), neural precision "
          f"{args.precision}")
    print(f"{'engine':8} {'first':>8} {'tick':>8} {'uncached':>9} {'ratio':>6}")
    for engine in args.engines:
        first, tick = cached_ms(backend, image, engine, args.ticks)
        baseline = uncached_ms(backend, image, engine, args.ticks)
        print(f"{engine:8} {first:8.0f} {tick:8.1f} {baseline:9.1f} {baseline / tick:6.2f}")


if __name__ == "__main__":
    main()
