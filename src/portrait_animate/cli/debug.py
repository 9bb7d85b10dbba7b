"""``portrait-animate debug-stages``: dump every network stage for parity checks."""

from __future__ import annotations

import argparse

from ..engines.neural import LivePortraitNetworks, cached_synthetic_weights
from ..engines.neural.stages import dump_stages
from ..io.files import save_npz
from ..io.images import read_image_rgb, resize_area, write_image_rgb
from .options import add_device_options, add_weights_option

__all__ = ["configure"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Resize both images to 256x256 (area), run F, M, S, R_eyes, R_lip, W "
                          "and G in float32 and save every stage under the parity fixture's "
                          "names.")
    parser.add_argument("-s", "--source", required=True,
                        help="source image, or sample:astronaut")
    parser.add_argument("-d", "--driving", required=True,
                        help="driving image, or sample:astronaut")
    parser.add_argument("--out", required=True, help="output .npz")
    parser.add_argument("--save_image", default=None, help="also save G's image as PNG/JPG")
    add_weights_option(parser)
    parser.add_argument("--synthetic_weights", action="store_true",
                        help="use the cached synthetic weights (generated on first use)")
    add_device_options(parser)
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    src = resize_area(read_image_rgb(args.source), 256)
    drv = resize_area(read_image_rgb(args.driving), 256)
    weights_dir = cached_synthetic_weights() if args.synthetic_weights else args.weights_dir
    nets = LivePortraitNetworks.from_pretrained(weights_dir, force_cpu=args.flag_force_cpu,
                                                use_half_precision=False,
                                                device_id=args.device_id)
    stages = dump_stages(nets, src, drv)
    save_npz(args.out, stages)
    print(f"{len(stages)} stages written to {args.out}")
    if args.save_image:
        write_image_rgb(args.save_image, stages["G_image_uint8"])
        print(f"decoded image written to {args.save_image}")
    return 0
