"""The wire schema of ``GET /status``: what the status page shows, as JSON (documents ``/docs``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

GpsSpan = list[float]
"""``[start, end]`` in GPS seconds."""


class Frozen(BaseModel):
    """Why and since when the buffer refuses writes, and what frees it."""

    at: str | None = Field(description="When it froze (UTC, ISO 8601).")
    for_s: float | None = Field(description="Seconds it has been frozen.")
    by: str | None = Field(description="Who froze it (a user name, never a token).")
    reason: str | None = Field(description="Why it froze, e.g. 'buff_size 8388608 >= 8388608'.")
    hint: str = Field(description="What frees it: the DAG, or /cleanbuf by hand.")


class IngestRate(BaseModel):
    """Chunks stored over the last ``window_s`` seconds, and per second."""

    window_s: int
    chunks: int
    bytes: int
    chunks_per_s: float
    bytes_per_s: float
    realtime: float = Field(description="Seconds of strain stored per second: 'x real time'.")


class Spectrum(BaseModel):
    """Amplitude spectral density of a chunk (Hann window), in log-spaced frequency bins."""

    f: list[float] = Field(description="Bin centres (Hz).")
    asd: list[float] = Field(description="Amplitude spectral density (strain/√Hz).")


class StrainPreview(BaseModel):
    """The newest chunk of a channel, reduced for a plot: (min, max) per bucket of samples."""

    t0: float
    dt: float
    n: int = Field(description="Samples in the chunk.")
    step: float = Field(description="Samples per bucket.")
    min: list[float]
    max: list[float]
    asd: Spectrum | None = None


class ChannelStatus(BaseModel):
    """One channel of the current batch: counts, GPS span, sample rate, coverage and gaps."""

    channel: str
    n_itm: int
    bytes: int
    start: float | None = Field(description="GPS time of the first stored sample.")
    end: float | None = Field(description="GPS time just after the last stored sample.")
    dt: float | None = Field(description="Sample spacing of the newest chunk (s).")
    sample_rate: float | None = Field(description="1 / dt (Hz).")
    covered_s: float = Field(description="Seconds of strain stored.")
    segment_count: int = Field(description="Contiguous segments of stored strain.")
    gap_count: int
    gap_s: float = Field(description="Seconds missing between the first and last sample.")
    gaps: list[GpsSpan] = Field(description="The longest gaps (at most 50), sorted by time.")
    refused: int = Field(description="Chunks refused for overlapping stored data (409).")
    refused_spans: list[GpsSpan] = Field(description="The latest refused overlaps (at most 50).")
    recent: StrainPreview | None = Field(description="The newest chunk, for a plot.")


class ArchivedBatch(BaseModel):
    """An archived batch: counts, times, channel spans and results recorded after archiving."""

    batch: int | None = None
    archive: str | None = None
    created: str | None = None
    frozen_at: str | None = None
    flushed_at: str | None = None
    frozen_reason: str | None = None
    n_itm: int | None = None
    bytes: int | None = None
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)
    results: dict[str, Any] = Field(
        default_factory=dict,
        description="What became of the batch, when recorded (POST /batches/{batch}/results:"
        " dataset, counts, model, the trainer's windows, flagged windows and top candidates).",
    )
    error: str | None = Field(None, description="Set when its manifest could not be read.")


class Archives(BaseModel):
    """The newest archived batches (at most 10) and how many there are."""

    total: int
    items: list[ArchivedBatch]


class StoredChunk(BaseModel):
    """A stored chunk, by its identity."""

    channel: str
    t0: float
    n: int
    dt: float
    bytes: int


class ChunkPage(BaseModel):
    """One page of the stored chunks, sorted by channel then GPS time."""

    page: int
    pages: int
    page_size: int
    total: int
    items: list[StoredChunk]


class StatusAnswer(BaseModel):
    """What the status page shows. Never a token."""

    resp: Literal["OK"]
    state: Literal["OPERATIONAL", "FROZEN"]
    batch: int
    batch_started: str | None
    n_itm: int = Field(description="Chunk files in the current batch (as /stats).")
    buff_size: int = Field(description="Their bytes (as /stats).")
    max_size: int = Field(description="MAX_SIZE: the buffer freezes at this many bytes.")
    fill: float = Field(description="buff_size / max_size.")
    frozen: Frozen | None
    rate: IngestRate
    channels: list[ChannelStatus]
    archives: Archives
    chunks: ChunkPage
    generated_at: float = Field(description="Unix time of the databuffer's answer.")


class PageNotFound(BaseModel):
    """A page past the end of the stored chunks."""

    resp: Literal["NOT_FOUND"]
    detail: dict[str, str] = Field(description="`field` (page) and `reason`.")
    pages: int = Field(description="How many pages there are.")
