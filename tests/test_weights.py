"""Finding and loading checkpoint files: layouts, search order, formats and errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from portrait_animate.engines.neural import LivePortraitNetworks
from portrait_animate.engines.neural.config import CHECKPOINTS, STITCHING_FILE, build_network
from portrait_animate.engines.neural.synthetic import (
    MARKER,
    follows_fill_rule,
    is_synthetic,
    synthetic_state_dict,
)
from portrait_animate.engines.neural.weights import (
    ENV_VAR,
    check_weights_dir,
    load_network,
    read_network_state_dict,
    resolve_weights_dir,
)
from portrait_animate.errors import WeightsError
from portrait_animate.pipeline import engines
from portrait_animate.pipeline.options import AnimateOptions
from portrait_animate.pipeline.progress import Reporter

FILES = list(dict.fromkeys(c.file for c in CHECKPOINTS))


def link_weights(src_liveportrait: Path, root: Path, skip: str | None = None) -> Path:
    """Mirror the synthetic files under ``root/liveportrait`` with symlinks."""
    for rel in FILES:
        if rel == skip:
            continue
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(src_liveportrait.parent / rel)
    return root / "liveportrait"


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PORTRAIT_ANIMATE_CACHE", str(cache))
    monkeypatch.delenv(ENV_VAR, raising=False)
    return cache


def test_accepts_parent_folder_and_liveportrait_folder(synthetic_weights, tmp_path,
                                                       isolated_cache):
    lp = link_weights(synthetic_weights, tmp_path / "pretrained_weights")
    assert resolve_weights_dir(tmp_path / "pretrained_weights") == lp
    assert resolve_weights_dir(lp) == lp


def test_the_folder_named_first_is_the_only_one_searched(synthetic_weights, tmp_path,
                                                         isolated_cache, monkeypatch):
    """--weights_dir, else $PORTRAIT_ANIMATE_WEIGHTS, else the cache: a folder named that lacks
    a file was silently replaced by the next complete one (another folder's weights ran)."""
    cache_lp = link_weights(synthetic_weights, isolated_cache / "weights")
    assert resolve_weights_dir(None) == cache_lp
    env_lp = link_weights(synthetic_weights, tmp_path / "env")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert resolve_weights_dir(None) == env_lp
    flag_lp = link_weights(synthetic_weights, tmp_path / "flag")
    assert resolve_weights_dir(tmp_path / "flag") == flag_lp
    link_weights(synthetic_weights, tmp_path / "partial", skip=FILES[2])
    with pytest.raises(WeightsError, match=f"{tmp_path / 'partial'} \\(--weights_dir\\) lacks "
                                           f"{FILES[2]}"):
        resolve_weights_dir(tmp_path / "partial")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "partial"))
    with pytest.raises(WeightsError, match=f"\\(\\${ENV_VAR}\\) lacks {FILES[2]}"):
        resolve_weights_dir(None)


@pytest.mark.parametrize("what", ["does not exist", "is a file, not a folder"])
def test_missing_weights_error_names_the_folder_and_remedy(what, tmp_path, isolated_cache):
    folder = tmp_path / "weights"
    if what.startswith("is a file"):
        folder.write_text("")
    with pytest.raises(WeightsError) as info:
        resolve_weights_dir(folder)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"LivePortrait weights not found: {folder} (--weights_dir) {what}; ")
    assert str(isolated_cache) not in msg
    assert "portrait-animate weights download" in msg


def test_module_prefix_is_removed_anywhere_in_stitching_keys(synthetic_weights, tmp_path):
    state = torch.load(synthetic_weights.parent / STITCHING_FILE, weights_only=True)
    ddp = {sub: {f"module.{k}".replace("mlp.", "mlp.module."): v for k, v in sd.items()}
           for sub, sd in state.items()}
    ddp["extra_entry"] = {"ignored": torch.zeros(1)}
    (tmp_path / "liveportrait/retargeting_models").mkdir(parents=True)
    torch.save(ddp, tmp_path / STITCHING_FILE)
    for checkpoint in CHECKPOINTS:
        if checkpoint.subdict:
            loaded, _ = read_network_state_dict(tmp_path, checkpoint)
            assert list(loaded) == list(state[checkpoint.subdict])


def test_safetensors_files_load_like_pth(synthetic_weights, tmp_path, networks):
    from safetensors.torch import save_file

    for rel in FILES:
        state = torch.load(synthetic_weights.parent / rel, weights_only=True)
        if rel == STITCHING_FILE:
            state = {f"{sub}.{k}": v for sub, sd in state.items() for k, v in sd.items()}
        target = (tmp_path / rel).with_suffix(".safetensors")
        target.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in state.items()}, str(target))
    nets = LivePortraitNetworks.from_pretrained(tmp_path, force_cpu=True)
    x = torch.rand(1, 21, 3)
    torch.testing.assert_close(nets.stitch(x, x), networks.stitch(x, x), rtol=0, atol=0)
    image = torch.rand(1, 3, 256, 256)
    torch.testing.assert_close(nets.extract_motion(image).kp, networks.extract_motion(image).kp,
                               rtol=0, atol=0)


def test_strict_mismatch_lists_keys_and_names_file(synthetic_weights, tmp_path):
    link_weights(synthetic_weights, tmp_path, skip=FILES[0])
    state = torch.load(synthetic_weights.parent / FILES[0], weights_only=True)
    state["surplus.weight"] = state.pop("second.weight")
    torch.save(state, tmp_path / FILES[0])
    with pytest.raises(WeightsError) as info:
        LivePortraitNetworks.from_pretrained(tmp_path, force_cpu=True)
    msg = str(info.value)
    assert "appearance_feature_extractor.pth" in msg
    assert "second.weight" in msg and "surplus.weight" in msg
    report = {r.name: r for r in check_weights_dir(tmp_path)}
    assert not report["F"].ok and report["M"].ok
    assert (report["F"].status, report["M"].status) == ("invalid", "synthetic")


def test_pickled_code_is_never_run(synthetic_weights, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    link_weights(synthetic_weights, tmp_path, skip=FILES[1])
    torch.save({"detector.norm.weight": Evil()}, tmp_path / FILES[1])
    with pytest.raises(WeightsError, match="is not a valid checkpoint") as info:
        LivePortraitNetworks.from_pretrained(tmp_path, force_cpu=True)
    assert not marker.exists()
    assert "weights_only" not in str(info.value), "never advise unpickling the file"


@pytest.mark.parametrize("name, junk", [
    ("warping_module.safetensors", b"plain text, no safetensors header"),
    ("warping_module.pth", b"plain text, not a pickle"),
    ("warping_module.pth", b""),
    ("warping_module.pth", b"PK\x03\x04 a cut zip"),
])
def test_junk_files_are_reported_invalid_in_one_line(name, junk, tmp_path):
    folder = tmp_path / "liveportrait/base_models"
    folder.mkdir(parents=True)
    (folder / name).write_bytes(junk)
    report = {r.name: r for r in check_weights_dir(tmp_path)}["W"]
    assert report.status == "invalid"
    assert report.detail.startswith("weights file is not a valid checkpoint (")
    assert report.detail.endswith("; re-download it") and "\n" not in report.detail
    assert "weights_only" not in report.detail and len(report.detail) < 160


@pytest.mark.parametrize("junk", [b"not a checkpoint", b"junk\n"])
def test_corrupt_file_is_a_clear_error(junk, synthetic_weights, tmp_path):
    link_weights(synthetic_weights, tmp_path, skip=FILES[3])
    (tmp_path / FILES[3]).write_bytes(junk)
    with pytest.raises(WeightsError, match="spade_generator.pth"):
        LivePortraitNetworks.from_pretrained(tmp_path, force_cpu=True)


def test_synthetic_weights_are_known_by_their_fill_rule_or_marker(tmp_path):
    checkpoint = next(c for c in CHECKPOINTS if c.name == "S")
    state = synthetic_state_dict(checkpoint)
    trained = {k: v + 1e-3 for k, v in state.items()}  # stands in for the published weights
    assert follows_fill_rule(checkpoint, state)
    assert not follows_fill_rule(checkpoint, trained)
    assert not is_synthetic(tmp_path, checkpoint, trained)
    (tmp_path / MARKER).write_text("")
    assert is_synthetic(tmp_path, checkpoint, trained)


def test_animate_warns_when_its_weights_are_synthetic(synthetic_weights, networks, monkeypatch,
                                                      capsys):
    assert networks.synthetic  # loaded from the cache, found by the fill rule or the marker
    monkeypatch.setattr(engines.LivePortraitNetworks, "from_pretrained",
                        lambda *args, **kwargs: networks)
    options = AnimateOptions(source="", driving="", engine="neural",
                             weights_dir=str(synthetic_weights), precision="fp32-exact")
    engines.load_engine(options, Reporter())
    assert "synthetic: for tests only, output is meaningless" in capsys.readouterr().err
    engines.load_engine(options, Reporter(quiet=True))
    assert capsys.readouterr().err == ""


def test_a_file_of_another_network_is_one_short_line(tmp_path):
    """Every one of its keys was listed: one line of 6 KB."""
    warping, motion = (next(c for c in CHECKPOINTS if c.name == name) for name in ("W", "M"))
    state = build_network(motion).state_dict()
    with pytest.raises(WeightsError) as info:
        load_network(build_network(warping), state, tmp_path / "w.pth", warping.name)
    message = str(info.value)
    expected = len(build_network(warping).state_dict())
    assert f"does not match network W: {expected} missing keys (" in message
    assert f", and {expected - 3} more); {len(state)} unexpected keys (" in message
    assert len(message) < 600 and "\n" not in message
