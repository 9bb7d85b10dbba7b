"""End-to-end parity: every reference pipeline case reproduced at PSNR >= 40 dB per frame."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from portrait_animate.cli.main import main

MIN_PSNR = 40.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def cases(shared_dir: Path) -> dict:
    return json.loads((shared_dir / "reference/pipeline/cases.json").read_text())


CASE_NAMES = ["img_img_rel_all", "img_img_abs_all", "img_img_rel_lip", "img_img_rel_eyes",
              "img_img_abs_lip", "img_vid_rel_exprfriendly", "vid_img_rel_all", "vid_vid_rel_all"]


def test_case_list_is_complete(shared):
    assert sorted(cases(shared)["cases"]) == sorted(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_pipeline_case_matches_reference(name, shared, synthetic_weights, tmp_path, monkeypatch):
    spec = cases(shared)
    case = spec["cases"][name]
    folder = shared / "reference/pipeline"
    monkeypatch.chdir(folder)
    argv = ["animate", *spec["common_argv"], *case["argv"], "--weights_dir",
            str(synthetic_weights), "-o", str(tmp_path), "--quiet"]
    assert main(argv) == 0
    src = Path(case["argv"][case["argv"].index("-s") + 1]).stem
    drv = Path(case["argv"][case["argv"].index("-d") + 1]).stem
    frames = sorted((tmp_path / f"{src}--{drv}_frames").glob("*.png"))
    with np.load(folder / case["expected"]) as data:
        expected = data["frames"]
    assert len(frames) == len(expected) == case["n_frames"]
    for i, (png, ref) in enumerate(zip(frames, expected, strict=True)):
        assert png.name == f"{i:06d}.png"
        got = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
        value = psnr(got, ref)
        assert value >= MIN_PSNR, f"{name} frame {i}: PSNR {value:.2f} dB"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")], "temporary files left"
