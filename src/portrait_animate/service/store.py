"""The service's jobs: their state in ``DATA_DIR/service.sqlite``, their files in
``DATA_DIR/jobs/<id>/`` (the uploads, ``out/`` once done, ``.staging/`` while running). One
server at a time holds ``DATA_DIR/service.lock``; the lock goes with the process, even a
killed one."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..batch.state import open_state
from ..io.locks import hold_lock

__all__ = ["JobRow", "JobStore", "LOCK", "STATUSES"]

STATUSES = ("queued", "running", "done", "failed")
LOCK = "service.lock"
_ID = re.compile(r"[0-9a-f]{32}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, spec TEXT NOT NULL, error TEXT,
    result TEXT, concat TEXT, frames INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL
    DEFAULT 0, created REAL NOT NULL, started REAL, finished REAL, seconds REAL);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, created);
"""


@dataclass
class JobRow:
    id: str
    status: str
    values: dict[str, Any]
    error: str | None
    result: str | None
    concat: str | None
    frames: int
    attempts: int
    created: float
    started: float | None
    finished: float | None
    seconds: float | None


class JobStore:
    """Thread-safe access to the jobs; ids are 32 hex digits, and anything else is no job
    (so no path made from an id leaves the jobs folder)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.jobs_dir = data_dir / "jobs"
        data_dir.mkdir(parents=True, exist_ok=True)
        # before anything in it is read or changed: a second server would queue the first's
        # running jobs again and remove its uploads
        self._lock_file = hold_lock(
            data_dir / LOCK, lambda holder: f"another server ({holder}) serves {data_dir}; stop "
                                            "it, or give this one another --data_dir")
        try:
            self.jobs_dir.mkdir(exist_ok=True)
            self._db = open_state(data_dir / "service.sqlite", _SCHEMA, "move it away to start "
                                  "with no jobs, or give another --data_dir")
        except BaseException:
            self._lock_file.close()
            raise
        self._lock = threading.Lock()

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def folder(self, job_id: str) -> Path | None:
        """The job's folder, or None for a string that is not a job id."""
        return self.jobs_dir / job_id if _ID.fullmatch(job_id) else None

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.jobs_dir / job_id
        folder.mkdir()
        return job_id, folder

    def add(self, job_id: str, values: dict[str, Any]) -> None:
        self._query("INSERT INTO jobs (id, status, spec, created) VALUES (?, 'queued', ?, ?)",
                    (job_id, json.dumps(values), time.time()))

    def get(self, job_id: str) -> JobRow | None:
        if not _ID.fullmatch(job_id):
            return None
        rows = self._query("SELECT id, status, spec, error, result, concat, frames, attempts, "
                           "created, started, finished, seconds FROM jobs WHERE id = ?",
                           (job_id,))
        if not rows:
            return None
        row = rows[0]
        return JobRow(row[0], row[1], json.loads(row[2]), *row[3:])

    def list(self, status: str | None = None) -> list[JobRow]:
        ids = self._query("SELECT id FROM jobs WHERE ?1 IS NULL OR status = ?1 ORDER BY created",
                          (status,))
        return [job for (job_id,) in ids if (job := self.get(job_id)) is not None]

    def count(self, status: str) -> int:
        return self._query("SELECT count(*) FROM jobs WHERE status = ?", (status,))[0][0]

    def next_queued(self) -> JobRow | None:
        """The oldest queued job, now marked running."""
        with self._lock:
            row = self._db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY "
                                   "created LIMIT 1").fetchone()
            if row is None:
                return None
            # a retry shows none of the attempt before: no error, no finish, no time taken
            self._db.execute("UPDATE jobs SET status = 'running', started = ?, error = NULL, "
                             "finished = NULL, seconds = NULL, attempts = attempts + 1 "
                             "WHERE id = ?",
                             (time.time(), row[0]))
        return self.get(row[0])

    def done(self, job_id: str, result: str, concat: str, frames: int, seconds: float) -> None:
        self._query("UPDATE jobs SET status = 'done', error = NULL, result = ?, concat = ?, "
                    "frames = ?, finished = ?, seconds = ? WHERE id = ?",
                    (result, concat, frames, time.time(), seconds, job_id))

    def failed(self, job_id: str, error: str, seconds: float | None,
               retry: bool = False) -> None:
        """``seconds``: how long the attempt ran, None when no worker ran it."""
        self._query("UPDATE jobs SET status = ?, error = ?, finished = ?, seconds = ? WHERE "
                    "id = ?", ("queued" if retry else "failed", error, time.time(), seconds,
                               job_id))

    def delete(self, job_id: str, files: bool = True) -> None:
        """Forget the job and remove its files (``files``; a running job's are removed when
        its worker lets go of them)."""
        self._query("DELETE FROM jobs WHERE id = ?", (job_id,))
        folder = self.folder(job_id)
        if files and folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def requeue_running(self) -> int:
        """Jobs left running by a server that died: queued again, to be run from scratch."""
        running = self._query("SELECT id FROM jobs WHERE status = 'running'")
        for (job_id,) in running:
            for name in (".staging", "out", "progress.json", "cancel"):
                path = self.jobs_dir / job_id / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else \
                    path.unlink(missing_ok=True)
        self._query("UPDATE jobs SET status = 'queued', started = NULL WHERE status = "
                    "'running'")
        return len(running)

    def remove_orphans(self) -> int:
        """Remove the job folders that no job owns (a server killed while it took an upload,
        or while a cancelled job was still running); call it before serving. Returns how many
        were removed."""
        known = {job_id for (job_id,) in self._query("SELECT id FROM jobs")}
        orphans = [path for path in self.jobs_dir.iterdir()
                   if path.is_dir() and path.name not in known]
        for path in orphans:
            shutil.rmtree(path, ignore_errors=True)
        return len(orphans)

    def expired(self, keep_hours: float) -> list[str]:
        """Finished jobs older than ``keep_hours``."""
        before = time.time() - keep_hours * 3600
        return [job_id for (job_id,) in self._query(
            "SELECT id FROM jobs WHERE status IN ('done', 'failed') AND finished < ?",
            (before,))]

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()
