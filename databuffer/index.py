"""Indexes in memory: the current batch's stored files, and where recently archived ones went.

The batch index keeps its files in order, their sizes and per channel an interval index (O(log n)
overlap checks, coverage and gaps); it is only ever rebuilt from, or kept in step with, the chunk
files on disk. `ArchivedNames` tells which sealed batch holds a file that is sent again.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

from sortedcontainers import SortedKeyList, SortedList

from databuffer.coverage import Coverage
from databuffer.naming import ChunkIdentity, parse_filename

logger = logging.getLogger("databuffer.index")

RECENT_ARCHIVED = 131_072
"""Archived files still recognised as duplicates when sent again (a retry racing a flush)."""
STAT_THREADS = 2
"""Threads that ``stat`` the chunk files while start-up parses their names."""
STAT_SLICE = 4096
"""Files one ``stat`` task covers."""


class Span(NamedTuple):
    """The GPS interval ``[start, end)`` covered by one stored chunk file.

    A named tuple: start-up makes one per stored file (a frozen dataclass is several times
    slower to build).
    """

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
    """The spans of one channel, sorted by start time; stored spans never overlap each other.

    Its `Coverage` (segments, gaps, refused overlaps) is kept as spans are added.
    """

    def __init__(self) -> None:
        self._spans: SortedKeyList = SortedKeyList(key=attrgetter("start"))
        self.nbytes = 0
        self.coverage = Coverage()

    def __len__(self) -> int:
        return len(self._spans)

    @classmethod
    def of_spans(cls, spans: list[Span]) -> ChannelIndex:
        """The index of stored spans that overlap no other, built at once (sorted once)."""
        index = cls()
        spans = sorted(spans, key=attrgetter("start"))
        index._spans.update(spans)
        index.nbytes = sum(span.nbytes for span in spans)
        index.coverage = Coverage.of_sorted((span.start, span.end, span.dt) for span in spans)
        return index

    def add(self, span: Span) -> None:
        """Record a stored chunk."""
        self._spans.add(span)
        self.nbytes += span.nbytes
        self.coverage.add(span.start, span.end, span.dt)

    @property
    def newest(self) -> Span | None:
        """The span that starts last."""
        return self._spans[-1] if self._spans else None

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

    def newest_end(self) -> float | None:
        """GPS time just after the newest stored sample (spans are disjoint: the last ends last)."""
        return self._spans[-1].end if self._spans else None

    def segments(self) -> list[list[float]]:
        """Contiguous coverage ``[[start, end], ...]``; chunks closer than half a sample join."""
        return self.coverage.segments()

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

    @classmethod
    def of_files(cls, files: Iterable[tuple[str, ChunkIdentity, int]]) -> BatchIndex:
        """The index of stored files ``(name, identity, bytes)``, built at once: one sort per
        structure instead of a search per file (start-up indexes every file of a batch)."""
        index = cls()
        ordered = []
        spans: dict[str, list[Span]] = {}
        sizes = index._sizes
        for name, identity, nbytes in files:
            channel = identity.channel
            ordered.append((channel, identity.t0_ns, name))
            sizes[name] = nbytes
            start = identity.start
            span = Span(start, start + identity.n * identity.dt, identity.dt, name, nbytes)
            spans.setdefault(channel, []).append(span)
        index._ordered.update(ordered)
        index._channels = {channel: ChannelIndex.of_spans(s) for channel, s in spans.items()}
        index.stored_bytes = sum(sizes.values())
        return index

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

    def newest_ends(self) -> dict[str, float]:
        """`ChannelIndex.newest_end` of every channel that holds data; O(channels)."""
        ends = {channel: index.newest_end() for channel, index in self._channels.items()}
        return {channel: end for channel, end in ends.items() if end is not None}

    def channels(self) -> dict[str, dict[str, Any]]:
        """`ChannelIndex.describe` of every channel, by channel name."""
        return {channel: index.describe() for channel, index in sorted(self._channels.items())}

    def channel_indexes(self) -> list[tuple[str, ChannelIndex]]:
        """``(channel, ChannelIndex)`` of every channel, sorted by channel name."""
        return sorted(self._channels.items())

    def refuse(self, identity: ChunkIdentity) -> None:
        """Count a chunk of ``identity`` refused for overlapping stored data of its channel.

        Only a channel with data in this batch counts it (a conflict with an archived chunk
        is not about this batch's coverage).
        """
        index = self._channels.get(identity.channel)
        if index is not None:
            index.coverage.refuse(identity.start, identity.end)

    def entries(self, limit: int, offset: int = 0) -> list[tuple[str, int]]:
        """One page of ``(name, bytes)`` sorted by channel then GPS time."""
        return [(name, self._sizes[name]) for _, _, name in self._ordered[offset : offset + limit]]


def index_folder(folder: Path) -> tuple[BatchIndex, float | None]:
    """The index of the chunk files in ``folder``, and the oldest one's mtime (None if none).

    Every name is read (no file is opened): sizes come from one ``stat`` per file, made by
    `STAT_THREADS` threads while this one parses the names (system calls release the GIL).
    """
    with os.scandir(folder) as listing:
        names = [e.name for e in listing if not e.name.startswith(".") and e.is_file()]
    slices = [names[i : i + STAT_SLICE] for i in range(0, len(names), STAT_SLICE)]
    found = Found()
    with ThreadPoolExecutor(STAT_THREADS, thread_name_prefix="index-stat") as pool:
        stats = pool.map(functools.partial(_sizes, folder), slices)
        index = BatchIndex.of_files(found.files(zip(slices, stats, strict=True)))
    if found.unknown:
        logger.warning("ignoring files that are not chunk files", extra={"count": found.unknown})
    return index, found.oldest


class Found:
    """Chunk files read from a listing, with what else it held: files that are not chunk
    files, and the oldest modification time."""

    def __init__(self) -> None:
        self.unknown = 0
        self.oldest: float | None = None

    def files(
        self, slices: Iterable[tuple[list[str], tuple[list[int | None], float | None]]]
    ) -> Iterator[tuple[str, ChunkIdentity, int]]:
        """``(name, identity, bytes)`` of every chunk file, from slices of names and sizes."""
        for names, (sizes, oldest) in slices:
            if oldest is not None:
                self.oldest = oldest if self.oldest is None else min(self.oldest, oldest)
            for name, size in zip(names, sizes, strict=True):
                identity = parse_filename(name)
                if identity is None:
                    self.unknown += 1
                elif size is not None:  # None: gone since the listing, so not stored
                    yield name, identity, size


def _sizes(folder: Path, names: list[str]) -> tuple[list[int | None], float | None]:
    """The size of each file (None for one removed since it was listed), the oldest mtime."""
    sizes: list[int | None] = []
    oldest = None
    join = os.path.join
    for name in names:
        try:
            info = os.stat(join(folder, name))
        except FileNotFoundError:
            sizes.append(None)
            continue
        sizes.append(info.st_size)
        oldest = info.st_mtime if oldest is None else min(oldest, info.st_mtime)
    return sizes, oldest


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
