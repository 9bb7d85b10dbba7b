"""A batch worker: one per local process or Ray actor. It loads each engine once, keeps its
last few sources analysed, and runs jobs with ``animate``, given the shared analysis of their
driver. Its caches are bounded, so its memory does not grow with the number of jobs."""

from __future__ import annotations

import ctypes
import hashlib
import json
import shutil
import signal
import sys
import tempfile
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..engines.neural.device import set_core_share
from ..errors import PortraitAnimateError
from ..face.mesh import FaceMesh
from ..io.locks import claim_temp_folder, release_temp_folder
from ..io.templates import template_from_bytes, template_to_bytes
from ..motion.template import MotionTemplate
from ..pipeline.animate import analyse_driving, animate, check_inputs, prepare_animation_source
from ..pipeline.engines import load_engine
from ..pipeline.inputs import check_readable, classify_input, driving_kind
from ..pipeline.options import AnimateOptions
from ..pipeline.progress import Reporter
from ..pipeline.source import SourceGroup

__all__ = ["ANALYSIS_OPTIONS", "ENGINE_OPTIONS", "JobCancelledError", "Outcome", "SOURCE_OPTIONS",
           "Worker"]

#: The options that make an engine: a worker keeps one engine for each combination.
ENGINE_OPTIONS = ("engine", "weights_dir", "precision", "flag_use_half_precision",
                  "flag_force_cpu", "device_id", "flag_do_torch_compile", "det_thresh")
#: The options a driver's analysis depends on (besides the engine's).
ANALYSIS_OPTIONS = ("det_thresh", "flag_crop_driving_video", "scale_crop_driving_video",
                    "vx_ratio_crop_driving_video", "vy_ratio_crop_driving_video",
                    "driving_smooth", "driving_face", "face_order")
#: The options a source's analysis depends on (besides the engine's).
SOURCE_OPTIONS = ("det_thresh", "scale", "vx_ratio", "vy_ratio", "flag_do_rot", "flag_do_crop",
                  "source_max_dim", "source_division", "driving_smooth", "source_faces",
                  "face_order", "flag_relative_motion")
SOURCES_KEPT = 4
TEMPLATES_KEPT = 8
#: Uploaded inputs a worker keeps on its disk (a job's source and driver are the two newest;
#: the older ones are written again if a later job sends them again).
UPLOADS_KEPT = 8
_PR_SET_PDEATHSIG = 1


@dataclass
class Outcome:
    """What running a job (or analysing a driver) gave.

    Attributes:
        error: one line, or None when it worked.
        bad_input: the error is the user's to fix, in the input or the set-up (missing
            weights): retrying cannot help.
        files: the outputs, relative to the job's folder.
        blobs: the outputs' bytes by relative path, when the worker's folder is its own
            (inputs uploaded to a Ray cluster).
        template: a driver's analysis, as ``.npz`` bytes.
        frames: frames animated (or analysed).
        seconds: time taken.
        engines_loaded, sources_analysed: what the worker had to do for it.
    """

    error: str | None = None
    bad_input: bool = False
    files: list[str] = field(default_factory=list)
    blobs: dict[str, bytes] | None = None
    template: bytes | None = None
    frames: int = 0
    seconds: float = 0.0
    engines_loaded: int = 0
    sources_analysed: int = 0


class JobCancelledError(PortraitAnimateError):
    """The job was cancelled while it ran."""


class _Watched(Reporter):
    """A silent reporter that writes the frames animated to ``folder/progress.json`` (at most
    every quarter second) and stops the job when ``folder/cancel`` appears: how a job in
    another process reports progress and is cancelled."""

    def __init__(self, folder: Path) -> None:
        super().__init__(quiet=True)
        self._folder = folder
        self._written = 0.0

    def _write(self, frames: int, total: int | None) -> None:
        tmp = self._folder / ".progress.json"
        tmp.write_text(json.dumps({"frames": frames, "total": total}))
        tmp.replace(self._folder / "progress.json")
        self._written = time.monotonic()

    def track(self, items: Any, description: str, total: int | None = None) -> Any:
        animating, done = description.startswith("animating"), 0
        for done, item in enumerate(items, start=1):
            if (self._folder / "cancel").exists():
                raise JobCancelledError("cancelled")
            yield item
            if animating and time.monotonic() - self._written > 0.25:
                self._write(done, total)
        if animating:
            self._write(done, total)


def _key(options: AnimateOptions, names: tuple[str, ...]) -> tuple:
    return tuple(getattr(options, name) for name in names)


def _as_given(outcome: Outcome, given: dict[str, Any], local: dict[str, Any]) -> Outcome:
    """``outcome`` with its error naming the job's inputs as given, not as the worker's
    copies of uploaded ones (``local``)."""
    if outcome.error is not None:
        for key in ("source", "driving"):
            if local[key] != given[key]:
                outcome.error = outcome.error.replace(local[key], given[key])
    return outcome


def die_with_parent() -> None:
    """Linux: this process is killed when the process that started it dies (even by
    SIGKILL), so that no worker outlives a killed batch and writes on."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class Worker:
    """Runs batch jobs.

    Args:
        threads: the CPU cores this worker keeps to (its share of the machine): torch's
            threads, in the networks too, and the driving analysis' meshes (None: all).
    """

    def __init__(self, threads: int | None = None) -> None:
        if threads is not None:
            set_core_share(threads)
        self._engines: dict[tuple, Any] = {}
        self._meshes: dict[float, FaceMesh] = {}
        self._sources: OrderedDict[tuple, SourceGroup] = OrderedDict()
        self._templates: OrderedDict[str, MotionTemplate] = OrderedDict()
        # uploads and outputs sent back: removed by close(), else when the process ends, else
        # (killed) by the next worker to start
        self._inputs, lock = claim_temp_folder("portrait-animate-batch-")
        self._remove_inputs = weakref.finalize(self, release_temp_folder, self._inputs, lock)
        self._uploads: OrderedDict[Path, None] = OrderedDict()
        self._loaded = self._analysed = 0

    def _engine(self, options: AnimateOptions) -> Any:
        key = _key(options, ENGINE_OPTIONS)
        if key not in self._engines:
            self._engines[key] = load_engine(options, Reporter(quiet=True))
            self._loaded += 1
        return self._engines[key]

    def _mesh(self, det_thresh: float) -> FaceMesh:
        if det_thresh not in self._meshes:
            self._meshes[det_thresh] = FaceMesh(det_thresh).__enter__()
        return self._meshes[det_thresh]

    def _source(self, options: AnimateOptions, engine: Any) -> SourceGroup:
        key = (options.source, _key(options, ENGINE_OPTIONS), _key(options, SOURCE_OPTIONS))
        if key in self._sources:
            self._sources.move_to_end(key)
            return self._sources[key]
        kind, _ = check_inputs(options)
        source = prepare_animation_source(options, kind, engine,
                                          self._mesh(options.det_thresh), Reporter(quiet=True))
        self._analysed += 1
        self._sources[key] = source
        while len(self._sources) > SOURCES_KEPT:
            self._sources.popitem(last=False)
        return source

    def _template(self, data: bytes) -> MotionTemplate:
        key = hashlib.sha256(data).hexdigest()
        if key not in self._templates:
            self._templates[key] = template_from_bytes(data)
            while len(self._templates) > TEMPLATES_KEPT:
                self._templates.popitem(last=False)
        self._templates.move_to_end(key)
        return self._templates[key]

    def _local(self, path: str, data: bytes | None) -> str:
        """An uploaded input as a file of this worker's, under its own name; the last
        :data:`UPLOADS_KEPT` are kept (every one kept, a batch of a thousand sources sent
        to a worker left a thousand on its disk until the batch ended)."""
        if data is None:
            return path
        folder = self._inputs / hashlib.sha256(data).hexdigest()[:16]
        local = folder / Path(path).name
        if not local.exists():
            folder.mkdir(parents=True, exist_ok=True)
            local.write_bytes(data)
        self._uploads[folder] = None
        self._uploads.move_to_end(folder)
        while len(self._uploads) > UPLOADS_KEPT:
            shutil.rmtree(self._uploads.popitem(last=False)[0], ignore_errors=True)
        return str(local)

    def _counted(self, outcome: Outcome, loaded: int, analysed: int, start: float) -> Outcome:
        outcome.engines_loaded = self._loaded - loaded
        outcome.sources_analysed = self._analysed - analysed
        outcome.seconds = time.perf_counter() - start
        return outcome

    def analyse(self, values: dict[str, Any], driving_data: bytes | None = None) -> Outcome:
        """The shared analysis of the job's driving video or image."""
        start, loaded, analysed = time.perf_counter(), self._loaded, self._analysed
        given, values = values, {**values, "driving": self._local(values["driving"],
                                                                  driving_data)}
        options = AnimateOptions(**values, output_dir=str(self._inputs), quiet=True)
        # analysed under auto, so that its anchor is saved for the jobs that use auto
        options = replace(options, flag_relative_motion=True, driving_anchor="auto")
        try:
            # the driver alone: the job's source, checked by the batch, may be no file here
            kind = driving_kind(options.driving, classify_input(options.driving, "driving"))
            check_readable(options.driving, kind)
            template = analyse_driving(options, kind, self._engine(options),
                                       Reporter(quiet=True))
            outcome = Outcome(template=template_to_bytes(template), frames=template.n_frames)
        except PortraitAnimateError as exc:
            outcome = Outcome(error=str(exc), bad_input=True)
        except Exception as exc:  # reported as the job's error, one line
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        return self._counted(_as_given(outcome, given, values), loaded, analysed, start)

    def run(self, values: dict[str, Any], folder: str | None, template: bytes | None = None,
            source_data: bytes | None = None, driving_data: bytes | None = None,
            watch: str | None = None) -> Outcome:
        """Animate one job into ``folder`` (its staging folder; None: a folder of the
        worker's, whose files come back as bytes). ``watch``: a folder where the job writes
        its progress and looks for a cancel file (see :class:`_Watched`)."""
        start, loaded, analysed = time.perf_counter(), self._loaded, self._analysed
        own = folder is None
        out = Path(tempfile.mkdtemp(dir=self._inputs)) if own else Path(folder)
        given, values = values, {**values,
                                 "source": self._local(values["source"], source_data),
                                 "driving": self._local(values["driving"], driving_data)}
        options = AnimateOptions(**values, output_dir=str(out), quiet=True)
        try:
            engine = self._engine(options)
            reporter = Reporter(quiet=True) if watch is None else _Watched(Path(watch))
            result = animate(options, engine, reporter,
                             source=self._source(options, engine),
                             mesh=self._mesh(options.det_thresh),
                             analysed=None if template is None else self._template(template))
            files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
            outcome = Outcome(files=files, frames=result.n_frames)
            if own:
                outcome.blobs = {name: (out / name).read_bytes() for name in files}
        except PortraitAnimateError as exc:
            outcome = Outcome(error=str(exc), bad_input=True)
        except Exception as exc:  # reported as the job's error, one line
            outcome = Outcome(error=f"{type(exc).__name__}: {exc}")
        finally:
            if own:
                shutil.rmtree(out, ignore_errors=True)
        return self._counted(_as_given(outcome, given, values), loaded, analysed, start)

    def close(self) -> None:
        for mesh in self._meshes.values():
            mesh.__exit__(None, None, None)
        for engine in self._engines.values():
            engine.close()
        self._remove_inputs()
