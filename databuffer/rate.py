"""The ingest rate over the last minute, from per-second buckets kept as chunks are stored."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

RATE_WINDOW = 60
"""Seconds the ingest rate is averaged over."""


class IngestRate:
    """Chunks, bytes and seconds of data stored per wall-clock second, over `RATE_WINDOW` s.

    One bucket per second that saw a write, at most `RATE_WINDOW` of them: recording and reading
    cost the same whatever the number of stored chunks.
    """

    def __init__(self, clock: Callable[[], float], window: int = RATE_WINDOW) -> None:
        self._clock = clock
        self.window = window
        self._buckets: deque[list[float]] = deque()  # [second, chunks, bytes, data seconds]

    def _trim(self, now_second: int) -> None:
        while self._buckets and self._buckets[0][0] <= now_second - self.window:
            self._buckets.popleft()

    def record(self, nbytes: int, data_seconds: float) -> None:
        """Count one stored chunk of ``nbytes`` bytes holding ``data_seconds`` of strain."""
        second = int(self._clock())
        self._trim(second)
        if not self._buckets or self._buckets[-1][0] != second:
            self._buckets.append([second, 0, 0, 0.0])
        bucket = self._buckets[-1]
        bucket[1] += 1
        bucket[2] += nbytes
        bucket[3] += data_seconds

    def as_json(self) -> dict[str, float | int]:
        """Totals over the window and per-second means (``realtime``: data s per wall s)."""
        self._trim(int(self._clock()))
        chunks = sum(int(bucket[1]) for bucket in self._buckets)
        nbytes = sum(int(bucket[2]) for bucket in self._buckets)
        seconds = sum(bucket[3] for bucket in self._buckets)
        return {
            "window_s": self.window,
            "chunks": chunks,
            "bytes": nbytes,
            "chunks_per_s": chunks / self.window,
            "bytes_per_s": nbytes / self.window,
            "realtime": seconds / self.window,
        }
