"""Finding, reading and checking the published LivePortrait checkpoint files.

Layout (SPEC 1.1), relative to a folder that contains ``liveportrait/`` or to
``liveportrait/`` itself; each ``.pth`` may instead be a ``.safetensors`` of the same stem::

    liveportrait/base_models/{appearance_feature_extractor,motion_extractor,
                              warping_module,spade_generator}.pth
    liveportrait/retargeting_models/stitching_retargeting_module.pth
"""

from __future__ import annotations

import os
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from torch import nn

from ...errors import WeightsError
from .config import CHECKPOINTS, Checkpoint

__all__ = [
    "ENV_VAR",
    "cache_root",
    "default_weights_dir",
    "weights_location",
    "weights_problem",
    "folder_problem",
    "liveportrait_dir",
    "resolve_weights_dir",
    "find_checkpoint_file",
    "read_state_dict",
    "read_network_state_dict",
    "load_network",
    "FileReport",
    "SYNTHETIC_DETAIL",
    "check_weights_dir",
]

ENV_VAR = "PORTRAIT_ANIMATE_WEIGHTS"
CACHE_ENV_VAR = "PORTRAIT_ANIMATE_CACHE"
#: What synthetic weights are good for, as ``weights check`` says it.
SYNTHETIC_DETAIL = "for tests only, output is meaningless"
HOW_TO_GET = ("get them with `portrait-animate weights download`, or pass --weights_dir / set "
              f"{ENV_VAR} to a folder holding the published `liveportrait/` files")


def cache_root() -> Path:
    """``$PORTRAIT_ANIMATE_CACHE`` or ``~/.cache/portrait-animate``."""
    return Path(os.environ.get(CACHE_ENV_VAR) or "~/.cache/portrait-animate").expanduser()


def default_weights_dir() -> Path:
    return cache_root() / "weights"


def weights_location(weights_dir: str | os.PathLike | None = None) -> tuple[str, Path]:
    """The folder searched for weights, with where it came from: ``weights_dir`` when given,
    else ``$PORTRAIT_ANIMATE_WEIGHTS`` when set, else the default cache. A folder named is the
    only one searched: one that lacks a file is not silently replaced by another's weights."""
    if weights_dir:
        return "--weights_dir", Path(weights_dir).expanduser()
    if os.environ.get(ENV_VAR):
        return f"${ENV_VAR}", Path(os.environ[ENV_VAR]).expanduser()
    return "default cache", default_weights_dir()


def liveportrait_dir(folder: Path) -> Path:
    """``folder/liveportrait`` when it exists, else ``folder`` itself."""
    return folder / "liveportrait" if (folder / "liveportrait").is_dir() else folder


def _relative_file(checkpoint_file: str) -> str:
    return checkpoint_file.removeprefix("liveportrait/")


def find_checkpoint_file(folder: Path, checkpoint_file: str) -> Path | None:
    """The ``.pth`` (or same-stem ``.safetensors``) of ``checkpoint_file`` under ``folder``."""
    path = liveportrait_dir(folder) / _relative_file(checkpoint_file)
    for candidate in (path, path.with_suffix(".safetensors")):
        if candidate.is_file():
            return candidate
    return None


def _checkpoint_files() -> list[str]:
    return list(dict.fromkeys(c.file for c in CHECKPOINTS))


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot hold weights ("does not exist", "is a file, not a folder"), or
    None when it is a folder."""
    if folder.is_dir():
        return None
    return "is a file, not a folder" if folder.exists() else "does not exist"


def weights_problem(weights_dir: str | os.PathLike | None = None) -> str | None:
    """What keeps the folder of the weights (:func:`weights_location`) from being used, named
    with where it came from (:func:`folder_problem`, or it lacks a checkpoint file: the first
    missing); None when it holds every checkpoint file."""
    origin, folder = weights_location(weights_dir)
    where = f"{folder} ({origin})"
    if (problem := folder_problem(folder)) is not None:
        return f"{where} {problem}"
    missing = [f for f in _checkpoint_files() if find_checkpoint_file(folder, f) is None]
    return f"{where} lacks {missing[0]}" if missing else None


def resolve_weights_dir(weights_dir: str | os.PathLike | None = None) -> Path:
    """The folder of the weights (:func:`weights_location`), when it holds every checkpoint
    file.

    Raises:
        WeightsError: :func:`weights_problem`'s, with how to get the weights.
    """
    problem = weights_problem(weights_dir)
    if problem is not None:
        raise WeightsError(f"LivePortrait weights not found: {problem}; {HOW_TO_GET}")
    return liveportrait_dir(weights_location(weights_dir)[1])


def _unreadable_reason(exc: Exception) -> str:
    """Why a checkpoint could not be read, in a few words; never PyTorch's advice to load it
    with ``weights_only=False``, which would run whatever code the file holds."""
    text = str(exc).strip()
    if isinstance(exc, EOFError):
        return "it is empty or cut short"
    if isinstance(exc, (RuntimeError, SafetensorError)) and text and "weights_only" not in text:
        # the fault the reader found, such as a zip archive's or a header's: its first sentence
        return text.splitlines()[0].split(". ")[0].removesuffix(".")
    return "it is damaged, or holds more than tensors"


def read_state_dict(path: Path) -> dict[str, torch.Tensor | dict[str, torch.Tensor]]:
    """Read a checkpoint without unpickling code: ``weights_only`` for ``.pth``."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        with warnings.catch_warnings():
            # a pickle that is not a checkpoint makes torch warn about its protocol
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: "
                           f"{exc.strerror or type(exc).__name__}; {HOW_TO_GET}") from exc
    except (RuntimeError, ValueError, EOFError, KeyError, IndexError, TypeError,
            AttributeError, pickle.UnpicklingError, SafetensorError) as exc:
        raise WeightsError(f"weights file {path} is not a valid checkpoint "
                           f"({_unreadable_reason(exc)}); re-download it: {HOW_TO_GET}"
                           ) from exc
    if not isinstance(state, dict):
        raise WeightsError(f"weights file {path} holds a {type(state).__name__}, not a state "
                           f"dict; {HOW_TO_GET}")
    return state


def _subdict(state: dict, checkpoint: Checkpoint, path: Path) -> dict[str, torch.Tensor]:
    """The network's sub-state-dict, also from a flat safetensors file (``sub.key``)."""
    if checkpoint.subdict in state and isinstance(state[checkpoint.subdict], dict):
        sub = state[checkpoint.subdict]
    else:
        prefix = f"{checkpoint.subdict}."
        sub = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if not sub:
        raise WeightsError(f"weights file {path} has no '{checkpoint.subdict}' entry; expected "
                           f"the published stitching/retargeting checkpoint, {HOW_TO_GET}")
    # DDP leftovers: the reference removes "module." anywhere in the key (SPEC 1.1).
    return {k.replace("module.", ""): v for k, v in sub.items()}


def read_network_state_dict(folder: Path, checkpoint: Checkpoint,
                            cache: dict[Path, dict] | None = None) -> tuple[dict, Path]:
    """The state dict of one network and the file it came from."""
    path = find_checkpoint_file(folder, checkpoint.file)
    if path is None:
        raise WeightsError(f"LivePortrait weights file missing: {checkpoint.file} under "
                           f"{folder}; {HOW_TO_GET}")
    if cache is not None and path in cache:
        state = cache[path]
    else:
        state = read_state_dict(path)
        if cache is not None:
            cache[path] = state
    if checkpoint.subdict is not None:
        return _subdict(state, checkpoint, path), path
    return state, path


def _mismatches(module: nn.Module, state: dict) -> tuple[list[str], list[str], list[str]]:
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and hasattr(state[k], "shape") and state[k].shape != v.shape]
    return missing, unexpected, wrong


#: Keys a mismatch names of each kind; the rest are counted (a file for another network
#: misses all of its 107 keys: one line of 6 KB).
NAMED_KEYS = 3


def _keys(kind: str, keys: list) -> str:
    """``kind`` keys: how many, and the first :data:`NAMED_KEYS` of them."""
    more = f", and {len(keys) - NAMED_KEYS} more" if len(keys) > NAMED_KEYS else ""
    return f"{len(keys)} {kind} ({', '.join(map(str, keys[:NAMED_KEYS]))}{more})"


def load_network(module: nn.Module, state: dict, source: Path, name: str) -> nn.Module:
    """Load ``state`` strictly into ``module``; a mismatch names the file and counts the keys
    of each kind, naming the first few."""
    missing, unexpected, wrong = _mismatches(module, state)
    if missing or unexpected or wrong:
        parts = [_keys("missing keys", missing) if missing else "",
                 _keys("unexpected keys", unexpected) if unexpected else "",
                 _keys("keys of the wrong shape", wrong) if wrong else ""]
        raise WeightsError(f"weights file {source} does not match network {name}: "
                           + "; ".join(p for p in parts if p)
                           + "; it is not the published LivePortrait human-mode checkpoint")
    module.load_state_dict(state, strict=True)
    return module.eval()


@dataclass
class FileReport:
    """What ``weights check`` found for one network.

    Attributes:
        synthetic: the file holds synthetic weights (``weights synth``): valid for tests,
            meaningless for animation.
    """

    name: str
    file: str
    path: Path | None
    ok: bool
    detail: str
    synthetic: bool = False

    @property
    def status(self) -> str:
        """``ok``, ``synthetic``, ``invalid`` or ``missing``."""
        if self.path is None:
            return "missing"
        if not self.ok:
            return "invalid"
        return "synthetic" if self.synthetic else "ok"


def _file_problem(exc: WeightsError, path: Path) -> str:
    """An error about one file without its path and the advice on getting weights."""
    text = str(exc).replace(f" {path}", "")
    for separator in (", ", "; ", ": "):
        text = text.removesuffix(f"{separator}{HOW_TO_GET}")
    return text


def check_weights_dir(folder: Path) -> list[FileReport]:
    """Check every network's checkpoint under ``folder`` against the published layout."""
    from .config import build_network
    from .synthetic import is_synthetic

    reports, cache = [], {}
    for checkpoint in CHECKPOINTS:
        path = find_checkpoint_file(folder, checkpoint.file)
        if path is None:
            reports.append(FileReport(checkpoint.name, checkpoint.file, None, False,
                                      "no .pth or .safetensors file"))
            continue
        try:
            with torch.device("meta"):
                module = build_network(checkpoint)
            state, _ = read_network_state_dict(folder, checkpoint, cache)
            missing, unexpected, wrong = _mismatches(module, state)
        except WeightsError as exc:
            reports.append(FileReport(checkpoint.name, checkpoint.file, path, False,
                                      _file_problem(exc, path)))
            continue
        problems = len(missing) + len(unexpected) + len(wrong)
        if problems:
            detail = (f"{len(missing)} missing, {len(unexpected)} unexpected, "
                      f"{len(wrong)} wrong-shape")
            reports.append(FileReport(checkpoint.name, checkpoint.file, path, False, detail))
            continue
        synthetic = is_synthetic(folder, checkpoint, state)
        detail = SYNTHETIC_DETAIL if synthetic else f"{len(state)} tensors match"
        reports.append(FileReport(checkpoint.name, checkpoint.file, path, True, detail,
                                  synthetic))
    return reports
