"""The options of ``animate``: the reference's argument names, spellings and defaults
(SPEC 5.1), plus ours (engine, weights_dir, save_frames, quiet, ...)."""

from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from ..choices import FACE_ORDERS, PRECISIONS, REGIONS
from ..ranges import Range

__all__ = ["AnimateOptions", "DRIVING_OPTIONS", "AUDIO_PRIORITIES", "DRIVING_TIME_BASES",
           "ENGINES", "PRECISIONS", "RANGES", "parse_anchor", "parse_face_map",
           "parse_faces", "parse_driving_face", "reword_options"]

DRIVING_OPTIONS = ("expression-friendly", "pose-friendly")
AUDIO_PRIORITIES = ("driving", "source")
#: How a video source's output, at the source's frame rate, takes a driver of another rate.
DRIVING_TIME_BASES = ("auto", "driving", "output")
ENGINES = ("auto", "neural", "classic")


_CROP_SCALE = Range(1.0, 10.0, "the crop's side in face sizes: below 1 it cuts into the face, "
                               "past 10 the face is too small in the crop to animate")
_CROP_SHIFT = Range(-1.0, 1.0, "a shift in crop sizes: past 1 the crop leaves the face")
#: Every float option's range.
RANGES = {
    "driving_multiplier": Range(0.0, 10.0, "it scales the driving motion: 0 freezes the face, "
                                           "and past 10 even a slight expression moves it "
                                           "further than the engines can render"),
    "driving_smooth_observation_variance": Range(0.0, math.inf, "a Kalman observation variance",
                                                 low_open=True),
    "driving_smooth": Range(0.0, 10.0, "the smoothing's reach in driving frames (a Gaussian's "
                                       "sigma): 0 turns it off, past 10 it blurs real motion"),
    "det_thresh": Range(0.0, 1.0, "a face-detection confidence", low_open=True),
    "scale": _CROP_SCALE,
    "vx_ratio": _CROP_SHIFT,
    "vy_ratio": _CROP_SHIFT,
    "scale_crop_driving_video": _CROP_SCALE,
    "vx_ratio_crop_driving_video": _CROP_SHIFT,
    "vy_ratio_crop_driving_video": _CROP_SHIFT,
}


def parse_anchor(value: str | int) -> str | int:
    """``first``, ``auto`` or a frame index N >= 0 (``--driving_anchor``).

    Raises:
        ValueError: anything else.
    """
    text = str(value).strip()
    if text in ("first", "auto"):
        return text
    if text.isdigit():
        return int(text)
    raise ValueError(f"--driving_anchor {value!r} is not first, auto or a frame index (0, 1, "
                     "...); pass one of those")


def _face_index(text: str, option: str) -> int:
    text = text.strip()
    if not text.isdigit():
        raise ValueError(f"{option}: {text!r} is not a face number (0, 1, ...); `portrait-animate "
                         "faces FILE` lists the numbers")
    return int(text)


def parse_faces(value: str) -> str | tuple[int, ...]:
    """``--source_faces``: ``all``, ``largest`` or face numbers ``N[,M...]`` (sorted, once each).

    Raises:
        ValueError: anything else.
    """
    text = str(value).strip()
    if text in ("all", "largest"):
        return text
    if not text:
        raise ValueError("--source_faces is empty; pass all, largest or face numbers like 0,2")
    return tuple(sorted({_face_index(part, "--source_faces") for part in text.split(",")}))


def parse_driving_face(value: str) -> int | None:
    """``--driving_face``: ``largest`` (None) or a face number.

    Raises:
        ValueError: anything else.
    """
    text = str(value).strip()
    return None if text == "largest" else _face_index(text, "--driving_face")


def parse_face_map(value: str) -> dict[int, int]:
    """``--face_map``: ``SOURCE:DRIVING`` pairs of face numbers, comma-separated (``0:1,1:0``);
    empty for none.

    Raises:
        ValueError: a malformed pair, or a source face mapped twice.
    """
    pairs: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in str(value).split(","))):
        source, sep, driving = part.partition(":")
        if not sep:
            raise ValueError(f"--face_map: {part!r} is not SOURCE:DRIVING; pass pairs of face "
                             "numbers like 0:1,1:0")
        s, d = _face_index(source, "--face_map"), _face_index(driving, "--face_map")
        if s in pairs:
            raise ValueError(f"--face_map maps source face {s} twice; give each source face "
                             "one driving face")
        pairs[s] = d
    return pairs


#: The smallest long side ``--source_max_dim`` may shrink the source to (0: no limit).
MIN_SOURCE_DIM = 64
#: The largest multiple ``--source_division`` may crop the source's size to.
MAX_SOURCE_DIVISION = 64
#: The most frames ``--batch_size`` may ask for (an 80 GB card holds about 36 in float16).
MAX_BATCH_SIZE = 64

#: Text options that a JSON job may give as a whole number (:meth:`AnimateOptions.numbers_as_text`).
NUMBERED_TEXT = ("driving_face", "source_faces", "driving_anchor")
#: The longest value a message shows as it is; a longer one (an array) by its type.
SHOWN_CHARACTERS = 60


def _shown(value: Any) -> str:
    """``value`` as a one-line message shows it: its repr, or its type (and shape) where
    that is long (an image array's repr was 40 lines)."""
    shown = repr(value)
    if len(shown) <= SHOWN_CHARACTERS and "\n" not in shown:
        return shown
    shape = getattr(value, "shape", None)
    kind = f"{type(value).__module__.split('.')[0]}.{type(value).__qualname__}"
    return f"a {kind}" + (f" of shape {tuple(shape)}" if shape is not None else "")


def _is_numpy_bool(value: Any) -> bool:
    """Whether ``value`` is a NumPy scalar bool (told apart without importing NumPy)."""
    dtype = getattr(value, "dtype", None)
    return dtype is not None and getattr(dtype, "kind", None) == "b" and \
        getattr(value, "shape", None) == ()


@dataclass
class AnimateOptions:
    """Everything ``animate`` can be told (the command line's help for each is in
    :mod:`..cli.animate`)."""

    source: str
    driving: str
    output_dir: str = "animations/"
    flag_use_half_precision: bool = True
    flag_crop_driving_video: bool = False
    device_id: int = 0
    flag_force_cpu: bool = False
    flag_normalize_lip: bool = False
    flag_source_video_eye_retargeting: bool = False
    flag_eye_retargeting: bool = False
    flag_lip_retargeting: bool = False
    flag_stitching: bool = True
    flag_relative_motion: bool = True
    flag_pasteback: bool = True
    flag_do_crop: bool = True
    driving_option: str = "expression-friendly"
    driving_multiplier: float = 1.0
    driving_smooth_observation_variance: float = 3e-7
    driving_smooth: float = 2.5
    driving_anchor: str = "auto"
    audio_priority: str = "driving"
    driving_time_base: str = "auto"
    animation_region: str = "all"
    det_thresh: float = 0.15
    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    flag_do_rot: bool = True
    source_max_dim: int = 1280
    source_division: int = 2
    scale_crop_driving_video: float = 2.2
    vx_ratio_crop_driving_video: float = 0.0
    vy_ratio_crop_driving_video: float = -0.1
    flag_do_torch_compile: bool = False
    flag_pasteback_without_stitching: bool = False
    source_faces: str = "largest"
    face_order: str = "large-small"
    driving_face: str = "largest"
    face_map: str = ""
    engine: str = "auto"
    precision: str = "auto"
    weights_dir: str | None = None
    batch_size: int = 0
    save_frames: bool = False
    quiet: bool = False

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def numbers_as_text(cls, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (as parsed from JSON, or given in Python, NumPy's included) with a whole
        number given for a face or frame number (``driving_face``, ``source_faces``,
        ``driving_anchor``) as its text, as the command line takes it."""
        return {name: str(int(value)) if name in NUMBERED_TEXT
                and isinstance(value, numbers.Integral) and not isinstance(value, bool)
                else value for name, value in values.items()}

    @classmethod
    def value_problems(cls, values: dict[str, Any], as_json: bool = False) -> list[str]:
        """Why ``values`` (option name -> value, as parsed from JSON) cannot be options: an
        unknown name or a value of the wrong type, each as 'problem; fix' (``as_json``: true,
        false and null spelled as JSON, for values that came as JSON). Values in range and
        combinations are :meth:`invalid_values` and :meth:`conflicts`'s."""
        known = {f.name: f for f in fields(cls)}
        problems = []
        for name, value in values.items():
            field = known.get(name)
            if field is None:
                problems.append(f"unknown option {name!r}; see `portrait-animate animate "
                                "--help` for the names")
                continue
            default = field.default
            if isinstance(default, bool):
                ok, kind = isinstance(value, bool), "true or false"
            elif isinstance(default, float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
                kind = "a number"
            elif isinstance(default, int):
                ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
            else:  # paths and choices; weights_dir may be null
                ok = isinstance(value, str) or (value is None and default is None)
                kind = "a string"
            if not ok:
                shown = json.dumps(value) if as_json and (value is None or
                                                          isinstance(value, bool | str)) \
                    else _shown(value)
                if as_json and isinstance(value, str):  # "false", "1.5": JSON's, unquoted
                    kind += ", without quotes"
                problems.append(f"option {name!r} is {shown}; give it {kind}")
        return problems

    def __post_init__(self) -> None:
        # the Python API may give paths as paths and numbers as NumPy's (np.float32, np.int64,
        # np.bool_), and face or frame numbers as numbers: the pipeline reads text, floats,
        # ints and bools
        for name, value in self.numbers_as_text({n: getattr(self, n) for n in NUMBERED_TEXT}
                                                ).items():
            setattr(self, name, value)
        for field in fields(self):
            value, default = getattr(self, field.name), field.default
            if isinstance(value, os.PathLike):
                setattr(self, field.name, os.fspath(value))
            elif isinstance(default, bool):
                if not isinstance(value, bool) and _is_numpy_bool(value):
                    setattr(self, field.name, bool(value))
            elif isinstance(value, bool | int | float):
                continue
            elif isinstance(default, float) and isinstance(value, numbers.Real):
                setattr(self, field.name, float(value))
            elif isinstance(default, int) and isinstance(value, numbers.Integral):
                setattr(self, field.name, int(value))

    def wrong_types(self) -> list[str]:
        """Options of the wrong type (only the Python API can give one), each as 'problem;
        fix'."""
        return self.value_problems(
            self.numbers_as_text({f.name: getattr(self, f.name) for f in fields(self)}))

    def invalid_values(self) -> list[str]:
        """Options whose value cannot work, each as 'problem; fix': first a value of the wrong
        type (:meth:`wrong_types`), then values out of their ranges."""
        wrong_types = self.wrong_types()
        if wrong_types:
            return wrong_types
        problems = []
        if not (self.source_max_dim == 0 or self.source_max_dim >= MIN_SOURCE_DIM):
            problems.append(f"--source_max_dim {self.source_max_dim} is not 0 (no limit) or at "
                            f"least {MIN_SOURCE_DIM}; a smaller source has no face to find")
        if not 0 <= self.source_division <= MAX_SOURCE_DIVISION:
            problems.append(f"--source_division {self.source_division} is not from 0 to "
                            f"{MAX_SOURCE_DIVISION}; pass 0 or 1 for none, or the default 2")
        if self.device_id < 0:
            problems.append(f"--device_id {self.device_id} is not a GPU number; pass 0 or more")
        choices = (("animation_region", REGIONS), ("driving_option", DRIVING_OPTIONS),
                   ("audio_priority", AUDIO_PRIORITIES),
                   ("driving_time_base", DRIVING_TIME_BASES), ("engine", ENGINES),
                   ("precision", PRECISIONS), ("face_order", FACE_ORDERS))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                problems.append(f"--{name} {getattr(self, name)!r} is not one of "
                                f"{', '.join(allowed)}")
        if not isinstance(self.batch_size, int) or not 0 <= self.batch_size <= MAX_BATCH_SIZE:
            problems.append(f"--batch_size {self.batch_size} is not a whole number of frames "
                            f"from 0 to {MAX_BATCH_SIZE}; pass 0 (the engine's choice) or a "
                            "frame count")
        for parse, value in ((parse_anchor, self.driving_anchor),
                             (parse_faces, self.source_faces),
                             (parse_driving_face, self.driving_face),
                             (parse_face_map, self.face_map)):
            try:
                parse(value)
            except ValueError as exc:
                problems.append(str(exc))
        defaults = {f.name: f.default for f in fields(self)}
        for name, allowed in RANGES.items():
            problem = allowed.problem(f"--{name}", getattr(self, name), defaults[name])
            if problem:
                problems.append(problem)
        return problems

    def conflicts(self) -> list[str]:
        """Option combinations that cannot work, each as 'problem; fix'."""
        problems = []
        if self.flag_normalize_lip and not self.flag_relative_motion:
            problems.append("--flag_normalize_lip needs relative motion; drop "
                            "--no_flag_relative_motion or --flag_normalize_lip")
        if self.face_map and self.source_faces == "largest":
            problems.append("--face_map maps numbered source faces; pass --source_faces all "
                            "or the faces' numbers with it")
        return problems

    def several_faces(self) -> bool:
        """Whether faces are picked by number (``--source_faces`` other than largest, or a
        driving face other than the largest): every face is then detected and numbered."""
        return (self.source_faces != "largest" or self.driving_face != "largest"
                or bool(self.face_map))


_OPTION = re.compile(r"--(?:no_)?([a-z_]+)|\boption '([a-z_]+)'")
#: A fix that passes or drops a flag, or either of two.
_FLAG_FIX = re.compile(r"\b(pass|drop) --(no_)?(flag_[a-z_]+)(?: or --(no_)?(flag_[a-z_]+))?")


def reword_options(message: str, name: Callable[[str], str | None],
                   set_flag: Callable[[str, bool], str]) -> str:
    """``message``, made for the command line, for a front end that sets options otherwise
    (a page's controls, a JSON object): each fix that passes or drops a flag (``pass
    --no_flag_stitching``, ``drop --flag_x or --no_flag_y``) becomes ``set_flag(option,
    value)`` for each, joined by "or", and every other option named as the command line does
    (``--driving_multiplier``, ``--no_flag_x``) or as a JSON key (``option 'det_thresh'``)
    becomes ``name(option)``. An option ``name``
    gives None for is left as it is (in a flag fix, the whole fix is)."""

    def flag_fix(match: re.Match[str]) -> str:
        verb, *flags = match.groups()
        pairs = [(bool(negated), option) for negated, option
                 in zip(flags[::2], flags[1::2], strict=True) if option is not None]
        if any(name(option) is None for _, option in pairs):
            return match[0]
        return " or ".join(set_flag(option, (verb == "pass") != negated)
                           for negated, option in pairs)

    message = _FLAG_FIX.sub(flag_fix, message)
    return _OPTION.sub(lambda m: name(m[1] or m[2]) or m[0], message)
