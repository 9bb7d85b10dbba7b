"""Atomic output files, written under a temporary name and renamed when complete, and input
files' identity stamps (:func:`file_stamp`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numpy as np

from ..errors import InputError

__all__ = ["temp_sibling", "commit", "discard", "atomic_path", "Rows", "write_npz", "save_npz",
           "check_output_folder",
           "check_output_file", "same_file", "removed_on_failure", "fitted_name", "FileStamp",
           "file_stamp"]

#: What :func:`temp_sibling` adds to a name: a leading dot, then "-" and 8 random characters.
TEMP_AFFIX = len(".-") + 8
#: The longest name most filesystems allow, in bytes, where the system does not say.
NAME_MAX = 255


class FileStamp(NamedTuple):
    """What tells a file's content changed without reading it: its size in bytes and its
    modification time in nanoseconds. A tuple, so it keys a cache and is written to JSON as
    ``[size, mtime_ns]``."""

    size: int
    mtime_ns: int


def file_stamp(path: str | os.PathLike) -> FileStamp:
    """The identity stamp of the file at ``path`` (a link: of the file it points to).

    Args:
        path: the file.

    Returns:
        its size and modification time; both change when the file is written or replaced.

    Raises:
        OSError: ``path`` cannot be read (missing, or a folder on the way cannot be entered).

    Example:
        >>> stamp = file_stamp(__file__)
        >>> stamp.size == os.path.getsize(__file__)
        True
    """
    stat = os.stat(path)
    return FileStamp(stat.st_size, stat.st_mtime_ns)


def _existing(path: Path) -> Path:
    """``path`` or its nearest parent that exists."""
    return next(p for p in (path, *path.parents) if os.path.exists(p))


def _name_max(folder: Path) -> int:
    """The longest name, in bytes, a file in ``folder`` (or where it would be made) may
    have."""
    try:
        return os.pathconf(_existing(folder), "PC_NAME_MAX")
    except (OSError, ValueError):
        return NAME_MAX


def fitted_name(stem: str, longest_suffix: str, folder: str | os.PathLike) -> str:
    """``stem``, or, when ``stem + longest_suffix`` under a temporary name of its temporary
    name (:func:`temp_sibling`; an image written atomically to an output's temporary path
    has one) would be longer than ``folder``'s names may be, the start of ``stem`` and a
    hash of all of it ("long-start~1a2b3c4d"): readable, the same for the same stem and
    different for different ones."""
    room = _name_max(Path(folder)) - 2 * TEMP_AFFIX - len(longest_suffix.encode())
    raw = stem.encode()
    if len(raw) <= room:
        return stem
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return raw[:room - len(digest) - 1].decode(errors="ignore") + "~" + digest


def check_output_folder(folder: str | os.PathLike, option: str) -> None:
    """Fail, before any work, unless ``folder`` is a writable folder or can be made one.

    Raises:
        InputError: naming ``option`` and the fix.
    """
    path = Path(folder)
    existing = _existing(path)
    if not existing.is_dir():
        where = "is a file" if existing == path else f"is inside {existing}, which is a file"
        raise InputError(f"{option} {path} {where}; give {option} a folder (new or existing)")
    limit = _name_max(existing)
    for part in path.relative_to(existing).parts:
        if len(part.encode()) > limit:
            raise InputError(f"{option} {path}: the name {part[:16]}... is longer than the "
                             f"{limit} bytes a name may have there; give {option} a shorter "
                             "name")
    try:  # a file made and removed, as root too (/proc is "writable" to root, but takes none)
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError:
        raise InputError(f"{option} {path}: {existing} is not writable; give {option} a folder "
                         "you can write to") from None


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same file when both exist (links
    included), else the same absolute path."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return Path(a).resolve() == Path(b).resolve()


def check_output_file(path: str | os.PathLike, option: str,
                      inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Fail, before any work, unless ``path`` can be written as a file: not a folder, in a
    folder that is (or can be made) writable, and none of ``inputs`` (which it would
    overwrite).

    Raises:
        InputError: naming ``option`` and the fix.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give {option} the name of a file "
                         "(in that folder, if you like)")
    try:
        check_output_folder(path.parent, option)
    except InputError:
        raise InputError(f"{option} {path} cannot be written: its folder {path.parent} is not "
                         f"a writable folder; give {option} a file in one") from None
    for given in inputs:
        if same_file(path, given):
            raise InputError(f"{option} {path} is the input {given}, which it would overwrite; "
                             f"give {option} another file name")


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


def _written_paths(dest: Path, written: tuple[Path, ...]) -> set[Path]:
    """The existing files and folders that writing each of ``written`` under ``dest`` may
    have made: ``dest`` and its parents, and everything on the way to and under them."""
    paths = {dest, *dest.parents} | {p for root in written
                                     for p in (dest / root, *(dest / root).parents)}
    for root in written:
        if (dest / root).is_dir():
            paths.update((dest / root).rglob("*"))
    return {p for p in paths if os.path.lexists(p)}


@contextmanager
def removed_on_failure(dest: str | os.PathLike,
                       written: Iterable[str | os.PathLike]) -> Iterator[None]:
    """Run a block that writes ``written`` (paths relative to ``dest``; none: only ``dest``
    itself, as a folder); if it fails, remove, deepest first, every file and folder on the way
    to and under them (``dest`` and its parents included) that was not there before. What was
    there before is kept."""
    dest, written = Path(dest), tuple(Path(w) for w in written)
    before = _written_paths(dest, written)
    try:
        yield
    except BaseException:
        for path in sorted(_written_paths(dest, written) - before, key=lambda p: len(p.parts),
                           reverse=True):
            with suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
        raise


class Rows(NamedTuple):
    """An array of ``count`` rows, each of ``shape`` and ``dtype``, that :func:`write_npz`
    writes as ``rows`` gives them: a whole video's motion is never stacked in memory."""

    count: int
    shape: tuple[int, ...]
    dtype: np.dtype
    rows: Iterable[np.ndarray]


def write_npz(fh: BinaryIO, arrays: Mapping[str, np.ndarray | Rows]) -> None:
    """``arrays`` as an uncompressed ``.npz`` (what ``np.savez`` writes, without pickles)
    to the open binary file ``fh``, a :class:`Rows` row by row.

    Raises:
        ValueError: a :class:`Rows` gives a row of another shape, or another number of rows.
    """
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                if isinstance(value, Rows):
                    _write_rows(member, name, value)
                else:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def _write_rows(member: BinaryIO, name: str, rows: Rows) -> None:
    dtype = np.dtype(rows.dtype)
    np.lib.format.write_array_header_1_0(member, {
        "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
        "shape": (rows.count, *rows.shape)})
    written = 0
    for row in rows.rows:
        row = np.ascontiguousarray(row, dtype=dtype)
        if row.shape != rows.shape:
            raise ValueError(f"row {written} of {name} has shape {row.shape}, not {rows.shape}")
        member.write(row.data)
        written += 1
    if written != rows.count:
        raise ValueError(f"{name} has {written} rows, not {rows.count}")


def save_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray | Rows]) -> Path:
    """Write ``arrays`` to an uncompressed ``.npz`` atomically (:func:`write_npz`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write_npz(fh, arrays)
    return Path(path)
