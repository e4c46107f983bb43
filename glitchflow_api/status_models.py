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


class SealedBatch(BaseModel):
    """A batch sealed full in rotate mode, waiting to be handed over for training."""

    batch: int
    archive: str = Field(description="The archive folder reserved for it.")
    n_f: int = Field(description="Its chunk files.")
    bt_wrt: int = Field(description="Their bytes.")
    created: str | None = Field(description="When its first chunk arrived (UTC, ISO 8601).")
    sealed_at: str = Field(description="When it was sealed (UTC, ISO 8601).")
    frozen_by: str | None = Field(description="Who closed it (a user name, never a token).")
    frozen_reason: str | None
    pause_seconds: float = Field(
        description="Seconds writes were refused while it was the batch being filled."
    )
    waiting_s: float = Field(description="Seconds since it was sealed.")


class SealedQueue(BaseModel):
    """Sealed batches waiting for training (oldest first), against ``MAX_SEALED``."""

    mode: Literal["hold", "rotate"] = Field(description="FREEZE_MODE of the logic.")
    max_sealed: int | None = Field(description="MAX_SEALED (rotate mode; null in hold).")
    count: int = Field(description="Sealed batches waiting.")
    full: bool = Field(description="True when MAX_SEALED batches wait: a full batch then freezes.")
    oldest_waiting_s: float | None = Field(description="Seconds the oldest has waited.")
    items: list[SealedBatch]


class BatchPause(BaseModel):
    """Seconds writes were refused while one batch was the batch being filled."""

    batch: int
    seconds: float


class IngestPause(BaseModel):
    """Seconds writes were refused (frozen in hold mode, or the sealed queue full)."""

    paused: bool = Field(description="True while writes are refused.")
    current_seconds: float = Field(description="Length of the current pause (0 when none).")
    total_seconds: float = Field(description="Since the buffer started, the current included.")
    batches: list[BatchPause] = Field(description="Per batch, newest first (the latest 100).")


class ArchiveStore(BaseModel):
    """The object store archives are uploaded to, as the buffer's uploader last saw it."""

    store: str = Field(description="``s3://bucket/prefix``.")
    reachable: bool
    error: str | None = Field(description="Why it is unreachable (null while reachable).")
    unreachable_since: str | None = Field(description="UTC, ISO 8601; null while reachable.")
    pending: int = Field(description="Archived batches not yet verified in the store.")
    keep_local: bool = Field(description="Whether local chunk files stay after an upload.")
    last_error: str | None = Field(None, description="The last upload or probe error, if any.")
    last_error_at: str | None = Field(None, description="When it happened (UTC, ISO 8601).")


class UploadState(BaseModel):
    """Where an archived batch is: waiting, on its way, or uploaded and verified in the store."""

    state: Literal["pending", "uploading", "retrying", "uploaded", "failed"]
    location: str = Field(description="Where it is now: the local folder, or ``s3://...``.")
    target: str | None = Field(None, description="Where it goes (until uploaded).")
    verified_at: str | None = Field(
        None, description="When every file was checked in the store (sizes and sha256)."
    )
    local_copy: bool | None = Field(None, description="Whether the local files were kept.")
    error: str | None = Field(None, description="The last failure of its upload.")
    attempts: int | None = Field(None, description="Tries so far.")


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
        default_factory=dict, description="Upload, export or training records, when recorded."
    )
    error: str | None = Field(None, description="Set when its manifest could not be read.")
    upload: UploadState | None = Field(
        None, description="Its upload to the object store (absent when archives stay local)."
    )


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
    sealed: SealedQueue
    ingest_pause: IngestPause
    archive_store: ArchiveStore | None = Field(
        description="The object store archives go to; null when they stay in the local folder."
    )
    channels: list[ChannelStatus]
    archives: Archives
    chunks: ChunkPage
    generated_at: float = Field(description="Unix time of the databuffer's answer.")


class PageNotFound(BaseModel):
    """A page past the end of the stored chunks."""

    resp: Literal["NOT_FOUND"]
    detail: dict[str, str] = Field(description="`field` (page) and `reason`.")
    pages: int = Field(description="How many pages there are.")
