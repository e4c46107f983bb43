"""Archived batches in a local folder: ``<root>/<batch:06d>-<UTC>Z/`` (the buffer's layout)."""

from __future__ import annotations

import os
from pathlib import Path

from glitchflow_archive.store import BATCH_NAME_RE, ArchiveStore, BatchNotFound, BatchRef

_STAGING_PREFIX = "."
_STAGING_SUFFIX = ".partial"


class LocalArchive(ArchiveStore):
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
        return (self._batch_dir(name) / file).read_bytes()

    def location(self, name: str) -> str:
        return str(self.root / name) if name else str(self.root)
