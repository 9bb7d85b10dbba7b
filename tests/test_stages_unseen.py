"""Stage dumps of images outside the parity fixture: every stage is present, well-formed and
consistent with independent NumPy/SciPy implementations of the cheap stages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from portrait_animate.cli.main import main
from portrait_animate.engines.neural.config import CHECKPOINTS
from portrait_animate.engines.neural.weights import read_network_state_dict


@pytest.fixture(scope="module")
def dumped(shared, synthetic_weights, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("unseen") / "stages.npz"
    assert main(["debug-stages", "--weights_dir", str(synthetic_weights),
                 "-s", str(shared / "assets/source/s5.jpg"),
                 "-d", str(shared / "assets/driving/d12.jpg"),
                 "--out", str(out), "--flag_force_cpu"]) == 0
    with np.load(out) as data:
        return {k: data[k].astype(np.float64) if data[k].dtype == np.float32 else data[k]
                for k in data.files}


def mlp(name: str, weights, x: np.ndarray) -> np.ndarray:
    checkpoint = next(c for c in CHECKPOINTS if c.name == name)
    state, _ = read_network_state_dict(weights, checkpoint)
    layers = sorted({int(k.split(".")[1]) for k in state})
    for i, layer in enumerate(layers):
        w = state[f"mlp.{layer}.weight"].double().numpy()
        b = state[f"mlp.{layer}.bias"].double().numpy()
        x = x @ w.T + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0)
    return x


def test_same_keys_and_shapes_as_fixture(dumped, parity_fixture):
    assert set(dumped) == set(parity_fixture)
    for key, ref in parity_fixture.items():
        assert dumped[key].shape == ref.shape, key


@pytest.mark.parametrize("who", ["src", "drv"])
def test_degrees_are_softmax_expectations(dumped, who):
    for angle in ("pitch", "yaw", "roll"):
        logits = dumped[f"M_{who}_raw_{angle}"][0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        expected = (p * np.arange(66)).sum() * 3 - 97.5
        assert dumped[f"M_{who}_deg_{angle}"][0, 0] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("who", ["src", "drv"])
def test_rotation_and_keypoint_transform(dumped, who):
    pitch, yaw, roll = (dumped[f"M_{who}_deg_{a}"][0, 0] for a in ("pitch", "yaw", "roll"))
    # Extrinsic x, then y, then z is Rz Ry Rx; the reference applies its transpose to rows.
    R = Rotation.from_euler("xyz", [pitch, yaw, roll], degrees=True).as_matrix().T
    np.testing.assert_allclose(dumped[f"R_{who}"][0], R, atol=1e-5)
    kp = dumped[f"M_{who}_raw_kp"].reshape(21, 3)
    exp = dumped[f"M_{who}_raw_exp"].reshape(21, 3)
    s = dumped[f"M_{who}_raw_scale"][0, 0]
    t = dumped[f"M_{who}_raw_t"][0]
    x = s * (kp @ R + exp) + np.array([t[0], t[1], 0.0])
    np.testing.assert_allclose(dumped[f"x_{who}"][0], x, atol=1e-4)


def test_stitching_and_retargeting_mlps(dumped, synthetic_weights):
    x_s, x_d = dumped["x_src"].reshape(1, 63), dumped["x_drv"].reshape(1, 63)
    delta = mlp("S", synthetic_weights, np.concatenate([x_s, x_d], axis=1))[0]
    stitched = x_d.reshape(21, 3) + delta[:63].reshape(21, 3)
    stitched[:, :2] += delta[63:65]
    np.testing.assert_allclose(dumped["S_stitched_x_d"][0], stitched, atol=1e-4)
    eye = mlp("R_eyes", synthetic_weights, np.concatenate([x_s, [[0.30, 0.32, 0.25]]], axis=1))
    np.testing.assert_allclose(dumped["R_eye_delta"].reshape(1, 63), eye, atol=1e-4)
    lip = mlp("R_lip", synthetic_weights, np.concatenate([x_s, [[0.10, 0.40]]], axis=1))
    np.testing.assert_allclose(dumped["R_lip_delta"].reshape(1, 63), lip, atol=1e-4)


def test_warp_and_decoder_outputs_are_well_formed(dumped):
    occ = dumped["W_occlusion_map"]
    assert np.isfinite(occ).all() and occ.min() >= 0 and occ.max() <= 1
    assert np.isfinite(dumped["W_deformation"]).all()
    assert np.isfinite(dumped["W_out"]).all()
    image = dumped["G_image"]
    assert image.min() >= 0 and image.max() <= 1
    truncated = np.floor(image[0].transpose(1, 2, 0).astype(np.float32) * 255).astype(np.uint8)
    np.testing.assert_array_equal(dumped["G_image_uint8"], truncated)


def test_driving_equal_to_source_warps_to_near_identity(networks, dumped):
    """With x_d == x_s every sparse motion is the identity, so the deformation is the
    identity grid whatever the mask: an architecture-level check of W on unseen input."""
    from portrait_animate.models.dense_motion import make_coordinate_grid

    feature = torch.from_numpy(np.random.default_rng(0).random((1, 32, 16, 64, 64),
                                                               dtype=np.float32))
    x_s = torch.from_numpy(dumped["x_src"].astype(np.float32))
    out = networks.warp(feature, x_s, x_s.clone())
    grid = make_coordinate_grid((16, 64, 64), x_s)
    torch.testing.assert_close(out.deformation[0], grid, atol=1e-5, rtol=0)
