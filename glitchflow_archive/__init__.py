"""Read side of the batch archive: list batches, read manifests, read verified chunk files.

A library: it imports no service. `LocalArchive` reads the buffer's archive folder; an object
store backend implements the same `ArchiveStore` primitives.
"""

from glitchflow_archive.local import LocalArchive
from glitchflow_archive.store import (
    LATEST,
    MANIFEST,
    ArchiveError,
    ArchiveStore,
    BatchIncomplete,
    BatchNotFound,
    BatchRef,
    FileEntry,
    FileMismatch,
    Manifest,
    ManifestInvalid,
)

__all__ = [
    "LATEST",
    "MANIFEST",
    "ArchiveError",
    "ArchiveStore",
    "BatchIncomplete",
    "BatchNotFound",
    "BatchRef",
    "FileEntry",
    "FileMismatch",
    "LocalArchive",
    "Manifest",
    "ManifestInvalid",
]
