"""Archived batches, in a local folder or an S3-compatible bucket: put, get, list, verify.

A library: it imports no service. `LocalArchive` is the buffer's archive folder, `S3Archive` a
bucket (boto3, imported only when used), both `WritableStore`s; `TieredArchive` reads a batch
from wherever it is (`open_archive` builds the one the settings name); `upload_batch` copies a
batch into a bucket, manifest last, and checks it there.
"""

from glitchflow_archive.local import LocalArchive
from glitchflow_archive.s3 import S3Archive, StoreRefused, StoreUnavailable
from glitchflow_archive.settings import ArchiveSettings, S3Location
from glitchflow_archive.store import (
    BATCH_NAME_RE,
    LATEST,
    MANIFEST,
    RESULTS,
    ArchiveError,
    ArchiveStore,
    BatchIncomplete,
    BatchNotFound,
    BatchRef,
    FileEntry,
    FileMismatch,
    Manifest,
    ManifestInvalid,
    StoredObject,
    WritableStore,
)
from glitchflow_archive.tiered import UPLOADED, TieredArchive, open_archive
from glitchflow_archive.transfer import upload_batch, verify_stored

__all__ = [
    "BATCH_NAME_RE",
    "LATEST",
    "MANIFEST",
    "RESULTS",
    "UPLOADED",
    "ArchiveError",
    "ArchiveSettings",
    "ArchiveStore",
    "BatchIncomplete",
    "BatchNotFound",
    "BatchRef",
    "FileEntry",
    "FileMismatch",
    "LocalArchive",
    "Manifest",
    "ManifestInvalid",
    "S3Archive",
    "S3Location",
    "StoreRefused",
    "StoreUnavailable",
    "StoredObject",
    "TieredArchive",
    "WritableStore",
    "open_archive",
    "upload_batch",
    "verify_stored",
]
