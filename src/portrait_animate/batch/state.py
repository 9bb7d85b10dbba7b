"""A batch's state in ``OUT_DIR/batch.sqlite``: every job's status, attempts, error, outputs
and timings, the driving analyses made, and each run's counts. One batch process at a time
holds ``OUT_DIR/batch.lock``; the lock goes with the process, even a killed one."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..io.locks import hold_lock

__all__ = ["BatchState", "JobRecord", "RunCounts", "DB", "DONE", "FAILED", "INVALID", "LOCK",
           "MARKER", "QUEUED", "RUNNING", "done_outputs", "open_state"]

QUEUED, RUNNING, DONE, FAILED, INVALID = "queued", "running", "done", "failed", "invalid"
#: The batch's own files in its output folder (SQLite adds DB-wal, DB-shm, DB-journal).
DB, LOCK = "batch.sqlite", "batch.lock"
#: The file the batch writes in each job folder it makes: a folder without it is not its own.
MARKER = ".portrait-animate-batch"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    name TEXT PRIMARY KEY, line INTEGER, spec TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, outputs TEXT, frames INTEGER,
    seconds REAL, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS drivings (
    key TEXT PRIMARY KEY, driving TEXT NOT NULL, path TEXT NOT NULL, frames INTEGER NOT NULL,
    seconds REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, started REAL NOT NULL, finished REAL,
    jobs_run INTEGER NOT NULL DEFAULT 0, engines_loaded INTEGER NOT NULL DEFAULT 0,
    drivings_analysed INTEGER NOT NULL DEFAULT 0, sources_analysed INTEGER NOT NULL DEFAULT 0);
"""


def open_state(path: Path, schema: str, fix: str) -> sqlite3.Connection:
    """The state database at ``path`` (made if missing) in WAL mode, with ``schema``'s tables;
    usable from any thread (its user serialises the calls).

    Raises:
        InputError: ``path`` is not such a database (damaged, or another file); ``fix`` says
            what to do.
    """
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(schema)
    except sqlite3.DatabaseError as exc:
        db.close()
        raise InputError(f"{path} cannot be used as the state database ({exc}); {fix}") \
            from None
    return db


def done_outputs(out_dir: Path) -> dict[str, list[str]]:
    """The outputs of every job recorded done in ``out_dir``'s state, read without writing
    it (none without a state, or with one that is no database: the batch opening it says
    so)."""
    path = out_dir / DB
    if not path.is_file():
        return {}
    db = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT name, outputs FROM jobs WHERE status = ?", (DONE,)).fetchall()
    except sqlite3.DatabaseError:
        return {}
    finally:
        db.close()
    return {name: json.loads(outputs or "[]") for name, outputs in rows}


@dataclass
class JobRecord:
    name: str
    line: int | None
    spec: str
    status: str
    attempts: int
    error: str | None
    outputs: list[str]
    frames: int | None
    seconds: float | None


@dataclass
class RunCounts:
    """What one run of the batch did (the ``runs`` table)."""

    jobs_run: int = 0
    engines_loaded: int = 0
    drivings_analysed: int = 0
    sources_analysed: int = 0


class BatchState:
    """The state of the batch writing into ``out_dir``; use it as a context manager. A batch
    stopped before :meth:`keep` (no cluster reached, Ray missing, Ctrl-C while connecting)
    leaves no ``out_dir`` it made with nothing but this state in it.

    Raises:
        InputError: another batch process holds ``out_dir``.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self._lock_file = None
        self._db: sqlite3.Connection | None = None
        self._run: int | None = None
        self._made = self._kept = False

    def __enter__(self) -> BatchState:
        self._made = not self.out_dir.exists()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lock = hold_lock(self.out_dir / LOCK,
                         lambda holder: f"another batch ({holder}) is running on "
                                        f"{self.out_dir}; wait for it to finish, or give "
                                        "another -o")
        self._lock_file = lock
        try:
            self._db = open_state(self.out_dir / DB, _SCHEMA, "move it away to run every job "
                                                            "again, or give another -o")
        except InputError:
            lock.close()
            raise
        self._run = self._db.execute("INSERT INTO runs (started) VALUES (?)",
                                     (time.time(),)).lastrowid
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
        if self._lock_file is not None:
            self._lock_file.close()
        if exc_type is not None and self._made and not self._kept:
            own = {DB, f"{DB}-wal", f"{DB}-shm", f"{DB}-journal", LOCK}
            with suppress(OSError):
                if {entry.name for entry in self.out_dir.iterdir()} <= own:
                    for name in own:
                        (self.out_dir / name).unlink(missing_ok=True)
                    self.out_dir.rmdir()

    def keep(self) -> None:
        """Keep ``out_dir`` whatever stops the batch from now on: jobs are handed out."""
        self._kept = True

    def record(self, name: str) -> JobRecord | None:
        row = self._db.execute("SELECT name, line, spec, status, attempts, error, outputs, "
                               "frames, seconds FROM jobs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return JobRecord(*row[:6], json.loads(row[6] or "[]"), row[7], row[8])

    def records(self) -> list[JobRecord]:
        names = [row[0] for row in self._db.execute("SELECT name FROM jobs ORDER BY rowid")]
        return [self.record(name) for name in names]

    def queue(self, name: str, line: int | None, spec: str, status: str = QUEUED,
              error: str | None = None) -> None:
        """A job to run (or an invalid one, with ``error``), its attempts counted afresh."""
        self._db.execute(
            "INSERT INTO jobs (name, line, spec, status, attempts, error, updated) "
            "VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT(name) DO UPDATE SET line = excluded.line, "
            "spec = excluded.spec, status = excluded.status, attempts = 0, "
            "error = excluded.error, outputs = NULL, frames = NULL, seconds = NULL, "
            "updated = excluded.updated", (name, line, spec, status, error, time.time()))

    def started(self, name: str) -> int:
        """Mark a job running; its attempt number."""
        self._db.execute("UPDATE jobs SET status = ?, attempts = attempts + 1, error = NULL, "
                         "updated = ? WHERE name = ?", (RUNNING, time.time(), name))
        return self._db.execute("SELECT attempts FROM jobs WHERE name = ?",
                                (name,)).fetchone()[0]

    def finished(self, name: str, outputs: list[str], frames: int, seconds: float) -> None:
        self._db.execute("UPDATE jobs SET status = ?, error = NULL, outputs = ?, frames = ?, "
                         "seconds = ?, updated = ? WHERE name = ?",
                         (DONE, json.dumps(outputs), frames, seconds, time.time(), name))

    def failed(self, name: str, error: str, seconds: float | None, retry: bool) -> None:
        self._db.execute("UPDATE jobs SET status = ?, error = ?, seconds = ?, updated = ? "
                         "WHERE name = ?",
                         (QUEUED if retry else FAILED, error, seconds, time.time(), name))

    def driving(self, key: str) -> tuple[str, int] | None:
        """The saved analysis of a driver, by its key: its path and its frame count."""
        row = self._db.execute("SELECT path, frames FROM drivings WHERE key = ?",
                               (key,)).fetchone()
        return None if row is None else (row[0], int(row[1]))

    def analysed(self, key: str, driving: str, path: str, frames: int, seconds: float) -> None:
        self._db.execute("INSERT OR REPLACE INTO drivings VALUES (?, ?, ?, ?, ?)",
                         (key, driving, path, frames, seconds))

    def count(self, counts: RunCounts) -> None:
        """This run's counts so far."""
        self._db.execute("UPDATE runs SET finished = ?, jobs_run = ?, engines_loaded = ?, "
                         "drivings_analysed = ?, sources_analysed = ? WHERE id = ?",
                         (time.time(), counts.jobs_run, counts.engines_loaded,
                          counts.drivings_analysed, counts.sources_analysed, self._run))
