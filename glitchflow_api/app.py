"""Assembly of the FastAPI app: lifespan (the pooled client), the edge's error adapter, metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute
from starlette.types import Scope

from glitchflow_api.auth import ACCESS, CHECKED_BY_HANDLER, api_gate
from glitchflow_api.context import Context
from glitchflow_api.docs import offline_docs_app
from glitchflow_api.models import binary_parameters, stream_request_body
from glitchflow_api.routes import router
from glitchflow_api.settings import Settings
from glitchflow_api.status import router as status_router
from glitchflow_api.upstream import LogicClient
from glitchflow_core.access import Access, AccessMiddleware, require_decisions
from glitchflow_core.edge import install_fastapi
from glitchflow_core.logs import configure_logging, install_request_id
from glitchflow_core.metrics import MetricsMiddleware, ServiceMetrics

SERVICE = "glitchflow_api"
log = logging.getLogger(SERVICE)


def route_label(scope: Scope) -> str:
    """The metrics label of a request: its route template, or ``unmatched``."""
    return getattr(scope.get("route"), "path", "unmatched")


def all_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, those of included routers too (FastAPI 0.16x keeps them in the router)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from all_routes(included.routes)
        else:
            yield route


def route_methods(app: FastAPI) -> dict[str, frozenset[str]]:
    """The methods each route path of ``app`` takes (a mount takes every method)."""
    taken: dict[str, set[str]] = {}
    for route in all_routes(app.routes):
        methods = getattr(route, "methods", None)
        if methods:
            taken.setdefault(getattr(route, "path", ""), set()).update(methods)
    return {path: frozenset(methods) for path, methods in taken.items()}


def build_app(settings: Settings) -> FastAPI:
    """The app for ``settings``; see `glitchflow_api.create_app`."""
    configure_logging(SERVICE, settings.log_level, settings.access_log)
    writer, admin = settings.writer_token_set(), settings.admin_token_set()
    reader = settings.reader_token_set()
    gate = api_gate(writer, admin, reader, settings.status_needs_token)
    if gate.is_open(Access.ADMIN):
        log.warning("no WRITER, ADMIN or READER_TOKENS configured: the API is open (local use)")
    else:
        if gate.is_open(Access.WRITE):
            log.warning("no WRITER_TOKENS configured: /streamdata is open to whoever reaches it")
        if not admin:
            log.warning(
                "no ADMIN_TOKENS configured: the admin calls (/train, /cleanbuf, batch results)"
                " refuse every caller"
            )
    if not settings.service_tokens():
        log.warning("no SERVICE_TOKEN configured: calls to datastore_logic carry no token")
    ctx = Context(settings=settings, gate=gate, metrics=ServiceMetrics())

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

    app = offline_docs_app(
        title="Glitchflow datastore API",
        version="0.1.0",
        description="Stream gravitational-wave strain into the buffer; freeze and flush batches.",
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.include_router(router)
    app.include_router(status_router)
    paths = (getattr(route, "path", "") for route in all_routes(app.routes))
    require_decisions(SERVICE, paths, ACCESS)
    app.add_middleware(
        AccessMiddleware,
        gate=gate,
        table=ACCESS,
        methods=route_methods(app),
        metrics=ctx.metrics,
        checked_by_handler=CHECKED_BY_HANDLER,
    )
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics, label=route_label)
    install_request_id(app)  # outermost, around Starlette's own error middleware too
    install_fastapi(app, ctx.metrics)
    app.openapi = lambda: document(app, settings)  # type: ignore[method-assign]
    return app


def document(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The OpenAPI document, made once: the bearer scheme, and the chunk limits of ``settings``."""
    if app.openapi_schema is None:
        doc = FastAPI.openapi(app)
        doc.setdefault("components", {})["securitySchemes"] = {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": (
                    "A writer token (/streamdata), a reader token (listings and samples)"
                    " or an admin token (all calls)."
                ),
            }
        }
        stream = doc["paths"]["/streamdata"]["post"]
        stream["requestBody"] = stream_request_body(
            settings.max_samples, settings.min_dt, settings.max_dt, settings.max_chunks
        )
        stream["parameters"] = binary_parameters(settings.min_dt, settings.max_dt)
    return app.openapi_schema
