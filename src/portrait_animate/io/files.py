"""Atomic output files: written under a temporary name and renamed when complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["temp_sibling", "commit", "discard", "atomic_path", "save_npz"]


def temp_sibling(path: str | os.PathLike) -> Path:
    """A new empty hidden file beside ``path`` with the same suffix (encoders pick the format
    from it)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}-", suffix=final.suffix, dir=final.parent)
    os.close(fd)
    return Path(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def commit(tmp: Path, final: str | os.PathLike) -> Path:
    """Move a finished temporary file (or folder) to its final name."""
    # mkstemp/mkdtemp create 0600/0700; give the result the permissions open/mkdir would.
    os.chmod(tmp, (0o777 if Path(tmp).is_dir() else 0o666) & ~_umask())
    os.replace(tmp, final)
    return Path(final)


def discard(tmp: Path) -> None:
    if tmp.exists():
        tmp.unlink()


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds."""
    tmp = temp_sibling(path)
    try:
        yield tmp
        commit(tmp, path)
    finally:
        discard(tmp)


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to an uncompressed ``.npz`` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return Path(path)
