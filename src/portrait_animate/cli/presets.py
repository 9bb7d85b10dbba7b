"""``portrait-animate presets``: the built-in driving motions."""

from __future__ import annotations

import argparse

from ..choices import PRESET_CATALOGUE, PRESET_FPS, PRESET_PREFIX

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = "List the built-in driving motions, for -d preset:NAME."
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    for name, (seconds, description) in PRESET_CATALOGUE.items():
        print(f"{PRESET_PREFIX}{name:<10} {int(seconds * PRESET_FPS):>4} frames  {description}")
    return 0
