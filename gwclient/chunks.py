"""Cut strain series into wire chunks with exact continuity.

A chunk holds ``n`` consecutive samples; chunk ``i`` starts at sample ``i * n`` of its series
and its ``t0`` is the GPS time of that sample, computed exactly from the series' ``t0`` and
``dt`` (as fractions) and rounded once, so no error accumulates from chunk to chunk.
Concatenating the chunks of a channel gives back the series sample for sample; the last chunk
may be shorter.

Samples that are not finite (GWOSC marks gaps in its open data with NaN) are not data: they are
left out, and the chunk is split around them, each piece keeping its true ``t0``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import orjson

from glitchflow_core.chunk import DEFAULT_CHANNEL, ChunkError, validate_channel


@dataclass(frozen=True, slots=True)
class PlannedChunk:
    """Samples of one channel ready to send: ``h`` is float64, ``start`` its first sample index."""

    channel: str
    t0: float
    dt: float
    h: np.ndarray
    start: int = 0

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.h.shape[0])

    @property
    def duration(self) -> float:
        """Seconds of data covered."""
        return self.n * self.dt

    def body(self) -> bytes:
        """The JSON request body: ``{"h": [...], "t": [t0, dt], "channel": ...}``.

        The default channel is sent without a ``channel`` field, as the original clients did.
        """
        doc: dict[str, Any] = {"h": self.h, "t": [self.t0, self.dt]}
        if self.channel != DEFAULT_CHANNEL:
            doc["channel"] = self.channel
        return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)

    def binary_body(self) -> bytes:
        """The binary request body: the samples as little-endian float64."""
        return self.h.astype("<f8", copy=False).tobytes()

    def binary_params(self) -> dict[str, str]:
        """The query parameters of the binary body (``repr``: every digit of t0 and dt)."""
        params = {"t0": repr(self.t0), "dt": repr(self.dt)}
        if self.channel != DEFAULT_CHANNEL:
            params["channel"] = self.channel
        return params


def sample_time(t0: float, dt: float, index: int) -> float:
    """GPS time of sample ``index``: ``t0 + index * dt`` computed exactly, rounded once."""
    return float(Fraction(t0) + index * Fraction(dt))


def samples_per_chunk(chunk_seconds: float, dt: float) -> int:
    """Samples in a chunk of ``chunk_seconds`` (the nearest whole number, at least one)."""
    if not chunk_seconds > 0:
        raise ValueError("chunk_seconds must be > 0")
    if not dt > 0:
        raise ValueError("dt must be > 0")
    return max(1, round(Fraction(chunk_seconds) / Fraction(dt)))


def _finite_runs(values: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs of finite values."""
    finite = np.isfinite(values)
    if finite.all():
        return [(0, values.shape[0])]
    edges = np.diff(np.concatenate(([False], finite, [False])).astype(np.int8))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def chunk_array(
    h: np.ndarray,
    t0: float,
    dt: float,
    channel: str = DEFAULT_CHANNEL,
    chunk_seconds: float = 1.0,
) -> Iterator[PlannedChunk]:
    """Chunks of the samples ``h`` starting at GPS ``t0`` with spacing ``dt``.

    Parameters
    ----------
    h : array
        The samples, converted to float64 once (chunks are views into that array).
    t0 : float
        GPS time of ``h[0]``.
    dt : float
        Sample spacing, seconds.
    channel : str
        Channel name, checked against the wire rules (``"L1:GWOSC-4KHZ_R1_STRAIN"``).
    chunk_seconds : float
        Length of a chunk; the last one may be shorter.

    Raises
    ------
    ValueError
        When the channel name, ``t0`` or ``dt`` would be refused by the API.
    """
    try:
        channel = validate_channel(channel)
    except ChunkError as exc:
        raise ValueError(f"channel {channel!r} {exc.reason}") from exc
    t0 = float(t0)
    dt = float(dt)
    if not (np.isfinite(t0) and t0 >= 0):
        raise ValueError(f"t0 must be a finite GPS time >= 0, not {t0}")
    samples = np.ascontiguousarray(h, dtype=np.float64).reshape(-1)
    step = samples_per_chunk(chunk_seconds, dt)
    for begin in range(0, samples.shape[0], step):
        piece = samples[begin : begin + step]
        for lo, hi in _finite_runs(piece):
            first = begin + lo
            yield PlannedChunk(channel, sample_time(t0, dt, first), dt, piece[lo:hi], first)


def _series_channel(series: Any, fallback: str | None) -> str:
    """The channel name carried by a gwpy series (its channel, else its name), else ``fallback``."""
    for attr in ("channel", "name"):
        value = getattr(series, attr, None)
        if value is not None and str(value) not in ("", "None"):
            return str(getattr(value, "name", value))
    return fallback or DEFAULT_CHANNEL


def chunk_series(
    series: Any, chunk_seconds: float = 1.0, channel: str | None = None
) -> Iterator[PlannedChunk]:
    """Chunks of a gwpy `TimeSeries` (anything with ``value``, ``t0`` and ``dt``).

    ``channel`` overrides the name carried by the series.
    """
    name = channel or _series_channel(series, None)
    return chunk_array(
        np.asarray(series.value),
        _seconds(series.t0),
        _seconds(series.dt),
        name,
        chunk_seconds,
    )


def _seconds(value: Any) -> float:
    """A float number of seconds from an astropy Quantity, a LIGOTimeGPS or a number."""
    if hasattr(value, "to_value"):
        return float(value.to_value("s"))
    return float(value)


def plan_chunks(data: Any, chunk_seconds: float = 1.0) -> list[PlannedChunk]:
    """All chunks of a series, a mapping of series (a `TimeSeriesDict`), or chunks already made.

    Chunks of several channels are interleaved in GPS order, as live detector streams arrive.
    """
    if isinstance(data, PlannedChunk):
        return [data]
    if isinstance(data, Mapping):
        chunks = [
            chunk
            for key, series in data.items()
            for chunk in chunk_series(series, chunk_seconds, _series_channel(series, str(key)))
        ]
    elif hasattr(data, "value") and hasattr(data, "t0"):
        chunks = list(chunk_series(data, chunk_seconds))
    elif isinstance(data, Iterable):
        chunks = list(data)
        if not all(isinstance(c, PlannedChunk) for c in chunks):
            raise TypeError("an iterable to stream must hold only PlannedChunk objects")
    else:
        raise TypeError(f"cannot stream a {type(data).__name__}")
    chunks.sort(key=lambda c: (c.t0, c.channel))
    return chunks
