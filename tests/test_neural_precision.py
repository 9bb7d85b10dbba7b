"""The --precision option: fp32-exact stays the plain networks and the fast networks'
rewrites are exact (bf16-fast on the pipeline parity cases: test_pipeline_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from portrait_animate.cli.main import main
from portrait_animate.engines.neural.acceleration import (
    EXACT,
    FAST,
    FastDecoder,
    FastWarping,
    UpsampledConv,
    bf16_supported,
    resolve_precision,
)
from portrait_animate.models import AppearanceFeatureExtractor, SPADEDecoder, WarpingNetwork
from portrait_animate.pipeline.options import AnimateOptions

MIN_PSNR = 40.0
EXACT_MIN_PSNR = 75.0  # fp32-exact reproduces the reference frames at 79-84 dB
CASE_NAMES = ["img_img_rel_all", "img_img_abs_all", "img_img_rel_lip", "img_img_rel_eyes",
              "img_img_abs_lip", "img_vid_rel_exprfriendly", "vid_img_rel_all", "vid_vid_rel_all"]
needs_bf16 = pytest.mark.skipif(not bf16_supported(),
                                reason="this CPU has no native bfloat16: bf16-fast would be "
                                       "emulated and slow")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def test_unknown_precision_is_a_conflict():
    problems = AnimateOptions(source="s.png", driving="d.png", precision="fp16").conflicts()
    assert problems == ["--precision 'fp16' is not one of auto, fp32-exact, bf16-fast"]


def test_cli_rejects_unknown_precision(capsys):
    with pytest.raises(SystemExit):
        main(["animate", "-s", "s.png", "-d", "d.png", "--precision", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_bf16_fast_runs_on_the_cpu_only():
    with pytest.raises(ValueError, match="runs on the CPU only"):
        resolve_precision(FAST, torch.device("cuda:0"))
    assert resolve_precision("auto", torch.device("cuda:0")) == EXACT
    assert resolve_precision("auto", torch.device("cpu")) == (FAST if bf16_supported() else EXACT)
    with pytest.raises(ValueError, match="not one of"):
        resolve_precision("fp16", torch.device("cpu"))


@pytest.mark.parametrize(("dims", "scale"), [(2, 2), (2, 4), (3, 2)])
def test_upsampled_conv_is_the_conv_of_the_upsampled_input(dims, scale):
    gen = torch.Generator().manual_seed(dims * scale)
    weight = torch.randn(7, 5, *[3] * dims, generator=gen, dtype=torch.float64)
    bias = torch.randn(7, generator=gen, dtype=torch.float64)
    x = torch.randn(2, 5, *([3] if dims == 3 else []), 6, 5, generator=gen, dtype=torch.float64)
    factor = (scale, scale) if dims == 2 else (1, scale, scale)
    conv = F.conv2d if dims == 2 else F.conv3d
    expected = conv(F.interpolate(x, scale_factor=factor), weight, bias, padding=1)
    torch.testing.assert_close(UpsampledConv(weight, bias, scale)(x), expected)


@torch.no_grad()
def test_fast_decoder_in_float32_is_the_decoder(networks):
    decoder = networks.networks["G"]
    feature = torch.rand(1, 256, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(FastDecoder(decoder, torch.float32)(feature), decoder(feature),
                               atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_fast_warping_in_float32_is_the_warping_network(networks):
    warping = networks.networks["W"]
    gen = torch.Generator().manual_seed(3)
    feature = torch.randn(1, 32, 16, 32, 32, generator=gen)
    x_s = 0.5 * torch.randn(1, 21, 3, generator=gen)
    x_d = x_s + 0.05 * torch.randn(1, 21, 3, generator=gen)
    expected = warping(feature, x_d, x_s)
    got = FastWarping(warping, torch.float32)(feature, x_d, x_s)
    for name in ("occlusion_map", "deformation", "out"):
        torch.testing.assert_close(getattr(got, name), getattr(expected, name), atol=1e-5,
                                   rtol=1e-4, msg=name)


def test_fp32_exact_keeps_the_plain_networks(synthetic_weights):
    from portrait_animate.engines.neural import LivePortraitNetworks

    nets = LivePortraitNetworks.from_pretrained(synthetic_weights, force_cpu=True,
                                                precision=EXACT)
    assert nets.precision == EXACT and nets.dtype == torch.float32
    assert type(nets.networks["F"]) is AppearanceFeatureExtractor
    assert type(nets.networks["W"]) is WarpingNetwork
    assert type(nets.networks["G"]) is SPADEDecoder
