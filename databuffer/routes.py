"""HTTP layer of the buffer: the endpoints of docs/CONTRACT.md, one map from errors to answers."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from databuffer.errors import (
    ArchiveFailed,
    Busy,
    Conflict,
    DiskFull,
    Frozen,
    NotFrozen,
    StorageError,
    UnknownBatch,
)
from databuffer.results import WriteResult
from databuffer.settings import Settings
from databuffer.storage import Storage
from glitchflow_core.auth import bearer_token, token_matches
from glitchflow_core.chunk import ChunkError, parse_chunk
from glitchflow_core.metrics import ServiceMetrics
from glitchflow_core.sizes import parse_size

logger = logging.getLogger("databuffer")

ADMIN_BODY_LIMIT = 64 * 1024
DUMP_DEFAULT_LIMIT = 1000
DUMP_MAX_LIMIT = 100_000
LOG_DEFAULT_LIMIT = 100
LOG_MAX_LIMIT = 10_000
BATCHES_DEFAULT_LIMIT = 10
BATCHES_MAX_LIMIT = 1000


class JSONResponse(Response):
    """A JSON answer rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class InvalidInput(Exception):
    """Bad input, answered ``{"resp": "INVALID", "detail": {"field", "reason"}}``."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.status = status


class Unauthorized(Exception):
    """A POST without the service token while one is configured."""


# --------------------------------------------------------------------------- the service


class BufferService:
    """What the handlers share: settings, the storage engine, metrics and the write gate."""

    def __init__(self, settings: Settings, storage: Storage, metrics: ServiceMetrics) -> None:
        self.settings = settings
        self.storage = storage
        self.metrics = metrics
        self.tokens = settings.tokens()
        self.inflight = 0
        # The engine's threads are separate from anyio's default pool so reads stay responsive.
        self.limiter = anyio.CapacityLimiter(settings.max_inflight)

    def check_token(self, request: Request) -> None:
        """Raise `Unauthorized` unless no token is configured or the bearer token matches."""
        if not self.tokens:
            return
        presented = bearer_token(request.headers.get("authorization"))
        if not token_matches(presented, self.tokens):
            raise Unauthorized

    def ingest(self, body: bytes, freeze_at: int | None, max_age: float | None) -> WriteResult:
        """Validate and store one chunk (runs in a worker thread)."""
        chunk = parse_chunk(body, self.settings.max_samples)
        return self.storage.write(chunk, freeze_at=freeze_at, max_age=max_age, body=body)


def service(request: Request) -> BufferService:
    return request.app.state.service


# --------------------------------------------------------------------------- input helpers


def require_json(request: Request) -> None:
    """Raise 415 unless the body is declared as JSON."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise InvalidInput("content-type", "must be application/json", 415)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise InvalidInput("content-length", "must be an integer", 400) from None
        if length > limit:
            raise InvalidInput("body", f"is {length} bytes, more than the limit of {limit}", 413)
    parts: list[bytes] = []
    received = 0
    async for part in request.stream():
        received += len(part)
        if received > limit:
            raise InvalidInput("body", f"is more than the limit of {limit} bytes", 413)
        parts.append(part)
    return b"".join(parts)


def query_int(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(name, "must be an integer") from None
    if not 0 <= value <= maximum:
        raise InvalidInput(name, f"must be between 0 and {maximum}")
    return value


def optional_size(value: object, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidInput(field, "must be a number of bytes")
    try:
        return parse_size(value)
    except ValueError as exc:
        raise InvalidInput(field, str(exc)) from None


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


async def json_object(request: Request, *, empty_ok: bool) -> dict[str, Any]:
    body = await read_body(request, ADMIN_BODY_LIMIT)
    if not body.strip():
        if empty_ok:
            return {}
        raise InvalidInput("body", "is required")
    require_json(request)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body", "must be a JSON object")
    return doc


# --------------------------------------------------------------------------- endpoints


async def send_f(request: Request) -> Response:
    """Store one chunk; freeze in the same step when the batch reaches ``freeze_at`` bytes."""
    svc = service(request)
    svc.check_token(request)
    require_json(request)
    freeze_at = optional_size(request.query_params.get("freeze_at"), "freeze_at")
    max_age = optional_seconds(request.query_params.get("max_age"), "max_age")
    if svc.inflight >= svc.settings.max_inflight:
        raise Busy("too many writes in flight")
    svc.inflight += 1
    try:
        body = await read_body(request, svc.settings.max_body)
        result = await anyio.to_thread.run_sync(
            svc.ingest, body, freeze_at, max_age, limiter=svc.limiter
        )
    finally:
        svc.inflight -= 1
    metrics = svc.metrics
    if result.resp == "CREATED":
        metrics.ingested_bytes.inc(result.size)
        metrics.ingested_chunks.inc()
        if result.frozen:
            metrics.freezes.inc()
            logger.info("batch frozen by a write", extra={"batch": result.batch})
        if freeze_at:
            metrics.fill_ratio.set(result.stat.stored_bytes / freeze_at)
        return JSONResponse(result.as_json(), status_code=201)
    metrics.duplicates.inc()
    return JSONResponse(result.as_json(), status_code=200)


# Handlers that take the storage lock run it in a worker thread: a flush holds the lock while it
# moves a whole batch, and the event loop must keep answering /healthz meanwhile.


async def stat(request: Request) -> Response:
    """Counters of the current batch: files, bytes, batch number, state."""
    st = await anyio.to_thread.run_sync(service(request).storage.stat)
    return JSONResponse(st.as_json())


async def dstat(request: Request) -> Response:
    """State of the buffer: OPERATIONAL or FROZEN, who froze it, when and why."""
    return JSONResponse(service(request).storage.state.as_json())


async def dump_f(request: Request) -> Response:
    """One page of the current batch's file names, sorted by channel then GPS time."""
    limit = query_int(request, "limit", DUMP_DEFAULT_LIMIT, DUMP_MAX_LIMIT)
    offset = query_int(request, "offset", 0, 2**62)
    names, total = await anyio.to_thread.run_sync(service(request).storage.names, limit, offset)
    return JSONResponse({"nmlist": names, "total": total, "offset": offset, "limit": limit})


async def dump_log_f(request: Request) -> Response:
    """One page of the event log, oldest first."""
    limit = query_int(request, "limit", LOG_DEFAULT_LIMIT, LOG_MAX_LIMIT)
    offset = query_int(request, "offset", 0, 2**62)
    events, total = await anyio.to_thread.run_sync(service(request).storage.log.read, limit, offset)
    return JSONResponse({"log": events, "total": total, "offset": offset, "limit": limit})


async def channels(request: Request) -> Response:
    """Per-channel coverage of the current batch: files, bytes, GPS span, segments, gaps."""
    coverage = await anyio.to_thread.run_sync(service(request).storage.channels)
    return JSONResponse({"channels": coverage})


async def batches(request: Request) -> Response:
    """Manifests of the archived batches, newest first."""
    limit = query_int(request, "limit", BATCHES_DEFAULT_LIMIT, BATCHES_MAX_LIMIT)
    offset = query_int(request, "offset", 0, 2**62)
    manifests, total = await anyio.to_thread.run_sync(
        service(request).storage.batches, limit, offset
    )
    return JSONResponse({"batches": manifests, "total": total, "offset": offset, "limit": limit})


async def upd_dsc(request: Request) -> Response:
    """Freeze the buffer, optionally only when it holds enough bytes or is old enough."""
    svc = service(request)
    svc.check_token(request)
    doc = await json_object(request, empty_ok=False)
    if doc.get("dstatus") != "FROZEN":
        raise InvalidInput("dstatus", "must be FROZEN (a flush unfreezes)")
    user = doc.get("user")
    if not isinstance(user, str) or not user.strip() or len(user) > 256:
        raise InvalidInput("user", "must be a non-empty string of at most 256 characters")
    min_size = optional_size(doc.get("if_size_at_least"), "if_size_at_least")
    max_age = optional_seconds(doc.get("max_age"), "max_age")
    result = await anyio.to_thread.run_sync(svc.storage.freeze_if, user, min_size, max_age)
    if result.froze_now:
        svc.metrics.freezes.inc()
        logger.info("batch frozen on request", extra={"batch": result.stat.batch, "user": user})
    st = result.stat
    return JSONResponse(
        {
            "resp": "FROZEN" if result.frozen else "WAITING",
            "n_itm": st.stored_files,
            "buff_size": st.stored_bytes,
            "batch": st.batch,
        }
    )


async def clean_all(request: Request) -> Response:
    """Archive the frozen (or, forced, the current) batch, or the one named; reopen the buffer."""
    svc = service(request)
    svc.check_token(request)
    doc = await json_object(request, empty_ok=True)
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
    return JSONResponse(result.as_json())


async def healthz(request: Request) -> Response:
    """Alive."""
    return JSONResponse({"resp": "OK"})


async def readyz(request: Request) -> Response:
    """Ready when every storage folder is writable."""
    try:
        await anyio.to_thread.run_sync(service(request).storage.check_writable)
    except OSError as exc:
        return JSONResponse(
            {"resp": "NOT_READY", "detail": f"storage not writable: {exc.strerror or exc}"},
            status_code=503,
        )
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
    Route("/upddsc", upd_dsc, methods=["POST"]),
    Route("/cleanall", clean_all, methods=["POST"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
KNOWN_PATHS = frozenset(route.path for route in ROUTES)


# --------------------------------------------------------------------------- errors -> answers


def _refused(request: Request, reason: str) -> None:
    service(request).metrics.refusals.labels(reason).inc()


async def on_invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidInput)
    reason = {413: "too_large", 415: "unsupported_media_type"}.get(exc.status, "invalid")
    _refused(request, reason)
    return JSONResponse(
        {"resp": "INVALID", "detail": {"field": exc.field, "reason": exc.reason}},
        status_code=exc.status,
    )


async def on_chunk_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChunkError)
    _refused(request, "invalid")
    return JSONResponse({"resp": "INVALID", "detail": exc.as_dict()}, status_code=422)


async def on_unauthorized(request: Request, exc: Exception) -> Response:
    _refused(request, "unauthorized")
    return JSONResponse(
        {"resp": "UNAUTHORIZED", "detail": "a valid bearer token is required"},
        status_code=401,
        headers={"www-authenticate": "Bearer"},
    )


async def on_storage_error(request: Request, exc: Exception) -> Response:
    """The single map from storage exceptions to status codes."""
    assert isinstance(exc, StorageError)
    retry = {"retry-after": str(service(request).settings.retry_after)}
    _refused(request, exc.reason.lower())
    if isinstance(exc, Frozen):
        return JSONResponse({"resp": "FROZEN", "batch": exc.batch}, status_code=503, headers=retry)
    if isinstance(exc, Busy):
        return JSONResponse({"resp": "BUSY"}, status_code=503, headers=retry)
    if isinstance(exc, Conflict):
        return JSONResponse({"resp": "CONFLICT", "detail": exc.detail}, status_code=409)
    if isinstance(exc, NotFrozen):
        return JSONResponse({"resp": "NOT_FROZEN"}, status_code=409)
    if isinstance(exc, UnknownBatch):
        return JSONResponse(
            {"resp": "UNKNOWN_BATCH", "batch": exc.batch, "detail": exc.detail}, status_code=404
        )
    if isinstance(exc, ArchiveFailed):
        logger.error("flush failed", extra={"detail": exc.detail})
        return JSONResponse(
            {"resp": "ARCHIVE_FAILED", "detail": exc.detail},
            status_code=507 if exc.disk_full else 500,
        )
    if isinstance(exc, DiskFull):
        logger.error("disk full", extra={"detail": str(exc)})
        return JSONResponse({"resp": "DISK_FULL"}, status_code=507)
    return JSONResponse({"resp": "STORAGE_ERROR", "detail": str(exc)}, status_code=500)


async def on_os_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OSError)
    logger.error("storage I/O failed", extra={"detail": str(exc)})
    _refused(request, "io_error")
    return JSONResponse(
        {"resp": "STORAGE_ERROR", "detail": exc.strerror or "I/O error"}, status_code=500
    )


EXCEPTION_HANDLERS: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
    InvalidInput: on_invalid,
    ChunkError: on_chunk_error,
    Unauthorized: on_unauthorized,
    StorageError: on_storage_error,
    OSError: on_os_error,
}


# --------------------------------------------------------------------------- request metrics


def route_label(scope: Scope) -> str:
    """The metrics label of a request: its path when it is one of ours, else ``other``."""
    path = scope["path"]
    return path if path in KNOWN_PATHS else "other"
