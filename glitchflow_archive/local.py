"""Archived batches in a local folder: ``<root>/<batch:06d>-<UTC>Z/`` (the buffer's layout)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path

from glitchflow_archive.store import (
    BATCH_NAME_RE,
    MANIFEST,
    BatchNotFound,
    BatchRef,
    FileMismatch,
    StoredObject,
    WritableStore,
)

_STAGING_PREFIX = "."
_STAGING_SUFFIX = ".partial"


class LocalArchive(WritableStore):
    """The archive folder the buffer flushes into.

    Parameters
    ----------
    root : Path
        The folder holding one folder per batch (the buffer's ``archive`` folder).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def open_folder(cls, folder: Path) -> tuple[LocalArchive, BatchRef]:
        """The store around one batch folder given by path, and that batch.

        Raises
        ------
        BatchNotFound
            The path is not a directory named like an archived batch.
        """
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise BatchNotFound(f"no batch folder {folder}")
        if not BATCH_NAME_RE.match(folder.name):
            raise BatchNotFound(f"{folder} is not named like an archived batch (000007-...Z)")
        store = cls(folder.parent)
        return store, store._ref(folder.name)

    def _batch_dir(self, name: str) -> Path:
        # Only names the store listed reach here; refuse anything that could leave the root.
        if not name or "/" in name or name.startswith("."):
            raise BatchNotFound(f"{name!r} is not an archived batch name")
        return self.root / name

    def _staging_dir(self, name: str) -> Path:
        return self.root / f"{_STAGING_PREFIX}{name}{_STAGING_SUFFIX}"

    def names(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.root) if e.is_dir()]
        except FileNotFoundError as exc:
            raise BatchNotFound(f"no archive folder {self.root}") from exc
        except NotADirectoryError as exc:
            raise BatchNotFound(f"archive root {self.root} is not a folder") from exc

    def incomplete_names(self) -> list[str]:
        return [
            n[len(_STAGING_PREFIX) : -len(_STAGING_SUFFIX)]
            for n in self.names()
            if n.startswith(_STAGING_PREFIX) and n.endswith(_STAGING_SUFFIX)
        ]

    def list_files(self, name: str) -> list[str]:
        with os.scandir(self._batch_dir(name)) as entries:
            return [e.name for e in entries if e.is_file()]

    def read_bytes(self, name: str, file: str) -> bytes:
        # One os.read of the size fstat gives: Path.read_bytes reads a byte more than the file
        # and shrinks its buffer, a copy that cost as much as the read (docs/PERFORMANCE.md).
        fd = os.open(os.path.join(self._batch_dir(name), file), os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            parts = [os.read(fd, size)] if size else []
            while part := os.read(fd, 1 << 20):  # a short read, or a file that grew meanwhile
                parts.append(part)
        finally:
            os.close(fd)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def location(self, name: str) -> str:
        return str(self.root / name) if name else str(self.root)

    def reads_locally(self, name: str) -> bool:
        return True

    # ----------------------------------------------------------------- writing

    def put(self, name: str, file: str, data: bytes, sha256: str | None = None) -> None:
        """Write ``file`` of batch ``name``: chunk files into the hidden staging folder,
        ``manifest.json`` last, which moves the whole folder into place."""
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise FileMismatch(f"batch {name}: {file} does not match the sha256 given")
        final = self._batch_dir(name)
        if "/" in file or file.startswith("."):
            raise FileMismatch(f"batch {name}: {file!r} is not a file name")
        folder = final if final.is_dir() else self._staging_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        _write_durably(folder / file, data)
        if file == MANIFEST and folder != final:
            os.replace(folder, final)
            _fsync_dir(self.root)

    def head(self, name: str, file: str) -> StoredObject | None:
        """Size and sha256 of ``file`` of batch ``name`` (staged or in place); None if absent."""
        for folder in (self._batch_dir(name), self._staging_dir(name)):
            try:
                data = (folder / file).read_bytes()
            except (FileNotFoundError, NotADirectoryError):
                continue
            return StoredObject(len(data), hashlib.sha256(data).hexdigest())
        return None

    def delete(self, name: str) -> None:
        """Remove batch ``name``, its manifest first (never listed half-removed)."""
        folder = self._batch_dir(name)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / MANIFEST)
        shutil.rmtree(folder, ignore_errors=False)


def _write_durably(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder, fsync, rename: never a torn file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
