"""Helpers that find the processes a process started, from /proc (Linux)."""

from __future__ import annotations

import time
from pathlib import Path


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def spawned_workers(pid: int) -> list[int]:
    """``pid``'s worker processes started by multiprocessing's spawn (not its resource
    tracker)."""
    workers = []
    for child in children(pid):
        try:
            command = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(child)
    return workers


def wait_gone(pid: int, timeout: float = 30) -> None:
    """Wait until ``pid`` is gone (reaped, not a zombie)."""
    end = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < end, f"process {pid} is still there"
        time.sleep(0.05)
