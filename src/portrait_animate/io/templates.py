"""Motion template files: our ``.npz`` format, and the reference's ``.pkl`` read through a
restricted unpickler that admits only numpy arrays, numbers and plain containers."""

from __future__ import annotations

import io
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..choices import LARGEST_FIRST
from ..errors import InputError
from ..motion.model import LAYOUT_KEYPOINTS, LIVEPORTRAIT_LAYOUT, Motion
from ..motion.template import MotionTemplate
from .files import Rows, save_npz, write_npz

__all__ = ["TEMPLATE_EXTENSIONS", "load_template", "save_template", "save_face_templates",
           "SafeUnpickler", "template_from_bytes", "template_to_bytes"]

TEMPLATE_EXTENSIONS = (".pkl", ".npz")
FORMAT = "portrait-animate-motion-template-v1"
_FIX = "re-create it with `portrait-animate animate` from the driving video"
#: The frame rates a template may hold, at least MIN_FPS and below MAX_FPS: ffmpeg writes no
#: playable video at 1e-6 fps, nor at 1000 (its probe reads "1k fps").
MIN_FPS, MAX_FPS = 0.01, 1000.0
#: How far R @ R.T of a template's rotation may be from the identity, entry by entry: float32
#: rotations (from angles, or fitted) are within 1e-6, float16 ones within a few 1e-3.
ROTATION_TOLERANCE = 1e-2

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


#: The ``face_numbers`` entry of the track of each frame's largest face (``--driving_face
#: largest``) in a template of several tracks.
LARGEST_TRACK = -1


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


def _numeric(value: Any, what: str, path: Path) -> np.ndarray:
    """``value`` as an array of real numbers (integers or floats, no booleans)."""
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as exc:  # ragged lists, odd objects
        raise _fail(path, f"{what} is not an array of numbers") from exc
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise _fail(path, f"{what} is not numeric")
    return arr


def _finite(arr: np.ndarray, what: str, path: Path) -> np.ndarray:
    if not np.isfinite(arr).all():
        raise _fail(path, f"{what} holds NaN or infinite values")
    return arr


def _array(value: Any, shape: tuple[int, ...], what: str, path: Path,
           layout: str | None = None, frames: bool = False) -> np.ndarray:
    """``value`` as a finite float32 array of ``shape``: any shape of that size, but with
    ``frames``, its first dimension must be the frames' ``shape[0]``. ``layout``: the
    keypoint layout of a (..., K, 3) array, named when K is not its count."""
    arr = _numeric(value, what, path)
    if arr.size != math.prod(shape) or (frames and (arr.ndim == 0 or arr.shape[0] != shape[0])):
        held = f" ({layout} templates have {shape[-2]} keypoints)" if layout else ""
        raise _fail(path, f"{what} has shape {arr.shape}, expected {shape}{held}")
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused
        arr = arr.reshape(shape).astype(np.float32)
    return _finite(arr, what, path)


def _fps(value: Any, what: str, path: Path) -> float:
    arr = _numeric(value, what, path)
    if arr.size != 1:
        raise _fail(path, f"{what} has shape {arr.shape}, expected one number")
    fps = float(arr.reshape(()))
    if not (math.isfinite(fps) and MIN_FPS <= fps < MAX_FPS):
        raise _fail(path, f"{what} is {fps:g}, but a frame rate must be at least {MIN_FPS:g} "
                          f"and below {MAX_FPS:g}")
    return fps


def _check_rotations(rotations: np.ndarray, what: str, path: Path) -> None:
    """Each (3, 3) of (N, 3, 3) ``rotations`` (frame i's named ``what.format(i)``) must be a
    rotation: orthonormal within :data:`ROTATION_TOLERANCE`, determinant +1."""
    rotations = rotations.astype(np.float64)
    off = np.abs(rotations @ rotations.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(rotations)
    bad = np.flatnonzero((off > ROTATION_TOLERANCE) | (det <= 0))
    if bad.size:
        i = int(bad[0])
        raise _fail(path, f"{what.format(i)} is not a rotation matrix (R @ R.T is off the identity "
                          f"by {off[i]:.3g}, det {det[i]:.3g}; a rotation is orthonormal with "
                          "det +1)")


def _motion(item: Any, index: int, path: Path) -> Motion:
    if not isinstance(item, dict):
        raise _fail(path, f"motion[{index}] is a {type(item).__name__}, not a dict")
    rot = item.get("R", item.get("R_d"))
    missing = [k for k, v in (("scale", item.get("scale")), ("R", rot), ("exp", item.get("exp")),
                              ("t", item.get("t"))) if v is None]
    if missing:
        raise _fail(path, f"motion[{index}] lacks {', '.join(missing)}")
    # the reference's templates are all on LivePortrait's keypoints
    k, layout = LIVEPORTRAIT_LAYOUT.num_kp, LIVEPORTRAIT_LAYOUT.name

    def array(value: Any, shape: tuple[int, ...], key: str) -> torch.Tensor:
        return torch.from_numpy(_array(value, shape, f"motion[{index}] {key}", path,
                                       layout if key in ("exp", "kp") else None))

    kp = item.get("kp")
    return Motion(scale=array(item["scale"], (1, 1), "scale"), R=array(rot, (1, 3, 3), "R"),
                  exp=array(item["exp"], (1, k, 3), "exp"), t=array(item["t"], (1, 3), "t"),
                  kp=None if kp is None else array(kp, (1, k, 3), "kp"))


def _ratio_list(data: dict, keys: tuple[str, str], n: int, cols: int,
                path: Path) -> np.ndarray | None:
    values = data.get(keys[0], data.get(keys[1]))
    if values is None:
        return None
    if not isinstance(values, list | tuple | np.ndarray):
        raise _fail(path, f"{keys[0]} is a {type(values).__name__}, not a list")
    if len(values) != n:
        raise _fail(path, f"{keys[0]} has {len(values)} entries for {n} frames")
    return np.stack([_array(v, (cols,), keys[0], path) for v in values])


def _from_reference_dict(data: Any, path: Path) -> MotionTemplate:
    if not isinstance(data, dict) or not isinstance(data.get("motion"), list | tuple):
        raise _fail(path, "it has no 'motion' list")
    motions = [_motion(item, i, path) for i, item in enumerate(data["motion"])]
    if not motions:
        raise _fail(path, "its 'motion' list is empty")
    n = data.get("n_frames", len(motions))
    try:
        whole = not isinstance(n, bool) and int(n) == n
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole or int(n) != len(motions):
        raise _fail(path, f"n_frames is {n!r} but 'motion' has {len(motions)} entries")
    n = int(n)
    _check_rotations(np.concatenate([m.R.numpy() for m in motions]), "motion[{}] R", path)
    # the reference's default output_fps, for templates that do not record it
    fps = _fps(data.get("output_fps", 25), "output_fps", path)
    try:
        return MotionTemplate(
            motions=motions, fps=fps,
            eye_ratios=_ratio_list(data, ("c_eyes_lst", "c_d_eyes_lst"), n, 2, path),
            lip_ratios=_ratio_list(data, ("c_lip_lst", "c_d_lip_lst"), n, 1, path))
    except (TypeError, ValueError) as exc:
        raise _fail(path, str(exc)) from exc


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


def _face_prefix(arrays: dict[str, np.ndarray], face: int | None, path: Path,
                 order: str | None = None) -> str:
    """The key prefix of face ``face``'s track in a template's arrays ('' for its first),
    the faces numbered by ``order`` (a ``--face_order``; None: as the template numbers them).
    A template of the largest face alone holds face 0 of ``large-small``."""
    numbers = arrays.get("face_numbers", np.zeros(0, int))
    if numbers.ndim != 1 or not np.issubdtype(numbers.dtype, np.integer):
        raise _fail(path, f"face_numbers is not a list of face numbers ({numbers.dtype}, "
                          f"shape {numbers.shape})")
    numbers = [int(n) for n in numbers]
    if face is None:
        return ""
    if not numbers:
        if face == 0 and order in (None, LARGEST_FIRST):
            return ""
        raise InputError(f"the motion template {path} holds the largest driving face's motion "
                         f"alone, not face {face} by --face_order {order}; drop --driving_face "
                         "and --face_map, or re-create the template from the driving video "
                         "with that face")
    saved = str(arrays["face_order"]) if "face_order" in arrays else None
    if order is not None and saved is not None and saved != order:
        raise InputError(f"the motion template {path} numbers its driving faces by "
                         f"--face_order {saved}, not {order}; pass --face_order {saved}, or "
                         "re-create the template with this order")
    if face == numbers[0]:
        return ""
    if face not in numbers or face == LARGEST_TRACK:
        held = ", ".join(str(n) for n in numbers if n != LARGEST_TRACK)
        if LARGEST_TRACK in numbers:
            held += " and the largest face of each frame"
        raise InputError(f"the motion template {path} holds the driving faces {held}, not "
                         f"face {face}; pick one of those, or re-create the template from the "
                         "driving video with that face")
    return f"face{face}/"


def _load_npz(path: Path, data: bytes | None = None, face: int | None = None,
              order: str | None = None) -> MotionTemplate:
    """An ``.npz`` template from ``path``, or from ``data`` (``path`` names it in errors): the
    track of driving face ``face`` (numbered by ``order``, :func:`_face_prefix`), or its
    first."""
    try:
        with np.load(path if data is None else io.BytesIO(data), allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # BadZipFile: bad CRC too
        raise _fail(path, f"it is not a readable .npz ({exc})") from exc
    if str(arrays.get("format", "")) != FORMAT:
        raise _fail(path, f"it is not a {FORMAT} file")
    prefix = _face_prefix(arrays, face, path, order)
    missing = ([k for k in ("layout", "fps") if k not in arrays]
               + [prefix + k for k in ("scale", "R", "exp", "t") if prefix + k not in arrays])
    if missing:
        raise _fail(path, f"it lacks {', '.join(missing)}")
    arrays = {k.removeprefix(prefix): v for k, v in arrays.items()
              if k.startswith(prefix) or k in ("format", "layout", "fps")}
    layouts = LAYOUT_KEYPOINTS
    layout = str(arrays["layout"])
    if layout not in layouts:
        raise _fail(path, f"its layout {layout!r} is none of the known layouts "
                          f"{', '.join(layouts)}")
    fps = _fps(arrays["fps"], "fps", path)
    n = arrays["exp"].shape[0] if arrays["exp"].ndim else 0
    if n == 0:
        raise _fail(path, f"{prefix}exp holds no frames (shape {arrays['exp'].shape})")
    k = layouts[layout]

    def array(key: str, shape: tuple[int, ...], rows: int = n) -> np.ndarray | None:
        if key not in arrays:
            return None
        return _array(arrays[key], (rows, *shape), prefix + key, path,
                      layout if key in ("exp", "kp") else None, frames=True)

    scale, rot, exp, t = (array("scale", (1, 1)), array("R", (1, 3, 3)), array("exp", (1, k, 3)),
                          array("t", (1, 3)))
    # a row a frame, or one that every frame shares
    shared = np.ndim(arrays.get("kp")) > 0 and len(arrays["kp"]) == 1
    kp = array("kp", (1, k, 3), rows=1 if shared else n)
    if kp is not None:
        kp = [torch.from_numpy(kp[0])] * n if shared else [torch.from_numpy(row) for row in kp]
    _check_rotations(rot[:, 0], prefix + "R[{}]", path)
    anchor = arrays.get("anchor")
    if anchor is not None:
        anchor = _numeric(anchor, prefix + "anchor", path)
        if anchor.size != 1 or not np.issubdtype(anchor.dtype, np.integer):
            raise _fail(path, f"{prefix}anchor is not a frame number ({anchor.dtype}, shape "
                              f"{anchor.shape})")
        anchor = int(anchor.reshape(()))
    crop_box = arrays.get("crop_box")
    if crop_box is not None:
        _array(crop_box, (4,), prefix + "crop_box", path)
        crop_box = crop_box.reshape(4)  # checked, kept as written
    motions = [Motion(scale=torch.from_numpy(scale[i]), R=torch.from_numpy(rot[i]),
                      exp=torch.from_numpy(exp[i]), t=torch.from_numpy(t[i]),
                      kp=None if kp is None else kp[i])
               for i in range(n)]
    try:
        return MotionTemplate(motions=motions, fps=fps, eye_ratios=array("eye_ratios", (2,)),
                              lip_ratios=array("lip_ratios", (1,)), layout=layout,
                              anchor=anchor, crop_box=crop_box)
    except ValueError as exc:
        raise _fail(path, str(exc)) from exc


def load_template(path: str | os.PathLike, face: int | None = None,
                  order: str | None = None) -> MotionTemplate:
    """Read a ``.npz`` template of ours or a reference ``.pkl`` (any key spelling): the track
    of driving face ``face``, or the first. ``order``, the ``--face_order`` that numbers
    ``face``, must be the one the template was made with (None: any).

    Raises:
        InputError: missing, unsafe or malformed file, or no track of that face.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"motion template not found: {path}; check the path")
    suffix = path.suffix.lower()  # as images and videos are told by their extension
    if suffix == ".pkl":
        if face is not None:
            _face_prefix({}, face, path, order)  # a reference template holds one face
        return _load_pickle(path)
    if suffix == ".npz":
        return _load_npz(path, face=face, order=order)
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
    write_npz(buffer, _arrays(template))
    return buffer.getvalue()


def save_template(path: str | os.PathLike, template: MotionTemplate) -> Path:
    """Write ``template`` as ``.npz`` (no pickle inside) atomically."""
    return save_npz(path, _arrays(template))


def save_face_templates(path: str | os.PathLike, templates: dict[int | None, MotionTemplate],
                        order: str = LARGEST_FIRST) -> Path:
    """Write one motion track per driving face in one ``.npz``, atomically: the first as a
    plain template (what any reader takes), the others under ``face{N}/`` keys, with the
    faces' numbers in ``face_numbers`` and the ``--face_order`` that numbered them in
    ``face_order`` (:func:`load_template` ``face`` picks one). The track of each frame's
    largest face (number None, ``--driving_face largest``) comes first, numbered
    :data:`LARGEST_TRACK`; alone, it is a plain template."""
    (first, template), *others = sorted(templates.items(), key=lambda item: item[0] is not None)
    arrays = _arrays(template)
    if others or first is not None:
        arrays["face_numbers"] = np.array([LARGEST_TRACK if first is None else first,
                                           *(n for n, _ in others)])
        arrays["face_order"] = np.array(order)
    for number, other in others:
        arrays.update({f"face{number}/{k}": v for k, v in _arrays(other).items()
                       if k not in ("format", "layout", "fps")})
    return save_npz(path, arrays)


def _arrays(template: MotionTemplate) -> dict[str, np.ndarray | Rows]:
    def stack(name: str) -> Rows:  # one row a frame, never stacked in memory
        first = getattr(template.motions[0], name)
        return Rows(len(template.motions), tuple(first.shape), first.numpy().dtype,
                    (getattr(m, name).numpy() for m in template.motions))

    arrays = {"format": np.array(FORMAT), "layout": np.array(template.layout),
              "fps": np.array(template.fps), "scale": stack("scale"), "R": stack("R"),
              "exp": stack("exp"), "t": stack("t")}
    first_kp = template.motions[0].kp
    if first_kp is not None and all(m.kp is first_kp for m in template.motions):
        # one face that every frame shares (the classic engine's canonical face): stored once
        arrays["kp"] = first_kp.numpy()[None]
    elif all(m.kp is not None for m in template.motions):
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
