"""A folder used by one process at a time: the process holds an exclusive lock on a file in
it, which names the process and goes with it, even a killed one."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..errors import InputError

__all__ = ["hold_lock"]


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
