"""Wire schemas of the public API, with the original field names; they document ``/docs``.

``/streamdata`` is documented by `chunk_schema` but validated by
``glitchflow_core.chunk.parse_chunk`` (orjson or simdjson + numpy), far cheaper than validating
floats one by one through pydantic.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from glitchflow_core.chunk import CHANNEL_RE, DEFAULT_CHANNEL, MAX_GPS


def chunk_schema(max_samples: int, min_dt: float, max_dt: float) -> dict[str, Any]:
    """JSON Schema of a ``/streamdata`` body with this API's limits (settings), for ``/docs``.

    What JSON Schema cannot say is in the text: the per-sample form of ``t`` (one GPS time per
    sample, uniformly spaced, read as ``[t[0], spacing]``) and that the chunk must end before GPS
    1e11 (``t0 + len(h) * dt``).
    """
    return {
        "title": "ChunkIn",
        "type": "object",
        "description": "One chunk of strain: samples `h` from GPS time `t0`, spaced `dt` seconds.",
        "additionalProperties": False,
        "required": ["h", "t"],
        "properties": {
            "h": {
                "type": "array",
                "items": {"type": "number"},
                "minItems": 1,
                "maxItems": max_samples,
                "description": f"Strain samples: 1 to {max_samples} finite numbers (MAX_SAMPLES).",
            },
            "t": {
                "type": "array",
                "prefixItems": [
                    {"type": "number", "minimum": 0, "exclusiveMaximum": MAX_GPS, "title": "t0"},
                    {"type": "number", "minimum": min_dt, "maximum": max_dt, "title": "dt"},
                ],
                "minItems": 2,
                "maxItems": 2,
                "description": f"[t0, dt]: GPS time of the first sample (0 <= t0 < {MAX_GPS:.0e})"
                f" and the sample spacing in seconds ({min_dt:g} <= dt <= {max_dt:g}: MIN_DT,"
                " MAX_DT); the chunk must end before GPS 1e11 (t0 + len(h) * dt). The original's"
                " form, one GPS time per sample (len(t) == len(h), uniformly spaced), is accepted"
                " too and read as [t[0], spacing].",
            },
            "channel": {
                "anyOf": [
                    {"type": "string", "pattern": CHANNEL_RE.pattern},
                    {"type": "string", "const": DEFAULT_CHANNEL},
                    {"type": "null"},
                ],
                "description": "Channel, e.g. 'L1:GWOSC-4KHZ_R1_STRAIN'; without it "
                f"'{DEFAULT_CHANNEL}'.",
            },
        },
        "examples": [
            {"h": [1.2e-21, -3.4e-22, 5.6e-22], "t": [1370000000.0, 0.000244140625]},
            {
                "h": [1.2e-21, -3.4e-22],
                "t": [1370000000.0, 0.000244140625],
                "channel": "L1:GWOSC-4KHZ_R1_STRAIN",
            },
        ],
    }


def binary_parameters(min_dt: float, max_dt: float) -> list[dict[str, Any]]:
    """Query parameters of ``/streamdata``, read for a binary chunk and ignored otherwise."""
    return [
        {
            "name": "channel",
            "in": "query",
            "required": False,
            "description": "Binary chunks only (`application/octet-stream`): the channel, as "
            f"the JSON field; without it '{DEFAULT_CHANNEL}'.",
            "schema": {"type": "string", "pattern": CHANNEL_RE.pattern},
        },
        {
            "name": "t0",
            "in": "query",
            "required": False,
            "description": "Binary chunks only, required there: GPS time of the first sample.",
            "schema": {"type": "number", "minimum": 0, "exclusiveMaximum": MAX_GPS},
        },
        {
            "name": "dt",
            "in": "query",
            "required": False,
            "description": "Binary chunks only, required there: sample spacing in seconds "
            f"({min_dt:g} <= dt <= {max_dt:g}: MIN_DT, MAX_DT).",
            "schema": {"type": "number", "minimum": min_dt, "maximum": max_dt},
        },
    ]


def stream_request_body(
    max_samples: int, min_dt: float, max_dt: float, max_chunks: int
) -> dict[str, Any]:
    """OpenAPI ``requestBody`` of ``/streamdata``: a chunk or an array of chunks as JSON, NDJSON,
    or one binary chunk, with this API's limits (settings)."""
    chunk = chunk_schema(max_samples, min_dt, max_dt)
    several = {
        "type": "array",
        "items": chunk,
        "minItems": 1,
        "maxItems": max_chunks,
        "description": f"Several chunks (1 to {max_chunks}, MAX_CHUNKS), each stored and "
        "answered on its own, in order: 207 MULTI.",
    }
    return {
        "required": True,
        "content": {
            "application/json": {"schema": {"anyOf": [chunk, several]}},
            "application/x-ndjson": {
                "schema": {
                    "type": "string",
                    "description": "Several chunks, one JSON chunk a line (as `ChunkIn`): "
                    "207 MULTI, one result per line that holds a chunk, in order.",
                }
            },
            "application/octet-stream": {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": f"One chunk: 1 to {max_samples} samples, IEEE 754 float64, "
                    "little-endian (8 bytes each, finite); `channel`, `t0` and `dt` in the "
                    "query. The same chunk as its JSON form: same identity, stored the same way.",
                }
            },
        },
    }


class TrainRequest(BaseModel):
    """The freeze signal Airflow sends; ``token`` (or the bearer header) must be an admin token."""

    model_config = ConfigDict(extra="forbid")

    # Stripped and non-empty, as the buffer requires: a blank user is the caller's error (422).
    user: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)] = (
        Field(description="Who asks (stored as the batch's freezer).")
    )
    token: str | None = Field(
        None, max_length=4096, description="Admin token, if not sent as a bearer header."
    )


MAX_BATCH = 2**53 - 1
"""Largest batch id a flush may name: JSON's largest safe integer, exact in every client."""


class CleanRequest(BaseModel):
    """The flush signal: archive a batch. Without ``batch``, the current one even if partial."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # a batch id is a JSON integer: not "3", not true
        json_schema_extra={"examples": [{"msg": "see you space cowboy"}, {"msg": "", "batch": 3}]},
    )

    # The buffer keeps at most 4096 characters; a longer one is the caller's error (422).
    msg: str = Field("", max_length=4096, description="Free text, kept in the buffer's log.")
    batch: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH,
        description="Flush only this sealed batch (idempotent: CLEANED again once archived). "
        "Without it the current batch is archived even if partial, as the original did.",
    )
    force: bool = Field(
        False, description="Kept for older callers: a flush without `batch` is always forced."
    )

    @field_validator("batch", mode="before")
    @classmethod
    def _whole_number(cls, value: object) -> object:
        # JSON Schema counts 3.0 as an integer, so the document promises it: read it as 3.
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class ErrorDetail(BaseModel):
    """What was wrong with the input."""

    field: str = Field(description="The field, `body`, `content-type` or a query parameter.")
    reason: str


class InvalidAnswer(BaseModel):
    """Input refused: 422 invalid, 413 too large, 415 wrong content type; the field is named."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"resp": "INVALID", "detail": {"field": "h", "reason": "is required"}}]
        }
    )

    resp: Literal["INVALID"]
    detail: ErrorDetail


class AuthAnswer(BaseModel):
    """No valid token (401, with ``WWW-Authenticate: Bearer``) or one of the wrong kind (403)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"resp": "UNAUTHORIZED", "detail": "a writer token is required"}]
        }
    )

    resp: Literal["UNAUTHORIZED", "FORBIDDEN"]
    detail: str | None = None


class UpstreamAnswer(BaseModel):
    """A service behind the API failed or did not answer; ``upstream`` names it.

    ``resp`` is ``UPSTREAM_UNREACHABLE``, ``UPSTREAM_ERROR`` or ``UPSTREAM_TIMEOUT`` from the
    API, or the word of the layer further down that failed, relayed as it is.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resp": "UPSTREAM_UNREACHABLE",
                    "upstream": "datastore_logic",
                    "detail": "connection refused",
                }
            ]
        }
    )

    resp: str
    upstream: str | None = None
    detail: Any = None


class ErrorAnswer(BaseModel):
    """Any refusal or failure; ``resp`` says which, ``upstream`` names a failing next hop."""

    resp: str = Field(examples=["INVALID", "UNAUTHORIZED", "UPSTREAM_UNREACHABLE"])
    detail: ErrorDetail | str | dict[str, Any] | None = None
    upstream: str | None = None


class StreamAnswer(BaseModel):
    """The result of a write; ``body`` is the store's own answer (file, bytes, counts, batch)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resp": "CREATED",
                    "body": {"resp": "CREATED", "file": "...", "bytes": 4123, "batch": 1},
                }
            ]
        }
    )

    resp: Literal["CREATED", "DUPLICATE"]
    body: dict[str, Any] | None = None


class ChunkResult(BaseModel):
    """One chunk of a multi-chunk write: the status and answer a request of its own would get."""

    status: int = Field(description="201 CREATED, 200 DUPLICATE, 409, 422, 503, ...")
    resp: str = Field(examples=["CREATED", "DUPLICATE", "INVALID", "CONFLICT", "FROZEN"])
    detail: Any = None
    retry_after: int | None = Field(None, description="Seconds to wait before sending it again.")
    body: dict[str, Any] | None = Field(None, description="The store's own answer.")


class MultiAnswer(BaseModel):
    """Several chunks written in one request: one result per chunk, in the order sent."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resp": "MULTI",
                    "chunks": 2,
                    "counts": {"CREATED": 1, "INVALID": 1},
                    "results": [
                        {"status": 201, "resp": "CREATED", "body": {"resp": "CREATED"}},
                        {
                            "status": 422,
                            "resp": "INVALID",
                            "detail": {"field": "h", "reason": "is required"},
                        },
                    ],
                }
            ]
        }
    )

    resp: Literal["MULTI"]
    chunks: int = Field(description="Chunks in the request.")
    counts: dict[str, int] = Field(description="How many results have each `resp` word.")
    results: list[ChunkResult]


class StreamRefusal(BaseModel):
    """A write refused: 409 ``CONFLICT`` (overlaps stored data), 503 ``FROZEN`` or ``BUSY``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"resp": "FROZEN", "body": {"resp": "FROZEN"}}]}
    )

    resp: Literal["CONFLICT", "FROZEN", "BUSY"]
    detail: Any = None
    body: dict[str, Any] | None = Field(None, description="The store's own answer.")


class FlushRefusal(BaseModel):
    """A flush refused: 409 ``NOT_FROZEN`` or ``CONFLICT``, 404 ``UNKNOWN_BATCH``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"resp": "UNKNOWN_BATCH", "body": {}}]}
    )

    resp: str = Field(examples=["NOT_FROZEN", "CONFLICT", "UNKNOWN_BATCH"])
    detail: Any = None
    body: dict[str, Any] | None = None


class TrainAnswer(BaseModel):
    """FROZEN with the batch's counts, or WAITING when the batch is not full yet."""

    resp: Literal["FROZEN", "WAITING"]
    n_f: int = Field(description="Files in the batch.")
    bt_wrt: int = Field(description="Bytes in the batch.")
    batch: int | None = Field(None, description="Batch id.")
    archive: str | None = Field(
        None,
        description="Archive folder the batch goes to on /cleanbuf (rotate mode: reserved "
        "when it was sealed; hold mode: known once it is flushed).",
    )
    sealed: int | None = Field(
        None, description="Rotate mode: sealed batches waiting, this one included."
    )
    max_size: int | None = Field(None, description="The freeze threshold (WAITING only).")


class CleanAnswer(BaseModel):
    """The flushed batch and where it was archived (``body.already_flushed`` on a repeat)."""

    resp: Literal["CLEANED"]
    batch: int | None = None
    archive: str | None = Field(
        None, description="Folder under the archive root, e.g. 000003-20261122T101500Z."
    )
    body: dict[str, Any] | None = None


class StatsAnswer(BaseModel):
    """Counters of the current batch."""

    n_itm: int = Field(description="Files stored.")
    buff_size: int = Field(description="Bytes stored.")
    batch: int | None = None
    dstatus: str | None = None


class DumpAnswer(BaseModel):
    """Stored file names, sorted by channel then GPS time."""

    nmlist: list[str]
    total: int | None = None
    offset: int | None = None
    limit: int | None = None


class DescAnswer(BaseModel):
    """The store's state."""

    resp: Literal["OPERATIONAL", "FROZEN"]
    batch: int | None = None
    batch_started: str | float | None = None
    frozen_at: str | float | None = None
    frozen_reason: str | None = None
    sealed: int | None = Field(
        None,
        description="Sealed batches waiting for /train and /cleanbuf (rotate mode); the batch "
        "being filled stays OPERATIONAL meanwhile.",
    )


class HealthAnswer(BaseModel):
    """Liveness or readiness."""

    resp: str = Field(examples=["OK", "READY", "NOT_READY"])
    detail: Any = None


class DataSegment(BaseModel):
    """Contiguous samples of a ``/data`` answer: sample ``i`` is at GPS ``t0 + i * dt``."""

    t0: float = Field(description="GPS time of the segment's first sample.")
    dt: float = Field(description="Sample spacing, seconds.")
    n: int = Field(description="Samples in the segment.")
    end: float = Field(description="GPS time just after the last sample.")
    h: list[float] | None = Field(
        description="The samples when the answer has several segments; null when there is one "
        "(they are the top-level `h`)."
    )


class DataAnswer(BaseModel):
    """Samples of one channel in ``[start, end)``; gaps listed, never filled.

    One contiguous segment: its samples are `h`, at ``t0 + i * dt``. Several: `h` is null and
    each segment carries its own `h`; `gaps` lists the holes (the range's head and tail too).
    """

    channel: str
    start: float = Field(description="Requested start (GPS).")
    end: float = Field(description="Requested end (GPS), exclusive.")
    t0: float = Field(description="GPS time of the first sample returned.")
    dt: float = Field(description="Sample spacing of the first segment, seconds.")
    sample_rate: float = Field(description="1 / dt, Hz.")
    n: int = Field(description="Samples returned, all segments together.")
    h: list[float] | None = Field(description="The samples when they form one segment, else null.")
    segments: list[DataSegment]
    gaps: list[tuple[float, float]] = Field(description="[from, to) GPS holes without samples.")


class ChannelSpan(BaseModel):
    """One stored channel: where it has samples, over the buffer's and the archived batches."""

    channel: str
    start: float = Field(description="GPS time of its first stored sample.")
    end: float = Field(description="GPS time just after its last stored sample.")
    dt: float
    sample_rate: float
    segments: list[tuple[float, float]] = Field(description="Contiguous [start, end) coverage.")
    gaps: list[tuple[float, float]]
    batches: list[int] = Field(description="Batch ids holding its samples.")


class ChannelsAnswer(BaseModel):
    """Every stored channel, sorted by name."""

    channels: list[ChannelSpan]


MAX_COUNT = 2**53 - 1
"""Largest count a results record takes: JSON's largest safe integer, exact in every client."""


class TopCandidate(BaseModel):
    """One glitch candidate of the trainer's report: the loudest tile of a window it flagged."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    channel: str = Field(min_length=1, max_length=200)
    gps: float = Field(ge=0, lt=MAX_GPS, description="GPS time of the window's loudest tile.")
    score: float | None = Field(None, description="Anomaly score (higher: more unusual).")
    peak_frequency: float | None = Field(None, ge=0, description="Hz.")


class ReportSummary(BaseModel):
    """What the trainer found: windows scored, windows flagged, the top candidates."""

    model_config = ConfigDict(extra="forbid")

    windows: int = Field(ge=0, le=MAX_COUNT, description="Windows scored.")
    flagged: int = Field(ge=0, le=MAX_COUNT, description="Windows the model flags as unusual.")
    channels: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=100
    )
    top: list[TopCandidate] = Field(
        default_factory=list, max_length=20, description="Top candidates, highest score first."
    )
    skipped_segments: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Segments too short to score."
    )
    trained_at: str | None = Field(None, max_length=64, description="UTC, ISO 8601.")


PathText = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class BatchResults(BaseModel):
    """What became of an archived batch: its dataset and what the trainer made of it.

    Recorded beside the batch's manifest (and in the bucket once the batch is uploaded); a
    repeat replaces it, so the DAG may retry the call.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "dag_run_id": "scheduled__2026-12-03T03:00:00+00:00",
                    "dataset": "/datasets/000003-20261203T030000Z/dataset.h5",
                    "dataset_bytes": 812345,
                    "files": 48,
                    "bytes": 520000,
                    "model": "/datasets/000003-20261203T030000Z/model/model.joblib",
                    "report": {
                        "windows": 14,
                        "flagged": 2,
                        "channels": ["H1:LOSC-STRAIN"],
                        "top": [{"channel": "H1:LOSC-STRAIN", "gps": 968654552.25, "score": 0.61}],
                    },
                }
            ]
        },
    )

    dag_run_id: str = Field(min_length=1, max_length=250, description="The Airflow run.")
    dataset: PathText | None = Field(None, description="The HDF5 dataset exported from the batch.")
    dataset_bytes: int | None = Field(None, ge=0, le=MAX_COUNT)
    files: int | None = Field(None, ge=0, le=MAX_COUNT, description="Chunk files in the batch.")
    bytes: int | None = Field(
        None, ge=0, le=MAX_COUNT, description="Bytes of chunk files in the batch."
    )
    model: PathText | None = Field(None, description="The trained model file.")
    report_path: PathText | None = Field(None, description="The trainer's full report.")
    report: ReportSummary | None = None


class ResultsAnswer(BaseModel):
    """The results as recorded, with the batch, its archive folder and when."""

    resp: Literal["RECORDED"]
    batch: int
    archive: str = Field(description="The batch's archive folder.")
    replaced: bool = Field(description="An earlier record of this batch was replaced.")
    bucket: str | None = Field(
        None, description="Where in the bucket they went too (batch already uploaded)."
    )
    results: dict[str, Any] = Field(
        description="`BatchResults` with `batch`, `archive` and `recorded_at` (UTC)."
    )


class ResultsRefusal(BaseModel):
    """404 ``UNKNOWN_BATCH`` (no such batch) or ``NOT_ARCHIVED`` (sealed or being filled)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "resp": "NOT_ARCHIVED",
                    "batch": 4,
                    "detail": "batch 4 is not archived yet (sealed, waiting for its flush)",
                }
            ]
        }
    )

    resp: str = Field(examples=["UNKNOWN_BATCH", "NOT_ARCHIVED"])
    batch: int | None = None
    detail: Any = None


class ArchivedManifest(BaseModel):
    """An archived batch's manifest (its `files` list included) and the results recorded."""

    batch: int | None = None
    archive: str | None = Field(None, description="Folder under the archive root.")
    created: str | None = None
    frozen_at: str | None = None
    flushed_at: str | None = None
    n_f: int | None = Field(None, description="Chunk files.")
    bt_wrt: int | None = Field(None, description="Bytes of chunk files.")
    channels: dict[str, Any] | None = None
    files: list[dict[str, Any]] | None = None
    results: dict[str, Any] | None = Field(
        None, description="As recorded by POST /batches/{batch}/results; null when none is."
    )
    upload: dict[str, Any] | None = Field(None, description="Where the batch is (bucket set).")
    error: str | None = Field(None, description="Set when its manifest could not be read.")


class BatchesAnswer(BaseModel):
    """Archived batches, newest first, one page; the sealed batches waiting, oldest first."""

    batches: list[ArchivedManifest]
    total: int = Field(description="Archived batches in all.")
    offset: int | None = None
    limit: int | None = None
    sealed: list[dict[str, Any]] = Field(default_factory=list)
    archive_store: dict[str, Any] | None = None
