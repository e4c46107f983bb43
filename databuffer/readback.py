"""Read a channel back between two GPS times: the batch being filled, sealed and archived batches.

No HTTP here. A read costs in proportion to the range, not to what is stored: the buffer's
batches keep a per-channel interval index in memory (`databuffer.index.ChannelIndex`), and every
archived batch gets one too, built once from its manifest's file names (a chunk file's name is its
identity: channel, ``t0``, samples, ``dt``), so only the chunk files that overlap the range are
read, and the archive is reached only through `glitchflow_archive.ArchiveStore` (a local folder
or, configured, an object store).

The answer (``ReadResult.as_json``) never fills a gap: samples are split into segments, each
contiguous at one spacing. With one segment its samples are the top-level ``h`` (``t0``, ``dt``
describe them); with several the top-level ``h`` is null and each segment carries its own ``h``.
``gaps`` lists every hole of the requested range that holds no sample (its head and tail too).
A sample belongs to ``[start, end)`` when its time ``t0 + i * dt`` is at or after ``start`` and
before ``end``, to within `TOLERANCE` of a sample (GPS times in float64 round at about 0.1 us).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from databuffer.index import ChannelIndex, Span, gaps_between
from databuffer.naming import parse_filename
from glitchflow_archive import ArchiveError, ArchiveStore, BatchRef, FileEntry
from glitchflow_archive.store import check_file
from glitchflow_core.chunk import MAX_GPS, ChunkError, parse_chunk
from glitchflow_core.edge import InvalidInput, Refused

TOLERANCE = 0.01
"""Fraction of a sample by which a sample's time may miss the range's bounds and still count."""
READ_ATTEMPTS = 3
"""A flush can move a live file into the archive between indexing and reading: read again."""


class DataNotFound(Refused):
    """Raised when the channel is unknown (404 ``UNKNOWN_CHANNEL``) or has no samples in the
    range (404 ``NO_DATA``)."""

    def __init__(self, resp: str, detail: str) -> None:
        super().__init__(404, resp, detail)


@dataclass(frozen=True, slots=True)
class Piece:
    """One chunk file that overlaps the range, and how to read its bytes."""

    span: Span
    order: int
    """Batch number: where chunks of two batches overlap, the older batch's samples win."""
    read: Callable[[], bytes]


@dataclass(slots=True)
class Segment:
    """Contiguous samples of the answer: ``h[i]`` is at GPS ``t0 + i * dt``."""

    t0: float
    dt: float
    parts: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    @property
    def end(self) -> float:
        return self.t0 + self.n * self.dt

    def samples(self) -> np.ndarray:
        if not self.parts:
            return np.empty(0, dtype=np.float64)
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)


@dataclass(slots=True)
class ReadResult:
    """The samples of ``channel`` in ``[start, end)``, as segments."""

    channel: str
    start: float
    end: float
    segments: list[Segment]

    def gaps(self) -> list[list[float]]:
        """Holes of ``[start, end)`` without samples, head and tail included."""
        covered = [[s.t0, s.end] for s in self.segments]
        holes = gaps_between(covered)
        first, last = self.segments[0], self.segments[-1]
        if first.t0 - self.start > (1 - TOLERANCE) * first.dt:
            holes.insert(0, [self.start, first.t0])
        if self.end - last.end > (1 - TOLERANCE) * last.dt:
            holes.append([last.end, self.end])
        return holes

    def as_json(self) -> bytes:
        """The JSON answer (see the module docstring), samples serialised by orjson from numpy."""
        one = len(self.segments) == 1
        first = self.segments[0]
        doc = {
            "channel": self.channel,
            "start": self.start,
            "end": self.end,
            "t0": first.t0,
            "dt": first.dt,
            "sample_rate": 1.0 / first.dt,
            "n": sum(s.n for s in self.segments),
            "h": first.samples() if one else None,
            "segments": [
                {
                    "t0": s.t0,
                    "dt": s.dt,
                    "n": s.n,
                    "end": s.end,
                    "h": None if one else s.samples(),
                }
                for s in self.segments
            ],
            "gaps": self.gaps(),
        }
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def check_range(start: float, end: float, max_seconds: float) -> None:
    """Raise `InvalidInput` unless ``[start, end)`` is a GPS range of at most ``max_seconds``."""
    for name, value in (("start", start), ("end", end)):
        if not (math.isfinite(value) and 0 <= value < MAX_GPS):
            raise InvalidInput(name, f"must be a GPS time from 0 to {MAX_GPS:.0e}")
    if end <= start:
        raise InvalidInput("end", "must be after start")
    if end - start > max_seconds:
        raise InvalidInput(
            "end",
            f"the range is {end - start:g} s, more than the limit of {max_seconds:g} s "
            "(GLITCHFLOW_MAX_READ_SECONDS)",
            413,
        )


def sample_bounds(t0: float, dt: float, n: int, start: float, end: float) -> tuple[int, int]:
    """Indices ``[i0, i1)`` of the samples of a chunk that fall in ``[start, end)``."""
    i0 = math.ceil((start - t0) / dt - TOLERANCE)
    i1 = math.ceil((end - t0) / dt - TOLERANCE)
    return max(i0, 0), min(i1, n)


def stitch(pieces: Iterable[tuple[float, float, np.ndarray]]) -> list[Segment]:
    """Join ``(t0, dt, samples)`` pieces, sorted by ``t0``, into contiguous segments.

    A piece that starts where the last segment ends (to half a sample) at the same spacing
    continues it; one that starts inside it loses its overlapping samples (the segment's came
    from an older batch); anything else starts a new segment, so gaps are never closed.
    """
    segments: list[Segment] = []
    for t0, dt, samples in pieces:
        last = segments[-1] if segments else None
        if last is not None and dt == last.dt and t0 < last.end + dt / 2:
            skip = max(round((last.end - t0) / dt), 0)
            if skip < samples.shape[0]:
                last.parts.append(samples[skip:])
                last.n += samples.shape[0] - skip
            continue
        if samples.shape[0]:
            segments.append(Segment(t0, dt, [samples], samples.shape[0]))
    return segments


def _decode(data: bytes) -> tuple[float, float, np.ndarray]:
    # Every sample takes at least two bytes: this bound never refuses a stored chunk.
    chunk = parse_chunk(data, max_samples=max(len(data) // 2, 1))
    return chunk.t0, chunk.dt, chunk.h


@dataclass(frozen=True, slots=True)
class ArchivedBatch:
    """An archived batch's channel indexes and manifest entries, by file name."""

    ref: BatchRef
    indexes: dict[str, ChannelIndex]
    entries: dict[str, FileEntry]


class ArchivedSpans:
    """Per archived batch, a `ChannelIndex` of every channel, built once from its manifest.

    Archived batches never change, so an index is kept for as long as its batch is listed; a
    read lists the batches (one folder listing or one bucket listing) and reads only manifests
    it has not seen.
    """

    def __init__(self, store: ArchiveStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._batches: dict[str, ArchivedBatch] = {}

    def batches(self) -> list[ArchivedBatch]:
        """Every complete archived batch, oldest first."""
        try:
            refs = self.store.list_batches()
        except ArchiveError:  # no archive folder yet: nothing archived
            return []
        with self._lock:
            known = dict(self._batches)
        out = []
        for ref in refs:
            batch = known.get(ref.name)
            if batch is None:
                try:
                    batch = self._index(ref)
                except ArchiveError:  # half-written (being flushed) or unreadable: not data yet
                    continue
            out.append(batch)
        with self._lock:
            self._batches = {batch.ref.name: batch for batch in out}
        return out

    def _index(self, ref: BatchRef) -> ArchivedBatch:
        manifest = self.store.read_manifest(ref)
        indexes: dict[str, ChannelIndex] = {}
        for entry in manifest.files:
            identity = parse_filename(entry.name)
            if identity is None:
                continue
            index = indexes.setdefault(identity.channel, ChannelIndex())
            index.add(Span(identity.start, identity.end, identity.dt, entry.name, entry.nbytes))
        return ArchivedBatch(ref, indexes, {entry.name: entry for entry in manifest.files})

    def reader(self, batch: ArchivedBatch, name: str) -> Callable[[], bytes]:
        """Reads one archived chunk file, checked against the manifest's size and sha256."""

        def read() -> bytes:
            data = self.store.read_bytes(batch.ref.name, name)
            check_file(batch.ref, batch.entries[name], data)
            return data

        return read


LiveSpans = Callable[[str, float, float], list[tuple[int, Path, list[Span] | None]]]
"""``(channel, start, end) -> [(batch, folder, spans or None)]``: per batch still in the buffer,
the spans of the channel overlapping the range (None: the batch has no such channel)."""
LiveChannels = Callable[[], list[tuple[int, dict[str, list[Span]]]]]
"""``() -> [(batch, {channel: spans})]``: every span of every batch still in the buffer."""


class ReadBack:
    """Range reads and channel listings over the buffer's batches and the archive.

    Parameters
    ----------
    live_spans, live_channels : callable
        The buffer's batches (being filled, and sealed ones waiting for training): the spans of
        one channel overlapping a range, and every channel's spans; both taken under the
        engine's lock (`Storage.spans_in_buffer`, `Storage.channel_spans_in_buffer`).
    store : ArchiveStore
        The archived batches.
    max_seconds : float
        Longest range one read may ask for.
    """

    def __init__(
        self,
        live_spans: LiveSpans,
        live_channels: LiveChannels,
        store: ArchiveStore,
        max_seconds: float,
    ) -> None:
        self.live_spans = live_spans
        self.live_channels = live_channels
        self.archived = ArchivedSpans(store)
        self.max_seconds = max_seconds

    def read(self, channel: str, start: float, end: float) -> ReadResult:
        """The samples of ``channel`` in ``[start, end)``.

        Raises
        ------
        InvalidInput
            A bad range (422) or one longer than ``max_seconds`` (413).
        DataNotFound
            The channel is nowhere, or has no samples in the range.
        glitchflow_archive.ArchiveError
            An archived file is missing or differs from its manifest.
        """
        check_range(start, end, self.max_seconds)
        for attempt in range(READ_ATTEMPTS):
            pieces, known = self._pieces(channel, start, end)
            try:
                segments = stitch(self._slices(pieces, start, end))
                break
            except FileNotFoundError:
                if attempt == READ_ATTEMPTS - 1:
                    raise
        if not known:
            raise DataNotFound("UNKNOWN_CHANNEL", f"no channel {channel!r} is stored")
        if not segments:
            raise DataNotFound(
                "NO_DATA", f"channel {channel!r} has no samples from GPS {start!r} to {end!r}"
            )
        return ReadResult(channel, start, end, segments)

    def _pieces(self, channel: str, start: float, end: float) -> tuple[list[Piece], bool]:
        """The chunk files of ``channel`` overlapping the range, and whether the channel exists."""
        pieces: list[Piece] = []
        known = False
        # The buffer first, the archive second: a flush in between then shows its files twice
        # (the buffer's copy is gone when read, and the read starts again), never nowhere.
        for batch, folder, spans in self.live_spans(channel, start, end):
            if spans is None:
                continue
            known = True
            for span in spans:
                pieces.append(Piece(span, batch, (folder / span.name).read_bytes))
        for archived in self.archived.batches():
            index = archived.indexes.get(channel)
            if index is None:
                continue
            known = True
            for span in index.between(start, end):
                read = self.archived.reader(archived, span.name)
                pieces.append(Piece(span, archived.ref.batch, read))
        pieces.sort(key=lambda p: (p.span.start, p.order))
        return pieces, known

    @staticmethod
    def _slices(
        pieces: list[Piece], start: float, end: float
    ) -> Iterable[tuple[float, float, np.ndarray]]:
        for piece in pieces:
            try:
                t0, dt, h = _decode(piece.read())
            except ChunkError as exc:
                raise ArchiveError(f"{piece.span.name} is not a valid chunk ({exc})") from exc
            i0, i1 = sample_bounds(t0, dt, h.shape[0], start, end)
            if i1 > i0:
                # The first sample's time rounded once, as gwclient computes a chunk's t0.
                first = t0 if i0 == 0 else float(Fraction(t0) + i0 * Fraction(dt))
                yield first, dt, h[i0:i1]

    def channels(self) -> list[dict[str, Any]]:
        """Every channel stored anywhere: its GPS span, segments, sample rate and batches."""
        merged: dict[str, ChannelIndex] = {}
        batches: dict[str, set[int]] = {}

        def add(batch: int, channel: str, spans: Iterable[Span]) -> None:
            target = merged.setdefault(channel, ChannelIndex())
            for span in spans:
                target.add(span)
            batches.setdefault(channel, set()).add(batch)

        for archived in self.archived.batches():
            for channel, index in archived.indexes.items():
                add(archived.ref.batch, channel, index.between(-math.inf, math.inf))
        for batch, channels in self.live_channels():
            for channel, spans in channels.items():
                add(batch, channel, spans)
        out = []
        for channel in sorted(merged):
            index = merged[channel]
            described = index.describe()
            dt = index.all()[0].dt
            out.append(
                {
                    "channel": channel,
                    "start": described["start"],
                    "end": described["end"],
                    "dt": dt,
                    "sample_rate": 1.0 / dt,
                    "segments": described["segments"],
                    "gaps": described["gaps"],
                    "batches": sorted(batches[channel]),
                }
            )
        return out
