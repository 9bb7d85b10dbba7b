"""A folder used by one process at a time: the process holds an exclusive lock on a file in
it, which names the process and goes with it, even a killed one. So a process's temporary
folder that it could not remove (it was killed) is known for abandoned, and removed later."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..errors import InputError

__all__ = ["hold_lock", "claim_temp_folder", "release_temp_folder"]

#: The lock file in a folder made by :func:`claim_temp_folder`.
FOLDER_LOCK = ".lock"


def hold_lock(path: Path, refusal: Callable[[str], str]) -> TextIO:
    """Lock the file at ``path`` (made if missing; its folder must exist) for this process and
    write ``pid N`` into it; the lock is held until the returned file is closed.

    Raises:
        InputError: another process holds it; ``refusal(holder)`` is the message, ``holder``
            naming that process ("pid N").
    """
    lock = open(path, "a+")  # noqa: SIM115 (held while open)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise InputError(refusal(holder)) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()}")
    lock.flush()
    return lock


def _remove_abandoned(folder: Path) -> None:
    """Remove ``folder`` when no process holds its lock; one without a lock file, or whose
    lock is held (its process lives), or that is not this user's to lock, stays."""
    try:
        handle = os.open(folder / FOLDER_LOCK, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(handle)
        return
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(handle)


def claim_temp_folder(prefix: str) -> tuple[Path, TextIO]:
    """A new folder ``PREFIX*`` in the system's temporary folder, locked while the returned
    file is open (closing it, or the process's end, however it ends, lets go). First, the
    folders of ``prefix`` whose process is gone are removed: a process killed (a stopped
    batch's workers, Ray's actors) left its folder behind, a leak in every run.

    The folder is locked under a hidden name and renamed then, so that no other process takes
    it for abandoned while it is being made.
    """
    root = Path(tempfile.gettempdir())
    for folder in root.glob(f"{prefix}*"):
        _remove_abandoned(folder)
    making = Path(tempfile.mkdtemp(prefix=f".{prefix}"))
    lock = hold_lock(making / FOLDER_LOCK, lambda holder: f"{making} is {holder}'s")
    folder = root / making.name.removeprefix(".")
    try:
        making.rename(folder)
    except BaseException:
        lock.close()
        with contextlib.suppress(OSError):
            shutil.rmtree(making)
        raise
    return folder, lock


def release_temp_folder(folder: Path, lock: TextIO) -> None:
    """Remove a folder of :func:`claim_temp_folder`, then let go of its lock."""
    shutil.rmtree(folder, ignore_errors=True)
    lock.close()
