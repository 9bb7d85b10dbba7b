"""Every network's state dict matches the published checkpoints key by key."""

from __future__ import annotations

import pytest
import torch

from portrait_animate.engines.neural.config import CHECKPOINTS, build_network
from portrait_animate.engines.neural.weights import read_network_state_dict


def manifest_key(checkpoint) -> str:
    return checkpoint.file + (f":{checkpoint.subdict}" if checkpoint.subdict else "")


def test_manifest_lists_exactly_our_files(manifest):
    assert sorted(manifest) == sorted(manifest_key(c) for c in CHECKPOINTS)


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=lambda c: c.name)
def test_network_state_dict_matches_manifest(checkpoint, manifest):
    with torch.device("meta"):
        state = build_network(checkpoint).state_dict()
    expected = manifest[manifest_key(checkpoint)]
    assert list(state) == list(expected), "keys or their order differ"
    for key, (shape, dtype) in expected.items():
        assert list(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key


@pytest.mark.parametrize("checkpoint", CHECKPOINTS, ids=lambda c: c.name)
def test_written_synthetic_files_match_manifest(checkpoint, manifest, synthetic_weights):
    state, _ = read_network_state_dict(synthetic_weights, checkpoint)
    expected = manifest[manifest_key(checkpoint)]
    assert list(state) == list(expected)
    for key, (shape, dtype) in expected.items():
        assert list(state[key].shape) == shape, key
        assert str(state[key].dtype).removeprefix("torch.") == dtype, key


def test_parameter_counts_are_the_published_ones():
    counts = {}
    for checkpoint in CHECKPOINTS:
        with torch.device("meta"):
            net = build_network(checkpoint)
        counts[checkpoint.name] = sum(p.numel() for p in net.parameters())
    assert round(counts["F"] / 1e6, 3) == 0.836
    assert round(counts["M"] / 1e6, 2) == 28.12
    assert round(counts["W"] / 1e6, 2) == 45.53
    assert round(counts["G"] / 1e6, 2) == 55.37
    assert (counts["S"], counts["R_lip"], counts["R_eyes"]) == (45249, 37311, 144703)
