"""Choosing and building the engine for a run."""

from __future__ import annotations

from ..engines.base import Engine
from ..engines.classic import ClassicEngine, classic_layout
from ..engines.neural import LivePortraitNetworks
from ..engines.neural.acceleration import EXACT
from ..engines.neural.animator import NeuralEngine
from ..engines.neural.weights import SYNTHETIC_DETAIL, weights_problem
from ..motion.model import LIVEPORTRAIT_LAYOUT, KeypointLayout
from .options import AnimateOptions
from .progress import Reporter

__all__ = ["engine_layout", "load_engine", "weights_found"]


def weights_found(weights_dir: str | None) -> bool:
    """Whether LivePortrait weights are found in ``weights_dir`` (or the place named by
    ``$PORTRAIT_ANIMATE_WEIGHTS``, else the default cache)."""
    return weights_problem(weights_dir) is None


def engine_layout(name: str) -> KeypointLayout:
    """The keypoint layout of the engine ``name`` (classic or neural), without loading it."""
    return classic_layout() if name == "classic" else LIVEPORTRAIT_LAYOUT


def load_engine(options: AnimateOptions, reporter: Reporter) -> Engine:
    """The engine named by ``--engine``; ``auto`` is neural when weights are found, else
    classic, and says which in one line."""
    name = options.engine
    if name == "auto":
        problem = weights_problem(options.weights_dir)
        name = "neural" if problem is None else "classic"
        reporter.note(f"engine: {name} (" + ("LivePortrait weights found" if problem is None
                      else f"no LivePortrait weights: {problem}; `portrait-animate weights "
                           "download` gets them") + ")")
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
