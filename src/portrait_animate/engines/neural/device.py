"""Device and precision choice (SPEC 1.3, with half precision on CUDA only), and the CPU
threads the networks run on."""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ...choices import EXACT
from ...errors import InputError

__all__ = ["CPU_CORES", "all_cores", "core_share", "set_core_share", "select_device",
           "select_dtype"]

CPU_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
    (os.cpu_count() or 1)
_share = CPU_CORES


def set_core_share(cores: int) -> None:
    """Keeps this process to ``cores`` of the CPU's cores (a batch worker's share of the
    machine): torch's threads, in the networks too, and the driving analysis' face meshes."""
    global _share
    _share = max(1, min(cores, CPU_CORES))
    torch.set_num_threads(_share)


def core_share() -> int:
    """The cores this process may use: every core, or the share :func:`set_core_share` set."""
    return _share


@contextmanager
def all_cores() -> Iterator[None]:
    """torch on every core of this process's share, even after the classic engine (in the
    same process, as in the app) dropped it to one thread for its tiny tensor ops."""
    before = torch.get_num_threads()
    torch.set_num_threads(_share)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def select_device(force_cpu: bool = False, device_id: int = 0) -> torch.device:
    """CUDA if present, then MPS, then the CPU; ``force_cpu`` forces the CPU.

    Raises:
        InputError: ``device_id`` is not a GPU number, or names a GPU this machine lacks.
    """
    if isinstance(device_id, bool) or not isinstance(device_id, numbers.Integral) or \
            device_id < 0:
        raise InputError(f"device_id {device_id!r} is not a GPU number; pass 0 or more")
    if force_cpu:
        return torch.device("cpu")
    if torch.cuda.is_available():
        if device_id >= (count := torch.cuda.device_count()):
            raise InputError(f"--device_id {device_id}: this machine has {count} GPU"
                             f"{'s' * (count != 1)} (0 to {count - 1}); pass one of them")
        return torch.device(f"cuda:{device_id}")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def select_dtype(device: torch.device, use_half_precision: bool,
                 precision: str = "auto") -> torch.dtype:
    """float16 autocast only when asked for and on CUDA, unless ``--precision fp32-exact`` is
    asked for by name (really float32: the parity path); float32 everywhere else."""
    half = use_half_precision and device.type == "cuda" and precision != EXACT
    return torch.float16 if half else torch.float32
