"""Per-channel coverage kept up to date as chunks arrive, so a status answer never walks the files.

`Coverage` holds the merged GPS segments of one channel and, beside them, its gaps sorted by
length: adding a chunk costs O(log n), and the span, counts and largest gaps are read in O(k)
whatever the number of stored chunks. Chunks closer than half a sample join one segment, the
tolerance `databuffer.index.overlaps` uses.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from operator import attrgetter

from sortedcontainers import SortedKeyList, SortedList

REFUSED_KEPT = 50
"""Refused overlaps remembered per channel (the count has no bound)."""


@dataclass(slots=True)
class Segment:
    """Contiguous coverage ``[start, end)``; the spacing of its first and last chunks."""

    start: float
    end: float
    first_dt: float
    last_dt: float


def _joins(left_end: float, left_dt: float, right_start: float, right_dt: float) -> bool:
    return right_start <= left_end + 0.5 * min(left_dt, right_dt)


class Coverage:
    """The merged segments and the gaps of one channel; chunks are only ever added."""

    def __init__(self) -> None:
        self._segments: SortedKeyList = SortedKeyList(key=attrgetter("start"))
        self._gaps: SortedList = SortedList()  # (length, start, end)
        self.gap_seconds = 0.0
        self.covered_seconds = 0.0
        self.refused = 0
        self.recent_refused: deque[tuple[float, float]] = deque(maxlen=REFUSED_KEPT)

    def __len__(self) -> int:
        return len(self._segments)

    @classmethod
    def of_sorted(cls, chunks: Iterable[tuple[float, float, float]]) -> Coverage:
        """The coverage of ``(start, end, dt)`` chunks sorted by start that overlap no other,
        in one pass: what adding them one by one gives, without a search per chunk."""
        coverage = cls()
        segments: list[Segment] = []
        last = None
        covered = 0.0
        for start, end, dt in chunks:
            covered += end - start
            if last is not None and _joins(last.end, last.last_dt, start, dt):
                if end >= last.end:
                    last.end, last.last_dt = end, dt
                continue
            last = Segment(start, end, dt, dt)
            segments.append(last)
        coverage.covered_seconds = covered
        coverage._segments.update(segments)
        gaps = [(b.start - a.end, a.end, b.start) for a, b in itertools.pairwise(segments)]
        gaps = [gap for gap in gaps if gap[0] > 0]
        coverage._gaps.update(gaps)
        coverage.gap_seconds = sum(gap[0] for gap in gaps)
        return coverage

    def _add_gap(self, start: float, end: float) -> None:
        if end > start:
            self._gaps.add((end - start, start, end))
            self.gap_seconds += end - start

    def _drop_gap(self, start: float, end: float) -> None:
        if end > start:
            self._gaps.remove((end - start, start, end))
            self.gap_seconds -= end - start

    def add(self, start: float, end: float, dt: float) -> None:
        """Record the chunk ``[start, end)`` with spacing ``dt`` (it overlaps no stored chunk)."""
        segments = self._segments
        self.covered_seconds += end - start
        pos = segments.bisect_key_right(start)
        before = segments[pos - 1] if pos > 0 else None
        after = segments[pos] if pos < len(segments) else None
        if before is not None and after is not None:
            self._drop_gap(before.end, after.start)
        joins_before = before is not None and _joins(before.end, before.last_dt, start, dt)
        joins_after = after is not None and _joins(end, dt, after.start, after.first_dt)
        if joins_before and joins_after:
            assert before is not None and after is not None
            segments.remove(after)
            before.end, before.last_dt = max(before.end, after.end), after.last_dt
            return
        if joins_before:
            assert before is not None
            if end >= before.end:
                before.end, before.last_dt = end, dt
            left, right = before, after
        elif joins_after:
            assert after is not None
            # The key (start) changes: take it out and put it back.
            segments.remove(after)
            after.start, after.first_dt = min(start, after.start), dt
            segments.add(after)
            left, right = before, after
        else:
            here = Segment(start, end, dt, dt)
            segments.add(here)
            if before is not None:
                self._add_gap(before.end, here.start)
            left, right = here, after
        if left is not None and right is not None:
            self._add_gap(left.end, right.start)

    def refuse(self, start: float, end: float) -> None:
        """Record a chunk refused because it overlapped stored data with other samples."""
        self.refused += 1
        self.recent_refused.append((start, end))

    @property
    def start(self) -> float | None:
        """GPS time of the first stored sample."""
        return self._segments[0].start if self._segments else None

    @property
    def end(self) -> float | None:
        """GPS time just after the last stored sample."""
        return self._segments[-1].end if self._segments else None

    @property
    def gap_count(self) -> int:
        """Holes between stored segments."""
        return len(self._gaps)

    def largest_gaps(self, k: int) -> list[list[float]]:
        """The ``k`` longest gaps ``[[start, end], ...]``, sorted by start time."""
        chosen = self._gaps[-k:] if k > 0 else []
        return sorted([start, end] for _, start, end in chosen)

    def segments(self) -> list[list[float]]:
        """Every segment ``[[start, end], ...]``, sorted (O(segments), for full answers)."""
        return [[segment.start, segment.end] for segment in self._segments]
