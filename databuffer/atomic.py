"""Atomic, durable files: temporary file in the same folder, fsync, ``os.replace``, fsync folder.

Temporary files are named ``.<prefix>.<random>.tmp``: hidden, so no listing of stored files ever
shows one, and removed at start-up (`remove_temp_files`) when a crash left them behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def is_temp_name(name: str) -> bool:
    """True for the name of a temporary file made here."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)


def fsync_dir(path: Path) -> None:
    """Make the renames inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(folder: Path, data: bytes, prefix: str, *, drop_cache: bool = False) -> Path:
    """Write ``data`` to a new temporary file in ``folder`` and fsync it; return its path.

    With ``drop_cache`` the file's pages leave the page cache once they are on disk. A chunk is
    written once and read at most once, by the training job, long after: kept cached, every chunk
    would take new pages, and the kernel's copy into fresh pages was measured as the largest
    single cost of a write; dropped pages are reused instead.
    """
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{prefix}.", suffix=TEMP_SUFFIX)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        if drop_cache and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` by ``data`` atomically; with ``durable`` also fsync the file and folder.

    Without ``durable`` a crash may leave the old content (never a torn file): for caches.
    """
    if durable:
        tmp = write_temp(path.parent, data, path.name)
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp = Path(name)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def remove_temp_files(folder: Path) -> int:
    """Delete the temporary files a crash left in ``folder``; return how many."""
    removed = 0
    with os.scandir(folder) as listing:
        # Hidden names first: the folder may hold 100,000 chunk files and a few of these.
        hidden = [entry for entry in listing if entry.name.startswith(".")]
    for entry in hidden:
        if is_temp_name(entry.name) and entry.is_file():
            os.unlink(entry.path)
            removed += 1
    return removed
