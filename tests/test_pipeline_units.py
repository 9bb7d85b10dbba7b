"""Input rules, option checks, output names and the command's help."""

from __future__ import annotations

import re

import cv2
import numpy as np
import pytest

from portrait_animate.cli.main import build_parser, main
from portrait_animate.errors import InputError
from portrait_animate.pipeline.inputs import InputKind, classify_input, resize_to_limit
from portrait_animate.pipeline.options import AnimateOptions


def test_resize_to_limit_shrinks_long_side_then_crops_to_division():
    img = np.zeros((1001, 2000, 3), np.uint8)
    out = resize_to_limit(img, 1280, 2)
    assert out.shape == (640, 1280, 3)  # 1001 * 0.64 = 640.64 -> 640, already even
    assert resize_to_limit(np.zeros((721, 515, 3), np.uint8), 1280, 2).shape == (720, 514, 3)
    assert resize_to_limit(np.zeros((721, 515, 3), np.uint8), 1280, 16).shape == (720, 512, 3)


def test_classify_by_extension(tmp_path):
    for name, kind in [("a.JPG", InputKind.IMAGE), ("b.webm", InputKind.VIDEO),
                       ("c.pkl", InputKind.TEMPLATE), ("d.npz", InputKind.TEMPLATE)]:
        (tmp_path / name).write_bytes(b"")
        assert classify_input(str(tmp_path / name), "driving", allow_template=True) is kind
    with pytest.raises(InputError, match="unsupported source extension"):
        classify_input(str(tmp_path / "c.pkl"), "source")
    assert classify_input("sample:astronaut", "source") is InputKind.IMAGE


def test_conflicts_are_reported():
    options = AnimateOptions("a.jpg", "b.mp4", flag_normalize_lip=True,
                             flag_relative_motion=False, det_thresh=0)
    assert any("det_thresh" in p for p in options.invalid_values())
    assert any("--flag_normalize_lip" in p for p in options.conflicts())


def test_reference_spellings_parse():
    args = build_parser().parse_args([
        "animate", "-s", "s.jpg", "-d", "d.mp4", "-o", "out", "--no_flag_relative_motion",
        "--animation_region", "lip", "--driving_option", "pose-friendly",
        "--driving_multiplier", "1.2", "--no_flag_stitching", "--flag_eye_retargeting",
        "--flag_normalize_lip", "--flag_source_video_eye_retargeting",
        "--driving_smooth_observation_variance", "1e-6", "--audio_priority", "source",
        "--scale", "2.5", "--flag_crop_driving_video", "--no_flag_do_crop",
        "--no_flag_pasteback", "--flag_force_cpu", "--no_flag_use_half_precision",
        "--source_max_dim", "960", "--engine", "neural", "--weights_dir", "w",
        "--save_frames", "--quiet"])
    assert (args.flag_relative_motion, args.animation_region, args.driving_option) == (
        False, "lip", "pose-friendly")
    assert args.driving_multiplier == 1.2 and args.driving_smooth_observation_variance == 1e-6
    assert not args.flag_stitching and args.flag_eye_retargeting and args.flag_normalize_lip
    assert args.flag_crop_driving_video and not args.flag_do_crop and not args.flag_pasteback
    assert args.flag_force_cpu and not args.flag_use_half_precision
    assert (args.source_max_dim, args.scale, args.save_frames, args.quiet) == (960, 2.5, True,
                                                                                True)


def test_reference_defaults():
    args = build_parser().parse_args(["animate", "-s", "s.jpg", "-d", "d.mp4"])
    assert args.output_dir == "animations/" and args.det_thresh == 0.15
    assert args.flag_use_half_precision and args.flag_stitching and args.flag_pasteback
    assert args.driving_option == "expression-friendly" and args.animation_region == "all"
    assert (args.scale, args.vy_ratio, args.scale_crop_driving_video,
            args.vy_ratio_crop_driving_video) == (2.3, -0.125, 2.2, -0.1)
    assert args.driving_smooth_observation_variance == 3e-7 and args.engine == "auto"


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["animate", "--help"])
    out = capsys.readouterr().out
    # Each option's entry: its line, and the help lines indented under it.
    entries = re.split(r"\n(?=  -)", out)
    for name in AnimateOptions.field_names():
        entry = next((e for e in entries if re.match(rf"  (-\w \S+, )?--{name}\b", e)), None)
        assert entry is not None, name
        names_and_help = re.split(r"\s{2,}", entry.strip(), maxsplit=1)
        assert len(names_and_help) == 2 and len(names_and_help[1]) > 10, f"--{name} has no help"


def test_image_result_without_paste_back_is_the_result(shared, synthetic_weights, tmp_path):
    assert main(["animate", "-s", str(shared / "assets/source/s5.jpg"),
                 "-d", str(shared / "assets/driving/d30.jpg"), "-o", str(tmp_path),
                 "--weights_dir", str(synthetic_weights), "--flag_force_cpu", "--quiet",
                 "--no_flag_pasteback"]) == 0
    assert cv2.imread(str(tmp_path / "s5--d30.jpg")).shape == (512, 512, 3)
    assert cv2.imread(str(tmp_path / "s5--d30_concat.jpg")).shape == (512, 1536, 3)
    assert (tmp_path / "d30_template.npz").is_file()
