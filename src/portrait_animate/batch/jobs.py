"""Batch jobs: read from a ``.jsonl`` file (one job a line) or made as the cross product of
sources and drivings, and validated before anything runs."""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..choices import PRESET_PREFIX
from ..errors import InputError
from ..io.files import FileStamp, file_stamp
from ..io.images import SAMPLE_PREFIX
from ..pipeline.animate import check_inputs
from ..pipeline.inputs import InputKind, input_name
from ..pipeline.options import AnimateOptions
from .state import DB, LOCK, MARKER

__all__ = ["Job", "JobProblem", "cross_jobs", "foreign_folders", "is_own", "read_jobs",
           "validate"]

#: Options a job cannot set: the batch decides them.
BATCH_DECIDES = ("output_dir", "quiet")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: The options whose relative paths, in a jobs file, are relative to the file's folder.
PATH_OPTIONS = ("source", "driving", "weights_dir")


@dataclass
class Job:
    """One animation of a batch.

    Attributes:
        name: its folder under the batch's output folder.
        line: its line in the jobs file (None for a cross product).
        values: its ``animate`` options by name, source and driving included (no output
            folder): the batch's defaults, then the job's own; a face or frame number given
            as a JSON number is kept as its text (:meth:`AnimateOptions.numbers_as_text`).
        source_kind, driving_kind: what its inputs are, once validated.
    """

    name: str
    line: int | None
    values: dict[str, Any]
    source_kind: InputKind | None = field(default=None, compare=False)
    driving_kind: InputKind | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        # absolute: a Ray worker of a cluster runs in a folder of its own
        self.values = AnimateOptions.numbers_as_text(
            {key: os.path.abspath(value) if _is_path(key, value) else value
             for key, value in self.values.items()})

    def options(self, output_dir: str | Path) -> AnimateOptions:
        return AnimateOptions(**self.values, output_dir=str(output_dir), quiet=True)

    def spec(self) -> str:
        """Its options (their paths absolute: the same jobs given from another folder are the
        same jobs), and its input files' stamps (:func:`~..io.files.file_stamp`, written
        ``[size, mtime_ns]``; null for what is no file, a preset) as canonical JSON: a job
        whose spec changed is not done."""
        inputs: dict[str, FileStamp | None] = {}
        for key in ("source", "driving"):
            value = self.values.get(key)
            try:
                inputs[key] = file_stamp(value) if isinstance(value, str) else None
            except OSError:
                inputs[key] = None
        return json.dumps({"options": self.values, "inputs": inputs}, sort_keys=True)

    @property
    def where(self) -> str:
        return f"line {self.line}" if self.line is not None else f"job {self.name}"


@dataclass
class JobProblem:
    """A job that cannot run: where it is and why, in one line; ``job``, when it is one of
    the jobs validated (not a line that is no job)."""

    where: str
    message: str
    name: str | None = None
    job: Job | None = field(default=None, repr=False, compare=False)
    line: int | None = None

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    @property
    def order(self) -> float:
        """Its line in the jobs file, for listing problems in the file's order (a cross
        product's jobs, which have none, after them)."""
        line = self.line if self.job is None else self.job.line
        return math.inf if line is None else line


def _values(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    return {**defaults, **given}


def _is_path(key: str, value: Any) -> bool:
    """Whether option ``key``'s ``value`` names a file or folder (not a preset or sample)."""
    return (key in PATH_OPTIONS and isinstance(value, str) and bool(value)
            and not value.startswith((SAMPLE_PREFIX, PRESET_PREFIX)))


def _relative_to(folder: Path, data: dict[str, Any]) -> dict[str, Any]:
    """A job line's relative paths (:data:`PATH_OPTIONS`) made relative to ``folder``; other
    values, presets and samples as they are."""
    return {key: str(folder / value) if _is_path(key, value) and not Path(value).is_absolute()
            else value for key, value in data.items()}


def read_jobs(path: str | Path, defaults: dict[str, Any]) -> tuple[list[Job], list[JobProblem]]:
    """The jobs of a ``.jsonl`` file, each line ``{"source", "driving", "name"?, options...}``
    over ``defaults``, and the lines that are not jobs (blank lines and ``#`` comments are
    skipped). Relative paths are relative to the file's folder. A job without a name is
    named by its number among the file's job lines (bad ones included, blank lines and
    comments not), so adding a comment renames no job.

    Raises:
        InputError: the file is missing or not a ``.jsonl`` file.
    """
    path = Path(path)
    if path.suffix != ".jsonl":
        raise InputError(f"the jobs file {path} is not a .jsonl file (one JSON object a line); "
                         "give a .jsonl file or --sources and --drivings")
    if not path.is_file():
        raise InputError(f"jobs file not found: {path}; check the path")
    try:  # a BOM, as Windows' Notepad writes, is no part of the first line
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"the jobs file {path} is not UTF-8 text (byte {exc.start} is "
                         f"0x{exc.object[exc.start]:02x}); save it as UTF-8") from None
    jobs, problems = [], []
    numbers = 0
    for number, text in enumerate(lines, start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        numbers += 1
        where = f"line {number}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.append(JobProblem(where, f"not JSON ({exc.msg}); write one JSON object "
                                              "a line", line=number))
            continue
        except RecursionError:
            problems.append(JobProblem(where, "JSON nested too deeply; write one flat JSON "
                                              "object a line", line=number))
            continue
        if not isinstance(data, dict):
            problems.append(JobProblem(where, "not a JSON object; write {\"source\": ..., "
                                              "\"driving\": ...}", line=number))
            continue
        name = data.pop("name", str(numbers))
        missing = [key for key in ("source", "driving") if key not in data]
        if missing:
            problems.append(JobProblem(where, f"no {' or '.join(missing)}; every job needs "
                                              "\"source\" and \"driving\"", str(name), line=number))
            continue
        jobs.append(Job(str(name) if isinstance(name, int) else name, number,
                        _values(defaults, _relative_to(path.parent, data))))
    return jobs, problems


def _expand(pattern: str, what: str) -> list[str]:
    """A folder's files, or a glob's matches, sorted."""
    folder = Path(pattern)
    if folder.is_dir():
        paths = sorted(str(p) for p in folder.iterdir() if p.is_file()
                       and not p.name.startswith("."))
    else:
        paths = sorted(glob.glob(pattern))
    if not paths:
        raise InputError(f"--{what} {pattern} matches no file; give a folder or a glob such "
                         "as 'faces/*.jpg'")
    return paths


def _folder_name(name: str) -> str:
    """``name`` when it is a folder name the batch takes, else one made of it: its letters
    without their accents ("É": "E"), every other run of characters one "_", at most 128
    characters, and "-" and a hash of ``name``, so that two names never make one."""
    if _NAME.fullmatch(name):
        return name
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", plain).lstrip("._-")
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{plain[:128 - len(digest) - 1]}-{digest}" if plain else digest


def cross_jobs(sources: str, drivings: str, defaults: dict[str, Any]) -> list[Job]:
    """Every source with every driving, named ``SOURCE--DRIVING`` after their file names
    (made a folder name when it is none, :func:`_folder_name`).

    Raises:
        InputError: a folder or glob that matches no file.
    """
    jobs = []
    for source in _expand(sources, "sources"):
        for driving in _expand(drivings, "drivings"):
            name = _folder_name(f"{input_name(source)}--{input_name(driving)}")
            jobs.append(Job(name, None, _values(defaults, {"source": source,
                                                           "driving": driving})))
    return jobs


def _bad_values(job: Job) -> list[str]:
    """Every bad value of a job, each as 'problem; fix': its name, options the batch decides,
    unknown options, values of the wrong type, then values out of range."""
    problems: list[str] = []
    if not isinstance(job.name, str) or not _NAME.fullmatch(job.name):
        problems.append(f"name {job.name!r} is not a folder name; use ASCII letters (A-Z, "
                        "a-z), digits, '.', '_' and '-' (not first), at most 128")
    elif job.name in (DB, LOCK) or job.name.startswith(f"{DB}-"):
        problems.append(f"name {job.name!r} is one of the batch's own files in its output "
                        f"folder ({DB}, {DB}-wal, {DB}-shm, {LOCK}); give the job another "
                        "name")
    typed: dict[str, Any] = {}
    for key, value in job.values.items():
        if key in BATCH_DECIDES:
            problems.append(f"option {key!r} is the batch's to decide; drop it from the job")
        elif wrong := AnimateOptions.value_problems({key: value}, as_json=True):
            problems += wrong
        else:
            typed[key] = value
    # the ranges of the values of the right type (the source and driving that options need
    # are checked with the inputs, once every value is good)
    return problems + AnimateOptions(**{"source": "", "driving": "", **typed}).invalid_values()


def _problem(job: Job, out_dir: Path) -> str | None:
    problems = _bad_values(job)
    if problems:
        return " | ".join(problems)
    try:
        job.source_kind, job.driving_kind = check_inputs(job.options(out_dir))
    except InputError as exc:
        return str(exc)
    return None


def _taken(job: Job, first: Job) -> str:
    """Why ``job`` cannot have the name of ``first``, and the fix."""
    if job.line is not None:
        return f"name {job.name!r} is taken by {first.where}; give each job its own"
    return (f"{job.values['source']} with {job.values['driving']} would be named {job.name!r}, "
            f"as {first.values['source']} with {first.values['driving']} is, after their "
            "file names; rename one of the files, or use a jobs file with a \"name\" for each "
            "job")


def validate(jobs: list[Job], out_dir: Path) -> list[JobProblem]:
    """What keeps each job from running (missing or unreadable inputs, unknown options, wrong
    types, values out of range, conflicting options, names taken twice), in job order, each
    problem with its job; each valid job gets its inputs' kinds."""
    problems, seen = [], {}
    for job in jobs:
        message = _problem(job, out_dir)
        if message is None and job.name in seen:
            message = _taken(job, seen[job.name])
        if message is not None:  # a name that is no string is not recorded as one
            problems.append(JobProblem(job.where, message,
                                       job.name if isinstance(job.name, str) else None, job))
        else:
            seen[job.name] = job
    return problems


def is_own(folder: Path, outputs: list[str] | None) -> bool:
    """Whether ``folder`` is a job folder the batch made: a folder (no link) holding its
    :data:`~.state.MARKER`, or, made before the batch wrote one, every output ``outputs``
    its state records done for the job."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    return (folder / MARKER).is_file() or (
        bool(outputs) and all((folder / name).is_file() for name in outputs))


def foreign_folders(jobs: list[Job], out_dir: Path,
                    done: dict[str, list[str]]) -> list[JobProblem]:
    """The jobs whose folder in ``out_dir`` is there but not the batch's (:func:`is_own`;
    ``done``: the outputs of the jobs its state records done): the batch would replace what
    is in it."""
    problems = []
    for job in jobs:
        folder = out_dir / job.name
        if os.path.lexists(folder) and not is_own(folder, done.get(job.name)):
            what = "folder" if folder.is_dir() else "file"
            fix = 'give the job another "name", or' if job.line is not None else "give"
            problems.append(JobProblem(job.where, f"{folder} is a {what} the batch did not make, "
                                                  f"and the job's outputs would replace it; {fix} "
                                                  "another -o", job.name, job))
    return problems
