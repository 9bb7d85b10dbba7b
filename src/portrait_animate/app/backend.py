"""The app's work, independent of the web framework: engines loaded once, per-image editing
state cached, every job in its own output folder."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from ..engines.base import Engine
from ..errors import WeightsError
from ..face.mesh import FaceMesh
from ..motion.editing import EditParams
from ..pipeline.animate import AnimateResult, animate
from ..pipeline.compositing import Compositor
from ..pipeline.engines import load_engine
from ..pipeline.face_list import FaceList, list_faces
from ..pipeline.faces import CropSettings
from ..pipeline.inputs import InputKind
from ..pipeline.options import AnimateOptions
from ..pipeline.progress import Reporter
from ..pipeline.retargeting import (
    EDIT_CROP,
    EditableImage,
    EditedImage,
    VideoRetargetOptions,
    VideoRetargetResult,
    prepare_editable_image,
    render_edit,
    retarget_video,
)
from .uploads import AppLimits, checked_upload

__all__ = ["AppBackend", "EditTick"]

EDIT_CACHE_SIZE = 4
#: The page's words for weights the neural engine cannot load; the server's log has the
#: command line's (which folder, where it came from, the file it lacks).
NO_WEIGHTS = ("the neural engine has no usable LivePortrait weights on this server; pick "
              "'classic' under 'engine', or install the weights with `portrait-animate weights "
              "download` and try again")


class _EngineCache:
    """Each engine is built on first use and kept; ``auto`` resolves once."""

    def __init__(self, base: AnimateOptions) -> None:
        self._base = base
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Engine:
        """The engine ``name`` (neural, classic or auto).

        Raises:
            WeightsError: the neural engine's weights cannot be loaded; the page says
                :data:`NO_WEIGHTS`.
        """
        with self._lock:
            if name not in self._engines:
                try:
                    engine = load_engine(replace(self._base, engine=name), Reporter(quiet=True))
                except WeightsError as exc:
                    raise WeightsError(str(exc), page=NO_WEIGHTS) from None
                self._engines[name] = self._engines.setdefault(engine.name, engine)
            return self._engines[name]


class _LockedMesh:
    """A face mesh made on first use and kept, used by one caller at a time."""

    def __init__(self, det_thresh: float) -> None:
        self._det_thresh = det_thresh
        self._mesh: FaceMesh | None = None
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self) -> Iterator[FaceMesh]:
        with self._lock:
            if self._mesh is None:
                self._mesh = FaceMesh(self._det_thresh)
            yield self._mesh


@dataclass
class _EditState:
    source: EditableImage
    compositor: Compositor


@dataclass
class EditTick:
    """One re-render of the editing panel.

    Attributes:
        image: the crop and the pasted-back result.
        engine: the engine that rendered.
        render_ms: keypoints + render + paste-back of this tick.
        prepare_ms: the per-image work, 0 when it came from the cache.
    """

    image: EditedImage
    engine: str
    render_ms: float
    prepare_ms: float


class AppBackend:
    """What the app's controls run.

    Args:
        base: the options every job starts from (the app's command-line flags).
        limits: upload limits.
        work_dir: parent of the per-job output folders.
    """

    def __init__(self, base: AnimateOptions, limits: AppLimits, work_dir: str | Path) -> None:
        self.base, self.limits = base, limits
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.engines = _EngineCache(base)
        self._edits: OrderedDict[tuple, _EditState] = OrderedDict()
        self._edits_lock = threading.Lock()
        #: engine name -> render latency of every editing tick, in ms.
        self.tick_ms: dict[str, list[float]] = defaultdict(list)
        self._listing_mesh = _LockedMesh(base.det_thresh)
        # one face mesh for every animation: a new MediaPipe graph per job grows the process
        # by about 3 MB a job
        self._animate_mesh = _LockedMesh(base.det_thresh)

    def find_faces(self, path: str, kind: InputKind, order: str,
                   frames: int | None = None) -> FaceList:
        """The numbered faces of a checked image or video (a video's first ``frames``), with
        their preview; one face mesh serves every call, one at a time."""
        with self._listing_mesh() as mesh:
            return list_faces(path, kind, mesh, order, self.base.source_max_dim,
                              self.base.source_division, frames)

    @contextmanager
    def _job_dir(self, prefix: str) -> Iterator[Path]:
        """A new output folder for one job, removed with what is in it if the job fails."""
        folder = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.work_dir))
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def upload(self, path: str, role: str, kind: InputKind) -> str:
        return checked_upload(path, role, kind, self.limits)

    def animate(self, source: str, driving: str, engine: str, reporter: Reporter,
                **options: object) -> AnimateResult:
        """Animate checked inputs; ``options`` are AnimateOptions fields from the page."""
        with self._job_dir("animate") as folder:
            job = replace(self.base, source=source, driving=driving, engine=engine,
                          output_dir=str(folder), quiet=True, **options)
            with self._animate_mesh() as mesh:
                return animate(job, engine=self.engines.get(engine), reporter=reporter,
                               mesh=mesh)

    def _edit_state(self, path: str, engine: Engine, do_crop: bool, scale: float,
                    face: int | None, face_order: str) -> tuple[_EditState, float]:
        file = Path(path)
        key = (str(file), file.stat().st_mtime_ns, engine.name, do_crop, float(scale), face,
               face_order)
        with self._edits_lock:
            if key in self._edits:
                self._edits.move_to_end(key)
                return self._edits[key], 0.0
        start = time.perf_counter()
        settings = CropSettings(scale, EDIT_CROP.vx_ratio, EDIT_CROP.vy_ratio)
        source = prepare_editable_image(path, engine, do_crop=do_crop, settings=settings,
                                        det_thresh=self.base.det_thresh,
                                        max_dim=self.base.source_max_dim,
                                        division=self.base.source_division, face=face,
                                        face_order=face_order)
        state = _EditState(source, Compositor(engine, do_crop))
        with self._edits_lock:
            self._edits[key] = state
            while len(self._edits) > EDIT_CACHE_SIZE:
                self._edits.popitem(last=False)
        return state, (time.perf_counter() - start) * 1000

    def edit_source(self, path: str, engine: str, do_crop: bool = True,
                    scale: float = EDIT_CROP.scale, face: int | None = None,
                    face_order: str = "large-small") -> EditableImage:
        """The prepared (and cached) image for editing, its largest face or face ``face``:
        its ratios start the sliders."""
        return self._edit_state(path, self.engines.get(engine), do_crop, scale, face,
                                face_order)[0].source

    def edit(self, path: str, params: EditParams, *, engine: str, do_crop: bool = True,
             stitching: bool = True, scale: float = EDIT_CROP.scale,
             eye_ratio: float | None = None, lip_ratio: float | None = None,
             face: int | None = None, face_order: str = "large-small") -> EditTick:
        """Render one edit (of the largest face, or face ``face``); only the render runs when
        the image was prepared before."""
        model = self.engines.get(engine)
        state, prepare_ms = self._edit_state(path, model, do_crop, scale, face, face_order)
        start = time.perf_counter()
        image = render_edit(model, state.source, params, stitching=stitching,
                            eye_ratio=eye_ratio, lip_ratio=lip_ratio,
                            compositor=state.compositor)
        render_ms = (time.perf_counter() - start) * 1000
        self.tick_ms[model.name].append(render_ms)
        return EditTick(image, model.name, render_ms, prepare_ms)

    def retarget_video(self, path: str, options: VideoRetargetOptions, engine: str,
                       reporter: Reporter) -> VideoRetargetResult:
        with self._job_dir("retarget") as folder:
            return retarget_video(path, self.engines.get(engine), options, folder, reporter)
