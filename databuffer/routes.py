"""HTTP layer of the buffer: the endpoints of docs/CONTRACT.md, one map from errors to answers."""

from __future__ import annotations

import functools
import logging
from typing import Any

import anyio
import anyio.to_thread
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from databuffer.errors import (
    ArchiveFailed,
    ArchiveStoreUnavailable,
    Busy,
    Conflict,
    DiskFull,
    Frozen,
    NotArchived,
    NotFrozen,
    StorageError,
    UnknownBatch,
)
from databuffer.readback import ReadBack
from databuffer.results import WriteResult
from databuffer.sealed import DEFAULT_MAX_SEALED, HOLD, ROTATE
from databuffer.settings import Settings
from databuffer.storage import Storage
from databuffer.upload import Uploader
from glitchflow_archive import ArchiveError, ArchiveStore, open_archive
from glitchflow_core.access import Access
from glitchflow_core.chunk import Chunk, ChunkError, chunk_bodies, is_chunk_list
from glitchflow_core.edge import (
    ADMIN_BODY_LIMIT,
    BINARY_MEDIA,
    MAX_OFFSET,
    EdgeError,
    InvalidInput,
    Refused,
    bounded_int,
    chunk_media,
    install_starlette,
    read_body_async,
    request_object,
    require_media,
)
from glitchflow_core.metrics import ServiceMetrics
from glitchflow_core.sizes import parse_size

logger = logging.getLogger("databuffer")

DUMP_DEFAULT_LIMIT = 1000
DUMP_MAX_LIMIT = 100_000
LOG_DEFAULT_LIMIT = 100
LOG_MAX_LIMIT = 10_000
BATCHES_DEFAULT_LIMIT = 10
BATCHES_MAX_LIMIT = 1000
STATUS_DEFAULT_LIMIT = 50
STATUS_MAX_LIMIT = 1000
"""Most stored chunks listed by one ``/status`` answer."""
MAX_SEALED_LIMIT = 1000


class JSONResponse(Response):
    """A JSON answer rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# --------------------------------------------------------------------------- the service


class BufferService:
    """What the handlers share: settings, the storage engine, metrics and the write gate."""

    def __init__(
        self,
        settings: Settings,
        storage: Storage,
        metrics: ServiceMetrics,
        uploader: Uploader | None = None,
        archive: ArchiveStore | None = None,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.metrics = metrics
        self.uploader = uploader
        self.tokens = settings.service_tokens()
        self.inflight = 0
        self.readback = ReadBack(
            storage.spans_in_buffer,
            storage.channel_spans_in_buffer,
            archive if archive is not None else archive_store(settings),
            settings.max_read_seconds,
        )
        # The engine's threads are separate from anyio's default pool so reads stay responsive.
        self.limiter = anyio.CapacityLimiter(settings.max_inflight)

    def ingest(
        self,
        body: bytes,
        freeze_at: int | None,
        max_age: float | None,
        max_sealed: int | None,
        binary: dict[str, str | None] | None = None,
    ) -> WriteResult:
        """Validate and store one chunk (runs in a worker thread).

        ``binary``: the body is float64 samples and these are its ``channel``, ``t0``, ``dt``;
        its canonical JSON form is stored, as a JSON chunk's would be.
        """
        if binary is None:
            chunk = self.settings.parse_chunk(body)
            stored: bytes | None = body
        else:
            chunk = self.settings.parse_binary_chunk(body, **binary)
            stored = None
        return self.storage.write(
            chunk, freeze_at=freeze_at, max_age=max_age, body=stored, max_sealed=max_sealed
        )

    def record_results(self, batch: int, results: dict[str, Any]) -> dict[str, Any]:
        """Record ``results`` for archived ``batch`` (runs in a worker thread): locally, and in
        the bucket when the batch is already uploaded there; the answer."""
        folder, record, replaced = self.storage.record_results(batch, results)
        bucket = None
        if self.uploader is not None:
            bucket = self.uploader.put_results(folder, orjson.dumps(record))
        return {
            "resp": "RECORDED",
            "batch": batch,
            "archive": folder,
            "replaced": replaced,
            "bucket": bucket,
            "results": record,
        }

    def ingest_many(
        self,
        body: bytes,
        media: str,
        freeze_at: int | None,
        max_age: float | None,
        max_sealed: int | None,
    ) -> list[dict[str, Any]]:
        """Validate and store each chunk of a JSON array or NDJSON body; one answer each, in
        order (runs in a worker thread). Raises `ChunkError` when the body as a whole is bad."""
        answers: list[dict[str, Any] | None] = []
        valid: list[tuple[Chunk, bytes | None]] = []
        for part in chunk_bodies(body, media, self.settings.max_chunks):
            if isinstance(part, ChunkError):
                answers.append(chunk_answer(part))
                continue
            try:
                valid.append((self.settings.parse_chunk(part), part))
            except ChunkError as exc:
                answers.append(chunk_answer(exc))
                continue
            answers.append(None)
        outcomes = iter(self.storage.write_many(valid, freeze_at, max_age, max_sealed=max_sealed))
        retry_after = self.settings.retry_after

        def stored(outcome: WriteResult | StorageError) -> dict[str, Any]:
            if isinstance(outcome, StorageError):
                return chunk_answer(storage_answer(outcome, retry_after))
            return chunk_answer(outcome)

        return [answer or stored(next(outcomes)) for answer in answers]


def archive_store(settings: Settings) -> ArchiveStore:
    """The archived batches, read through the archive package's interface: the local folder, and
    the bucket when one is set (a batch whose local chunks went after its upload is read there)."""
    return open_archive(settings.archive_root, settings)


def service(request: Request) -> BufferService:
    return request.app.state.service


# --------------------------------------------------------------------------- input helpers


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes, and with 408
    when it has not arrived within the body timeout."""
    timeout = service(request).settings.body_timeout
    return await read_body_async(request.headers, request.stream(), limit, timeout)


def query_int(request: Request, name: str, default: int, maximum: int) -> int:
    """The integer query parameter ``name`` from 0 to ``maximum``, ``default`` when absent."""
    value = bounded_int(request.query_params.get(name), name, 0, maximum, default)
    assert value is not None
    return value


def query_gps(request: Request, name: str) -> float:
    """The required GPS-time query parameter ``name`` as a float (its range checked later)."""
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        raise InvalidInput(name, "is required (a GPS time)")
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(name, "must be a GPS time (a number of seconds)") from None


def optional_size(value: object, field: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_size(value)  # type: ignore[arg-type]
    except ValueError:
        raise InvalidInput(field, "must be a number of bytes") from None


def optional_seconds(value: object, field: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise InvalidInput(field, "must be a number of seconds")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise InvalidInput(field, "must be a positive, finite number of seconds")
    return seconds


def freeze_mode(mode: object, max_sealed: object) -> int | None:
    """How a full batch closes, from the policy a request carries (`Storage.write`).

    ``mode`` ``hold`` (or absent: the original's behaviour) gives None, the batch freezes;
    ``rotate`` gives how many sealed batches may wait, ``max_sealed`` (default 4).
    """
    if mode in (None, "", HOLD):
        return None
    if mode != ROTATE:
        raise InvalidInput("mode", "must be hold or rotate")
    if max_sealed is None or max_sealed == "":
        return DEFAULT_MAX_SEALED
    if isinstance(max_sealed, str):
        return bounded_int(max_sealed, "max_sealed", 1, MAX_SEALED_LIMIT)
    if isinstance(max_sealed, bool) or not isinstance(max_sealed, int):
        raise InvalidInput("max_sealed", f"must be an integer from 1 to {MAX_SEALED_LIMIT}")
    return bounded_int(str(max_sealed), "max_sealed", 1, MAX_SEALED_LIMIT)


async def admin_json(request: Request, *, empty_ok: bool) -> dict[str, Any]:
    """The JSON object of an admin body (capped at `ADMIN_BODY_LIMIT`)."""
    body = await read_body(request, ADMIN_BODY_LIMIT)
    if body.strip():
        require_media(request.headers.get("content-type"))
    return request_object(body, empty_ok=empty_ok)


# --------------------------------------------------------------------------- endpoints


async def send_f(request: Request) -> Response:
    """Store one chunk (JSON, or binary with ``channel``, ``t0``, ``dt``) or several (a JSON
    array or NDJSON: 207 MULTI, one answer each); freeze (``mode=hold``) or seal
    (``mode=rotate``) the batch in the same step when it reaches ``freeze_at`` bytes."""
    svc = service(request)
    media = chunk_media(request.headers.get("content-type"))
    query = request.query_params
    freeze_at = optional_size(query.get("freeze_at"), "freeze_at")
    max_age = optional_seconds(query.get("max_age"), "max_age")
    max_sealed = freeze_mode(query.get("mode"), query.get("max_sealed"))
    binary = None
    if media == BINARY_MEDIA:
        binary = {name: query.get(name) for name in ("channel", "t0", "dt")}
    if svc.inflight >= svc.settings.max_inflight:
        raise Busy("too many writes in flight")
    svc.inflight += 1
    try:
        body = await read_body(request, svc.settings.max_body)
        if binary is None and is_chunk_list(body, media):
            answers = await anyio.to_thread.run_sync(
                svc.ingest_many, body, media, freeze_at, max_age, max_sealed, limiter=svc.limiter
            )
            for answer in answers:
                count_write(svc.metrics, answer, freeze_at)
            return JSONResponse(multi_answer(answers), status_code=207)
        result = await anyio.to_thread.run_sync(
            svc.ingest, body, freeze_at, max_age, max_sealed, binary, limiter=svc.limiter
        )
    finally:
        svc.inflight -= 1
    answer = chunk_answer(result)
    count_write(svc.metrics, answer, freeze_at)
    return JSONResponse(result.as_json(), status_code=answer["status"])


def chunk_answer(outcome: WriteResult | EdgeError) -> dict[str, Any]:
    """One chunk's answer in a multi-chunk write: its ``status`` and what a single write of it
    would have answered (``retry_after`` for a refusal that has one)."""
    if isinstance(outcome, WriteResult):
        return {"status": 201 if outcome.resp == "CREATED" else 200, **outcome.as_json()}
    answer = {"status": outcome.status, **outcome.body()}
    if outcome.retry_after is not None:
        answer["retry_after"] = int(outcome.retry_after)
    return answer


def multi_answer(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"resp": "MULTI", "results": [...]}`` with the count of each ``resp`` word."""
    counts: dict[str, int] = {}
    for answer in answers:
        counts[answer["resp"]] = counts.get(answer["resp"], 0) + 1
    return {"resp": "MULTI", "chunks": len(answers), "counts": counts, "results": answers}


def count_write(metrics: ServiceMetrics, answer: dict[str, Any], freeze_at: int | None) -> None:
    """Count one chunk's outcome: ingested, duplicate, or refused by reason."""
    status = answer["status"]
    if status == 201:
        metrics.ingested_bytes.inc(answer["bytes"])
        metrics.ingested_chunks.inc()
        if answer["frozen"]:
            metrics.freezes.inc()
            what = "batch sealed by a write" if answer["sealed"] else "batch frozen by a write"
            logger.info(what, extra={"batch": answer["batch"]})
        if freeze_at:
            metrics.fill_ratio.set(answer["buff_size"] / freeze_at)
    elif status == 200:
        metrics.duplicates.inc()
    else:
        metrics.refusals.labels(str(answer["resp"]).lower()).inc()


async def data(request: Request) -> Response:
    """Samples of one channel in ``[start, end)`` from every batch, live and archived (JSON)."""
    svc = service(request)
    channel = request.query_params.get("channel")
    if not channel:
        raise InvalidInput("channel", "is required")
    start, end = query_gps(request, "start"), query_gps(request, "end")

    def read() -> bytes:
        return svc.readback.read(channel, start, end).as_json()

    try:
        body = await anyio.to_thread.run_sync(read)
    except ArchiveError as exc:
        logger.error("archive read failed", extra={"detail": str(exc)})
        raise Refused(500, "ARCHIVE_UNREADABLE", str(exc)) from exc
    return Response(body, media_type="application/json")


async def spans(request: Request) -> Response:
    """Every channel of every batch, live and archived: GPS span, segments, sample rate."""
    listed = await anyio.to_thread.run_sync(service(request).readback.channels)
    return JSONResponse({"channels": listed})


# Handlers that take the storage lock run it in a worker thread: a flush holds the lock while it
# moves a whole batch, and the event loop must keep answering /healthz meanwhile.


async def stat(request: Request) -> Response:
    """Counters of the current batch: files, bytes, batch number, state."""
    st = await anyio.to_thread.run_sync(service(request).storage.stat)
    return JSONResponse(st.as_json())


async def dstat(request: Request) -> Response:
    """State of the buffer: OPERATIONAL or FROZEN, who froze it, when and why; the sealed
    batches waiting and the ingest pause per batch."""
    return JSONResponse(await anyio.to_thread.run_sync(service(request).storage.describe))


async def dump_f(request: Request) -> Response:
    """One page of the current batch's file names, sorted by channel then GPS time."""
    limit = query_int(request, "limit", DUMP_DEFAULT_LIMIT, DUMP_MAX_LIMIT)
    offset = query_int(request, "offset", 0, MAX_OFFSET)
    names, total = await anyio.to_thread.run_sync(service(request).storage.names, limit, offset)
    return JSONResponse({"nmlist": names, "total": total, "offset": offset, "limit": limit})


async def dump_log_f(request: Request) -> Response:
    """One page of the event log, oldest first."""
    limit = query_int(request, "limit", LOG_DEFAULT_LIMIT, LOG_MAX_LIMIT)
    offset = query_int(request, "offset", 0, MAX_OFFSET)
    events, total = await anyio.to_thread.run_sync(service(request).storage.log.read, limit, offset)
    return JSONResponse({"log": events, "total": total, "offset": offset, "limit": limit})


async def channels(request: Request) -> Response:
    """Per-channel coverage of the current batch: files, bytes, GPS span, segments, gaps."""
    coverage = await anyio.to_thread.run_sync(service(request).storage.channels)
    return JSONResponse({"channels": coverage})


async def status(request: Request) -> Response:
    """What the status page shows: counters, state, the sealed queue and ingest pause, channels,
    rate, archives (with their upload states) and the object store, a page of chunks."""
    limit = query_int(request, "limit", STATUS_DEFAULT_LIMIT, STATUS_MAX_LIMIT)
    offset = query_int(request, "offset", 0, MAX_OFFSET)
    svc = service(request)
    doc = await anyio.to_thread.run_sync(svc.storage.overview, limit, offset)
    doc["archive_store"] = None
    if svc.uploader is not None:
        doc["archive_store"] = svc.uploader.status()
        doc["archives"]["items"] = await anyio.to_thread.run_sync(
            with_upload_states, svc.uploader, doc["archives"]["items"]
        )
    return JSONResponse(doc)


def with_upload_states(uploader: Uploader, summaries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Archive summaries (cached: copied, never changed) with their ``upload`` state."""
    return [
        {**summary, "upload": uploader.batch_state(summary["archive"])}
        if isinstance(summary.get("archive"), str)
        else summary
        for summary in summaries
    ]


async def batches(request: Request) -> Response:
    """Manifests of the archived batches, newest first, and the sealed batches waiting."""
    limit = query_int(request, "limit", BATCHES_DEFAULT_LIMIT, BATCHES_MAX_LIMIT)
    offset = query_int(request, "offset", 0, MAX_OFFSET)
    svc = service(request)
    manifests, total = await anyio.to_thread.run_sync(svc.storage.batches, limit, offset)
    sealed = await anyio.to_thread.run_sync(svc.storage.sealed_batches)
    answer = {
        "batches": manifests,
        "total": total,
        "offset": offset,
        "limit": limit,
        "sealed": [batch.summary() for batch in sealed],
    }
    if svc.uploader is not None:
        uploader = svc.uploader
        for manifest in manifests:
            if isinstance(manifest.get("archive"), str):
                manifest["upload"] = uploader.batch_state(manifest["archive"])
        answer["archive_store"] = uploader.status()
    return JSONResponse(answer)


async def upd_dsc(request: Request) -> Response:
    """Freeze the buffer, optionally only when it holds enough bytes or is old enough."""
    svc = service(request)
    doc = await admin_json(request, empty_ok=False)
    if doc.get("dstatus") != "FROZEN":
        raise InvalidInput("dstatus", "must be FROZEN (a flush unfreezes)")
    user = doc.get("user")
    if not isinstance(user, str) or not user.strip() or len(user) > 256:
        raise InvalidInput("user", "must be a non-empty string of at most 256 characters")
    min_size = optional_size(doc.get("if_size_at_least"), "if_size_at_least")
    max_age = optional_seconds(doc.get("max_age"), "max_age")
    max_sealed = freeze_mode(doc.get("mode"), doc.get("max_sealed"))
    freeze = functools.partial(svc.storage.freeze_if, user, min_size, max_age, max_sealed)
    result = await anyio.to_thread.run_sync(freeze)
    if result.froze_now:
        svc.metrics.freezes.inc()
        logger.info("batch closed on request", extra={"batch": result.stat.batch, "user": user})
    st = result.stat
    answer: dict[str, Any] = {
        "resp": "FROZEN" if result.frozen else "WAITING",
        "n_itm": st.stored_files,
        "buff_size": st.stored_bytes,
        "batch": st.batch,
    }
    if result.archive is not None:
        answer["archive"] = result.archive
    if max_sealed is not None or result.sealed:
        answer["sealed"] = result.sealed
    return JSONResponse(answer)


async def clean_all(request: Request) -> Response:
    """Archive the frozen (or, forced, the current) batch, or the one named; reopen the buffer."""
    svc = service(request)
    doc = await admin_json(request, empty_ok=True)
    msg = doc.get("msg")
    if msg is not None and (not isinstance(msg, str) or len(msg) > 4096):
        raise InvalidInput("msg", "must be a string of at most 4096 characters")
    force = doc.get("force", False)
    if not isinstance(force, bool):
        raise InvalidInput("force", "must be true or false")
    batch = doc.get("batch")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise InvalidInput("batch", "must be a batch number (an integer from 1) or null")
    flush = functools.partial(svc.storage.flush, msg, batch=batch, force=force)
    result = await anyio.to_thread.run_sync(flush)
    if not result.already_flushed:
        svc.metrics.flushes.inc()
        svc.metrics.fill_ratio.set(0)
        logger.info("batch flushed", extra={"batch": result.batch, "archive": result.archive})
    answer = result.as_json()
    if svc.uploader is not None and result.archive is not None:
        # The upload runs in the background: the answer says where the batch is now.
        svc.uploader.submit(result.archive)
        answer["upload"] = svc.uploader.batch_state(result.archive)
    return JSONResponse(answer)


async def batch_results(request: Request) -> Response:
    """Record what became of an archived batch (dataset, counts, model, report summary) beside
    its manifest; a repeat replaces the record."""
    svc = service(request)
    doc = await admin_json(request, empty_ok=False)
    batch = request.path_params["batch"]
    answer = await anyio.to_thread.run_sync(svc.record_results, batch, doc)
    logger.info("batch results recorded", extra={"batch": batch, "archive": answer["archive"]})
    return JSONResponse(answer)


async def healthz(request: Request) -> Response:
    """Alive."""
    return JSONResponse({"resp": "OK"})


async def readyz(request: Request) -> Response:
    """Ready when every storage folder is writable and the data volume can take a chunk."""
    svc = service(request)
    no_room = await anyio.to_thread.run_sync(svc.storage.space_problem, svc.settings.max_body)
    if no_room is not None:
        raise Refused(503, "NOT_READY", f"disk full: {no_room}")
    try:
        await anyio.to_thread.run_sync(svc.storage.check_writable)
    except OSError as exc:
        detail = f"storage not writable: {exc.strerror or exc}"
        raise Refused(503, "NOT_READY", detail) from exc
    uploader = service(request).uploader
    if uploader is not None:
        # The uploader's own view (its last request, or its idle probe): no I/O here, so a
        # store that hangs never makes the probe itself time out.
        store = uploader.status()
        if not store["reachable"]:
            # Ingest and flushes go on (archives wait in the local folder): degraded, not down.
            reason = f"archive store unreachable: {store['error']}"
            return JSONResponse({"resp": "DEGRADED", "reason": reason, "archive_store": store})
        return JSONResponse({"resp": "READY", "archive_store": store})
    return JSONResponse({"resp": "READY"})


async def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    body, content_type = service(request).metrics.render()
    return Response(body, headers={"content-type": content_type})


ROUTES = [
    Route("/sendF", send_f, methods=["POST"]),
    Route("/stat", stat, methods=["GET"]),
    Route("/dstat", dstat, methods=["GET"]),
    Route("/dumpF", dump_f, methods=["GET"]),
    Route("/dumpLogF", dump_log_f, methods=["GET"]),
    Route("/channels", channels, methods=["GET"]),
    Route("/batches", batches, methods=["GET"]),
    Route("/status", status, methods=["GET"]),
    Route("/data", data, methods=["GET"]),
    Route("/spans", spans, methods=["GET"]),
    Route("/upddsc", upd_dsc, methods=["POST"]),
    Route("/cleanall", clean_all, methods=["POST"]),
    Route("/batches/{batch:int}/results", batch_results, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
KNOWN_PATHS = frozenset(route.path for route in ROUTES)
ACCESS: dict[str, Access] = {
    "/sendF": Access.WRITE,
    "/upddsc": Access.ADMIN,
    "/cleanall": Access.ADMIN,
    "/dumpF": Access.READ,
    "/dumpLogF": Access.READ,
    "/channels": Access.READ,
    "/batches": Access.READ,
    "/batches/{batch:int}/results": Access.ADMIN,
    "/data": Access.READ,
    "/spans": Access.READ,
    "/stat": Access.STATUS,
    "/dstat": Access.STATUS,
    "/status": Access.STATUS,
    "/readyz": Access.STATUS,
    "/metrics": Access.STATUS,
    "/healthz": Access.OPEN,
}
"""Who may call each route (`glitchflow_core.access`): with a service token set, writes and
admin calls need it; listings, logs and samples need it or a reader token."""


# --------------------------------------------------------------------------- errors -> answers

STORAGE_ANSWERS: dict[type[StorageError], tuple[int, bool]] = {
    Frozen: (503, True),
    Busy: (503, True),
    Conflict: (409, False),
    NotFrozen: (409, False),
    UnknownBatch: (404, False),
    NotArchived: (404, False),
    ArchiveStoreUnavailable: (503, True),
    ArchiveFailed: (500, False),
    DiskFull: (507, False),
    StorageError: (500, False),
}
"""The one map from storage errors to answers: status, and whether ``Retry-After`` is sent."""


def storage_answer(exc: StorageError, retry_after: int) -> Refused:
    """The edge error answering ``exc`` (the first entry of its class's MRO in the table)."""
    kind = next(k for k in type(exc).__mro__ if k in STORAGE_ANSWERS)
    status, retry = STORAGE_ANSWERS[kind]  # type: ignore[index]
    fields: dict[str, Any] = {}
    detail = getattr(exc, "detail", None)
    batch = getattr(exc, "batch", None)  # Frozen: the closed batch; a missing batch
    if batch is not None:
        fields["batch"] = batch
    if isinstance(exc, ArchiveFailed) and exc.disk_full:
        status = 507
    if status >= 500 and not retry:
        logger.error("storage failed", extra={"resp": exc.reason, "detail": str(exc)})
        detail = detail or (str(exc) if kind is StorageError else None)
    return Refused(status, exc.reason, detail, retry_after=retry_after if retry else None, **fields)


def io_answer(exc: OSError) -> Refused:
    """An unexpected I/O failure of the storage: 500 ``STORAGE_ERROR``, logged."""
    logger.error("storage I/O failed", extra={"detail": str(exc)})
    return Refused(500, "STORAGE_ERROR", exc.strerror or "I/O error")


def install_errors(app: Starlette, settings: Settings, metrics: ServiceMetrics) -> None:
    """Answer edge errors, storage errors and I/O errors through the core's Starlette adapter."""

    def on_storage(exc: Exception) -> Refused:
        assert isinstance(exc, StorageError)
        return storage_answer(exc, settings.retry_after)

    def on_io(exc: Exception) -> Refused:
        assert isinstance(exc, OSError)
        return io_answer(exc)

    install_starlette(app, metrics, [(StorageError, on_storage), (OSError, on_io)])


# --------------------------------------------------------------------------- request metrics


def route_label(scope: Scope) -> str:
    """The metrics label of a request: its path when it is one of ours, else ``other``."""
    path = scope["path"]
    if path in KNOWN_PATHS:
        return path
    route = next((r for r in ROUTES if r.path_regex.match(path)), None)
    return route.path if route is not None else "other"
