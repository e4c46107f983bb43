"""Chunk file names: a chunk's identity written as a file name, and read back from one.

``quote(channel)__<t0 in ns, 20 digits>__<samples>__<repr(dt)>.json``: deterministic, sortable by
channel then GPS time, filesystem-safe, and never starting with a dot (those are temporary files).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple
from urllib.parse import quote, unquote

from glitchflow_core.chunk import CHANNEL_RE, DEFAULT_CHANNEL, MAX_GPS, Chunk, ChunkError

NS_PER_SECOND = 1_000_000_000
_NAME_RE = re.compile(
    r"^(?P<ch>[A-Za-z0-9%._\-]+)__(?P<ns>\d{20})__(?P<n>[1-9]\d*)__(?P<dt>[0-9.e+\-]+)\.json$"
)


def t0_nanoseconds(t0: float) -> int:
    """``t0`` in integer nanoseconds, rounded; exact for the integer part of GPS times."""
    whole = int(t0)
    return whole * NS_PER_SECOND + round((t0 - whole) * NS_PER_SECOND)


def _is_channel(channel: str) -> bool:
    return channel == DEFAULT_CHANNEL or CHANNEL_RE.match(channel) is not None


def chunk_filename(channel: str, t0: float, n: int, dt: float) -> str:
    """The file name of the chunk ``(channel, t0, n, dt)``.

    Raises
    ------
    ChunkError
        When ``t0`` is not a GPS time below `MAX_GPS` (20 digits of nanoseconds hold it) or the
        channel is not a channel name.
    """
    if not 0 <= t0 < MAX_GPS:
        raise ChunkError("t", f"t0 must be a GPS time from 0 to {MAX_GPS:.0e}")
    quoted = _quoted_channel(channel)
    if quoted is None:
        raise ChunkError("channel", "must look like 'L1:GWOSC-4KHZ_R1_STRAIN'")
    return f"{quoted}__{t0_nanoseconds(t0):020d}__{n}__{dt!r}.json"


@functools.lru_cache(maxsize=4096)
def _quoted_channel(channel: str) -> str | None:
    """A channel's part of its file names, None when it is not a channel name.

    Cached, as `_channel_of` is for the other way: a stream names a handful of channels.
    """
    return quote(channel, safe="") if _is_channel(channel) else None


class ChunkIdentity(NamedTuple):
    """A chunk's identity ``(channel, t0, samples, dt)``, with ``t0`` in nanoseconds.

    A named tuple: start-up makes one per stored file, and a tuple is built several times
    faster than a frozen dataclass.
    """

    channel: str
    t0_ns: int
    n: int
    dt: float

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkIdentity:
        """The identity of a validated chunk."""
        return cls(chunk.channel, t0_nanoseconds(chunk.t0), chunk.n, chunk.dt)

    @property
    def start(self) -> float:
        """GPS time of the first sample."""
        return self.t0_ns / NS_PER_SECOND

    @property
    def end(self) -> float:
        """GPS time just after the last sample."""
        return self.start + self.n * self.dt


@functools.lru_cache(maxsize=4096)
def _channel_of(quoted: str) -> str | None:
    """The channel a file name's first part spells, None unless that is its canonical quoting.

    Cached: a folder holds a handful of channels, and start-up reads every name.
    """
    channel = unquote(quoted)
    if not _is_channel(channel) or quote(channel, safe="") != quoted:
        return None
    return channel


@functools.lru_cache(maxsize=4096)
def _spacing_of(text: str) -> float | None:
    """The positive ``dt`` a file name's last part spells, None unless it is ``repr(dt)``."""
    try:
        dt = float(text)
    except ValueError:
        return None
    return dt if dt > 0 and repr(dt) == text else None


def parse_filename(name: str) -> ChunkIdentity | None:
    """The identity encoded in a chunk file name, or None when ``name`` is not one.

    Only the canonical spelling counts (the name `chunk_filename` gives), so one identity never
    has two files: the channel quoted as `chunk_filename` quotes it, ``dt`` as its ``repr``, and
    the nanoseconds those of the GPS time they stand for.
    """
    match = _NAME_RE.match(name)
    if match is None:
        return None
    quoted, digits, n, spacing = match.groups()
    channel = _channel_of(quoted)
    dt = _spacing_of(spacing)
    if channel is None or dt is None:
        return None
    ns = int(digits)
    start = ns / NS_PER_SECOND
    # 20 digits of nanoseconds can round up to MAX_GPS itself.
    if not 0 <= start < MAX_GPS or t0_nanoseconds(start) != ns:
        return None
    return ChunkIdentity(channel, ns, int(n), dt)
