"""Stage-by-stage parity with the reference networks on synthetic weights.

The fixture was recorded by the reference implementation; every float stage must agree
within 1e-3 of the stage's largest magnitude and the uint8 image within 0.5/255 MAE.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from portrait_animate.cli.main import main

STAGE_TOLERANCE = 1e-3
IMAGE_MAE = 0.5  # in uint8 levels, i.e. 0.5/255 of the [0, 1] range


@pytest.fixture(scope="module")
def stages_run(shared, synthetic_weights, tmp_path_factory) -> tuple[dict[str, np.ndarray], Path]:
    """debug-stages on the fixture's pair: its dump, and the image it saved."""
    out = tmp_path_factory.mktemp("stages") / "stages.npz"
    ref = shared / "reference"
    rc = main(["debug-stages", "--weights_dir", str(synthetic_weights),
               "--source", str(ref / "parity_s0_d30_src.png"),
               "--driving", str(ref / "parity_s0_d30_drv.png"),
               "--out", str(out), "--save_image", str(out.with_suffix(".png")),
               "--flag_force_cpu"])
    assert rc == 0
    with np.load(out) as data:
        return {k: data[k] for k in data.files}, out.with_suffix(".png")


@pytest.fixture(scope="module")
def dumped(stages_run) -> dict[str, np.ndarray]:
    return stages_run[0]


def float_stages(fixture: dict) -> list[str]:
    return [k for k, v in fixture.items() if v.dtype == np.float32]


def test_dump_has_every_fixture_key_with_its_shape(dumped, parity_fixture):
    assert set(dumped) == set(parity_fixture)
    for key, ref in parity_fixture.items():
        assert dumped[key].shape == ref.shape, key
        assert dumped[key].dtype == ref.dtype, key


def test_inputs_are_the_area_resized_fixture_inputs(dumped, parity_fixture):
    np.testing.assert_array_equal(dumped["src_rgb"], parity_fixture["src_rgb"])
    np.testing.assert_array_equal(dumped["drv_rgb"], parity_fixture["drv_rgb"])


@pytest.mark.parametrize("key", [
    "F_feature_3d",
    *[f"M_{w}_raw_{k}" for w in ("src", "drv")
      for k in ("pitch", "yaw", "roll", "t", "exp", "scale", "kp")],
    *[f"M_{w}_deg_{k}" for w in ("src", "drv") for k in ("pitch", "yaw", "roll")],
    "R_src", "R_drv", "x_src", "x_drv", "S_stitched_x_d",
    "R_eye_input", "R_eye_delta", "R_lip_input", "R_lip_delta",
    "W_occlusion_map", "W_deformation", "W_out", "G_image",
])
def test_float_stage_matches_reference(key, dumped, parity_fixture):
    ref = parity_fixture[key]
    err = np.abs(dumped[key].astype(np.float64) - ref).max() / np.abs(ref).max()
    assert err <= STAGE_TOLERANCE, f"{key}: max error {err:.2e} of the stage's magnitude"


def test_every_float_stage_is_checked(parity_fixture):
    checked = set(test_float_stage_matches_reference.pytestmark[0].args[1])
    assert set(float_stages(parity_fixture)) == checked


def test_decoded_uint8_image_matches_reference(dumped, parity_fixture):
    mae = np.abs(dumped["G_image_uint8"].astype(np.float64) - parity_fixture["G_image_uint8"])
    assert mae.mean() <= IMAGE_MAE


def test_saved_png_is_the_decoded_image(stages_run):
    import cv2

    dumped, png = stages_run
    saved = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(saved, dumped["G_image_uint8"])
