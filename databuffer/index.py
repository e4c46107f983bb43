"""Indexes in memory: the current batch's stored files, and where recently archived ones went.

The batch index keeps its files in order, their sizes and per channel an interval index (O(log n)
overlap checks, coverage and gaps); it is only ever rebuilt from, or kept in step with, the chunk
files on disk. `ArchivedNames` tells which sealed batch holds a file that is sent again.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

from sortedcontainers import SortedKeyList, SortedList

from databuffer.naming import ChunkIdentity, parse_filename

logger = logging.getLogger("databuffer.index")

RECENT_ARCHIVED = 131_072
"""Archived files still recognised as duplicates when sent again (a retry racing a flush)."""


@dataclass(frozen=True, slots=True)
class Span:
    """The GPS interval ``[start, end)`` covered by one stored chunk file."""

    start: float
    end: float
    dt: float
    name: str
    nbytes: int


def overlaps(a_start: float, a_end: float, a_dt: float, b: Span) -> bool:
    """True when ``[a_start, a_end)`` and ``b`` share more than half a sample.

    Half a sample of tolerance keeps adjacent chunks whose boundaries differ by float rounding
    (``t0 + n * dt`` against the next ``t0``) from counting as overlapping.
    """
    tolerance = 0.5 * min(a_dt, b.dt)
    return b.start < a_end - tolerance and b.end > a_start + tolerance


class ChannelIndex:
    """The spans of one channel, sorted by start time; stored spans never overlap each other."""

    def __init__(self) -> None:
        self._spans: SortedKeyList = SortedKeyList(key=attrgetter("start"))
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._spans)

    def add(self, span: Span) -> None:
        """Record a stored chunk."""
        self._spans.add(span)
        self.nbytes += span.nbytes

    def overlapping(self, start: float, end: float, dt: float) -> Span | None:
        """A stored span overlapping ``[start, end)``, or None; O(log n).

        Stored spans are disjoint and sorted by start, hence also by end: only the spans just
        before and just after ``start`` can overlap without the one after ``start`` overlapping.
        """
        spans = self._spans
        pos = spans.bisect_key_right(start)
        for i in range(max(pos - 2, 0), min(pos + 2, len(spans))):
            span = spans[i]
            if overlaps(start, end, dt, span):
                return span
        return None

    def between(self, start: float, end: float) -> list[Span]:
        """The spans overlapping ``[start, end)``, in time order; O(log n) plus the spans found.

        Stored spans are disjoint and sorted by start, hence also by end: only the span just
        before ``start`` can reach into the range from before it.
        """
        spans = self._spans
        out = []
        for span in spans.islice(max(spans.bisect_key_right(start) - 1, 0)):
            if span.start >= end:
                break
            if span.end > start:
                out.append(span)
        return out

    def all(self) -> list[Span]:
        """Every span, in time order."""
        return list(self._spans)

    def segments(self) -> list[list[float]]:
        """Contiguous coverage ``[[start, end], ...]``; chunks closer than half a sample join."""
        merged: list[list[float]] = []
        last_dt = 0.0
        for span in self._spans:
            if merged and span.start <= merged[-1][1] + 0.5 * min(last_dt, span.dt):
                merged[-1][1] = max(merged[-1][1], span.end)
            else:
                merged.append([span.start, span.end])
            last_dt = span.dt
        return merged

    def describe(self) -> dict[str, object]:
        """``{"n_itm", "bytes", "start", "end", "segments", "gaps"}`` of this channel."""
        segments = self.segments()
        return {
            "n_itm": len(self._spans),
            "bytes": self.nbytes,
            "start": segments[0][0] if segments else None,
            "end": segments[-1][1] if segments else None,
            "segments": segments,
            "gaps": gaps_between(segments),
        }


def gaps_between(segments: list[list[float]]) -> list[list[float]]:
    """The holes ``[[end_i, start_i+1], ...]`` between sorted, disjoint segments."""
    return [[a[1], b[0]] for a, b in itertools.pairwise(segments)]


class BatchIndex:
    """The stored files of the current batch: sorted by channel then GPS time, sizes, spans."""

    def __init__(self) -> None:
        self._ordered: SortedList = SortedList()  # (channel, t0_ns, name)
        self._sizes: dict[str, int] = {}  # name -> stored bytes
        self._channels: dict[str, ChannelIndex] = {}
        self.stored_bytes = 0

    @property
    def stored_files(self) -> int:
        """How many chunk files the batch holds."""
        return len(self._sizes)

    def __contains__(self, name: object) -> bool:
        return name in self._sizes

    def add(self, name: str, identity: ChunkIdentity, nbytes: int) -> None:
        """Record the stored file ``name`` of ``nbytes`` bytes holding the chunk ``identity``."""
        self._ordered.add((identity.channel, identity.t0_ns, name))
        self._sizes[name] = nbytes
        index = self._channels.get(identity.channel)
        if index is None:
            index = self._channels[identity.channel] = ChannelIndex()
        index.add(Span(identity.start, identity.end, identity.dt, name, nbytes))
        self.stored_bytes += nbytes

    def overlapping(self, identity: ChunkIdentity) -> Span | None:
        """A stored span of the chunk's channel that overlaps it, or None."""
        index = self._channels.get(identity.channel)
        return (
            None if index is None else index.overlapping(identity.start, identity.end, identity.dt)
        )

    def names(self, limit: int | None = None, offset: int = 0) -> list[str]:
        """Stored file names sorted by channel then GPS time; one page with ``limit``."""
        end = None if limit is None else offset + limit
        return [name for _, _, name in self._ordered[offset:end]]

    def channel(self, channel: str) -> ChannelIndex | None:
        """The index of ``channel``, or None when the batch holds none of it."""
        return self._channels.get(channel)

    def spans(self) -> dict[str, list[Span]]:
        """Every channel's spans, in time order (copies)."""
        return {channel: index.all() for channel, index in self._channels.items()}

    def channels(self) -> dict[str, dict[str, Any]]:
        """`ChannelIndex.describe` of every channel, by channel name."""
        return {channel: index.describe() for channel, index in sorted(self._channels.items())}


def index_folder(folder: Path) -> tuple[BatchIndex, float | None]:
    """The index of the chunk files in ``folder``, and the oldest one's mtime (None if none)."""
    index = BatchIndex()
    oldest = None
    unknown = 0
    for entry in os.scandir(folder):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        identity = parse_filename(entry.name)
        if identity is None:
            unknown += 1
            continue
        info = entry.stat()
        index.add(entry.name, identity, info.st_size)
        oldest = info.st_mtime if oldest is None else min(oldest, info.st_mtime)
    if unknown:
        logger.warning("ignoring files that are not chunk files", extra={"count": unknown})
    return index, oldest


class ArchivedNames:
    """The most recently archived chunk files, by name: which batch and folder hold each.

    Bounded to `RECENT_ARCHIVED` names (oldest forgotten first): enough to recognise a retry
    that raced with flushes, without holding every name ever archived.
    """

    def __init__(self, capacity: int = RECENT_ARCHIVED) -> None:
        self.capacity = capacity
        self._where: OrderedDict[str, tuple[int, str]] = OrderedDict()

    def get(self, name: str) -> tuple[int, str] | None:
        """``(batch, archive folder)`` holding the file ``name``, or None when not remembered."""
        return self._where.get(name)

    def remember(self, batch: int, folder: str, names: Iterable[str]) -> None:
        """Record that ``folder`` (batch ``batch``) holds the files ``names``."""
        for name in names:
            self._where[name] = (batch, folder)
            self._where.move_to_end(name)
        while len(self._where) > self.capacity:
            self._where.popitem(last=False)
