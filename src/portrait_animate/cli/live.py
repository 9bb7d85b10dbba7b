"""``portrait-animate live``: a camera drives a portrait in real time."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..errors import InputError
from ..io.files import check_output_file, same_file
from ..live.options import LIVE_ANIMATE_OPTIONS, LiveOptions
from ..ranges import Range
from .animate import add_animate_options, options_from_args

__all__ = ["configure"]

RANGES = {"live_smooth": Range(0.0, 10.0, "a filter strength: 0 turns it off, 1 is the "
                                          "One-Euro paper's 1 Hz cutoff at rest, 2 halves it"),
          "max_seconds": Range(0.0, math.inf, "a duration", low_open=True)}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "portrait-animate live -s SOURCE [--camera 0|PATH|URL] [options]"
    parser.description = (
        "Animate a portrait from a camera in real time. Motion is relative to the first frame "
        "with a face; press n in the window to set a new neutral face, q to quit. A video "
        "file given as the camera plays at its own frame rate, like a camera.")
    parser.add_argument("-s", "--source", required=True, metavar="PATH",
                        help="source portrait image (or sample:astronaut)")
    parser.add_argument("--camera", default="0", metavar="0|PATH|URL",
                        help="camera device index, video file or stream URL")
    parser.add_argument("--no_window", action="store_true",
                        help="show no window (one is shown where there is a display)")
    parser.add_argument("--virtual_camera", action="store_true",
                        help="send the result to a virtual camera (pyvirtualcam: pip install "
                             "'portrait-animate[live]')")
    parser.add_argument("--record", metavar="OUT.mp4",
                        help="record the result, one frame per camera frame")
    parser.add_argument("--max_seconds", type=float, metavar="S",
                        help=f"stop after this long, {RANGES['max_seconds']}")
    parser.add_argument("--stats_json", metavar="FILE",
                        help="write frames in/rendered/dropped, fps and latency here")
    parser.add_argument("--live_smooth", type=float, default=1.0, metavar="FLOAT",
                        help=f"One-Euro filter on the driving motion, {RANGES['live_smooth']}")
    add_animate_options(parser, inputs=False, only=LIVE_ANIMATE_OPTIONS, helps={
        "flag_relative_motion": "motion relative to the first frame with a face (n in the "
                                "window sets a new one)",
        "flag_do_torch_compile": "compile the neural engine's W and G with torch.compile (slow "
                                 "first frame; CUDA graphs on a GPU: the latency mode)"})
    parser.set_defaults(run=_run)


def _output_problems(args: argparse.Namespace) -> list[str]:
    """What is wrong with ``--record`` and ``--stats_json``: a missing or unwritable folder, a
    folder given as the file, one of the inputs, or both the same file."""
    problems = []
    inputs = [args.source] + ([] if args.camera.isdigit() else [args.camera])
    for option, path in (("--record", args.record), ("--stats_json", args.stats_json)):
        if path is None:
            continue
        folder = Path(path).parent
        if not folder.is_dir():
            problems.append(f"{option} {path}: the folder {folder} does not exist; create it "
                            "or pick another path")
            continue
        try:
            check_output_file(path, option, inputs)
        except InputError as exc:
            problems.append(str(exc))
    if args.record is not None and Path(args.record).suffix.lower() != ".mp4":
        problems.append(f"--record {args.record}: the recording is an .mp4; name it so")
    if args.record is not None and args.stats_json is not None and \
            same_file(args.record, args.stats_json):
        problems.append(f"--stats_json {args.stats_json} is the --record file too; give the "
                        "statistics another file name (such as stats.json)")
    return problems


def _check(args: argparse.Namespace, options: LiveOptions) -> None:
    """Fail on a bad option before the camera or the engine is opened."""
    problems = options.animate.invalid_values()
    problems.append(RANGES["live_smooth"].problem("--live_smooth", args.live_smooth, 1.0))
    if args.max_seconds is not None and args.max_seconds not in RANGES["max_seconds"]:
        problems.append(f"--max_seconds {args.max_seconds:g} is not a finite number "
                        f"{RANGES['max_seconds']}; pass a number of seconds, such as 10, or "
                        "leave it out to run until the camera ends or q is pressed in the window")
    problems += _output_problems(args)
    problems = [p for p in problems if p]
    if problems:
        raise InputError(problems[0])


def _run(args: argparse.Namespace) -> int:
    options = LiveOptions(
        animate=options_from_args(args, source=args.source, driving="", output_dir=""),
        camera=args.camera, window=not args.no_window, virtual_camera=args.virtual_camera,
        record=args.record, max_seconds=args.max_seconds, stats_json=args.stats_json,
        live_smooth=args.live_smooth)
    _check(args, options)
    from ..live.run import run_live  # torch and the engines: loaded when running only

    run_live(options)
    return 0
