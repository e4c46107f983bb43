"""Per-channel interval index of the stored chunks: O(log n) overlap checks, coverage and gaps."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from operator import attrgetter

from sortedcontainers import SortedKeyList


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
