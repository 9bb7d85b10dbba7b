"""``portrait-animate animate``: the reference inference command, argument for argument."""

from __future__ import annotations

import argparse
from collections.abc import Collection, Mapping
from dataclasses import MISSING, fields

from ..choices import FACE_ORDERS, REGIONS
from ..pipeline.options import (
    AUDIO_PRIORITIES,
    DRIVING_OPTIONS,
    DRIVING_TIME_BASES,
    ENGINES,
    PRECISIONS,
    RANGES,
    AnimateOptions,
)
from .options import add_flag

__all__ = ["configure", "add_animate_options", "options_from_args"]

HELP = {
    "source": "source portrait: image or video (or sample:astronaut)",
    "driving": "driving video, image or motion template (.pkl or .npz)",
    "output_dir": "folder for the results",
    "flag_use_half_precision": "float16 for F, M, W, G on CUDA (ignored elsewhere)",
    "flag_crop_driving_video": "crop the driving video to the face (always when not square)",
    "device_id": "CUDA device index",
    "flag_force_cpu": "run on the CPU even if CUDA or MPS is present",
    "flag_normalize_lip": "close the source's open mouth before animating (relative only)",
    "flag_source_video_eye_retargeting": "keep a source video's eyes as open as in its frame 0",
    "flag_eye_retargeting": "drive eye openness by the driving eye ratio (in relative motion, "
                            "as in the reference, nothing else moves)",
    "flag_lip_retargeting": "drive lip openness by the driving lip ratio (in relative motion, "
                            "as in the reference, nothing else moves)",
    "flag_stitching": "stitch the animated face into the source (needed for paste-back)",
    "flag_relative_motion": "motion relative to the anchor driving frame, see --driving_anchor "
                            "(else absolute)",
    "flag_pasteback": "paste the animated crop back into the full source frame",
    "flag_do_crop": "crop the source to the face (else resize it whole to 256x256)",
    "driving_option": "kept for the reference's scripts; both give the same result, as in the "
                      "reference (relative motion starts at the source, so the rescaling is 1)",
    "driving_multiplier": "scale of the driving motion",
    "driving_smooth_observation_variance": "Kalman observation variance for a video source",
    "driving_smooth": "zero-phase smoothing of a driving video's motion and a source video's "
                      "landmarks, in frames (a Gaussian's sigma; it keeps blinks); 0 turns it "
                      "off (the reference's output)",
    "driving_anchor": "the driving frame relative motion starts from (on the classic engine, "
                      "absolute driving first takes the source to its expression): first (the "
                      "reference's), auto (the most neutral face: closed mouth, open eyes, "
                      "frontal, usual expression; the first frame unless another is clearly "
                      "more neutral) or a frame index N",
    "audio_priority": "audio track from the driving or the source video when both have one",
    "driving_time_base": "a video source's output keeps its frame rate; a driver of another "
                         "rate is taken frame for frame (driving, as the reference does) or "
                         "resampled in time (output); auto resamples when the driver's audio "
                         "is used",
    "animation_region": "what the driver moves: exp, pose, lip, eyes or all",
    "det_thresh": "face detection confidence threshold",
    "scale": "source crop size relative to the face",
    "vx_ratio": "source crop horizontal shift, in crop sizes",
    "vy_ratio": "source crop vertical shift, in crop sizes (negative: towards the forehead)",
    "flag_do_rot": "rotate the source crop with the face",
    "source_max_dim": "shrink the source so its long side is at most this; 0: no limit",
    "source_division": "crop the source's size to multiples of this; 0 or 1: no crop",
    "scale_crop_driving_video": "driving crop size relative to the face",
    "vx_ratio_crop_driving_video": "driving crop horizontal shift, in crop sizes",
    "vy_ratio_crop_driving_video": "driving crop vertical shift, in crop sizes",
    "flag_do_torch_compile": "compile W and G with torch.compile (slow first frame)",
    "flag_pasteback_without_stitching": "paste back even with --no_flag_stitching",
    "source_faces": "the source faces to animate: largest (the reference's), all, or face "
                    "numbers N[,M...] as `portrait-animate faces SOURCE` lists them",
    "face_order": "how faces are numbered: by size (large-small), by position (left-right, "
                  "right-left, top-bottom) or by distance from the image's centre "
                  "(distance-from-center)",
    "driving_face": "the driving face that drives every source face: largest, or its number "
                    "(numbered by --face_order)",
    "face_map": "source faces driven by other driving faces, as SOURCE:DRIVING pairs "
                "(0:1,1:0); faces not named take --driving_face",
    "engine": "animation engine: auto (neural when weights are found), neural or classic",
    "precision": "neural numerics: fp32-exact (parity), bf16-fast (CPU, up to ~2x faster, "
                 ">= 40 dB of fp32-exact) or auto (the faster on this CPU, measured once)",
    "weights_dir": "folder with liveportrait/ weights (default: $PORTRAIT_ANIMATE_WEIGHTS, cache)",
    "batch_size": "frames the engine takes the motion and appearance of, and renders, at a "
                  "time, at most 64; 0: its choice (1 on the CPU, from free memory on a GPU)",
    "save_frames": "also write every result frame as lossless PNG in {src}--{drv}_frames/",
    "quiet": "no progress bars or notes (warnings that the result may be incomplete still go "
             "to stderr)",
}
CHOICES = {"driving_option": DRIVING_OPTIONS, "audio_priority": AUDIO_PRIORITIES,
           "driving_time_base": DRIVING_TIME_BASES,
           "animation_region": REGIONS, "engine": ENGINES, "precision": PRECISIONS,
           "face_order": FACE_ORDERS}
SHORT = {"source": "-s", "driving": "-d", "output_dir": "-o"}
METAVARS = {"weights_dir": "DIR", "driving_anchor": "first|auto|N",
            "source_faces": "all|largest|N[,M...]", "driving_face": "largest|N",
            "face_map": "S:D[,S:D...]", "face_order": "ORDER"}


INPUTS = ("source", "driving", "output_dir")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "portrait-animate animate -s SOURCE -d DRIVING [options]"
    parser.description = ("Animate a source image or video. Accepts the reference inference "
                          "script's arguments.")
    add_animate_options(parser)
    parser.set_defaults(run=_run)


def add_animate_options(parser: argparse.ArgumentParser, inputs: bool = True,
                        only: Collection[str] | None = None,
                        helps: Mapping[str, str] | None = None) -> None:
    """Every AnimateOptions field as an option; without ``inputs``, all but the source,
    driving and output folder (the app takes those from the page); with ``only``, those
    fields alone; ``helps`` words some fields' help for this command."""
    for field in fields(AnimateOptions):
        if (not inputs and field.name in INPUTS) or (only is not None and field.name not in only):
            continue
        text = {**HELP, **(helps or {})}[field.name]
        if field.name.startswith("flag_"):
            add_flag(parser, field.name, field.default, text)
            continue
        names = [SHORT[field.name]] if field.name in SHORT else []
        names.append(f"--{field.name}")
        kwargs: dict = {"help": text}
        if field.name in RANGES:
            kwargs["help"] += f", {RANGES[field.name]}"
        if field.default is MISSING:
            kwargs["required"] = True
        else:
            kwargs["default"] = field.default
        if isinstance(field.default, bool):
            kwargs["action"] = "store_true"
        elif field.name in CHOICES:
            kwargs["choices"] = CHOICES[field.name]
            if field.name in METAVARS:
                kwargs["metavar"] = METAVARS[field.name]
        elif isinstance(field.default, float):
            kwargs.update(type=float, metavar="FLOAT")
        elif isinstance(field.default, int):
            kwargs.update(type=int, metavar="INT")
        else:
            kwargs["metavar"] = METAVARS.get(field.name, "PATH")
        parser.add_argument(*names, **kwargs)


def options_from_args(args: argparse.Namespace, **given: str) -> AnimateOptions:
    """The options parsed into ``args``; ``given`` supplies fields that were not options, and
    fields that are neither keep their defaults."""
    values = {name: getattr(args, name) for name in AnimateOptions.field_names()
              if name not in given and hasattr(args, name)}
    return AnimateOptions(**values, **given)


def _run(args: argparse.Namespace) -> int:
    from ..pipeline.animate import animate  # torch: loaded when animating, not for --help

    result = animate(options_from_args(args))
    if args.quiet:
        return 0
    print(result.output)
    return 0
