"""``portrait-animate``: the command line.

A command's module is imported only when that command is named: torch and gradio take
seconds to load, and neither ``--help`` nor ``presets`` needs them.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import signal
import sys
import threading
from collections.abc import Collection, Sequence

from ..errors import PortraitAnimateError
from .options import HelpFormatter

__all__ = ["COMMANDS", "build_parser", "main"]

#: command -> (its module in this package, one-line help); each module has
#: ``configure(parser)``, which adds the command's description and options.
COMMANDS = {
    "animate": ("animate", "animate a portrait by a driving video, image or motion template"),
    "batch": ("batch", "run many animations from a jobs file or sources x drivings, resumable, "
                       "on local workers or a Ray cluster"),
    "serve": ("serve", "serve the REST API: a persistent job queue over HTTP"),
    "faces": ("faces", "list the faces of an image or video, numbered, with a preview"),
    "presets": ("presets", "list the built-in driving motions (-d preset:NAME)"),
    "weights": ("weights", "download, synthesise or check LivePortrait weights"),
    "debug-stages": ("debug", "run every network stage on two images and save them as .npz"),
    "live": ("live", "animate a portrait from a camera in real time (window, virtual camera, "
                     "recording)"),
    "app": ("app", "serve the web app (animation, image and video retargeting)"),
    "doctor": ("doctor", "check the installation: versions, CPU, threads, weights, ffmpeg"),
}


def build_parser(configured: Collection[str] = tuple(COMMANDS)) -> argparse.ArgumentParser:
    """The parser; the commands in ``configured`` get their options (importing their modules),
    the others are only listed with their help."""
    return _parsers(configured)[0]


def _parsers(configured: Collection[str]
             ) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """:func:`build_parser`'s parser and each command's own."""
    # no abbreviations: `--device cuda` was taken as `--device_id cuda`, `--device 1` silently
    parser = argparse.ArgumentParser(
        prog="portrait-animate", formatter_class=HelpFormatter, allow_abbrev=False,
        description="Animate portraits with LivePortrait-compatible motion.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands = {}
    for name, (module, help) in COMMANDS.items():
        commands[name] = sub.add_parser(name, help=help, formatter_class=HelpFormatter,
                                        allow_abbrev=False)
        if name in configured:
            importlib.import_module(f".{module}", __package__).configure(commands[name])
    return parser, commands


def _unknown(command: argparse.ArgumentParser, extra: list[str]) -> str:
    """argparse's message for arguments ``command`` does not take, with the option meant by a
    mistyped one (``--driving_faces``: ``--driving_face``)."""
    known = [o for action in command._actions for o in action.option_strings]
    meant = [match for arg in extra if arg.startswith("--")
             for match in difflib.get_close_matches(arg.split("=")[0], known, n=1, cutoff=0.8)]
    hint = f"; did you mean {' or '.join(dict.fromkeys(meant))}?" if meant else ""
    return f"unrecognized arguments: {' '.join(extra)}{hint}"


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Unwind normally so that temporary outputs are removed on the way out.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser, commands = _parsers(argv[:1])
    args, extra = parser.parse_known_args(argv)
    if extra:  # told by the command's own parser, with its usage
        commands[args.command].error(_unknown(commands[args.command], extra))
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
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
