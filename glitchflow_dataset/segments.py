"""Join a channel's chunks into contiguous segments (pure numpy: no gwpy here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from glitchflow_core.chunk import Chunk
from glitchflow_dataset.errors import DatasetError


@dataclass(slots=True)
class Segment:
    """Samples of one channel with no gap: ``h[i]`` is at GPS ``t0 + i * dt``."""

    channel: str
    t0: float
    dt: float
    parts: list[np.ndarray] = field(default_factory=list)
    n: int = 0

    @property
    def end(self) -> float:
        """GPS time just after the last sample."""
        return self.t0 + self.n * self.dt

    def samples(self) -> np.ndarray:
        """The samples as one float64 array."""
        return self.parts[0] if len(self.parts) == 1 else np.concatenate(self.parts)

    def add(self, chunk: Chunk) -> None:
        self.parts.append(chunk.h)
        self.n += chunk.n


def _follows(segment: Segment, chunk: Chunk) -> bool:
    """True when ``chunk`` starts at the segment's next sample (within half a sample)."""
    return chunk.dt == segment.dt and abs(chunk.t0 - segment.end) <= chunk.dt / 2


def join_segments(chunks: Iterable[Chunk]) -> dict[str, list[Segment]]:
    """Each channel's chunks joined into contiguous segments, channels sorted, segments in time.

    Two chunks are one segment when the second starts where the first ends (to half a sample) at
    the same sample spacing; anything else starts a new segment, so gaps are never closed.

    Raises
    ------
    DatasetError
        Two chunks of a channel overlap (the buffer refuses that, so the batch is corrupt).
    """
    by_channel: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        by_channel.setdefault(chunk.channel, []).append(chunk)
    out: dict[str, list[Segment]] = {}
    for channel in sorted(by_channel):
        segments: list[Segment] = []
        for chunk in sorted(by_channel[channel], key=lambda c: c.t0):
            last = segments[-1] if segments else None
            if last is not None and _follows(last, chunk):
                last.add(chunk)
                continue
            if last is not None and chunk.t0 < last.end - min(chunk.dt, last.dt) / 2:
                raise DatasetError(f"channel {channel}: chunks overlap at GPS {chunk.t0!r}")
            segment = Segment(channel, chunk.t0, chunk.dt)
            segment.add(chunk)
            segments.append(segment)
        out[channel] = segments
    return out


def pad_gaps(segments: list[Segment]) -> Segment:
    """One segment spanning all of ``segments``, their gaps filled with NaN.

    Raises
    ------
    DatasetError
        The segments do not share one sample spacing, or a gap is not a whole number of samples.
    """
    first = segments[0]
    padded = Segment(first.channel, first.t0, first.dt)
    for segment in segments:
        if segment.dt != first.dt:
            raise DatasetError(f"channel {first.channel}: sample rate changes, cannot pad gaps")
        missing = (segment.t0 - padded.end) / first.dt
        if padded.n and (abs(missing - round(missing)) > 0.01 or round(missing) < 1):
            raise DatasetError(
                f"channel {first.channel}: gap at GPS {padded.end!r} is not a whole number of "
                "samples, cannot pad"
            )
        if padded.n:
            padded.parts.append(np.full(round(missing), np.nan))
            padded.n += round(missing)
        padded.parts.extend(segment.parts)
        padded.n += segment.n
    return padded
