"""The batch's state and when it freezes; the admin files ``Dsstat.json`` and ``StatDesc.json``.

``Dsstat.json`` is written durably on every change of state. ``StatDesc.json`` only caches the
counters for readers of the folder (the chunk files are the truth, the engine rebuilds them at
start-up), so it is rewritten lazily, at most once per `STAT_CACHE_INTERVAL` under load.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from databuffer.atomic import atomic_write
from databuffer.eventlog import utc_iso

logger = logging.getLogger("databuffer.state")

OPERATIONAL = "OPERATIONAL"
FROZEN = "FROZEN"
STATE_FILE = "Dsstat.json"
STAT_FILE = "StatDesc.json"

STAT_CACHE_INTERVAL = 0.25
"""Seconds ``StatDesc.json`` may lag the chunk files while writes stream in."""


@dataclass(frozen=True, slots=True)
class BatchState:
    """The current batch's number and state, as ``Dsstat.json`` holds it. Never a token."""

    dstatus: Literal["OPERATIONAL", "FROZEN"] = OPERATIONAL
    user: str | None = None
    batch: int = 1
    batch_started: float | None = None
    frozen_at: float | None = None
    frozen_reason: str | None = None
    awaiting_seal: bool = False
    """Frozen in rotate mode because the sealed queue was full: sealed as soon as it has room."""

    def as_json(self) -> dict[str, Any]:
        """The persisted and served form, times as UTC ISO strings."""
        doc = asdict(self)
        for key in ("batch_started", "frozen_at"):
            doc[key] = utc_iso(doc[key]) if doc[key] is not None else None
        if not self.awaiting_seal:
            del doc["awaiting_seal"]  # only ever true in rotate mode: hold's file is unchanged
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BatchState:
        """The state a ``Dsstat.json`` document describes; odd values fall back to defaults."""

        def when(value: object) -> float | None:
            return datetime.fromisoformat(value).timestamp() if isinstance(value, str) else None

        def text(value: object) -> str | None:
            return value if isinstance(value, str) else None

        batch = doc.get("batch")
        return cls(
            dstatus=FROZEN if doc.get("dstatus") == FROZEN else OPERATIONAL,
            user=text(doc.get("user")),
            batch=batch if isinstance(batch, int) and batch >= 1 else 1,
            batch_started=when(doc.get("batch_started")),
            frozen_at=when(doc.get("frozen_at")),
            frozen_reason=text(doc.get("frozen_reason")),
            awaiting_seal=doc.get("awaiting_seal") is True and doc.get("dstatus") == FROZEN,
        )


def freeze_reason(
    stored_bytes: int, size_limit: int | None, age: float, max_age: float | None
) -> str | None:
    """The freeze rule: why the batch must freeze now, or None.

    A batch is full once it holds ``size_limit`` bytes, and due once its first chunk is
    ``max_age`` seconds old (``age`` is negative for an empty batch, which never ages).
    """
    if size_limit is not None and stored_bytes >= size_limit:
        return f"buff_size {stored_bytes} >= {size_limit}"
    if max_age is not None and age >= max_age:
        return f"batch age >= max_age {max_age:g}s"
    return None


def load_state(path: Path) -> BatchState:
    """The state saved at ``path``; missing or unreadable, a fresh OPERATIONAL batch 1."""
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return BatchState()
    except (orjson.JSONDecodeError, OSError, ValueError) as exc:
        logger.error("unreadable %s, starting OPERATIONAL: %s", path.name, exc)
        return BatchState()
    return BatchState.from_json(doc) if isinstance(doc, dict) else BatchState()


def save_state(path: Path, state: BatchState) -> None:
    """Write ``state`` to ``path`` atomically and durably."""
    atomic_write(path, orjson.dumps(state.as_json()))


class StatCache:
    """``StatDesc.json``, rewritten from ``snapshot()`` when stale; writers never wait for it.

    Replacing a file costs a forced write-back on ext4, so doing it for every chunk would halve the
    ingest rate: `refresh_soon` coalesces the rewrites of a stream of writes into one per interval,
    `refresh` rewrites at once (freeze, flush, close).
    """

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], dict[str, Any]],
        interval: float = STAT_CACHE_INTERVAL,
    ) -> None:
        self.path = path
        self._snapshot = snapshot
        self._interval = interval
        self._stale = False
        self._write_lock = threading.Lock()
        self._timer_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False

    def mark_stale(self) -> None:
        """The counters changed; the next `refresh` rewrites the file."""
        self._stale = True

    def refresh_soon(self) -> None:
        """Mark stale and rewrite within the interval."""
        self._stale = True
        with self._timer_lock:
            if self._timer is not None or self._closed:
                return
            self._timer = threading.Timer(self._interval, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._timer_lock:
            self._timer = None
        self.refresh()

    def refresh(self) -> None:
        """Rewrite the file if stale; concurrent callers coalesce into one writer."""
        while self._stale:
            if not self._write_lock.acquire(blocking=False):
                return  # the holder re-checks the flag before leaving
            try:
                while self._stale:
                    self._stale = False
                    self.write()
            finally:
                self._write_lock.release()

    def write(self) -> None:
        """Rewrite the file now; a failure is logged (the cache is not the truth)."""
        try:
            atomic_write(self.path, orjson.dumps(self._snapshot()), durable=False)
        except OSError as exc:
            logger.warning("could not rewrite %s: %s", self.path.name, exc)

    def close(self) -> None:
        """Stop the timer and write the final counters; later calls do nothing."""
        with self._timer_lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        self._stale = True
        self.refresh()
