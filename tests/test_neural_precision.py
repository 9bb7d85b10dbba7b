"""The --precision option: fp32-exact stays the plain networks, the fast networks'
rewrites are exact (bf16-fast on the pipeline parity cases: test_pipeline_parity.py), and
auto picks the path measured faster on this CPU, once, then from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from portrait_animate.choices import EXACT, FAST
from portrait_animate.cli.main import main
from portrait_animate.engines.neural import engine, precision
from portrait_animate.engines.neural.acceleration import FastDecoder, FastWarping, UpsampledConv
from portrait_animate.engines.neural.precision import (
    DECODER_INPUT,
    PathTimings,
    choice_cache_path,
    choice_key,
    choose_precision,
    measure_paths,
    resolve_precision,
)
from portrait_animate.engines.neural.weights import CACHE_ENV_VAR
from portrait_animate.models import AppearanceFeatureExtractor, SPADEDecoder, WarpingNetwork
from portrait_animate.pipeline.options import AnimateOptions

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[1]


class Measure:
    """The micro-benchmark's stand-in: fixed timings, calls counted."""

    def __init__(self, exact_ms: tuple[float, ...], fast_ms: tuple[float, ...]) -> None:
        self.timings = PathTimings(exact_ms, fast_ms)
        self.calls = 0

    def __call__(self) -> PathTimings:
        self.calls += 1
        return self.timings


FAST_WINS = ((1000.0, 1010.0, 990.0), (500.0, 520.0, 480.0))
FAST_LOSES = ((1000.0, 1010.0, 990.0), (1180.0, 1190.0, 1170.0))


@pytest.fixture
def bf16_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CPU with native bfloat16, the choice cache in tmp_path; returns the cache file."""
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(precision, "bf16_supported", lambda: True)
    return choice_cache_path()


def test_unknown_precision_is_invalid():
    problems = AnimateOptions(source="s.png", driving="d.png", precision="fp16").invalid_values()
    assert problems == ["--precision 'fp16' is not one of auto, fp32-exact, bf16-fast"]


def test_cli_rejects_unknown_precision(capsys):
    with pytest.raises(SystemExit):
        main(["animate", "-s", "s.png", "-d", "d.png", "--precision", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_bf16_fast_runs_on_the_cpu_only():
    with pytest.raises(ValueError, match=r"runs on the CPU only.*26\.8 dB.*float16 keeps"):
        resolve_precision(FAST, torch.device("cuda:0"))  # refused with the reason
    assert resolve_precision("auto", torch.device("cuda:0")) == EXACT
    with pytest.raises(ValueError, match="not one of"):
        resolve_precision("fp16", CPU)


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


def test_a_cpu_without_native_bf16_is_exact_without_measuring(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(precision, "bf16_supported", lambda: False)
    measure = Measure(*FAST_WINS)
    assert resolve_precision("auto", CPU, measure) == EXACT
    assert measure.calls == 0 and not choice_cache_path().exists()


@pytest.mark.parametrize(("mkldnn", "flags", "expected"), [
    (True, {"avx512f", "avx512bw", "avx512_vnni"}, False),  # AVX512 alone: emulated bf16
    (True, {"avx512f", "avx512_bf16"}, True),
    (True, {"avx512f", "amx_tile", "amx_bf16"}, True),
    (True, {"fp", "asimd", "bf16"}, True),  # Arm
    (True, set(), True),  # no flags listed: PyTorch's check alone
    (False, {"avx512_bf16"}, False),
])
def test_native_bf16_needs_the_cpu_flag_too(monkeypatch, mkldnn, flags, expected):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: mkldnn)
    monkeypatch.setattr(precision, "cpu_description", lambda: ("a CPU", frozenset(flags)))
    assert precision.bf16_supported() is expected


def test_auto_measures_once_then_reuses_the_cached_choice(bf16_cpu):
    first = Measure(*FAST_WINS)
    assert resolve_precision("auto", CPU, first) == FAST
    assert first.calls == 1 and bf16_cpu.is_file()
    again = Measure(*FAST_LOSES)
    assert resolve_precision("auto", CPU, again) == FAST
    assert resolve_precision("auto", CPU) == FAST
    assert again.calls == 0
    record = precision._read_choices(bf16_cpu)[choice_key()]
    assert record == {"precision": FAST, "exact_ms": list(FAST_WINS[0]),
                      "fast_ms": list(FAST_WINS[1])}


def test_the_cache_lives_in_the_user_cache_not_the_repo(monkeypatch):
    monkeypatch.delenv(CACHE_ENV_VAR, raising=False)
    path = choice_cache_path()
    assert path == Path.home() / ".cache/portrait-animate/precision-choices.json"
    assert REPO not in path.parents


def test_the_cache_key_changes_with_the_cpu_and_library_versions(bf16_cpu, monkeypatch):
    resolve_precision("auto", CPU, Measure(*FAST_WINS))
    model, flags = precision.cpu_description()
    keys = {choice_key(), choice_key(threads=64)}
    monkeypatch.setattr(precision, "cpu_description", lambda: ("Another CPU", flags))
    keys.add(choice_key())
    monkeypatch.setattr(precision, "cpu_description", lambda: (model, flags | {"amx_bf16"}))
    keys.add(choice_key())
    monkeypatch.setattr(precision, "cpu_description", lambda: (model, flags))
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    keys.add(choice_key())
    monkeypatch.setattr(precision, "_package_version", lambda: "0.0.2")
    keys.add(choice_key())
    assert len(keys) == 6
    remeasure = Measure(*FAST_LOSES)
    assert resolve_precision("auto", CPU, remeasure) == EXACT
    assert remeasure.calls == 1 and len(precision._read_choices(bf16_cpu)) == 2


@pytest.mark.parametrize(("exact_ms", "fast_ms", "expected"), [
    FAST_WINS + (FAST,),
    FAST_LOSES + (EXACT,),
    ((1000.0, 1000.0, 1000.0), (870.0, 870.0, 870.0), EXACT),  # 13% faster: within the margin
    ((1000.0, 1000.0, 1000.0), (833.0, 833.0, 833.0), FAST),   # 20% faster
    ((3000.0, 1000.0, 1000.0), (800.0, 1100.0, 1100.0), EXACT),  # one round under load
    ((1000.0, 3000.0, 1000.0), (1100.0, 1100.0, 1100.0), EXACT),
    ((1000.0, 500.0, 1000.0), (800.0, 800.0, 800.0), EXACT),  # exact's best round is faster
])
def test_auto_never_picks_bf16_when_it_measures_slower(bf16_cpu, exact_ms, fast_ms, expected):
    assert choose_precision(PathTimings(exact_ms, fast_ms)) == expected
    assert resolve_precision("auto", CPU, Measure(exact_ms, fast_ms)) == expected
    assert resolve_precision("auto", CPU) == expected  # cached, not measured again


def test_a_broken_or_unwritable_cache_only_costs_a_measurement(bf16_cpu, monkeypatch):
    bf16_cpu.parent.mkdir(parents=True, exist_ok=True)
    bf16_cpu.write_text("{not json")
    measure = Measure(*FAST_WINS)
    assert resolve_precision("auto", CPU, measure) == FAST and measure.calls == 1
    blocked = bf16_cpu.parent / "blocked"
    blocked.write_text("a file, not a folder")
    monkeypatch.setenv(CACHE_ENV_VAR, str(blocked))
    assert resolve_precision("auto", CPU, measure) == FAST and measure.calls == 2
    assert list(bf16_cpu.parent.glob(".*.tmp")) == []


def test_measure_paths_interleaves_both_paths():
    calls: list[tuple[str, tuple[int, ...]]] = []

    def decoder(path: str):
        return lambda x: calls.append((path, tuple(x.shape)))

    timings = measure_paths({"G": decoder(EXACT)}, {"G": decoder(FAST)}, rounds=3)
    assert len(timings.exact_ms) == len(timings.fast_ms) == 3
    assert all(ms >= 0 for ms in timings.exact_ms + timings.fast_ms)
    assert {shape for _, shape in calls} == {DECODER_INPUT}
    order = [path for path, _ in calls]
    assert order == [EXACT, FAST, EXACT, FAST, FAST, EXACT, EXACT, FAST]  # first calls, rounds


def test_auto_loads_the_path_measured_faster(synthetic_weights, bf16_cpu, monkeypatch):
    """The networks built for the measurement are the ones returned, built once."""
    from portrait_animate.engines.neural import LivePortraitNetworks

    built, measured = [], []

    def fake_accelerate(networks):
        built.append(torch.nn.Identity())
        return dict(networks, G=built[-1])

    def fake_measure(exact, fast):
        measured.append((type(exact["G"]), fast["G"]))
        return PathTimings(*FAST_WINS)

    monkeypatch.setattr(engine, "accelerate", fake_accelerate)
    monkeypatch.setattr(engine, "measure_paths", fake_measure)
    nets = LivePortraitNetworks.from_pretrained(synthetic_weights, force_cpu=True,
                                                precision="auto")
    assert len(built) == 1 and measured == [(SPADEDecoder, built[0])]
    assert nets.precision == FAST and nets.networks["G"] is built[0]


def test_fp32_exact_turns_tf32_off_while_the_networks_run(networks, monkeypatch):
    """fp32-exact is really fp32 on CUDA: cuDNN and matmul TF32 are off inside every network
    call (PyTorch leaves cuDNN's on by default) and as before after it."""
    seen = []

    def spy(*args, **kwargs):
        seen.append((torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32))
        return torch.zeros(1, 3, 512, 512)

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    monkeypatch.setitem(networks.networks, "G", spy)
    try:  # flags read through properties: set and put back by hand
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        assert networks.precision == EXACT
        networks.decode(torch.zeros(1, 256, 64, 64))
        assert seen == [(False, False)]
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def test_fp32_exact_by_name_is_float32_on_cuda_and_fp16_stays_the_default():
    from portrait_animate.engines.neural.device import select_dtype

    cuda, cpu = torch.device("cuda:0"), torch.device("cpu")
    assert select_dtype(cuda, True, "auto") == torch.float16  # the reference's default
    assert select_dtype(cuda, True, EXACT) == torch.float32
    assert select_dtype(cuda, False, "auto") == torch.float32
    assert select_dtype(cpu, True, "auto") == torch.float32
