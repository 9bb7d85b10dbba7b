"""Motion template files: our ``.npz`` format, and the reference's ``.pkl`` read through a
restricted unpickler that admits only numpy arrays, numbers and plain containers."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError
from ..motion.model import Motion
from ..motion.template import MotionTemplate
from .files import save_npz

__all__ = ["TEMPLATE_EXTENSIONS", "load_template", "save_template", "save_face_templates",
           "SafeUnpickler", "template_from_bytes", "template_to_bytes"]

TEMPLATE_EXTENSIONS = (".pkl", ".npz")
FORMAT = "portrait-animate-motion-template-v1"
_FIX = "re-create it with `portrait-animate animate` from the driving video"

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names something other than numpy arrays and plain containers."""


class SafeUnpickler(pickle.Unpickler):
    """Refuses every global but numpy array reconstruction and OrderedDict."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise RefusedGlobal(f"it references '{module}.{name}'")


def _fail(path: Path, problem: str) -> InputError:
    return InputError(f"malformed motion template {path}: {problem}; {_FIX}")


def _array(value: Any, shape: tuple[int, ...], what: str, path: Path) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise _fail(path, f"{what} is not numeric")
    if arr.size != int(np.prod(shape)):
        raise _fail(path, f"{what} has shape {arr.shape}, expected {shape}")
    return arr.reshape(shape).astype(np.float32)


def _motion(item: Any, index: int, path: Path) -> Motion:
    if not isinstance(item, dict):
        raise _fail(path, f"motion[{index}] is a {type(item).__name__}, not a dict")
    rot = item.get("R", item.get("R_d"))
    missing = [k for k, v in (("scale", item.get("scale")), ("R", rot), ("exp", item.get("exp")),
                              ("t", item.get("t"))) if v is None]
    if missing:
        raise _fail(path, f"motion[{index}] lacks {', '.join(missing)}")
    exp = np.asarray(item["exp"])
    k = exp.size // 3
    kp = item.get("kp")
    return Motion(
        scale=torch.from_numpy(_array(item["scale"], (1, 1), "scale", path)),
        R=torch.from_numpy(_array(rot, (1, 3, 3), "R", path)),
        exp=torch.from_numpy(_array(exp, (1, k, 3), "exp", path)),
        t=torch.from_numpy(_array(item["t"], (1, 3), "t", path)),
        kp=None if kp is None else torch.from_numpy(_array(kp, (1, k, 3), "kp", path)),
    )


def _ratio_list(data: dict, keys: tuple[str, str], n: int, cols: int,
                path: Path) -> np.ndarray | None:
    values = data.get(keys[0], data.get(keys[1]))
    if values is None:
        return None
    if len(values) != n:
        raise _fail(path, f"{keys[0]} has {len(values)} entries for {n} frames")
    return np.stack([_array(v, (cols,), keys[0], path) for v in values])


def _from_reference_dict(data: Any, path: Path) -> MotionTemplate:
    if not isinstance(data, dict) or not isinstance(data.get("motion"), list | tuple):
        raise _fail(path, "it has no 'motion' list")
    motions = [_motion(item, i, path) for i, item in enumerate(data["motion"])]
    if not motions:
        raise _fail(path, "its 'motion' list is empty")
    n = int(data.get("n_frames", len(motions)))
    if n != len(motions):
        raise _fail(path, f"n_frames is {n} but 'motion' has {len(motions)} entries")
    try:
        template = MotionTemplate(
            motions=motions, fps=float(data.get("output_fps", 25)),
            eye_ratios=_ratio_list(data, ("c_eyes_lst", "c_d_eyes_lst"), n, 2, path),
            lip_ratios=_ratio_list(data, ("c_lip_lst", "c_d_lip_lst"), n, 1, path))
    except (TypeError, ValueError) as exc:
        raise _fail(path, str(exc)) from exc
    if template.fps <= 0:
        raise _fail(path, f"output_fps is {template.fps}")
    return template


def _load_pickle(path: Path) -> MotionTemplate:
    try:
        data = SafeUnpickler(io.BytesIO(path.read_bytes())).load()
    except RefusedGlobal as exc:
        raise InputError(f"refused motion template {path}: {exc}, but only numpy arrays, "
                         "numbers and plain containers are allowed; this file is not a motion "
                         "template, or it is unsafe") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError) as exc:
        raise _fail(path, f"it cannot be unpickled ({type(exc).__name__})") from exc
    return _from_reference_dict(data, path)


def _face_prefix(arrays: dict[str, np.ndarray], face: int | None, path: Path) -> str:
    """The key prefix of face ``face``'s track in a template's arrays ('' for its first)."""
    numbers = [int(n) for n in arrays.get("face_numbers", ())]
    if face is None or (numbers and face == numbers[0]):
        return ""
    if face not in numbers:
        held = (f"the driving faces {', '.join(map(str, numbers))}" if numbers
                else "one face's motion")
        raise InputError(f"the motion template {path} holds {held}, not face {face}; pick one "
                         "of those, or re-create the template from the driving video with that "
                         "face")
    return f"face{face}/"


def _load_npz(path: Path, data: bytes | None = None, face: int | None = None) -> MotionTemplate:
    """An ``.npz`` template from ``path``, or from ``data`` (``path`` names it in errors): the
    track of driving face ``face``, or its first."""
    try:
        with np.load(path if data is None else io.BytesIO(data), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as exc:
        raise _fail(path, f"it is not a readable .npz ({exc})") from exc
    if str(arrays.get("format", "")) != FORMAT:
        raise _fail(path, f"it is not a {FORMAT} file")
    prefix = _face_prefix(arrays, face, path)
    arrays = {k.removeprefix(prefix): v for k, v in arrays.items()
              if k.startswith(prefix) or k in ("format", "layout", "fps")}
    n = len(arrays.get("exp", ()))
    try:
        motions = [Motion(scale=torch.from_numpy(arrays["scale"][i]),
                          R=torch.from_numpy(arrays["R"][i]),
                          exp=torch.from_numpy(arrays["exp"][i]),
                          t=torch.from_numpy(arrays["t"][i]),
                          kp=torch.from_numpy(arrays["kp"][i]) if "kp" in arrays else None)
                   for i in range(n)]
        return MotionTemplate(motions=motions, fps=float(arrays["fps"]),
                              eye_ratios=arrays.get("eye_ratios"),
                              lip_ratios=arrays.get("lip_ratios"),
                              layout=str(arrays["layout"]),
                              anchor=int(arrays["anchor"]) if "anchor" in arrays else None,
                              crop_box=arrays.get("crop_box"))
    except (KeyError, ValueError, IndexError, TypeError) as exc:
        raise _fail(path, str(exc)) from exc


def load_template(path: str | os.PathLike, face: int | None = None) -> MotionTemplate:
    """Read a ``.npz`` template of ours or a reference ``.pkl`` (any key spelling): the track
    of driving face ``face`` (its number when the template was made), or the first.

    Raises:
        InputError: missing, unsafe or malformed file, or no track of that face.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"motion template not found: {path}; check the path")
    if path.suffix == ".pkl":
        if face is not None:
            _face_prefix({}, face, path)  # a reference template holds one face
        return _load_pickle(path)
    if path.suffix == ".npz":
        return _load_npz(path, face=face)
    raise InputError(f"unsupported template extension {path.suffix!r} for {path}; use .pkl or "
                     ".npz")


def template_from_bytes(data: bytes, name: str = "template.npz") -> MotionTemplate:
    """A template from the bytes of an ``.npz`` file (:func:`template_to_bytes`).

    Raises:
        InputError: malformed; ``name`` names it.
    """
    return _load_npz(Path(name), data)


def template_to_bytes(template: MotionTemplate) -> bytes:
    """The ``.npz`` file :func:`save_template` writes, as bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, **_arrays(template))
    return buffer.getvalue()


def save_template(path: str | os.PathLike, template: MotionTemplate) -> Path:
    """Write ``template`` as ``.npz`` (no pickle inside) atomically."""
    return save_npz(path, _arrays(template))


def save_face_templates(path: str | os.PathLike,
                        templates: dict[int | None, MotionTemplate]) -> Path:
    """Write one motion track per driving face in one ``.npz``, atomically: the first as a
    plain template (what any reader takes), the others under ``face{N}/`` keys, with the
    faces' numbers in ``face_numbers`` (:func:`load_template` ``face`` picks one). A single
    track of the largest face (number None) is a plain template."""
    (first, template), *others = templates.items()
    arrays = _arrays(template)
    if first is not None:
        arrays["face_numbers"] = np.array([first, *(n for n, _ in others)])
    for number, other in others:
        arrays.update({f"face{number}/{k}": v for k, v in _arrays(other).items()
                       if k not in ("format", "layout", "fps")})
    return save_npz(path, arrays)


def _arrays(template: MotionTemplate) -> dict[str, np.ndarray]:
    def stack(name: str) -> np.ndarray:
        return np.stack([getattr(m, name).numpy() for m in template.motions])

    arrays = {"format": np.array(FORMAT), "layout": np.array(template.layout),
              "fps": np.array(template.fps), "scale": stack("scale"), "R": stack("R"),
              "exp": stack("exp"), "t": stack("t")}
    if all(m.kp is not None for m in template.motions):
        arrays["kp"] = stack("kp")
    if template.eye_ratios is not None:
        arrays["eye_ratios"] = template.eye_ratios.astype(np.float32)
    if template.lip_ratios is not None:
        arrays["lip_ratios"] = template.lip_ratios.astype(np.float32)
    if template.anchor is not None:
        arrays["anchor"] = np.array(template.anchor)
    if template.crop_box is not None:
        arrays["crop_box"] = np.asarray(template.crop_box)
    return arrays
