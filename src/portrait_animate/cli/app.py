"""``portrait-animate app``: the web app (SPEC 6.4 launch arguments)."""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

from ..app.limits import AppLimits
from ..errors import InputError
from ..io.files import check_output_folder
from ..ranges import Range
from .animate import add_animate_options, options_from_args
from .listen import check_listen

__all__ = ["configure"]

LIMITS = {"max_upload_mb": Range(0.0, math.inf, "a file size", low_open=True),
          "max_video_seconds": Range(0.0, math.inf, "a duration", low_open=True)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "portrait-animate app [-p PORT] [--server_name HOST] [--share] [options]"
    parser.description = ("Serve the Gradio app. The animate options below set the defaults of "
                          "every job.")
    parser.add_argument("-p", "--server_port", type=int, default=8890, help="port to serve on")
    parser.add_argument("--server_name", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 for all interfaces")
    parser.add_argument("--share", action="store_true", help="also make a public gradio.live link")
    parser.add_argument("--gradio_temp_dir", default=None, metavar="DIR",
                        help="folder for uploads and results (default: the system's temp)")
    parser.add_argument("--max_upload_mb", type=float, default=AppLimits.max_upload_mb,
                        metavar="MB", help="largest file an upload may be")
    parser.add_argument("--max_video_seconds", type=float,
                        default=AppLimits.max_video_seconds, metavar="S",
                        help="longest video an upload may be")
    add_animate_options(parser, inputs=False)
    parser.set_defaults(run=_run)


def _check(args: argparse.Namespace) -> None:
    """Fail on a bad option before anything is created or loaded."""
    problems = [allowed.problem(f"--{name}", getattr(args, name), getattr(AppLimits, name))
                for name, allowed in LIMITS.items()]
    problems += options_from_args(args, source="", driving="", output_dir="").invalid_values()
    problems = [p for p in problems if p]
    if problems:
        raise InputError(problems[0])
    if args.gradio_temp_dir:
        check_output_folder(args.gradio_temp_dir, "--gradio_temp_dir")
    # Gradio binds 127.0.0.1 first to find the port free
    check_listen([args.server_name, "127.0.0.1"], args.server_port, "--server_name", "-p")


def _run(args: argparse.Namespace) -> int:
    _check(args)
    if args.gradio_temp_dir:
        # Gradio reads it when first imported, so it is set before the app is imported
        # (configure took the limits from app.limits, which imports no Gradio).
        try:
            Path(args.gradio_temp_dir).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"--gradio_temp_dir {args.gradio_temp_dir}: cannot make the "
                             f"folder ({exc.strerror or exc}); give a folder you can write "
                             "to") from exc
        os.environ["GRADIO_TEMP_DIR"] = str(Path(args.gradio_temp_dir).resolve())
    from ..app import AppBackend, serve

    work_dir = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir()) / \
        "portrait-animate"
    limits = AppLimits(args.max_upload_mb, args.max_video_seconds)
    base = options_from_args(args, source="", driving="", output_dir=str(work_dir))
    backend = AppBackend(base, limits, work_dir)
    serve(backend, server_port=args.server_port, server_name=args.server_name, share=args.share)
    return 0
