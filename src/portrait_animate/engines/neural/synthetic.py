"""Deterministic synthetic weights by the rule of ``shared/reference/SYNTHETIC_WEIGHTS.md``.

The key list, shapes and dtypes come from the networks themselves (built on the meta
device), which a test proves equal to the published manifest.
"""

from __future__ import annotations

import shutil
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from ...errors import WeightsError
from ...io.files import removed_on_failure
from .config import CHECKPOINTS, Checkpoint, build_network
from .weights import cache_root, check_weights_dir, find_checkpoint_file, liveportrait_dir

__all__ = ["fill_tensor", "synthetic_state_dict", "write_synthetic_weights",
           "cached_synthetic_weights", "follows_fill_rule", "is_synthetic", "MARKER",
           "SYNTHETIC_VERSION"]

#: Bump when the fill rule or the layout changes, so that stale caches are regenerated.
SYNTHETIC_VERSION = "v1"
#: The file that marks a ``liveportrait/`` folder as synthetic, for people and programs.
MARKER = "SYNTHETIC"
#: A drawn tensor at least this long identifies the fill rule: real weights never match it.
_PROBE_MIN_VALUES = 8


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


def follows_fill_rule(checkpoint: Checkpoint, state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a network's state dict was made by the fill rule, judged by its smallest drawn
    tensor of at least a few values."""
    drawn = [(value.numel(), key) for key, value in state.items()
             if not key.endswith(("weight_u", "weight_v", "num_batches_tracked"))
             and isinstance(value, torch.Tensor) and value.numel() >= _PROBE_MIN_VALUES]
    if not drawn:
        return False
    key = min(drawn)[1]
    value = state[key]
    expected = fill_tensor(key, tuple(value.shape), checkpoint.fill_prefix + key)
    return value.dtype == torch.float32 and np.array_equal(value.cpu().numpy(), expected)


def is_synthetic(folder: Path, checkpoint: Checkpoint,
                 state: Mapping[str, torch.Tensor]) -> bool:
    """Whether a network's weights found under ``folder`` are synthetic: the folder has the
    marker of :func:`write_synthetic_weights`, or the state dict follows the fill rule."""
    return (liveportrait_dir(folder) / MARKER).is_file() or follows_fill_rule(checkpoint, state)


def write_synthetic_weights(dest: str | Path) -> Path:
    """Write all five checkpoint files and the :data:`MARKER` under ``dest/liveportrait/``;
    returns that folder.

    Files are written into a temporary folder in ``dest`` and moved in when complete. On
    failure, what was written (files, new folders, ``dest`` itself if new) is removed; what
    was there before is kept.

    Raises:
        WeightsError: ``dest`` holds checkpoint files that this did not write (no
            :data:`MARKER`, and not of the fill rule): downloaded weights, which cannot be had
            again offline.
    """
    dest = Path(dest).expanduser()
    target = dest / "liveportrait"
    found = any(find_checkpoint_file(dest, c.file) is not None for c in CHECKPOINTS)
    if found and not (liveportrait_dir(dest) / MARKER).is_file():
        # without the marker, files of the fill rule are still synthetic (`weights check`)
        others = [r.file for r in check_weights_dir(dest) if r.path and not r.synthetic]
        if others:
            raise WeightsError(f"{dest} holds LivePortrait weights that are not synthetic "
                               f"({others[0]}, and no {MARKER} file): synthetic ones would "
                               "replace them; give another folder")
    with removed_on_failure(dest, [target.name]):
        dest.mkdir(parents=True, exist_ok=True)  # first: a folder that cannot be made fails now
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
                # through a file object, a full disk is an OSError (a path: a RuntimeError)
                with open(path, "wb") as fh:
                    torch.save(state, fh)
            for rel in files:
                final = dest / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(Path(tmp) / rel), final)
        (target / MARKER).write_text(
            f"Synthetic LivePortrait weights (fill rule {SYNTHETIC_VERSION}, "
            "`portrait-animate weights synth`): for tests only, output is meaningless.\n")
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
