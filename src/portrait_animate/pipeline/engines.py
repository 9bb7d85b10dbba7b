"""Choosing and building the engine for a run."""

from __future__ import annotations

from ..engines.base import Engine
from ..engines.classic import ClassicEngine
from ..engines.neural import LivePortraitNetworks
from ..engines.neural.acceleration import EXACT
from ..engines.neural.animator import NeuralEngine
from ..engines.neural.weights import SYNTHETIC_DETAIL, resolve_weights_dir
from ..errors import WeightsError
from .options import AnimateOptions
from .progress import Reporter

__all__ = ["load_engine", "weights_found"]


def weights_found(weights_dir: str | None) -> bool:
    """Whether LivePortrait weights are found in ``weights_dir`` (or the default places)."""
    try:
        resolve_weights_dir(weights_dir)
    except WeightsError:
        return False
    return True


def load_engine(options: AnimateOptions, reporter: Reporter) -> Engine:
    """The engine named by ``--engine``; ``auto`` is neural when weights are found, else
    classic, and says which in one line."""
    name = options.engine
    if name == "auto":
        name = "neural" if weights_found(options.weights_dir) else "classic"
        reporter.note(f"engine: {name} (" + ("LivePortrait weights found" if name == "neural"
                      else "no LivePortrait weights found; `portrait-animate weights download` "
                           "gets them") + ")")
    if name == "classic":
        return ClassicEngine(options.det_thresh)
    # fp32-exact means float32 on every device, so it overrides CUDA's float16 default
    half = options.flag_use_half_precision and options.precision != EXACT
    networks = LivePortraitNetworks.from_pretrained(
        options.weights_dir, force_cpu=options.flag_force_cpu, use_half_precision=half,
        device_id=options.device_id, precision=options.precision)
    if options.flag_do_torch_compile:
        networks.compile()
    numerics = (networks.precision if networks.precision != EXACT
                else str(networks.dtype).split(".")[-1])
    reporter.note(f"engine: neural on {networks.device} ({numerics})")
    if networks.synthetic:
        reporter.note(f"warning: these LivePortrait weights are synthetic: {SYNTHETIC_DETAIL}; "
                      "`portrait-animate weights download` gets the real ones")
    return NeuralEngine(networks)
