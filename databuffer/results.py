"""What the storage engine answers; ``as_json`` writes each in the buffer's wire names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal


@dataclass(frozen=True, slots=True)
class Stat:
    """Counters and state of the current batch at one instant."""

    stored_files: int
    stored_bytes: int
    batch: int
    dstatus: str

    def as_json(self) -> dict[str, Any]:
        return {
            "n_itm": self.stored_files,
            "buff_size": self.stored_bytes,
            "batch": self.batch,
            "dstatus": self.dstatus,
        }


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of `Storage.write`: ``CREATED`` (stored now) or ``DUPLICATE`` (stored before).

    ``batch`` is the batch holding the file: for a duplicate of an archived chunk, the archived
    batch, and ``archive`` its folder. ``frozen``: this write closed its batch (froze it, or
    sealed it in rotate mode). ``sealed``: the batch holding the file is sealed, waiting in the
    queue (for a CREATED write, this write sealed it and the next chunk opens a new batch).
    """

    resp: Literal["CREATED", "DUPLICATE"]
    file: str
    size: int
    stat: Stat
    batch: int
    frozen: bool
    archive: str | None = None
    sealed: bool = False

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "resp": self.resp,
            "file": self.file,
            "bytes": self.size,
            "n_itm": self.stat.stored_files,
            "buff_size": self.stat.stored_bytes,
            "batch": self.batch,
            "frozen": self.frozen,
            "sealed": self.sealed,
        }
        if self.resp == "DUPLICATE":
            doc["archived"] = self.archive is not None
            if self.archive is not None:
                doc["archive"] = self.archive
        return doc


@dataclass(frozen=True, slots=True)
class FreezeResult:
    """Outcome of `Storage.freeze_if`: a batch waits for training, this call closed one, and the
    counters of the batch to hand over (the oldest sealed one, else the current one).

    ``archive`` is the folder the flush will archive a sealed batch in; ``sealed`` how many
    sealed batches wait.
    """

    frozen: bool
    froze_now: bool
    stat: Stat
    archive: str | None = None
    sealed: int = 0


@dataclass(frozen=True, slots=True)
class FlushResult:
    """Outcome of `Storage.flush`: the batch, its archive folder and manifest, what it holds.

    ``archive`` and ``manifest`` are None when an empty buffer was flushed (nothing archived);
    ``already_flushed`` is true when the named batch had been archived before (nothing changed).
    """

    batch: int
    archive: str | None
    stored_files: int
    stored_bytes: int
    manifest: dict[str, Any] | None
    already_flushed: bool = False

    def as_json(self) -> dict[str, Any]:
        # The file list (100,000 names for a large batch) stays in the archive's manifest.json
        # and in /batches: this answer travels through every hop.
        summary = None
        if self.manifest is not None:
            summary = {k: v for k, v in self.manifest.items() if k != "files"}
        return {
            "resp": "CLEANED",
            "batch": self.batch,
            "archive": self.archive,
            "n_f": self.stored_files,
            "bt_wrt": self.stored_bytes,
            "manifest": summary,
            "already_flushed": self.already_flushed,
        }
