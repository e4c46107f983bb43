"""The request edge every service shares: errors that carry their answer, and input helpers.

Handlers raise an `EdgeError`; one adapter per framework (`install_starlette`, `install_fastapi`,
`install_flask`) turns it into the JSON answer, so the same bad request gets the same status and
the same body from every service. Nothing here builds an app or reads settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from flask import Flask
    from starlette.applications import Starlette
    from starlette.types import Receive, Scope, Send

    from glitchflow_core.metrics import ServiceMetrics

JSON_MEDIA = "application/json"
BINARY_MEDIA = "application/octet-stream"
"""Media type of a binary chunk: little-endian float64 samples; channel, t0, dt in the query."""
NDJSON_MEDIA = "application/x-ndjson"
"""Media type of several chunks, one JSON chunk a line."""
CHUNK_MEDIA = (JSON_MEDIA, BINARY_MEDIA, NDJSON_MEDIA)
"""What ``/streamdata`` and its hops take."""
ACCEPT_POST = ", ".join(CHUNK_MEDIA)
"""``Accept-Post`` of ``/streamdata``: a client learns from it that binary and NDJSON go."""
ADMIN_BODY_LIMIT = 64 * 1024
"""Largest admin body (``/train``, ``/cleanbuf`` and their hops): a user and a message fit."""
LINGER_BYTES = 4 * 1024 * 1024
LINGER_SECONDS = 2.0
"""How much more of a refused body an ASGI service reads and drops before it closes."""
MAX_OFFSET = 2**62
"""Largest ``offset`` of a paged listing."""
REQUEST_PARTS = ("body", "query", "path", "header", "cookie")
log = logging.getLogger("glitchflow.edge")


class EdgeError(Exception):
    """Base of the errors a handler raises: ``status``, ``resp`` word, optional ``Retry-After``."""

    status = 500
    resp = "ERROR"

    def __init__(self, detail: Any = None, *, retry_after: int | str | None = None) -> None:
        super().__init__(detail if isinstance(detail, str) else self.resp)
        self.detail = detail
        self.retry_after = retry_after

    @property
    def refusal(self) -> str:
        """The ``reason`` label counted in ``glitchflow_refusals``."""
        return self.resp.lower()

    def body(self) -> dict[str, Any]:
        """The JSON answer."""
        doc: dict[str, Any] = {"resp": self.resp}
        if self.detail is not None:
            doc["detail"] = self.detail
        return doc

    def headers(self) -> dict[str, str]:
        """Headers of the answer."""
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class InvalidInput(EdgeError, ValueError):
    """Raised when input is refused: ``{"resp": "INVALID", "detail": {"field", "reason"}}``."""

    status = 422
    resp = "INVALID"

    def __init__(self, field: str, reason: str, status: int | None = None) -> None:
        super().__init__({"field": field, "reason": reason})
        self.args = (f"{field}: {reason}",)
        self.field = field
        self.reason = reason
        if status is not None:
            self.status = status

    @property
    def refusal(self) -> str:
        labels = {408: "body_timeout", 413: "too_large", 415: "unsupported_media_type"}
        return labels.get(self.status, "invalid")

    def as_dict(self) -> dict[str, str]:
        """The ``detail`` of the answer."""
        return {"field": self.field, "reason": self.reason}


class BodyRefused(InvalidInput):
    """A body refused before it was read to its end: the answer closes the connection, so the
    server does not read the rest (kept open, it would read and drop it all first); on the ASGI
    services a little more is dropped before the close (`install_starlette`)."""

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Connection": "close"}


class TooLarge(BodyRefused):
    """Raised when a body is longer than its limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__("body", f"is larger than {limit} bytes", 413)


class BodyTimeout(BodyRefused):
    """Raised when a body did not arrive whole within the body read timeout (408)."""

    def __init__(self, timeout: float) -> None:
        super().__init__("body", f"was not received within {timeout:g} s", 408)


class UnsupportedMediaType(InvalidInput):
    """Raised when a body is not declared as the expected media type (415).

    ``accept_post`` lists the media types the call takes, sent as ``Accept-Post``.
    """

    def __init__(self, expected: str = JSON_MEDIA, accept_post: str | None = None) -> None:
        super().__init__("content-type", f"must be {expected}", 415)
        self.accept_post = accept_post

    def headers(self) -> dict[str, str]:
        return {"Accept-Post": self.accept_post} if self.accept_post else {}


class Unauthorized(EdgeError):
    """Raised when a caller presents no valid token while tokens are configured (401)."""

    status = 401
    resp = "UNAUTHORIZED"

    def __init__(self, detail: str = "a valid bearer token is required") -> None:
        super().__init__(detail)

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(EdgeError):
    """Raised when a caller's token is of the wrong kind (a writer token on an admin call)."""

    status = 403
    resp = "FORBIDDEN"


class Refused(EdgeError):
    """Any other refusal with its own status and ``resp`` (``FROZEN``, ``CONFLICT``, ...).

    ``fields`` are added to the answer as they are (``batch``, ``body``, ...).
    """

    def __init__(
        self,
        status: int,
        resp: str,
        detail: Any = None,
        *,
        retry_after: int | str | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.status = status
        self.resp = resp
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {**super().body(), **self.fields}


class Relayed(EdgeError):
    """The next service's refusal, passed on as it is: its status, JSON body and Retry-After."""

    def __init__(self, status: int, doc: dict[str, Any], retry_after: str | None = None) -> None:
        super().__init__(doc.get("detail"), retry_after=retry_after)
        self.status = status
        self.resp = str(doc.get("resp") or "ERROR")
        self.doc = doc

    @property
    def refusal(self) -> str:
        return "invalid" if self.resp == "INVALID" else self.resp.lower()

    def body(self) -> dict[str, Any]:
        return self.doc


# --------------------------------------------------------------------------- input helpers


def media_type(content_type: str | None) -> str:
    """``application/json`` from ``application/json; charset=utf-8``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def require_media(content_type: str | None, *, empty_ok: bool = False) -> None:
    """Raise `UnsupportedMediaType` unless the body is declared as JSON (``+json`` included)."""
    media = media_type(content_type)
    if media == JSON_MEDIA or (media.startswith("application/") and media.endswith("+json")):
        return
    if empty_ok and not media:
        return
    raise UnsupportedMediaType


def chunk_media(content_type: str | None) -> str:
    """The media type of a chunk body: JSON (``+json`` too), binary or NDJSON; else 415."""
    media = media_type(content_type)
    if media in CHUNK_MEDIA:
        return media
    if media.startswith("application/") and media.endswith("+json"):
        return JSON_MEDIA
    raise UnsupportedMediaType(f"{JSON_MEDIA}, {BINARY_MEDIA} or {NDJSON_MEDIA}", ACCEPT_POST)


class BodyReader:
    """Collects a body's parts and stops with `TooLarge` at the first byte past ``limit``.

    The declared ``Content-Length`` is checked first, so an honest large body is refused before
    any of it is read; a chunked one is refused as soon as it grows past the limit.
    """

    def __init__(self, limit: int, content_length: str | None) -> None:
        self.limit = limit
        self.parts: list[bytes] = []
        self.size = 0
        self.declared: int | None = None
        if content_length:  # absent or empty (a chunked upload): read until the cap
            if not (content_length.isascii() and content_length.isdigit()):
                raise InvalidInput("content-length", "must be an integer", 400)
            self.declared = int(content_length)
            if self.declared > limit:
                raise TooLarge(limit)

    def add(self, part: bytes) -> None:
        """Keep one part; raise `TooLarge` when the body is now over the limit."""
        self.size += len(part)
        if self.size > self.limit:
            raise TooLarge(self.limit)
        self.parts.append(part)

    def next_read_size(self) -> int:
        """How much a blocking read should ask for: the declared rest, or one byte past the cap."""
        if self.declared is not None:
            return max(self.declared - self.size, 0)
        return min(64 * 1024, self.limit + 1 - self.size)

    def body(self) -> bytes:
        """The body read so far."""
        return b"".join(self.parts)


async def read_body_async(
    headers: Mapping[str, str],
    stream: AsyncIterable[bytes],
    limit: int,
    timeout: float | None = None,
) -> bytes:
    """The body of an ASGI request, read up to ``limit`` bytes (`TooLarge` past it) within
    ``timeout`` seconds (`BodyTimeout` past it; None: no bound)."""
    reader = BodyReader(limit, headers.get("content-length"))
    try:
        async with asyncio.timeout(timeout):
            async for part in stream:
                reader.add(part)
    except TimeoutError:
        raise BodyTimeout(timeout or 0) from None
    return reader.body()


def read_body_sync(
    headers: Mapping[str, str],
    read: Callable[[int], bytes],
    limit: int,
    timeout: float | None = None,
    sock: socket.socket | None = None,
) -> bytes:
    """The body of a WSGI request from its stream's ``read``, up to ``limit`` bytes, within
    ``timeout`` seconds (`BodyTimeout` past it).

    With a declared length the rest is asked for in one call: gunicorn copies its read-ahead on
    every call, so 64 KiB reads were the largest cost of a 375 kB relay. Such a call blocks until
    the client has sent it all, so the timeout is kept by `SLOW_BODIES`, which ends a read past its
    deadline by shutting the reading side of ``sock`` (the connection, ``gunicorn.socket``);
    without a socket the deadline is checked between reads only.
    """
    reader = BodyReader(limit, headers.get("content-length"))
    deadline = None if timeout is None else time.monotonic() + timeout
    with SLOW_BODIES.watch(sock, deadline) as expired:
        while True:
            size = reader.next_read_size()
            try:
                part = read(size) if size else b""
            except Exception:
                # A read ended by the watch fails as a disconnection would: say why instead.
                if expired():
                    raise BodyTimeout(timeout or 0) from None
                raise
            if not part:
                return reader.body()
            reader.add(part)
            if expired() and reader.size != reader.declared:
                raise BodyTimeout(timeout or 0)


class SlowBodyWatch:
    """Ends blocking body reads that pass their deadline: one thread per process shuts the reading
    side of their connection, so the blocked read returns at once and the connection closes after
    the answer (408). Registering a read costs a dictionary entry, not a thread or a timer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._reads: dict[int, tuple[float, socket.socket]] = {}
        self._ids = itertools.count()
        self._pid: int | None = None

    @contextlib.contextmanager
    def watch(
        self, sock: socket.socket | None, deadline: float | None
    ) -> Iterator[Callable[[], bool]]:
        """Watch the reads made inside the block; yields a function telling whether the deadline
        has passed."""

        def expired() -> bool:
            return deadline is not None and time.monotonic() >= deadline

        if sock is None or deadline is None:
            yield expired
            return
        key = next(self._ids)
        with self._lock:
            self._start_locked()
            if not self._reads:
                self._wake.notify()  # the thread sleeps while there is nothing to watch
            self._reads[key] = (deadline, sock)
        try:
            yield expired
        finally:
            with self._lock:
                self._reads.pop(key, None)

    def _start_locked(self) -> None:
        # Per process: a forked worker (gunicorn) does not inherit the parent's thread.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            threading.Thread(target=self._run, name="slow-body-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._reads:
                    self._wake.wait()
                now = time.monotonic()
                due = [key for key, (deadline, _) in self._reads.items() if deadline <= now]
                ended = [self._reads.pop(key)[1] for key in due]
                if not ended:
                    earliest = min(deadline for deadline, _ in self._reads.values())
                    self._wake.wait(earliest - now)
            for sock in ended:
                with contextlib.suppress(OSError):  # already closed by the client
                    sock.shutdown(socket.SHUT_RD)


SLOW_BODIES = SlowBodyWatch()
"""The process's watch of blocking body reads (`read_body_sync`)."""


def request_object(body: bytes, *, empty_ok: bool = False) -> dict[str, Any]:
    """The JSON object of an admin body; `InvalidInput` naming ``body`` otherwise."""
    if not body.strip():
        if empty_ok:
            return {}
        raise InvalidInput("body", "is required")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput("body", "is not valid JSON") from None
    if not isinstance(doc, dict):
        raise InvalidInput("body", "must be a JSON object")
    return doc


def bounded_int(
    raw: str | None, name: str, minimum: int, maximum: int, default: int | None = None
) -> int | None:
    """The integer query parameter ``name`` in ``[minimum, maximum]``; ``default`` when absent.

    ASCII digits only: ``int()`` alone accepts ``"+1"``, ``" 1"``, ``"1_0"`` and other scripts'
    digits, and ``str.isdigit`` alone accepts ``"²"``.
    """
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not minimum <= int(raw) <= maximum:
        raise InvalidInput(name, f"must be an integer from {minimum} to {maximum}")
    return int(raw)


def query_int_doc(name: str, minimum: int, maximum: int, description: str) -> dict[str, Any]:
    """The OpenAPI entry of a query parameter read with `bounded_int`."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }


def first_validation_error(errors: Sequence[Any]) -> InvalidInput:
    """The `InvalidInput` of the first pydantic error (``body`` when it names no field)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in REQUEST_PARTS:
        # FastAPI says where the field was ("query", "limit"); the caller wants its name.
        loc = loc[1:]
    return InvalidInput(".".join(loc) or "body", first["msg"])


# --------------------------------------------------------------------------- adapters


def answer(exc: EdgeError) -> tuple[int, bytes, dict[str, str]]:
    """Status, JSON body and headers of ``exc``: the one place an error becomes an answer."""
    return exc.status, orjson.dumps(exc.body()), exc.headers()


def http_error(status: int) -> Refused:
    """A framework's own refusal (unknown path, wrong method): ``{"resp": "NOT_FOUND"}``..."""
    try:
        resp = HTTPStatus(status).name
    except ValueError:
        resp = "ERROR"
    return Refused(status, resp)


def _count(metrics: ServiceMetrics | None, exc: EdgeError) -> None:
    if metrics is not None:
        metrics.refusals.labels(exc.refusal).inc()
    if exc.status >= 500 and exc.resp.startswith("UPSTREAM"):
        log.warning("%s: %s", exc.resp, exc, extra={"resp": exc.resp})


def install_starlette(
    app: Starlette,
    metrics: ServiceMetrics | None,
    also: Iterable[tuple[type[Exception], Callable[[Exception], EdgeError]]] = (),
) -> None:
    """Answer `EdgeError` (and the ``also`` exceptions, converted) in a Starlette app; any other
    exception 500 ``{"resp": "INTERNAL_SERVER_ERROR"}``, as Flask answers it."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response

    def routing_error(exc: Exception) -> EdgeError:
        assert isinstance(exc, HTTPException)
        return http_error(exc.status_code)

    converters = [*also, (HTTPException, routing_error)]

    class LingeringResponse(Response):
        """The answer to a body refused before its end: sent at once, then up to `LINGER_BYTES`
        more of the body are read and dropped, for at most `LINGER_SECONDS`, before the
        connection closes. Closed at once, the unread bytes would make the kernel reset the
        connection, and a client still sending could lose the answer with it."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": self.body, "more_body": True})
            dropped = 0
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LINGER_SECONDS):
                    while dropped < LINGER_BYTES:
                        message = await receive()
                        if message["type"] != "http.request" or not message.get("more_body"):
                            break
                        dropped += len(message.get("body", b""))
            await send({"type": "http.response.body", "body": b""})

    async def handle(request: Request, exc: Exception) -> Response:
        edge = exc if isinstance(exc, EdgeError) else _convert(exc, converters)
        _count(metrics, edge)
        status, body, headers = answer(edge)
        kind = LingeringResponse if isinstance(edge, BodyRefused) else Response
        return kind(body, status, headers, media_type=JSON_MEDIA)

    async def handle_unexpected(request: Request, exc: Exception) -> Response:
        # Starlette's ServerErrorMiddleware calls this, outside every other middleware, and
        # raises ``exc`` again afterwards (the server logs it too, without the request id).
        log.error("unhandled %s", type(exc).__name__, exc_info=exc)
        status, body, headers = answer(http_error(500))
        return Response(body, status, headers, media_type=JSON_MEDIA)

    app.add_exception_handler(EdgeError, handle)
    for kind, _ in converters:
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle_unexpected)


def _convert(
    exc: Exception, converters: Iterable[tuple[type[Exception], Callable[[Exception], EdgeError]]]
) -> EdgeError:
    for kind, convert in converters:
        if isinstance(exc, kind):
            return convert(exc)
    raise exc


def install_fastapi(app: Starlette, metrics: ServiceMetrics | None) -> None:
    """The Starlette adapter, plus FastAPI's own validation errors as `InvalidInput`."""
    from fastapi.exceptions import RequestValidationError

    def convert(exc: Exception) -> EdgeError:
        assert isinstance(exc, RequestValidationError)
        return first_validation_error(exc.errors())

    install_starlette(app, metrics, [(RequestValidationError, convert)])


def install_flask(app: Flask, metrics: Callable[[], ServiceMetrics | None]) -> None:
    """Answer `EdgeError` in a Flask app; werkzeug's own HTTP errors get the same JSON shape."""
    from flask import Response
    from werkzeug.exceptions import HTTPException

    def handle(exc: EdgeError) -> Response:
        _count(metrics(), exc)
        status, body, headers = answer(exc)
        return Response(body, status=status, headers=headers, mimetype=JSON_MEDIA)

    def handle_http(exc: HTTPException) -> Response:
        if exc.code == 413:
            return handle(TooLarge(app.config["MAX_CONTENT_LENGTH"]))
        return handle(http_error(exc.code or 500))

    app.register_error_handler(EdgeError, handle)
    app.register_error_handler(HTTPException, handle_http)
