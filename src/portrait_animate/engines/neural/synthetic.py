"""Deterministic synthetic weights by the rule of ``shared/reference/SYNTHETIC_WEIGHTS.md``.

The key list, shapes and dtypes come from the networks themselves (built on the meta
device), which a test proves equal to the published manifest.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from .config import CHECKPOINTS, Checkpoint, build_network
from .weights import cache_root, find_checkpoint_file

__all__ = ["fill_tensor", "synthetic_state_dict", "write_synthetic_weights",
           "cached_synthetic_weights", "SYNTHETIC_VERSION"]

#: Bump when the fill rule or the layout changes, so that stale caches are regenerated.
SYNTHETIC_VERSION = "v1"


def _rng(fill_name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(fill_name.encode("utf-8")))


def fill_tensor(key: str, shape: tuple[int, ...], fill_name: str) -> np.ndarray:
    """Rules 1-3, 5 and 6 of the fill rule; spectral-norm vectors are :func:`_singular_vectors`."""
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, dtype=np.int64)
    rng = _rng(fill_name)
    if key.endswith("running_mean"):
        values = rng.uniform(-0.1, 0.1, shape)
    elif key.endswith("running_var"):
        values = rng.uniform(0.9, 1.1, shape)
    elif len(shape) <= 1:
        values = (rng.uniform(0.9, 1.1, shape) if key.endswith("weight")
                  else rng.uniform(-0.05, 0.05, shape))
    else:
        values = rng.uniform(-1, 1, shape) * np.sqrt(3 / int(np.prod(shape[1:])))
    return values.astype(np.float32)


def _singular_vectors(weight_orig: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First left/right singular vectors of weight_orig as (out, -1), u's largest entry > 0."""
    mat = weight_orig.astype(np.float64).reshape(weight_orig.shape[0], -1)
    left, _, right_t = np.linalg.svd(mat, full_matrices=False)
    u, v = left[:, 0], right_t[0]
    if u[np.argmax(np.abs(u))] < 0:
        u, v = -u, -v
    return u.astype(np.float32), v.astype(np.float32)


def synthetic_state_dict(checkpoint: Checkpoint) -> OrderedDict[str, torch.Tensor]:
    """The synthetic state dict of one network, in the network's key order."""
    with torch.device("meta"):
        template = build_network(checkpoint).state_dict()
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, meta in template.items():
        if key.endswith(("weight_u", "weight_v")):
            continue
        out[key] = torch.from_numpy(
            fill_tensor(key, tuple(meta.shape), checkpoint.fill_prefix + key))
    for key in template:
        if key.endswith("weight_u"):
            base = key.removesuffix("_u")
            u, v = _singular_vectors(out[base + "_orig"].numpy())
            out[base + "_u"], out[base + "_v"] = torch.from_numpy(u), torch.from_numpy(v)
    return OrderedDict((k, out[k]) for k in template)


def write_synthetic_weights(dest: str | Path) -> Path:
    """Write all five checkpoint files under ``dest/liveportrait/``; returns that folder.

    Files are written into a temporary folder beside ``dest`` and moved in when complete.
    """
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict] = {}
    for checkpoint in CHECKPOINTS:
        state = synthetic_state_dict(checkpoint)
        if checkpoint.subdict is None:
            files[checkpoint.file] = state
        else:
            files.setdefault(checkpoint.file, {})[checkpoint.subdict] = state
    with tempfile.TemporaryDirectory(dir=dest, prefix=".synth-") as tmp:
        for rel, state in files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(state, path)
        target = dest / "liveportrait"
        for rel in files:
            final = dest / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(Path(tmp) / rel), final)
    return target


def cached_synthetic_weights() -> Path:
    """The synthetic weights folder in the user cache, generated on first use (~1 min)."""
    folder = cache_root() / f"synthetic-weights-{SYNTHETIC_VERSION}"
    done = folder / ".complete"
    if not done.exists() or any(find_checkpoint_file(folder, c.file) is None
                                for c in CHECKPOINTS):
        write_synthetic_weights(folder)
        done.touch()
    return folder / "liveportrait"
