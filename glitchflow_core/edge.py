"""The request edge every service shares: errors that carry their answer, and input helpers.

Handlers raise an `EdgeError`; one adapter per framework (`install_starlette`, `install_fastapi`,
`install_flask`) turns it into the JSON answer, so the same bad request gets the same status and
the same body from every service. Nothing here builds an app or reads settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from flask import Flask
    from starlette.applications import Starlette

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
        return {413: "too_large", 415: "unsupported_media_type"}.get(self.status, "invalid")

    def as_dict(self) -> dict[str, str]:
        """The ``detail`` of the answer."""
        return {"field": self.field, "reason": self.reason}


class TooLarge(InvalidInput):
    """Raised when a body is longer than its limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__("body", f"is larger than {limit} bytes", 413)


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
    headers: Mapping[str, str], stream: AsyncIterable[bytes], limit: int
) -> bytes:
    """The body of an ASGI request, read up to ``limit`` bytes (`TooLarge` past it)."""
    reader = BodyReader(limit, headers.get("content-length"))
    async for part in stream:
        reader.add(part)
    return reader.body()


def read_body_sync(headers: Mapping[str, str], read: Callable[[int], bytes], limit: int) -> bytes:
    """The body of a WSGI request from its stream's ``read``, up to ``limit`` bytes.

    With a declared length the rest is asked for in one call: gunicorn copies its read-ahead on
    every call, so 64 KiB reads were the largest cost of a 375 kB relay.
    """
    reader = BodyReader(limit, headers.get("content-length"))
    while True:
        size = reader.next_read_size()
        part = read(size) if size else b""
        if not part:
            return reader.body()
        reader.add(part)


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
    """Answer `EdgeError` (and the ``also`` exceptions, converted) in a Starlette app."""
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import Response

    def routing_error(exc: Exception) -> EdgeError:
        assert isinstance(exc, HTTPException)
        return http_error(exc.status_code)

    converters = [*also, (HTTPException, routing_error)]

    async def handle(request: Request, exc: Exception) -> Response:
        edge = exc if isinstance(exc, EdgeError) else _convert(exc, converters)
        _count(metrics, edge)
        status, body, headers = answer(edge)
        return Response(body, status, headers, media_type=JSON_MEDIA)

    app.add_exception_handler(EdgeError, handle)
    for kind, _ in converters:
        app.add_exception_handler(kind, handle)


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
