"""What the app factory builds and the routes use, below both (``app.py`` imports ``routes.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from fastapi import Request, Response

from glitchflow_api.settings import Settings
from glitchflow_api.upstream import UPSTREAM, LogicClient
from glitchflow_core.access import Gate
from glitchflow_core.metrics import ServiceMetrics
from glitchflow_core.upstream import UpstreamError


@dataclass
class Context:
    """What the routes need, kept on ``app.state.ctx``; the client exists while the app runs."""

    settings: Settings
    gate: Gate
    metrics: ServiceMetrics
    client: LogicClient | None = None


def context(request: Request) -> Context:
    """The `Context` of the app serving ``request``."""
    return request.app.state.ctx


def client(request: Request) -> LogicClient:
    """The datastore_logic client, or `UpstreamError` when the app is not started."""
    logic = context(request).client
    if logic is None:
        raise UpstreamError(UPSTREAM, "the API is not started (no client)")
    return logic


def json_response(body: object, status: int = 200) -> Response:
    """A JSON answer serialised with orjson."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")
