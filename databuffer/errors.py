"""Exceptions of the storage engine; the HTTP layer maps each to one status code (``routes.py``)."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error the storage engine raises on purpose."""

    reason = "STORAGE_ERROR"


class Frozen(StorageError):
    """Raised by a write while the buffer is FROZEN: the batch is closed until it is flushed."""

    reason = "FROZEN"

    def __init__(self, batch: int) -> None:
        super().__init__(f"buffer is frozen (batch {batch})")
        self.batch = batch


class Conflict(StorageError):
    """Raised when a chunk overlaps stored samples of its channel with different data.

    That covers the same identity with other samples and any partial overlap in time.
    """

    reason = "CONFLICT"

    def __init__(self, detail: str, existing: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.existing = existing


class NotFrozen(StorageError):
    """Raised by a flush of the current batch while it is OPERATIONAL, unless forced."""

    reason = "NOT_FROZEN"


class UnknownBatch(StorageError):
    """Raised by a flush naming a batch that is neither the current one nor in the archive."""

    reason = "UNKNOWN_BATCH"

    def __init__(self, batch: int, detail: str) -> None:
        super().__init__(detail)
        self.batch = batch
        self.detail = detail


class NotArchived(StorageError):
    """Raised when results are recorded for a batch that is not archived yet (the batch being
    filled, or a sealed one waiting for its flush)."""

    reason = "NOT_ARCHIVED"

    def __init__(self, batch: int, detail: str) -> None:
        super().__init__(detail)
        self.batch = batch
        self.detail = detail


class ArchiveStoreUnavailable(StorageError):
    """Raised when the object store cannot be reached for a batch already uploaded there: its
    results could not be put (the local copy is written), or a chunk sent again with other bytes
    could not be compared with the stored one (nothing stored); worth retrying."""

    reason = "ARCHIVE_STORE_UNAVAILABLE"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ArchiveFailed(StorageError):
    """Raised when a flush could not archive the batch (everything was rolled back), or when the
    archive of a batch flushed before has no readable manifest (nothing was changed)."""

    reason = "ARCHIVE_FAILED"

    def __init__(self, detail: str, *, disk_full: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.disk_full = disk_full


class DiskFull(StorageError):
    """Raised when a write finds no space left (ENOSPC, EDQUOT); nothing was stored."""

    reason = "DISK_FULL"


class Busy(StorageError):
    """Raised when more writes are in flight than allowed; the caller should retry shortly."""

    reason = "BUSY"
