"""Assembly of the FastAPI app: lifespan (the pooled client), error mapping, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.types import Scope

from glitchflow_api.auth import AuthError, Tokens
from glitchflow_api.settings import Settings
from glitchflow_api.upstream import LogicClient
from glitchflow_core.logs import RequestIdMiddleware, configure_logging
from glitchflow_core.metrics import MetricsMiddleware, ServiceMetrics
from glitchflow_core.upstream import UpstreamFailure

SERVICE = "glitchflow_api"
log = logging.getLogger(SERVICE)
REQUEST_PARTS = ("body", "query", "path", "header", "cookie")


@dataclass
class Context:
    """What the routes need, kept on ``app.state.ctx``."""

    settings: Settings
    tokens: Tokens
    metrics: ServiceMetrics
    client: LogicClient | None = None


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer serialised with orjson."""
    return Response(
        orjson.dumps(body), status_code=status, headers=headers, media_type="application/json"
    )


def first_error(errors: Sequence[Any]) -> tuple[str, str]:
    """The field (``body`` when none is named) and reason of the first pydantic error."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid"}
    loc = [str(part) for part in first.get("loc", ())]
    if loc and loc[0] in REQUEST_PARTS:
        # FastAPI says where the field was ("query", "limit"); the caller wants its name.
        loc = loc[1:]
    return ".".join(loc) or "body", first["msg"]


def route_label(scope: Scope) -> str:
    """The metrics label of a request: its route template, or ``unmatched``."""
    return getattr(scope.get("route"), "path", "unmatched")


def build_app(settings: Settings) -> FastAPI:
    """The app for ``settings``; see `glitchflow_api.create_app`."""
    from glitchflow_api.routes import router

    configure_logging(SERVICE, settings.log_level)
    tokens = Tokens(writer=settings.writer_token_set(), admin=settings.admin_token_set())
    if tokens.open:
        log.warning("no WRITER_TOKENS or ADMIN_TOKENS configured: the API is open (local use only)")
    elif not tokens.admin:
        log.warning("no ADMIN_TOKENS configured: /train and /cleanbuf refuse every caller")
    if not settings.service_tokens():
        log.warning("no SERVICE_TOKEN configured: calls to datastore_logic carry no token")
    ctx = Context(settings=settings, tokens=tokens, metrics=ServiceMetrics())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = settings.service_tokens()
        ctx.client = LogicClient(
            settings.ds_burl, settings.upstream_timeout, service[0] if service else None
        )
        try:
            yield
        finally:
            await ctx.client.aclose()

    app = FastAPI(
        title="Glitchflow datastore API",
        version="0.1.0",
        description="Stream gravitational-wave strain into the buffer; freeze and flush batches.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(router)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics, label=route_label)
    app.add_middleware(RequestIdMiddleware)  # added last: outermost, the id is set for all

    @app.exception_handler(UpstreamFailure)
    async def _upstream_failure(request: Request, exc: UpstreamFailure) -> Response:
        ctx.metrics.refusals.labels(exc.resp.lower()).inc()
        log.warning("datastore_logic failed: %s", exc.detail, extra={"resp": exc.resp})
        return json_response(exc.body(), exc.status)

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        ctx.metrics.refusals.labels(exc.resp.lower()).inc()
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return json_response({"resp": exc.resp, "detail": exc.detail}, exc.status, headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        ctx.metrics.refusals.labels("invalid").inc()
        field, reason = first_error(exc.errors())
        return json_response({"resp": "INVALID", "detail": {"field": field, "reason": reason}}, 422)

    return app
