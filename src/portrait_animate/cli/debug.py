"""``portrait-animate debug-stages``: dump every network stage for parity checks."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..engines.neural import LivePortraitNetworks, cached_synthetic_weights
from ..engines.neural.stages import dump_stages
from ..errors import InputError
from ..io.files import atomic_path, check_output_file, same_file, save_npz
from ..io.images import read_image_rgb, resize_area, write_image_rgb
from .options import add_device_options, add_weights_option

__all__ = ["configure"]

#: The extensions --save_image can be written as.
SAVE_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tiff", ".webp")


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


def _check_outputs(args: argparse.Namespace) -> None:
    """Fail, before any work, unless --out and --save_image can be written.

    Raises:
        InputError: naming the option and the fix.
    """
    inputs = (args.source, args.driving)
    check_output_file(args.out, "--out", inputs)
    if args.save_image is None:
        return
    check_output_file(args.save_image, "--save_image", inputs)
    suffix = Path(args.save_image).suffix.lower()
    if suffix not in SAVE_IMAGE_EXTENSIONS:
        raise InputError(f"--save_image {args.save_image}: cannot write a "
                         f"{suffix or 'extension-less'} image; name it .png or .jpg ("
                         + " ".join(SAVE_IMAGE_EXTENSIONS[2:]) + " also work)")
    if same_file(args.save_image, args.out):
        raise InputError(f"--save_image {args.save_image} is the --out file too; give the "
                         "image another name (such as stages.png)")


def _run(args: argparse.Namespace) -> int:
    _check_outputs(args)
    src = resize_area(read_image_rgb(args.source), 256)
    drv = resize_area(read_image_rgb(args.driving), 256)
    weights_dir = cached_synthetic_weights() if args.synthetic_weights else args.weights_dir
    nets = LivePortraitNetworks.from_pretrained(weights_dir, force_cpu=args.flag_force_cpu,
                                                use_half_precision=False,
                                                device_id=args.device_id)
    stages = dump_stages(nets, src, drv)
    # the image is written inside the .npz's temporary name: both files, or neither
    with atomic_path(args.out) as tmp:
        save_npz(tmp, stages)
        if args.save_image:
            write_image_rgb(args.save_image, stages["G_image_uint8"])
    print(f"{len(stages)} stages written to {args.out}")
    if args.save_image:
        print(f"decoded image written to {args.save_image}")
    return 0
