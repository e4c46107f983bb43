"""The event log ``LogStream.json``: JSON lines, rotated by size, read page by page."""

from __future__ import annotations

import itertools
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

_BLOCK = 1 << 20


def utc_iso(timestamp: float) -> str:
    """``2026-11-22T10:15:00.123456Z`` for a Unix time."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(block.count(b"\n") for block in iter(lambda: f.read(_BLOCK), b""))
    except FileNotFoundError:
        return 0


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
    """

    def __init__(self, path: Path, max_bytes: int = 16 * 1024 * 1024, backups: int = 5) -> None:
        self.path = Path(path)
        self.max_bytes = max(max_bytes, 1)
        self.backups = max(backups, 0)
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Line counts, oldest file first: backups N..1, then the live file.
        self._counts = [_count_lines(p) for p in self._files()]
        self._file: BinaryIO = self.path.open("ab")
        self._size = self._file.tell()

    def _files(self) -> list[Path]:
        backups = [self.path.with_name(f"{self.path.name}.{i}") for i in range(self.backups, 0, -1)]
        return [*backups, self.path]

    def append(self, event: str, **fields: Any) -> None:
        """Append one event ``{"time", "event", **fields}``."""
        record = {
            "time": utc_iso(fields.pop("timestamp", None) or time.time()),
            "event": event,
            **fields,
        }
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            if self._size and self._size + len(line) > self.max_bytes:
                self._rotate()
            self._file.write(line)
            self._file.flush()
            self._size += len(line)
            self._counts[-1] += 1

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
        self._file = self.path.open("wb")
        self._size = 0

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
                    events.append(orjson.loads(line))
                skip = 0
        finally:
            for handle in handles:
                if handle is not None:
                    handle.close()
        return events, total

    def close(self) -> None:
        """Close the live file."""
        with self._lock:
            self._file.close()
