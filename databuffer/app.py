"""The app factory of the databuffer service."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.middleware import Middleware

from databuffer.eventlog import EventLog
from databuffer.routes import EXCEPTION_HANDLERS, ROUTES, BufferService, route_label
from databuffer.settings import Settings
from databuffer.storage import Storage
from glitchflow_core.logs import RequestIdMiddleware
from glitchflow_core.metrics import MetricsMiddleware, ServiceMetrics

logger = logging.getLogger("databuffer")


class EventLogCollector(Collector):
    """``glitchflow_log_write_errors_total``: events the log dropped (`EventLog.dropped`)."""

    def __init__(self, log: EventLog) -> None:
        self.log = log

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "glitchflow_log_write_errors", "Event log appends that failed (events dropped)"
        )
        family.add_metric([], self.log.dropped)
        yield family


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the buffer service: open (and recover) the storage, wire routes, metrics and errors.

    Parameters
    ----------
    settings : Settings, optional
        Read from the environment when not given.
    """
    settings = settings if settings is not None else Settings()
    storage = Storage(
        settings.data_root,
        settings.adm_root,
        settings.log_root,
        settings.archive_root,
        log_max_bytes=settings.log_max_bytes,
        log_backups=settings.log_backups,
    )
    metrics = ServiceMetrics()
    metrics.registry.register(EventLogCollector(storage.log))
    buffer = BufferService(settings, storage, metrics)
    if not buffer.tokens:
        logger.warning("no SERVICE_TOKEN configured: the databuffer accepts writes from anyone")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        st = storage.stat()
        logger.info(
            "databuffer ready",
            extra={"data": str(settings.data_root), "batch": st.batch, "dstatus": st.dstatus},
        )
        yield
        # uvicorn has already waited for in-flight requests (their writes) to finish.
        storage.close()
        logger.info("databuffer stopped")

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(RequestIdMiddleware),
            Middleware(MetricsMiddleware, metrics=metrics, label=route_label),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.service = buffer
    app.state.storage = storage
    app.state.settings = settings
    return app
