"""The app factory of the databuffer service."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.middleware import Middleware

from databuffer.eventlog import EventLog
from databuffer.routes import (
    ACCESS,
    ROUTES,
    BufferService,
    archive_store,
    install_errors,
    route_label,
)
from databuffer.settings import Settings
from databuffer.storage import Storage
from databuffer.upload import UploadStateCollector, make_uploader
from glitchflow_core.access import AccessMiddleware, require_decisions, service_gate
from glitchflow_core.logs import install_request_id
from glitchflow_core.metrics import MetricsMiddleware, ServiceMetrics, gps_now

logger = logging.getLogger("databuffer")

PAUSE_BUCKETS = (0.0, 0.1, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


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


class BufferStateCollector(Collector):
    """Gauges read from the storage when scraped: lag per channel, time frozen, archived batches.

    The newest GPS time of each channel is remembered across flushes, so that the lag of a
    channel keeps growing while no data of it arrives, also after its batch was archived.
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.newest: dict[str, float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = time.time()
        gps = gps_now(now)
        self.newest.update(self.storage.newest_gps())
        newest = GaugeMetricFamily(
            "glitchflow_newest_gps_seconds",
            "GPS time just after the newest stored sample, per channel",
            labels=["channel"],
        )
        lag = GaugeMetricFamily(
            "glitchflow_ingest_lag_seconds",
            "Now (GPS) minus the GPS time of the newest stored sample, per channel",
            labels=["channel"],
        )
        for channel, end in sorted(self.newest.items()):
            newest.add_metric([channel], end)
            lag.add_metric([channel], gps - end)
        yield newest
        yield lag
        state = self.storage.state
        frozen = state.dstatus == "FROZEN"
        yield GaugeMetricFamily("glitchflow_frozen", "1 while the buffer is FROZEN", value=frozen)
        yield GaugeMetricFamily(
            "glitchflow_frozen_seconds",
            "Seconds the buffer has been FROZEN (0 while OPERATIONAL)",
            value=max(now - state.frozen_at, 0.0) if frozen and state.frozen_at else 0.0,
        )
        yield GaugeMetricFamily(
            "glitchflow_batch", "Number of the current batch", value=state.batch
        )
        yield GaugeMetricFamily(
            "glitchflow_stored_chunks",
            "Chunk files in the current batch",
            self.storage.stored_files,
        )
        yield GaugeMetricFamily(
            "glitchflow_stored_bytes", "Bytes of the current batch", self.storage.stored_bytes
        )
        yield GaugeMetricFamily(
            "glitchflow_archived_batches",
            "Batches in the archive",
            value=len(self.storage.archive.folders()),
        )


class IngestPauseCollector(Collector):
    """Writes refused because of a freeze (hold) or a full sealed queue (rotate), read from the
    engine at scrape time: ``glitchflow_ingest_pause_seconds_total`` (the current pause
    included), ``glitchflow_ingest_paused`` (1 while writes are refused) and
    ``glitchflow_sealed_batches`` (batches waiting for training)."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        seconds, paused = self.storage.pause_seconds()
        yield CounterMetricFamily(
            "glitchflow_ingest_pause_seconds",
            "Seconds writes were refused because the batch was frozen or the sealed queue full",
            value=seconds,
        )
        yield GaugeMetricFamily(
            "glitchflow_ingest_paused", "1 while writes are refused (frozen)", value=int(paused)
        )
        yield GaugeMetricFamily(
            "glitchflow_sealed_batches",
            "Sealed batches waiting to be handed over",
            value=len(self.storage.sealed_batches()),
        )


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the buffer service: open (and recover) the storage, wire routes, metrics and errors.

    Parameters
    ----------
    settings : Settings, optional
        Read from the environment when not given.
    """
    settings = settings if settings is not None else Settings()
    require_decisions("databuffer", (route.path for route in ROUTES), ACCESS)
    metrics = ServiceMetrics()
    pause_per_batch = Histogram(
        "glitchflow_ingest_pause_per_batch_seconds",
        "Seconds writes were refused while a batch was the one being filled, once per batch",
        buckets=PAUSE_BUCKETS,
        registry=metrics.registry,
    )
    archive = archive_store(settings)  # the local folder, and the bucket when configured
    storage = Storage(
        settings.data_root,
        settings.adm_root,
        settings.log_root,
        settings.archive_root,
        log_max_bytes=settings.log_max_bytes,
        log_backups=settings.log_backups,
        on_pause=lambda batch, seconds: pause_per_batch.observe(seconds),
        read_archived=archive.read_bytes,
    )
    metrics.add_collector(EventLogCollector(storage.log))
    metrics.add_collector(BufferStateCollector(storage))
    metrics.add_collector(IngestPauseCollector(storage))
    uploader = make_uploader(settings, storage, metrics.registry)
    if uploader is not None:
        metrics.add_collector(UploadStateCollector(uploader))
    buffer = BufferService(settings, storage, metrics, uploader, archive)
    if not buffer.tokens:
        logger.warning("no SERVICE_TOKEN configured: the databuffer accepts writes from anyone")
    gate = service_gate(buffer.tokens, settings.reader_token_set(), settings.status_needs_token)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        st = storage.stat()
        logger.info(
            "databuffer ready",
            extra={"data": str(settings.data_root), "batch": st.batch, "dstatus": st.dstatus},
        )
        if uploader is not None:
            # Archives not yet verified in the bucket (a crash, a store that was down) go first.
            uploader.start()
        yield
        # uvicorn has already waited for in-flight requests (their writes) to finish.
        if uploader is not None:
            uploader.stop()
        storage.close()
        logger.info("databuffer stopped")

    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(MetricsMiddleware, metrics=metrics, label=route_label),
            Middleware(
                AccessMiddleware,
                gate=gate,
                table=ACCESS,
                methods={route.path: route.methods or () for route in ROUTES},
                metrics=metrics,
            ),
        ],
        lifespan=lifespan,
    )
    install_errors(app, settings, metrics)
    install_request_id(app)
    app.state.service = buffer
    app.state.storage = storage
    app.state.settings = settings
    return app
