"""The service's runner: a thread that keeps the executor (the batch's local workers or Ray
actors) busy with queued jobs, moves each finished job's outputs into place, and deletes
finished jobs after ``keep_hours``."""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
from pathlib import Path

from ..batch.executors import Executor
from ..batch.worker import Outcome
from ..pipeline.options import AnimateOptions, reword_options
from .store import JobStore

__all__ = ["Runner", "client_wording", "json_wording"]

log = logging.getLogger("portrait_animate.service")

CLEANUP_EVERY_S = 60.0


#: A value quoted as Python quotes a string ('xyz'), not an apostrophe (the driver's).
_PYTHON_STRING = re.compile(r"(?<![\w'])'([^'\n]*)'(?![\w'])")


def json_wording(message: str) -> str:
    """A message made for the command line, for a client that sets options as JSON keys:
    ``--det_thresh`` is ``"det_thresh"``, ``pass --no_flag_stitching`` is ``set
    "flag_stitching" to false``, and a string value given is quoted as JSON quotes it
    (``"xyz"``, not ``'xyz'``)."""
    known = set(AnimateOptions.field_names())
    message = reword_options(message, lambda option: f'"{option}"' if option in known else None,
                             lambda option, on: f'set "{option}" to {"true" if on else "false"}')
    return _PYTHON_STRING.sub(lambda m: '"' + m[1].replace('"', '\\"') + '"', message)


def client_wording(message: str, folder: Path) -> str:
    """A job's error for its client: :func:`json_wording`, and its files named by their role
    (``driving.jpg``), not by the server's paths under the job's ``folder``."""
    return json_wording(message.replace(f"{folder}/", ""))


def _outputs(files: list[str]) -> tuple[str, str]:
    """The result and concat among a job's outputs."""
    media = [f for f in files if not f.endswith(".npz") and "/" not in f]
    concat = next(f for f in media if Path(f).stem.endswith("_concat"))
    result = next(f for f in media if f != concat)
    return result, concat


class Runner:
    """Runs the store's queued jobs on ``executor``, oldest first.

    Args:
        retries: times a job is run again after a failure that is not its input's or the
            set-up's (a worker that died, an internal error).
        keep_hours: finished jobs (and their files) are deleted after this long.
    """

    def __init__(self, store: JobStore, executor: Executor, retries: int = 1,
                 keep_hours: float = 24.0) -> None:
        self.store, self.executor = store, executor
        self.retries, self.keep_hours = retries, keep_hours
        self.running: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="service-runner", daemon=True)
        self._cleaned = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _submit(self) -> None:
        while len(self.running) < self.executor.capacity:
            job = self.store.next_queued()
            if job is None:
                return
            folder = self.store.folder(job.id)
            staging = folder / ".staging"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                staging.mkdir()
            except FileNotFoundError:  # deleted meanwhile
                continue
            self.running.add(job.id)
            try:
                self.executor.submit(job.id, "run", job.values, str(staging), None, None,
                                     None, str(folder))
            except Exception as exc:  # the job fails (or is retried), the runner goes on
                log.exception("job %s could not start", job.id)
                self._finish(job.id, Outcome(error=f"the job could not start "
                                                   f"({type(exc).__name__}); the server's log "
                                                   "has the details"))

    def _finish(self, job_id: str, outcome: Outcome) -> None:
        self.running.discard(job_id)
        job = self.store.get(job_id)
        folder = self.store.folder(job_id)
        if job is None:  # cancelled while it ran
            shutil.rmtree(folder, ignore_errors=True)
            return
        if outcome.error is None:
            shutil.rmtree(folder / "out", ignore_errors=True)
            (folder / ".staging").rename(folder / "out")
            result, concat = _outputs(outcome.files)
            self.store.done(job_id, result, concat, outcome.frames, outcome.seconds)
            return
        shutil.rmtree(folder / ".staging", ignore_errors=True)
        retry = not outcome.bad_input and job.attempts <= self.retries
        # no seconds where no worker measured them (it died, or the job could not start)
        self.store.failed(job_id, client_wording(outcome.error, folder),
                          outcome.seconds or None, retry)

    def _cleanup(self) -> None:
        if time.monotonic() - self._cleaned < CLEANUP_EVERY_S:
            return
        self._cleaned = time.monotonic()
        for job_id in self.store.expired(self.keep_hours):
            self.store.delete(job_id)

    def _step(self) -> None:
        self._submit()
        self._cleanup()
        if not self.running:
            self._stop.wait(0.1)
            return
        done = self.executor.next_done(timeout=0.1)
        if done is not None:
            self._finish(*done)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the service goes on; the log has it
                log.exception("the runner failed a step")
                self._stop.wait(1.0)
