"""Chunk file names: a chunk's identity written as a file name, and read back from one.

``quote(channel)__<t0 in ns, 20 digits>__<samples>__<repr(dt)>.json``: deterministic, sortable by
channel then GPS time, filesystem-safe, and never starting with a dot (those are temporary files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    if not _is_channel(channel):
        raise ChunkError("channel", "must look like 'L1:GWOSC-4KHZ_R1_STRAIN'")
    return f"{quote(channel, safe='')}__{t0_nanoseconds(t0):020d}__{n}__{dt!r}.json"


@dataclass(frozen=True, slots=True)
class ChunkIdentity:
    """A chunk's identity ``(channel, t0, samples, dt)``, with ``t0`` in nanoseconds."""

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


def parse_filename(name: str) -> ChunkIdentity | None:
    """The identity encoded in a chunk file name, or None when ``name`` is not one."""
    match = _NAME_RE.match(name)
    if match is None:
        return None
    channel = unquote(match["ch"])
    try:
        dt = float(match["dt"])
    except ValueError:
        return None
    if not dt > 0 or not _is_channel(channel):
        return None
    identity = ChunkIdentity(channel, int(match["ns"]), int(match["n"]), dt)
    # Only the canonical spelling counts, so one identity never has two files.
    try:
        canonical = chunk_filename(channel, identity.start, identity.n, dt)
    except ChunkError:  # 20 digits of nanoseconds can round up to MAX_GPS itself
        return None
    return identity if canonical == name else None
