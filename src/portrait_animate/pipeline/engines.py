"""Choosing and building the engine for a run."""

from __future__ import annotations

from ..engines.base import Engine
from ..engines.neural import LivePortraitNetworks
from ..engines.neural.animator import NeuralEngine
from ..errors import InputError
from .options import AnimateOptions
from .progress import Reporter

__all__ = ["load_engine"]


def load_engine(options: AnimateOptions, reporter: Reporter) -> Engine:
    """The engine named by ``--engine``; ``auto`` is the neural engine for now."""
    if options.engine == "classic":
        raise InputError("the classic engine is not part of this version yet; use "
                         "--engine neural with LivePortrait weights")
    networks = LivePortraitNetworks.from_pretrained(
        options.weights_dir, force_cpu=options.flag_force_cpu,
        use_half_precision=options.flag_use_half_precision, device_id=options.device_id)
    if options.flag_do_torch_compile:
        networks.compile()
    reporter.note(f"engine: neural on {networks.device} ({str(networks.dtype).split('.')[-1]})")
    return NeuralEngine(networks)
