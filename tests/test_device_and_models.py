"""Device choice and up-front input checks of the networks."""

from __future__ import annotations

import pytest
import torch

from portrait_animate.engines.neural.device import select_device, select_dtype
from portrait_animate.errors import InputError
from portrait_animate.models import (
    AppearanceFeatureExtractor,
    SPADEDecoder,
    StitchingRetargetingNetwork,
    WarpingNetwork,
)


def test_force_cpu_wins(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert select_device(force_cpu=True).type == "cpu"
    assert select_device(force_cpu=False, device_id=1) == torch.device("cuda:1")


def test_a_gpu_the_machine_lacks_is_refused_by_its_number(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InputError, match=r"^--device_id 1: this machine has 1 GPU \(0 to 0\)"):
        select_device(device_id=1)


@pytest.mark.parametrize("bad", ["x", -1, 1.0, True])
def test_a_device_id_that_is_not_a_gpu_number_is_refused_on_any_machine(bad):
    with pytest.raises(InputError, match="is not a GPU number"):
        select_device(force_cpu=True, device_id=bad)


def test_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert select_device().type == "mps"
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert select_device().type == "cpu"


def test_half_precision_only_on_cuda():
    assert select_dtype(torch.device("cpu"), True) == torch.float32
    assert select_dtype(torch.device("mps"), True) == torch.float32
    assert select_dtype(torch.device("cuda:0"), True) == torch.float16
    assert select_dtype(torch.device("cuda:0"), False) == torch.float32


@pytest.mark.parametrize("make, bad, message", [
    (lambda: AppearanceFeatureExtractor(), torch.zeros(1, 4, 8, 8), r"\(\*, 3, \*, \*\)"),
    (lambda: SPADEDecoder(), torch.zeros(1, 128, 8, 8), r"\(\*, 256, \*, \*\)"),
    (lambda: StitchingRetargetingNetwork(65, (8,), 63), torch.zeros(1, 66), r"\(B, 65\)"),
])
def test_networks_name_the_expected_shape(make, bad, message):
    with torch.device("meta"):
        net = make()
    with pytest.raises(ValueError, match=message):
        net(bad)


def test_warping_checks_keypoint_shapes():
    with torch.device("meta"):
        net = WarpingNetwork()
    with pytest.raises(ValueError, match=r"kp_driving must have shape \(\*, 21, 3\)"):
        net(torch.zeros(1, 32, 16, 64, 64, device="meta"), torch.zeros(1, 63, device="meta"),
            torch.zeros(1, 21, 3, device="meta"))
