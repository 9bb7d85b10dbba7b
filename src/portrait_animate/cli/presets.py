"""``portrait-animate presets``: the built-in driving motions."""

from __future__ import annotations

import argparse

from ..motion.presets import FPS, PRESET_PREFIX, PRESETS

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("presets", help="list the built-in driving motions (-d preset:NAME)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    for name, (seconds, _, description) in PRESETS.items():
        print(f"{PRESET_PREFIX}{name:<10} {int(seconds * FPS):>4} frames  {description}")
    return 0
