"""``portrait-animate``: the command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import PortraitAnimateError
from . import animate, debug, weights

__all__ = ["build_parser", "main"]

COMMANDS = (animate, weights, debug)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="portrait-animate",
        description="Animate portraits with LivePortrait-compatible motion.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except PortraitAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
