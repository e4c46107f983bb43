"""One view over both places a batch can be: the local folder and the object store.

A batch archived but not yet uploaded (or kept after upload) is read from the local folder; one
whose local chunk files went after a verified upload (its folder holds ``uploaded.json``
without a local copy) is read from the bucket; a batch only in the bucket (read on another
machine) too. The export and the read API open their archive with `open_archive`.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from glitchflow_archive.local import LocalArchive
from glitchflow_archive.settings import ArchiveSettings
from glitchflow_archive.store import ArchiveStore, BatchNotFound

UPLOADED = "uploaded.json"
"""Written into a local batch folder once its upload is verified: ``{"location", "verified_at",
"local_copy"}``; without a local copy only the manifest and this marker stay."""


class TieredArchive(ArchiveStore):
    """Read batches from ``local`` while it holds them whole, else from ``remote``."""

    def __init__(self, local: LocalArchive, remote: ArchiveStore) -> None:
        self.local = local
        self.remote = remote

    def _local_names(self) -> list[str]:
        try:
            return self.local.names()
        except BatchNotFound:  # no local folder: a machine that only reads the bucket
            return []

    def _held_locally(self, name: str) -> bool:
        folder = self.local.root / name
        if not folder.is_dir():
            return False
        try:
            marker = orjson.loads((folder / UPLOADED).read_bytes())
        except FileNotFoundError:
            return True
        except (OSError, orjson.JSONDecodeError):
            return False
        return bool(isinstance(marker, dict) and marker.get("local_copy"))

    def _where(self, name: str) -> ArchiveStore:
        return self.local if self._held_locally(name) else self.remote

    def names(self) -> list[str]:
        local = {n for n in self._local_names() if self._held_locally(n)}
        return sorted(local | set(self.remote.names()))

    def incomplete_names(self) -> list[str]:
        local = self.local.incomplete_names() if self.local.root.is_dir() else []
        return sorted(set(local) | set(self.remote.incomplete_names()))

    def list_files(self, name: str) -> list[str]:
        return self._where(name).list_files(name)

    def read_bytes(self, name: str, file: str) -> bytes:
        return self._where(name).read_bytes(name, file)

    def reads_locally(self, name: str) -> bool:
        return self._where(name).reads_locally(name)

    def location(self, name: str) -> str:
        if not name:
            return f"{self.local.location('')} and {self.remote.location('')}"
        return self._where(name).location(name)


def open_archive(root: Path, settings: ArchiveSettings | None = None) -> ArchiveStore:
    """The archive at ``root``, and in the bucket ``settings`` name if any.

    Parameters
    ----------
    root : Path
        The local archive folder (it may not exist where only the bucket is read).
    settings : ArchiveSettings, optional
        Read from the environment when not given.
    """
    settings = settings if settings is not None else ArchiveSettings()
    local = LocalArchive(root)
    location = settings.s3_location()
    if location is None:
        return local
    from glitchflow_archive.s3 import S3Archive

    return TieredArchive(local, S3Archive(location))
