"""The event log ``LogStream.json``: JSON lines, rotated by size, read page by page.

The log is a record for people, not the truth (the chunk files are): appending is best effort, so
a full or failing log volume never turns a stored chunk or a flush into an error, and a torn line
(a crash or ENOSPC in the middle of an append) never makes the log unreadable.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

logger = logging.getLogger("databuffer.eventlog")

_BLOCK = 1 << 20
UNREADABLE: dict[str, Any] = {"event": "unreadable"}
"""What `EventLog.read` gives for a line that is not a JSON object (a torn append)."""


def utc_iso(timestamp: float) -> str:
    """``2026-11-22T10:15:00.123456Z`` for a Unix time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(_BLOCK), b""))
    except FileNotFoundError:
        return 0


def _decode(line: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        return dict(UNREADABLE)
    return event if isinstance(event, dict) else dict(UNREADABLE)


class EventLog:
    """Append-only JSON-lines log rotated by size (``LogStream.json.1`` is the newest backup).

    Parameters
    ----------
    path : Path
        The live file, ``LogStream.json``.
    max_bytes : int
        Size beyond which the live file is rotated.
    backups : int
        Rotated files kept; older events are dropped.

    Attributes
    ----------
    dropped : int
        Events that could not be written (the append failed and was logged as a WARNING).
    """

    def __init__(self, path: Path, max_bytes: int = 16 * 1024 * 1024, backups: int = 5) -> None:
        self.path = Path(path)
        self.max_bytes = max(max_bytes, 1)
        self.backups = max(backups, 0)
        self.dropped = 0
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._closed = False
        self._open_live_file()
        try:
            self._mend_locked()
        except OSError as exc:
            logger.warning("event log %s: could not end a torn line: %s", self.path, exc)

    def _open_live_file(self) -> None:
        """Open the live file for appending and recount every file's lines."""
        # Line counts, oldest file first: backups N..1, then the live file.
        self._counts = [_count_lines(p) for p in self._files()]
        # Unbuffered: a failed append leaves nothing behind to be written later.
        self._file: BinaryIO = self.path.open("ab", buffering=0)
        self._size = self._file.tell()
        self._torn = False  # the live file ends in the middle of a line
        if self._size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                self._torn = f.read(1) != b"\n"

    def _files(self) -> list[Path]:
        backups = [self.path.with_name(f"{self.path.name}.{i}") for i in range(self.backups, 0, -1)]
        return [*backups, self.path]

    def append(self, event: str, **fields: Any) -> None:
        """Append one event ``{"time", "event", **fields}``; best effort, never raises OSError.

        A failed append (a full or failing log volume) is logged as a WARNING and counted in
        `dropped`; the next append starts on a fresh line.
        """
        record = {
            "time": utc_iso(fields.pop("timestamp", None) or time.time()),
            "event": event,
            **fields,
        }
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            try:
                self._append_locked(line)
            except OSError as exc:
                self.dropped += 1
                self._resync_locked()
                logger.warning("event log %s: append failed, event dropped: %s", self.path, exc)

    def _append_locked(self, line: bytes) -> None:
        if self._file.closed and not self._closed:  # a rotation failed half way
            self._open_live_file()
        self._mend_locked()
        if self._size and self._size + len(line) > self.max_bytes:
            self._rotate()
        self._write_all(line)
        self._size += len(line)
        self._counts[-1] += 1

    def _mend_locked(self) -> None:
        """End a torn last line, so that it is one unreadable line and the next event is whole."""
        if self._torn:
            self._write_all(b"\n")
            self._torn = False
            self._size += 1
            self._counts[-1] += 1

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self._file.write(view) :]

    def _resync_locked(self) -> None:
        """After a failed append: note whether part of the line reached the live file."""
        try:
            if self._file.closed:
                return  # reopened by the next append
            size = os.fstat(self._file.fileno()).st_size
        except OSError:
            return
        if size != self._size:
            self._size = size
            self._torn = True

    def _rotate(self) -> None:
        self._file.close()
        files = self._files()
        if self.backups:
            # files[0] is the oldest backup: os.replace drops it, then every file moves one older.
            for older, newer in itertools.pairwise(files):
                if newer.exists():
                    os.replace(newer, older)
            self._counts = [*self._counts[1:-1], self._counts[-1], 0]
        else:
            self._counts = [0]
        self._file = self.path.open("wb", buffering=0)
        self._size = 0
        self._torn = False

    @property
    def total(self) -> int:
        """Events held in the live file and its backups."""
        with self._lock:
            return sum(self._counts)

    def read(self, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Events ``offset .. offset + limit`` (oldest first) and the total, streaming the files.

        The files are opened under the lock, so a rotation during the read does not move lines
        under the reader; then they are read without it, at most ``limit`` lines decoded.
        """
        with self._lock:
            counts = list(self._counts)
            handles: list[BinaryIO | None] = []
            for path in self._files():
                try:
                    handles.append(path.open("rb"))
                except FileNotFoundError:
                    handles.append(None)
        total = sum(counts)
        events: list[dict[str, Any]] = []
        skip = max(offset, 0)
        try:
            for handle, count in zip(handles, counts, strict=True):
                if len(events) >= limit:
                    break
                if handle is None or skip >= count:
                    skip = max(skip - count, 0)
                    continue
                for lineno, line in enumerate(handle):
                    if lineno >= count or len(events) >= limit:
                        break
                    if lineno < skip:
                        continue
                    events.append(_decode(line))
                skip = 0
        finally:
            for handle in handles:
                if handle is not None:
                    handle.close()
        return events, total

    def close(self) -> None:
        """Close the live file."""
        with self._lock:
            self._closed = True
            self._file.close()
