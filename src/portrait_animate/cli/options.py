"""Options shared by several commands, spelled as in the reference tool."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["FlagAction", "HelpFormatter", "add_flag", "add_device_options", "add_weights_option"]


class FlagAction(argparse.Action):
    """A boolean ``--flag_x`` / ``--no_flag_x`` pair, the reference's spelling."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        name = option_strings[0].removeprefix("--")
        super().__init__([f"--{name}", f"--no_{name}"], dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        setattr(namespace, self.dest, not option_string.startswith("--no_"))

    def format_usage(self) -> str:
        return " | ".join(self.option_strings)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help wrapped to the terminal's width (``$COLUMNS``), each option's default after its
    help; an option without one (None), or a required one, shows none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def add_flag(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    parser.add_argument(f"--{name}", action=FlagAction, default=default, help=help)


def add_weights_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights_dir", default=None, metavar="DIR",
                        help="folder holding liveportrait/ (default: $PORTRAIT_ANIMATE_WEIGHTS, "
                             "then weights/ in $PORTRAIT_ANIMATE_CACHE or "
                             "~/.cache/portrait-animate)")


def add_device_options(parser: argparse.ArgumentParser) -> None:
    add_flag(parser, "flag_force_cpu", False, "run on the CPU even if CUDA or MPS is present")
    parser.add_argument("--device_id", type=int, default=0, help="CUDA device index")
