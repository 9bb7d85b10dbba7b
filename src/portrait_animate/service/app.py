"""The REST service: FastAPI routes over the job store and the runner (OpenAPI at ``/docs``).

Every error a client sees is one line in ``{"detail": ...}`` with a 4xx status for its own
mistakes; anything else is a 500 with no trace (the trace goes to the server's log)."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from ..batch.executors import Executor, LocalExecutor, RayExecutor
from ..batch.jobs import BATCH_DECIDES, Job, validate
from ..errors import InputError
from ..motion.presets import PRESET_PREFIX, PRESETS
from ..pipeline.engines import weights_found
from .runner import Runner, client_wording
from .store import STATUSES, JobRow, JobStore
from .uploads import TooLarge, megabytes, save_upload

__all__ = ["ServiceSettings", "create_app"]

log = logging.getLogger("portrait_animate.service")

MEDIA_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg"}
#: animate's options a client cannot set: where the outputs go and what is printed, the
#: server's own folders, and frames no route serves.
SERVER_DECIDES = (*BATCH_DECIDES, "weights_dir", "save_frames")


@dataclass
class ServiceSettings:
    """Attributes:
    data_dir: jobs' state (``service.sqlite``) and files.
    api_key: required as ``Authorization: Bearer KEY`` on every route but health.
    workers: local worker processes (or Ray actors).
    ray_address: run jobs on Ray instead (its workers must share ``data_dir``).
    max_upload_mb: largest upload.
    max_video_seconds: longest video upload.
    keep_hours: finished jobs are deleted after this long.
    retries: times a job is run again after a failure that is not its input's or the
        set-up's (a worker died under it, an internal error).
    """

    data_dir: Path
    api_key: str | None = None
    workers: int = 1
    ray_address: str | None = None
    max_upload_mb: float = 100.0
    max_video_seconds: float = 120.0
    keep_hours: float = 24.0
    retries: int = 1


def _executor(settings: ServiceSettings) -> Executor:
    if settings.ray_address:
        return RayExecutor(settings.ray_address, settings.workers, 0.0, False, settings.retries)
    return LocalExecutor(settings.workers)


def _progress(store: JobStore, job: JobRow) -> dict[str, int | None]:
    if job.status == "done":
        return {"frames": job.frames, "total": job.frames}
    path = store.folder(job.id) / "progress.json"
    if job.status == "running" and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    return {"frames": 0, "total": None}


def _view(store: JobStore, job: JobRow) -> dict[str, Any]:
    return {"id": job.id, "status": job.status, "progress": _progress(store, job),
            "error": job.error, "attempts": job.attempts,
            "timings": {"created": job.created, "started": job.started,
                        "finished": job.finished, "seconds": job.seconds},
            "options": {k: v for k, v in job.values.items() if k not in ("source", "driving")}}


#: The API key, as a bearer token: the OpenAPI document names the scheme, so that /docs has
#: an Authorize button for it.
_BEARER = HTTPBearer(auto_error=False, description="the key of `serve --api_key_file`")
_Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]


#: A route's function.
_Route = Callable[..., Any]


def _bad(status: int, message: str) -> HTTPException:
    return HTTPException(status_code=status, detail=message)


#: The parts of a job's request: source, driving and options.
MAX_PARTS = 3
CUT_OFF = "the upload was cut off before its end; send it again"


def _body_limit(limit: int) -> int:
    """The most bytes a request's body may have with two uploads of ``limit`` bytes: room
    for the options and the parts' headers too."""
    return 2 * limit + 2**20


def _body_too_large(limit: int) -> HTTPException:
    return _bad(413, f"the request is over {megabytes(2 * limit)} MB; each upload may be "
                     f"{megabytes(limit)} MB")


class _LimitedForm(MultiPartParser):
    """Starlette's multipart parser (python-multipart's), which refuses a file part as soon as
    it passes ``limit`` bytes, the whole body as soon as it passes :func:`_body_limit`, and a
    part past :data:`MAX_PARTS`, while the body streams in: a request without Content-Length
    is not spooled to disk whole before the limits apply. ``ended``: the body's closing
    boundary came (a body cut off before it lacks the part it was in)."""

    def __init__(self, request: Request, limit: int) -> None:
        super().__init__(request.headers, self._bounded(request.stream(), limit))
        self._limit = limit
        self._size = 0
        self._parts = 0
        self.ended = False

    @staticmethod
    async def _bounded(stream: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
        size = 0
        async for chunk in stream:
            size += len(chunk)
            if size > _body_limit(limit):
                raise _body_too_large(limit)
            yield chunk

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise _bad(413, f"the request has over {MAX_PARTS} parts; send only \"source\", "
                            "\"driving\" and \"options\"")
        super().on_part_begin()
        self._size = 0

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._current_part.file is not None:
            self._size += end - start
            if self._size > self._limit:
                raise TooLarge(f"{self._current_part.field_name} upload", self._limit)
        super().on_part_data(data, start, end)

    def on_end(self) -> None:
        self.ended = True


async def _form(request: Request, limit: int) -> FormData:
    """The request's multipart form, each file at most ``limit`` bytes.

    Raises:
        HTTPException: not multipart (415), malformed or cut off (400), or too large or of
            too many parts (413).
        TooLarge: a file over ``limit``.
    """
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != \
            "multipart/form-data":
        raise _bad(415, "the request must be multipart/form-data: \"source\" (a file), "
                        "\"driving\" (a file or a preset's name) and \"options\" (JSON)")
    parser = _LimitedForm(request, limit)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise _bad(400, f"the multipart body is malformed ({exc.message}); send a "
                        "multipart/form-data request") from None
    if not parser.ended:
        await form.close()
        raise _bad(400, CUT_OFF)
    return form


_FORM_DOC = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["source", "driving"], "properties": {
        "source": {"type": "string", "format": "binary",
                   "description": "the portrait: an image or a video"},
        "driving": {"description": "a driving video or image, or a preset's name (talk, "
                                   "preset:talk)",
                    "oneOf": [{"type": "string", "format": "binary"}, {"type": "string"}]},
        "options": {"type": "string", "description": "animate's options as a JSON object, "
                                                     "e.g. {\"animation_region\": \"lip\"}"}}}}}}}


def create_app(settings: ServiceSettings) -> FastAPI:
    """The service's app; the runner and its workers start with it and stop with it.

    Raises:
        InputError: ``service.sqlite`` is not a database, or Ray cannot be reached.
    """
    store = JobStore(settings.data_dir.resolve())
    try:
        executor = _executor(settings)
    except BaseException:
        store.close()
        raise
    limit = int(settings.max_upload_mb * 2**20)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        requeued = store.requeue_running()
        if requeued:
            log.warning("%d job(s) left running by the last server queued again", requeued)
        orphans = store.remove_orphans()
        if orphans:
            log.warning("%d folder(s) of jobs the last server did not keep removed", orphans)
        runner = Runner(store, executor, settings.retries, settings.keep_hours)
        app.state.runner = runner
        runner.start()
        try:
            yield
        finally:
            runner.stop()
            # the runner takes no more outcomes: a running job, waited for, was lost all the
            # same (34 s for a 600-frame job, then run again); it runs again at the next start
            executor.close(abort=True)
            store.close()

    # /docs serves its scripts from the package, so a server off the internet still shows it;
    # no /redoc, whose page fetches its logo from redoc.ly
    app = FastAPIOffline(title="portrait-animate", lifespan=lifespan, redoc_url=None,
                         description="Animate portraits on request: submit a job, poll it, "
                                     "fetch the result.")

    def authorised(credentials: _Credentials) -> None:
        if settings.api_key is None:
            return
        if credentials is None or not hmac.compare_digest(
                credentials.credentials.strip().encode(), settings.api_key.encode()):
            raise HTTPException(401, "missing or wrong API key; send \"Authorization: Bearer "
                                     "KEY\"", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server's log has the details"},
                            status_code=500)

    def job_or_404(job_id: str) -> JobRow:
        job = store.get(job_id)
        if job is None:
            raise _bad(404, f"no job {json.dumps(job_id)}")
        return job

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        """Engines available, the queued jobs, the jobs on the workers (a cancelled one until
        its worker lets go of it) and the workers."""
        runner: Runner = app.state.runner
        return {"status": "ok", "engines": {"classic": True, "neural": weights_found(None)},
                "queued": store.count("queued"), "running": len(runner.running),
                "workers": runner.executor.capacity}

    async def _driving(form: Any, folder: Path) -> str:
        driving = form.get("driving")
        if isinstance(driving, UploadFile):
            return str(await run_in_threadpool(save_upload, driving.file, folder, "driving",
                                               settings.max_video_seconds, "driving upload"))
        if driving is None:
            raise _bad(422, "no driving; send a driving video or image as \"driving\", or a "
                            f"preset's name ({', '.join(PRESETS)})")
        name = driving.removeprefix(PRESET_PREFIX)
        if name not in PRESETS:
            raise _bad(422, f"driving {json.dumps(driving)} is neither a file nor a preset; "
                            f"send a file, or one of {', '.join(PRESETS)}")
        return PRESET_PREFIX + name

    def _options(form: Any) -> dict[str, Any]:
        text = form.get("options") or "{}"
        if not isinstance(text, str):
            raise _bad(422, "options must be a JSON object as a form field, not a file")
        try:
            options = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _bad(422, f"options are not JSON ({exc.msg}); send a JSON object") from None
        except RecursionError:
            raise _bad(422, "options nest too deeply; send a flat JSON object of animate's "
                            "option names") from None
        if not isinstance(options, dict):
            raise _bad(422, "options must be a JSON object of animate's option names")
        clash = [key for key in ("source", "driving") if key in options]
        if clash:
            raise _bad(422, f"option {json.dumps(clash[0])} is a form field of its own; drop "
                            "it from options")
        decided = [key for key in SERVER_DECIDES if key in options]
        if decided:
            raise _bad(422, f"option {json.dumps(decided[0])} is the server's to decide; drop "
                            "it from options")
        if options.get("engine") == "neural" and not weights_found(None):
            raise _bad(422, "this server has no weights for the neural engine; send engine "
                            "classic or auto, or ask its operator to install the weights")
        return options

    @app.post("/v1/jobs", status_code=202, dependencies=[Depends(authorised)],
              openapi_extra=_FORM_DOC)
    async def submit(request: Request) -> dict[str, str]:
        """Queue a job: ``source`` (file), ``driving`` (file or preset name) and
        ``options`` (JSON)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > _body_limit(limit):
            raise _body_too_large(limit)
        job_id, folder = store.new_folder()
        try:  # copying, probing and checking the files block: they run off the event loop
            form = await _form(request, limit)
            try:
                options = _options(form)
                source = form.get("source")
                if not isinstance(source, UploadFile):
                    raise _bad(422, "no source file; send the portrait as \"source\"")
                values = {**options, "driving": await _driving(form, folder),
                          "source": str(await run_in_threadpool(
                              save_upload, source.file, folder, "source",
                              settings.max_video_seconds, "source upload"))}
            finally:
                await form.close()
            job = Job(job_id, None, values)
            problems = await run_in_threadpool(validate, [job], folder)
            if problems:
                raise _bad(422, client_wording(problems[0].message, folder))
        except TooLarge as exc:
            store.delete(job_id)
            raise _bad(413, str(exc)) from None
        except InputError as exc:
            store.delete(job_id)
            raise _bad(422, client_wording(str(exc), folder)) from None
        except ClientDisconnect:
            store.delete(job_id)
            log.info("a client left during its upload; job %s dropped", job_id)
            raise _bad(400, CUT_OFF) from None
        except BaseException:
            store.delete(job_id)
            raise
        store.add(job_id, job.values)
        return {"id": job_id, "status": "queued"}

    @app.get("/v1/jobs", dependencies=[Depends(authorised)])
    def list_jobs(status: str | None = None) -> dict[str, Any]:
        """Every job, or those of one status."""
        if status is not None and status not in STATUSES:
            raise _bad(422, f"status {json.dumps(status)} is not one of "
                            f"{', '.join(STATUSES)}")
        return {"jobs": [_view(store, job) for job in store.list(status)]}

    @app.get("/v1/jobs/{job_id}", dependencies=[Depends(authorised)])
    def status(job_id: str) -> dict[str, Any]:
        """A job's status, progress in frames, error and timings."""
        return _view(store, job_or_404(job_id))

    def _file(job_id: str, which: str) -> FileResponse:
        job = job_or_404(job_id)
        if job.status == "failed":
            raise _bad(409, f"job {job_id} failed, so it has no {which}: {job.error}")
        if job.status != "done":
            raise _bad(409, f"job {job_id} is {job.status}, not done; poll it until it is")
        name = job.result if which == "result" else job.concat
        path = store.folder(job_id) / "out" / name
        return FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix,
                                                             "application/octet-stream"),
                            filename=path.name)

    def get_and_head(path: str) -> Callable[[_Route], _Route]:
        """``path``'s GET and HEAD as two routes, each with its own operation id in the
        OpenAPI document (one route for both gave both one id)."""

        def register(route: _Route) -> _Route:
            for method in ("GET", "HEAD"):
                app.add_api_route(path, route, methods=[method],
                                  dependencies=[Depends(authorised)])
            return route

        return register

    @get_and_head("/v1/jobs/{job_id}/result")
    def result(job_id: str) -> FileResponse:
        """The animated result (video/mp4, or image/jpeg for an image driven by an image)."""
        return _file(job_id, "result")

    @get_and_head("/v1/jobs/{job_id}/concat")
    def concat(job_id: str) -> FileResponse:
        """Driving | source | result side by side."""
        return _file(job_id, "concat")

    @app.delete("/v1/jobs/{job_id}", dependencies=[Depends(authorised)])
    def cancel(job_id: str) -> dict[str, str]:
        """Cancel a queued or running job, or delete a finished one, with its files."""
        job = job_or_404(job_id)
        if job.status == "running":
            (store.folder(job_id) / "cancel").touch()
            store.delete(job_id, files=False)  # the runner removes them when the job stops
        else:
            store.delete(job_id)
        return {"id": job_id, "status": "cancelled" if job.status in ("queued", "running")
                else "deleted"}

    return app
