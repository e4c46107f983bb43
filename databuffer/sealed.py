"""Sealed batches: full batches waiting, oldest first, to be handed over to training (rotate mode).

In ``rotate`` mode the write that fills a batch seals it and the next chunk opens a new batch, so
ingest never waits for the flush. A sealed batch is a folder ``<archive>/sealed/<batch:06d>/``:
its record ``sealed.json`` (the batch's number, reserved archive folder, history and file names)
is written atomically and durably first, then the chunk files are moved in from the data folder,
which so keeps holding exactly the batch being filled. At start-up the records are the truth: a
listed file still in the data folder (a crash in the middle of the moves, or a flush rolled back)
is moved in, a folder without a record (a crash before it) is removed. The flush archives a
sealed batch like any other (`databuffer.archive`), then removes its folder; a record whose batch
is archived already is what a crash between those steps leaves, and start-up removes it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from databuffer.atomic import atomic_write, fsync_dir, remove_temp_files
from databuffer.eventlog import utc_iso
from databuffer.index import BatchIndex, Span
from databuffer.naming import ChunkIdentity, parse_filename

logger = logging.getLogger("databuffer.sealed")

SEALED_ROOT = "sealed"
RECORD = "sealed.json"
_FOLDER_RE = re.compile(r"^\d{6,}$")
HOLD = "hold"
ROTATE = "rotate"
FREEZE_MODES = (HOLD, ROTATE)
DEFAULT_MAX_SEALED = 4
"""Sealed batches that may wait before the buffer refuses writes (back-pressure)."""


@dataclass(slots=True)
class SealedBatch:
    """A full batch in the queue: its number, reserved archive folder, files and history.

    ``pause_seconds`` is how long writes were refused while it was the batch being filled
    (its freeze waited for room in the queue); 0 when it was sealed by the write that filled it.
    """

    batch: int
    folder: Path
    archive: str  # reserved when sealed; empty when a record lost it (the flush names one)
    index: BatchIndex
    sealed_at: float
    created: float | None = None
    frozen_by: str | None = None
    frozen_reason: str | None = None
    pause_seconds: float = 0.0

    @property
    def stored_files(self) -> int:
        """Chunk files in the batch."""
        return self.index.stored_files

    @property
    def stored_bytes(self) -> int:
        """Bytes of the batch's chunk files."""
        return self.index.stored_bytes

    def summary(self) -> dict[str, Any]:
        """The served form (wire names, no file list)."""
        return {
            "batch": self.batch,
            "archive": self.archive,
            "n_f": self.stored_files,
            "bt_wrt": self.stored_bytes,
            "created": utc_iso(self.created) if self.created is not None else None,
            "sealed_at": utc_iso(self.sealed_at),
            "frozen_by": self.frozen_by,
            "frozen_reason": self.frozen_reason,
            "pause_seconds": round(self.pause_seconds, 3),
        }

    def record(self) -> dict[str, Any]:
        """The persisted form: `summary` with the file names and raw times."""
        return {
            **self.summary(),
            "created_ts": self.created,
            "sealed_at_ts": self.sealed_at,
            "files": self.index.names(),
        }


class SealedQueue:
    """The sealed batches, oldest first, and their folders; only under the engine's lock."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._batches: list[SealedBatch] = []

    def __len__(self) -> int:
        return len(self._batches)

    def __iter__(self) -> Iterator[SealedBatch]:
        return iter(self._batches)

    def oldest(self) -> SealedBatch | None:
        """The sealed batch to hand over next, or None when the queue is empty."""
        return self._batches[0] if self._batches else None

    def get(self, batch: int) -> SealedBatch | None:
        """The sealed batch numbered ``batch``, or None."""
        return next((sealed for sealed in self._batches if sealed.batch == batch), None)

    def holding(self, name: str) -> SealedBatch | None:
        """The sealed batch holding the chunk file ``name``, or None."""
        return next((sealed for sealed in self._batches if name in sealed.index), None)

    def overlapping(self, identity: ChunkIdentity) -> tuple[SealedBatch, Span] | None:
        """A sealed batch with a stored span overlapping the chunk ``identity``, or None."""
        for sealed in self._batches:
            span = sealed.index.overlapping(identity)
            if span is not None:
                return sealed, span
        return None

    def last_batch(self) -> int:
        """The highest sealed batch number, 0 when the queue is empty."""
        return max((sealed.batch for sealed in self._batches), default=0)

    def folder_of(self, batch: int) -> Path:
        """Where the sealed batch ``batch`` keeps its record and files."""
        return self.root / f"{batch:06d}"

    # ----------------------------------------------------------------- changes

    def add(self, sealed: SealedBatch, data_dir: Path) -> None:
        """Record ``sealed`` durably, move its files in from ``data_dir``, then queue it.

        Raises
        ------
        OSError
            The record could not be written (nothing moved, nothing queued).
        """
        self.root.mkdir(exist_ok=True)
        sealed.folder.mkdir(exist_ok=True)
        try:
            atomic_write(sealed.folder / RECORD, orjson.dumps(sealed.record()))
        except OSError:
            shutil.rmtree(sealed.folder, ignore_errors=True)
            raise
        fsync_dir(self.root)
        self._batches.append(sealed)
        self._batches.sort(key=lambda item: item.batch)
        # The record is the truth from here: start-up finishes moves a crash interrupts.
        _move_in(sealed.folder, data_dir, sealed.index.names())

    def remove(self, batch: int) -> None:
        """Forget ``batch`` and remove its folder (its files were archived)."""
        self._batches = [sealed for sealed in self._batches if sealed.batch != batch]
        try:
            shutil.rmtree(self.folder_of(batch))
            fsync_dir(self.root)
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The archive is the truth: start-up removes a record whose batch is archived.
            logger.error("could not remove the folder of sealed batch %s: %s", batch, exc)

    # ----------------------------------------------------------------- start-up

    def recover(self, data_dir: Path, archived: set[int]) -> None:
        """Load every sealed folder; finish moves, remove folders archived or never recorded.

        A listed file found in neither place (it was never acknowledged) is left out, logged.
        """
        batches = []
        folders = sorted(os.scandir(self.root), key=lambda e: e.name) if self.root.is_dir() else []
        for entry in folders:
            if not (_FOLDER_RE.match(entry.name) and entry.is_dir()):
                continue
            folder = Path(entry.path)
            remove_temp_files(folder)
            try:
                doc = orjson.loads((folder / RECORD).read_bytes())
                batch = int(doc["batch"])
                names = [str(name) for name in doc["files"]]
            except FileNotFoundError:
                shutil.rmtree(folder)  # died before its record: no file was moved in
                continue
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                logger.error("unreadable sealed batch record in %s: %s", folder, exc)
                continue
            if batch in archived:
                shutil.rmtree(folder)
                continue
            _move_in(folder, data_dir, names)
            batches.append(_from_record(doc, batch, folder, names))
        self._batches = batches


def _move_in(folder: Path, data_dir: Path, names: list[str]) -> None:
    """Move the files ``names`` still in ``data_dir`` into ``folder``; durable when done."""
    moved = 0
    for name in names:
        try:
            os.replace(data_dir / name, folder / name)
            moved += 1
        except FileNotFoundError:
            continue
    if moved:
        fsync_dir(folder)
        fsync_dir(data_dir)


def _from_record(doc: dict[str, Any], batch: int, folder: Path, names: list[str]) -> SealedBatch:
    files = []
    missing = 0
    for name in names:
        identity = parse_filename(name)
        try:
            size = (folder / name).stat().st_size
        except FileNotFoundError:
            size = None
        if identity is None or size is None:
            missing += 1
            continue
        files.append((name, identity, size))
    index = BatchIndex.of_files(files)
    if missing:
        logger.error("sealed batch %s: %d listed files are missing", batch, missing)

    def number(key: str) -> float | None:
        value = doc.get(key)
        return float(value) if isinstance(value, int | float) else None

    def text(key: str) -> str | None:
        value = doc.get(key)
        return value if isinstance(value, str) else None

    return SealedBatch(
        batch=batch,
        folder=folder,
        archive=text("archive") or "",
        index=index,
        sealed_at=number("sealed_at_ts") or 0.0,
        created=number("created_ts"),
        frozen_by=text("frozen_by"),
        frozen_reason=text("frozen_reason"),
        pause_seconds=number("pause_seconds") or 0.0,
    )
