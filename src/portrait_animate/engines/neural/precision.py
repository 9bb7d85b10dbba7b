"""Which numerics the neural engine runs: ``--precision auto`` decided by measurement.

``bf16-fast`` computes fewer multiply-adds than ``fp32-exact``, but in bfloat16, and whether
that wins depends on the CPU's kernels: about 2.1x on an AMD EPYC with AVX512-BF16, slower
than float32 on a 2-core Xeon without AMX. So ``auto`` times both paths once on this CPU (a
second or a few: the decoder G on a small input, interleaved rounds) and keeps the answer
in the user cache, keyed by the CPU, its flags, the thread count and the library versions.
A CPU without native bfloat16 gets ``fp32-exact`` without measuring.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path

import torch

from ...choices import EXACT, FAST, PRECISIONS
from .device import all_cores, core_share
from .weights import cache_root

__all__ = ["BF16_FLAGS", "DECODER_INPUT", "DECODER_PER_FRAME", "MARGIN", "ROUNDS",
           "PathTimings", "bf16_supported", "check_precision", "choice_cache_path",
           "choice_key", "choose_precision", "cpu_description", "measure_paths",
           "resolve_precision"]

logger = logging.getLogger(__name__)

#: CPU flags of native bfloat16 dot products: AVX512-BF16 and AMX-BF16 (x86), BF16 (Arm).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
#: bf16-fast is chosen only when it takes at most 1 / (1 + MARGIN) of fp32-exact's time:
#: the same networks twice measured up to 11% apart (median of three rounds; 15% in one
#: round) on a busy 2-core machine.
MARGIN = 0.20
ROUNDS = 3
#: The micro-benchmark's input, G on a 16x16 map, and how many make a frame's (64x64). G is
#: two thirds of a frame's W + G on both paths and uses the same convolution kernels as W;
#: W's smallest input (32x32) would cost a quarter of a frame's warping per call.
DECODER_INPUT, DECODER_PER_FRAME = (1, 256, 16, 16), 16


@cache
def cpu_description() -> tuple[str, frozenset[str]]:
    """The CPU's model name and feature flags: from /proc/cpuinfo where there is one, else the
    platform's processor name and no flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine(), frozenset()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        if colon:
            fields.setdefault(name.strip(), value.strip())
    model = fields.get("model name") or platform.processor() or platform.machine()
    return model, frozenset((fields.get("flags") or fields.get("Features") or "").split())


def bf16_supported() -> bool:
    """Whether this CPU has native bfloat16 dot products that oneDNN uses.

    PyTorch's check (``_is_mkldnn_bf16_supported``) holds on every AVX512 CPU, where oneDNN
    emulates bfloat16 with float32 instructions, slower than float32 itself; so the CPU's
    flags must also name AVX512-BF16 or AMX-BF16 (BF16 on Arm) when the system lists them.
    """
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False
    flags = cpu_description()[1]
    return not flags or bool(flags & BF16_FLAGS)


def check_precision(precision: str, device: torch.device) -> None:
    """Raises ValueError for an unknown precision or ``bf16-fast`` off the CPU."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == FAST and device.type != "cpu":
        reason = (": bfloat16 on CUDA rendered 26.8 dB against float32 on an H200, where "
                  "float16 keeps 52 dB" if device.type == "cuda" else "")
        raise ValueError(f"precision {FAST} runs on the CPU only, not on {device}{reason}; "
                         f"use auto (float16 on CUDA) or {EXACT}")


@dataclass(frozen=True)
class PathTimings:
    """Each path's milliseconds of G per frame's worth, one per interleaved round."""

    exact_ms: tuple[float, ...]
    fast_ms: tuple[float, ...]


def choose_precision(timings: PathTimings, margin: float = MARGIN) -> str:
    """``bf16-fast`` when it is faster by the margin both by the median over rounds of its
    time over fp32-exact's (measured side by side, so under the same load) and by the best
    round of each; else ``fp32-exact``."""
    ratios = [fast / exact for exact, fast in zip(timings.exact_ms, timings.fast_ms,
                                                  strict=True)]
    if not ratios:
        return EXACT
    best = min(timings.fast_ms) / min(timings.exact_ms)
    return FAST if max(statistics.median(ratios), best) * (1 + margin) <= 1 else EXACT


@torch.no_grad()
def measure_paths(exact: Mapping[str, Callable[..., object]],
                  fast: Mapping[str, Callable[..., object]],
                  rounds: int = ROUNDS) -> PathTimings:
    """Time G of both paths on :data:`DECODER_INPUT`: a first untimed call each (oneDNN
    builds its kernels), then ``rounds`` rounds, the order alternating, scaled to a frame's
    worth (:data:`DECODER_PER_FRAME`). Small inputs understate bf16-fast's gain: the
    per-call reorders of its weights weigh more there than in a frame."""
    warped = torch.rand(DECODER_INPUT, generator=torch.Generator().manual_seed(0))

    def frame_ms(networks: Mapping[str, Callable[..., object]]) -> float:
        start = time.perf_counter()
        networks["G"](warped)
        return 1e3 * DECODER_PER_FRAME * (time.perf_counter() - start)

    paths = {EXACT: exact, FAST: fast}
    for networks in paths.values():
        frame_ms(networks)
    times: dict[str, list[float]] = {EXACT: [], FAST: []}
    for i in range(rounds):
        for name in (EXACT, FAST) if i % 2 == 0 else (FAST, EXACT):
            times[name].append(frame_ms(paths[name]))
    return PathTimings(tuple(times[EXACT]), tuple(times[FAST]))


def _package_version() -> str:
    try:
        return metadata.version("portrait-animate")
    except metadata.PackageNotFoundError:
        return "unknown"


def choice_key(threads: int | None = None) -> str:
    """What the measured choice holds for: CPU model and flags (one model name can cover
    machines with and without AVX512-BF16 under a hypervisor), threads (None: this process's
    :func:`~.device.core_share`), library versions."""
    threads = core_share() if threads is None else threads
    model, flags = cpu_description()
    digest = hashlib.sha256(" ".join(sorted(flags)).encode()).hexdigest()[:12]
    return (f"{model}; flags {digest}; {threads} threads; torch {torch.__version__}; "
            f"portrait-animate {_package_version()}")


def choice_cache_path() -> Path:
    """The measured choices: ``precision-choices.json`` in the user cache
    (``$PORTRAIT_ANIMATE_CACHE`` or ``~/.cache/portrait-animate``)."""
    return cache_root() / "precision-choices.json"


def _read_choices(path: Path) -> dict[str, dict]:
    try:
        choices = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return choices if isinstance(choices, dict) else {}


def _write_choice(path: Path, key: str, record: dict) -> None:
    """Add the record to the file, replacing it atomically (a reader sees the old or the new
    file, never half of one); a cache that cannot be written only costs a new measurement."""
    choices = _read_choices(path)
    choices[key] = record
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(handle, "w") as out:
            json.dump(choices, out, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError as err:
        logger.warning("precision choice not cached (%s): %s", path, err)
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def resolve_precision(precision: str, device: torch.device,
                      measure: Callable[[], PathTimings] | None = None) -> str:
    """The precision to run: a named one as it is; ``auto`` is the device's best path.

    ``auto``: ``fp32-exact`` off the CPU and on a CPU without native bfloat16
    (:func:`bf16_supported`); otherwise the choice cached for :func:`choice_key`, or when
    there is none, :func:`choose_precision` of ``measure()`` (run on every core, as the
    engine runs), then cached. With no cached choice and no ``measure``, ``fp32-exact``.

    Raises:
        ValueError: see :func:`check_precision`.
    """
    check_precision(precision, device)
    if precision != "auto":
        return precision
    if device.type != "cpu" or not bf16_supported():
        return EXACT
    path, key = choice_cache_path(), choice_key()
    record = _read_choices(path).get(key)
    if isinstance(record, dict) and record.get("precision") in (EXACT, FAST):
        return record["precision"]
    if measure is None:
        return EXACT
    with all_cores():
        timings = measure()
    choice = choose_precision(timings)
    logger.info("precision auto: %s on %s (G ms per frame, exact %s, fast %s)", choice, key,
                timings.exact_ms, timings.fast_ms)
    _write_choice(path, key, {"precision": choice, "exact_ms": list(timings.exact_ms),
                              "fast_ms": list(timings.fast_ms)})
    return choice
