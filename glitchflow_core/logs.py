"""Structured JSON logs on stderr, the same shape for every service, tagged with the request id.

A request id (``X-Request-ID``) is made at the first service that sees a request without a usable
one, echoed in the answer, sent on to the next hop and written in every log line of the request:
`RequestIdMiddleware` (Starlette/FastAPI) and `install_flask_request_id` (Flask) set it in
`request_id` for the request's duration, the `RequestIdFilter` of `configure_logging` writes it.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import TYPE_CHECKING

from pythonjsonlogger.json import JsonFormatter

if TYPE_CHECKING:
    from flask import Flask
    from starlette.applications import Starlette
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
"""A caller's id is kept when it matches: 1-128 characters, nothing to escape in a log."""

request_id: ContextVar[str | None] = ContextVar("glitchflow_request_id", default=None)
"""The id of the request being answered in this context (None outside a request)."""

access = logging.getLogger("glitchflow.request")


def new_request_id() -> str:
    """A fresh id: 32 hex digits (a random UUID)."""
    return uuid.uuid4().hex


def usable_request_id(given: str | None) -> str:
    """``given`` when it is a well-formed id, else a new one (never a caller's arbitrary text)."""
    if given is not None and REQUEST_ID_PATTERN.fullmatch(given):
        return given
    return new_request_id()


def request_id_headers() -> dict[str, str]:
    """The header passing the current request's id to the next hop (empty outside a request)."""
    rid = request_id.get()
    return {REQUEST_ID_HEADER: rid} if rid else {}


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record logged while a request is answered."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        return True


def configure_logging(service: str, level: str = "INFO") -> logging.Logger:
    """Send the root logger's records to stderr as JSON lines tagged with ``service``.

    Every line logged during a request carries its ``request_id``. Returns the service's logger.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    return logging.getLogger(service)


def log_request(method: str, path: str, status: int, seconds: float) -> None:
    """One INFO line per answered request (the access log), with its request id."""
    if access.isEnabledFor(logging.INFO):
        access.info(
            "request",
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )


class RequestIdMiddleware:
    """ASGI middleware: the request's id in `request_id`, echoed as ``X-Request-ID``.

    Outermost (`install_request_id`), so that the id is set for every other middleware
    (`MetricsMiddleware` writes the access line), handler and error answer.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        rid = usable_request_id(given)
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


def install_request_id(app: Starlette) -> None:
    """Put `RequestIdMiddleware` around the whole of a Starlette (or FastAPI) app.

    Middleware added the usual way runs inside Starlette's ``ServerErrorMiddleware``, which answers
    an unhandled exception with the ``send`` it was given: such a 500 would carry no id. Wrapping
    the stack the app builds puts the id on every answer, that 500 included, and keeps it set
    while the app's handler for ``Exception`` logs the failure.
    """
    build = app.build_middleware_stack

    def build_with_request_id() -> ASGIApp:
        return RequestIdMiddleware(build())

    app.build_middleware_stack = build_with_request_id  # type: ignore[method-assign]


def install_flask_request_id(app: Flask) -> None:
    """The same for a Flask app: id set before the handler, echoed and logged after it."""
    from flask import g, request

    @app.before_request
    def take_request_id() -> None:
        g.request_started = time.perf_counter()
        g.request_id_token = request_id.set(usable_request_id(request.headers.get("X-Request-ID")))

    @app.after_request
    def echo_request_id(response):  # type: ignore[no-untyped-def]
        rid = request_id.get()
        if rid is not None:
            response.headers[REQUEST_ID_HEADER] = rid
        started = g.get("request_started")
        if started is not None:
            log_request(
                request.method, request.path, response.status_code, time.perf_counter() - started
            )
        return response

    @app.teardown_request
    def forget_request_id(_exc: BaseException | None) -> None:
        token = g.pop("request_id_token", None)
        if token is not None:
            request_id.reset(token)
