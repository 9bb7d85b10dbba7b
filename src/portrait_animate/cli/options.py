"""Options shared by several commands, spelled as in the reference tool."""

from __future__ import annotations

import argparse

__all__ = ["add_device_options", "add_weights_option"]


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights_dir", default=None, metavar="DIR",
                        help="folder holding liveportrait/ (default: $PORTRAIT_ANIMATE_WEIGHTS, "
                             "then ~/.cache/portrait-animate/weights)")


def add_device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flag_force_cpu", action=argparse.BooleanOptionalAction,
                        default=False, help="run on the CPU even if CUDA or MPS is present")
    parser.add_argument("--flag_use_half_precision", action=argparse.BooleanOptionalAction,
                        default=True, help="float16 autocast for F, M, W, G (CUDA only)")
    parser.add_argument("--device_id", type=int, default=0, help="CUDA device index")
