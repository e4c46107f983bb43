"""Prometheus metrics with the same names in every service.

Each app gets its own `ServiceMetrics` (its own registry), so tests can build many apps in one
process. Under gunicorn with several workers, set ``PROMETHEUS_MULTIPROC_DIR`` and `render`
aggregates the workers' files.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from glitchflow_core.logs import log_request

GPS_EPOCH_UNIX = 315_964_800
"""1980-01-06T00:00:00Z, GPS time 0, as a Unix time."""
GPS_LEAP_SECONDS = 18
"""GPS minus UTC since 2017-01-01 (no leap second has been added since; the next, if any, is
announced six months ahead by IERS Bulletin C and would change this constant)."""

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def gps_now(unix: float | None = None) -> float:
    """The GPS time of ``unix`` (now when not given)."""
    return (time.time() if unix is None else unix) - GPS_EPOCH_UNIX + GPS_LEAP_SECONDS


class ServiceMetrics:
    """The metric families of one service, registered in their own registry.

    Counted metrics (requests, chunks, ...) live in ``registry``: in multiprocess mode each worker
    writes them to its files and `render` sums the workers. Metrics read from the service's state
    when scraped (`add_collector`) live in ``live`` and are rendered as they are.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.live = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.workers = Gauge(
            "glitchflow_workers",
            "Worker processes of this service counted in these metrics",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.workers.set(1)
        self.requests = Counter(
            "glitchflow_requests",
            "HTTP requests answered",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "glitchflow_request_duration_seconds",
            "Time to answer an HTTP request",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ingested_bytes = Counter(
            "glitchflow_ingested_bytes", "Bytes of chunks accepted", registry=r
        )
        self.ingested_chunks = Counter(
            "glitchflow_ingested_chunks", "Chunks accepted (new, not duplicates)", registry=r
        )
        self.duplicates = Counter(
            "glitchflow_duplicate_chunks", "Chunks acknowledged as duplicates", registry=r
        )
        self.refusals = Counter(
            "glitchflow_refusals", "Requests refused, by reason", ["reason"], registry=r
        )
        self.freezes = Counter("glitchflow_freezes", "Times the buffer froze", registry=r)
        self.flushes = Counter("glitchflow_flushes", "Batches flushed to the archive", registry=r)
        self.fill_ratio = Gauge(
            "glitchflow_fill_ratio",
            "buff_size / MAX_SIZE as last seen",
            registry=r,
            multiprocess_mode="mostrecent",
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def add_collector(self, collector: Collector) -> None:
        """Render ``collector`` (metrics read from the service's state) with the counted ones."""
        self.live.register(collector)

    def render(self) -> tuple[bytes, str]:
        """The exposition text (every worker's counts summed) and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            counted = CollectorRegistry()
            multiprocess.MultiProcessCollector(counted)
        else:
            counted = self.registry
        return generate_latest(counted) + generate_latest(self.live), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware: counts every answered request and its latency under ``label(scope)``,
    and writes its access log line (`log_request`).

    The label is a route template or a known path, never the raw path, so that unknown paths
    cannot grow the number of time series.
    """

    def __init__(
        self, app: ASGIApp, metrics: ServiceMetrics, label: Callable[[Scope], str]
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.label = label

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.observe(self.label(scope), scope["method"], status, elapsed)
            log_request(scope["method"], scope["path"], status, elapsed)
