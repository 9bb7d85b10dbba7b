"""``portrait-animate faces``: the numbered faces of an image or video, with a preview."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..choices import FACE_ORDERS

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "portrait-animate faces IMAGE_OR_VIDEO [options]"
    parser.description = (
        "List the faces of an image or video with the numbers --source_faces, --driving_face "
        "and --face_map take (index, box and size in the input's pixels, detection score), "
        "and write a preview with the numbers drawn on. A video's faces are tracked, so each "
        "keeps its number.")
    parser.add_argument("input", metavar="IMAGE_OR_VIDEO", help="image or video to look at")
    parser.add_argument("--face_order", choices=FACE_ORDERS, default="large-small",
                        metavar="ORDER", help="how faces are numbered, as for animate: "
                                              + ", ".join(FACE_ORDERS))
    parser.add_argument("--preview", metavar="PATH", default=None,
                        help="the preview image, at most 1280 pixels on its long side as "
                             "animate shrinks the input, written with --json too (default: "
                             "INPUT_faces.jpg in the current folder)")
    parser.add_argument("--det_thresh", type=float, default=0.15, metavar="FLOAT",
                        help="face detection confidence threshold")
    parser.add_argument("--frames", type=int, default=None, metavar="N",
                        help="look at a video's first N frames only (default: all)")
    parser.add_argument("--json", action="store_true",
                        help="print the faces as JSON instead of a table")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..errors import InputError
    from ..face.mesh import FaceMesh
    from ..io.files import check_output_file
    from ..io.images import write_image_rgb
    from ..pipeline.face_list import list_faces
    from ..pipeline.inputs import check_readable, classify_input, input_name
    from ..pipeline.options import RANGES

    problem = RANGES["det_thresh"].problem("--det_thresh", args.det_thresh, 0.15)
    if problem:
        raise InputError(problem)
    if args.frames is not None and args.frames < 1:
        raise InputError(f"--frames {args.frames} is not a frame count; pass 1 or more")
    kind = classify_input(args.input, "input")
    check_readable(args.input, kind)
    preview = Path(args.preview or f"{input_name(args.input)}_faces.jpg")
    check_output_file(preview, "--preview", [args.input])
    with FaceMesh(args.det_thresh) as mesh:
        found = list_faces(args.input, kind, mesh, args.face_order, limit=args.frames)
    write_image_rgb(preview, found.preview)
    if not found.faces:
        print(f"note: no face found in {args.input}; try a lower --det_thresh (now "
              f"{args.det_thresh:g}) or another picture", file=sys.stderr)
    if args.json:
        print(json.dumps({"faces": [vars(face) for face in found.faces],
                          "preview": str(preview), "preview_frame": found.preview_frame,
                          "frames": found.n_frames, "face_order": args.face_order}))
        return 0
    table = Table(title=f"{len(found.faces)} face(s) in {args.input} "
                        f"(--face_order {args.face_order})")
    for column in ("face", "box (x0, y0, x1, y1)", "size", "score", "frames"):
        table.add_column(column, justify="right")
    for face in found.faces:
        table.add_row(str(face.number), ", ".join(f"{v:.0f}" for v in face.box),
                      f"{face.size:.0f}", "-" if face.score is None else f"{face.score:.2f}",
                      f"{face.frames} from {face.first_frame}" if kind.value == "video"
                      else "1")
    console = Console()
    console.print(table)
    console.print(f"preview: {preview}" + (f" (frame {found.preview_frame})"
                                           if kind.value == "video" else ""))
    return 0
