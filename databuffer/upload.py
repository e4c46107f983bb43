"""The archive tier: archived batches go up to the object store in the background.

After a flush archives a batch in the local folder, `Uploader` puts its chunk files and then its
manifest into the bucket (`glitchflow_archive.upload_batch`), checks every file's size and sha256
as the store recorded them, and only then marks the local folder ``uploaded.json`` and removes the
chunk files (unless ``keep_local``). The local folder keeps ``manifest.json`` and the marker, so
the buffer still knows its batch numbers, its archived chunk names and where each batch went.

At start-up every local batch without the marker is queued again: an upload cut by a crash
resumes, and a file already stored whole is not sent twice. An unreachable store is retried with
the core's retry policy (backoff with jitter, capped), and reported by `status`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from databuffer.archive import MANIFEST
from databuffer.atomic import atomic_write, fsync_dir
from databuffer.eventlog import EventLog, utc_iso
from databuffer.settings import Settings
from databuffer.storage import Storage
from glitchflow_archive import (
    BATCH_NAME_RE,
    UPLOADED,
    ArchiveError,
    BatchRef,
    LocalArchive,
    S3Archive,
    StoreRefused,
    StoreUnavailable,
    upload_batch,
)
from glitchflow_core.retry import RetryPolicy

logger = logging.getLogger("databuffer.upload")

PENDING = "pending"
UPLOADING = "uploading"
RETRYING = "retrying"
UPLOADED_STATE = "uploaded"
FAILED = "failed"
RESCAN_SECONDS = 5.0
"""How often an idle uploader asks the store whether it answers, and looks for archived batches
it was not told about."""
RETRY_BASE_DELAY = 0.5
"""First pause, in seconds, after a failed upload; doubling up to ``ARCHIVE_RETRY_MAX_DELAY``."""
UPLOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)
RETRIED = "retried"
"""``outcome`` of a failed try that is tried again (the store unreachable or refusing)."""


class UploadMetrics:
    """The uploader's counted metrics, in the service's registry (`ServiceMetrics.registry`)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.uploads = Counter(
            "glitchflow_uploads",
            "Batches uploaded to the object store and verified there",
            registry=registry,
        )
        self.failures = Counter(
            "glitchflow_upload_failures",
            "Upload tries that failed: retried (store unreachable or refusing, tried again) or "
            "failed (the local copy differs from its manifest: kept local, not retried)",
            ["outcome"],
            registry=registry,
        )
        self.failures.labels(RETRIED)
        self.failures.labels(FAILED)
        self.bytes = Counter(
            "glitchflow_uploaded_bytes",
            "Bytes of chunk files uploaded to the object store and verified there",
            registry=registry,
        )
        self.duration = Histogram(
            "glitchflow_upload_duration_seconds",
            "Seconds to upload and verify one batch (the try that succeeded)",
            buckets=UPLOAD_BUCKETS,
            registry=registry,
        )


class UploadStateCollector(Collector):
    """Gauges read from the uploader when scraped: ``glitchflow_upload_pending_batches`` and
    ``glitchflow_archive_store_reachable``."""

    def __init__(self, uploader: Uploader) -> None:
        self.uploader = uploader

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.uploader.status()
        yield GaugeMetricFamily(
            "glitchflow_upload_pending_batches",
            "Archived batches not yet verified in the object store",
            value=status["pending"],
        )
        yield GaugeMetricFamily(
            "glitchflow_archive_store_reachable",
            "1 while the object store answers (as the uploader last saw it), else 0",
            value=int(status["reachable"]),
        )


def make_uploader(
    settings: Settings, storage: Storage, registry: CollectorRegistry | None = None
) -> Uploader | None:
    """The uploader to the bucket ``settings`` name, its metrics in ``registry``; None when
    archives stay in the folder."""
    location = settings.s3_location()
    if location is None:
        return None
    policy = RetryPolicy(
        max_attempts=2**31,  # a store that is down is waited for; nothing is dropped
        max_elapsed=math.inf,
        base_delay=min(RETRY_BASE_DELAY, settings.archive_retry_max_delay),
        max_delay=settings.archive_retry_max_delay,
    )
    return Uploader(
        storage.archive_dir,
        S3Archive(location),
        storage.log,
        keep_local=settings.archive_keep_local,
        policy=policy,
        metrics=UploadMetrics(registry) if registry is not None else None,
    )


class _Stopping(Exception):
    """Raised out of a retry pause when the buffer stops; the upload resumes at the next start."""


class _Done:
    """What `RetryPolicy.call` expects back from a send that succeeded."""

    status_code = 200
    headers: dict[str, str] = {}


class Uploader:
    """Uploads archived batches to ``store`` in one background thread.

    Parameters
    ----------
    archive_root : Path
        The buffer's archive folder.
    store : S3Archive
        The bucket.
    log : EventLog
        The buffer's event log (``upload_*`` events).
    keep_local : bool
        Keep the local chunk files once the upload is verified.
    policy : RetryPolicy
        Backoff between tries while the store is unreachable.
    metrics : UploadMetrics, optional
        Counted uploads, failures, bytes and durations.
    """

    def __init__(
        self,
        archive_root: Path,
        store: S3Archive,
        log: EventLog,
        *,
        keep_local: bool = False,
        policy: RetryPolicy | None = None,
        metrics: UploadMetrics | None = None,
    ) -> None:
        self.root = Path(archive_root)
        self.local = LocalArchive(self.root)
        self.store = store
        self.log = log
        self.keep_local = keep_local
        self.policy = policy or RetryPolicy(
            max_attempts=2**31, max_elapsed=math.inf, base_delay=RETRY_BASE_DELAY
        )
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, Any]] = {}
        self.metrics = metrics
        self._store_error: str | None = None
        self._store_error_since: float | None = None
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- control

    def start(self) -> int:
        """Queue every local batch not yet uploaded and start the thread; how many were queued."""
        queued = self._queue_waiting()
        self._thread = threading.Thread(target=self._run, name="archive-upload", daemon=True)
        self._thread.start()
        if queued:
            self.log.append("upload_resume", batches=queued, store=self.store.location(""))
        return queued

    def _queue_waiting(self) -> int:
        """Queue the complete local batches neither uploaded nor known yet; how many."""
        queued = 0
        for name in sorted(self.local.names()):
            if not BATCH_NAME_RE.match(name) or not (self.root / name / MANIFEST).is_file():
                continue
            marker = self._marker(name)
            if marker is None:
                with self._lock:
                    known = name in self._states
                if not known:
                    self.submit(name)
                    queued += 1
            elif not marker.get("local_copy", False) and self._has_chunks(name):
                self._remove_chunks(name)  # a crash came between the marker and the removal
        return queued

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the file being sent; what is left is uploaded at the next start."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, name: str) -> dict[str, Any]:
        """Queue batch ``name`` (a folder of the archive) unless queued or uploaded; its state."""
        if self._marker(name) is not None:
            return self.batch_state(name)  # a repeated flush of an uploaded batch
        with self._lock:
            state = self._states.get(name)
            if state is None or state["state"] == FAILED:
                state = {"state": PENDING, "error": None, "attempts": 0}
                self._states[name] = state
                self._queue.put(name)
            return dict(state)

    # ----------------------------------------------------------------- reading

    def batch_state(self, name: str) -> dict[str, Any]:
        """``{"state", "location", ...}`` of one archived batch, for answers and the status page."""
        marker = self._marker(name)
        if marker is not None:
            return {
                "state": UPLOADED_STATE,
                "location": marker["location"],
                "verified_at": marker.get("verified_at"),
                "local_copy": marker.get("local_copy", False),
            }
        with self._lock:
            state = dict(self._states.get(name) or {"state": PENDING})
        state["location"] = str(self.root / name)
        state["target"] = self.store.location(name)
        return state

    def status(self) -> dict[str, Any]:
        """The store, whether it is reachable, and how many batches wait."""
        with self._lock:
            waiting = sum(s["state"] != UPLOADED_STATE for s in self._states.values())
            error, since = self._store_error, self._store_error_since
            last_error, last_at = self._last_error, self._last_error_at
        return {
            "store": self.store.location(""),
            "reachable": error is None,
            "error": error,
            "unreachable_since": utc_iso(since) if since is not None else None,
            "pending": waiting,
            "keep_local": self.keep_local,
            "last_error": last_error,
            "last_error_at": utc_iso(last_at) if last_at is not None else None,
        }

    def probe(self) -> dict[str, Any]:
        """`status`, after asking the store whether its bucket answers (one HEAD)."""
        try:
            self.store.check_reachable()
        except ArchiveError as exc:
            with self._lock:
                if self._store_error is None:
                    self._store_error_since = time.time()
                self._store_error = str(exc)
                self._last_error, self._last_error_at = str(exc), time.time()
        else:
            with self._lock:
                self._store_error = self._store_error_since = None
        return self.status()

    # ----------------------------------------------------------------- work

    def _run(self) -> None:
        self.probe()
        idle_since = time.monotonic()
        while not self._stop.is_set():
            try:
                name = self._queue.get(timeout=0.5)
            except queue.Empty:
                # While idle: is the store still there (for /readyz, which does no I/O), and
                # batches archived by another path than /cleanall.
                if time.monotonic() - idle_since >= RESCAN_SECONDS:
                    self.probe()
                    self._queue_waiting()
                    idle_since = time.monotonic()
                continue
            try:
                self._upload_with_retries(name)
            except _Stopping:
                return

    def _upload_with_retries(self, name: str) -> None:
        self._set(name, state=UPLOADING)
        try:
            self.policy.call(
                lambda: self._upload_once(name),
                idempotent=True,
                not_sent=(StoreUnavailable, StoreRefused),
                sleep=self._pause,
                before_sleep=lambda retry: self._note_failure(name, retry),
            )
        except _Stopping:
            raise
        except (ArchiveError, OSError) as exc:
            # A local copy that does not match its manifest, or a local file gone: keep it
            # local, say so; nothing is removed.
            self._set(name, state=FAILED, error=str(exc))
            with self._lock:
                self._last_error, self._last_error_at = f"{name}: {exc}", time.time()
            if self.metrics is not None:
                self.metrics.failures.labels(FAILED).inc()
            self.log.append("upload_failed", archive=name, detail=str(exc))
            logger.error("upload of %s failed: %s", name, exc)

    def _upload_once(self, name: str) -> _Done:
        ref = BatchRef(int(name.split("-", 1)[0]), name, str(self.root / name))
        with self._lock:
            self._states[name]["attempts"] += 1
        started = time.perf_counter()
        manifest = upload_batch(self.local, self.store, ref)
        took = time.perf_counter() - started
        verified_at = time.time()
        with self._lock:
            self._store_error = self._store_error_since = None
        marker = {
            "location": self.store.location(name),
            "verified_at": utc_iso(verified_at),
            "files": len(manifest.files),
            "bytes": manifest.nbytes,
            "local_copy": self.keep_local,
        }
        atomic_write(self.root / name / UPLOADED, orjson.dumps(marker))
        if not self.keep_local:
            self._remove_chunks(name)
        self._set(name, state=UPLOADED_STATE, error=None)
        if self.metrics is not None:
            self.metrics.uploads.inc()
            self.metrics.bytes.inc(manifest.nbytes)
            self.metrics.duration.observe(took)
        self.log.append(
            "uploaded", archive=name, location=marker["location"], files=marker["files"]
        )
        return _Done()

    def _remove_chunks(self, name: str) -> None:
        """Remove the chunk files of an uploaded batch; its manifest and marker stay."""
        folder = self.root / name
        for entry in os.scandir(folder):
            if entry.name not in (MANIFEST, UPLOADED) and entry.is_file():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
        fsync_dir(folder)

    def _has_chunks(self, name: str) -> bool:
        return any(entry.name not in (MANIFEST, UPLOADED) for entry in os.scandir(self.root / name))

    def _marker(self, name: str) -> dict[str, Any] | None:
        try:
            marker = orjson.loads((self.root / name / UPLOADED).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            logger.warning("unreadable %s in %s: %s", UPLOADED, name, exc)
            return None
        return marker if isinstance(marker, dict) and "location" in marker else None

    def _note_failure(self, name: str, retry: Any) -> None:
        error = retry.outcome.exception() if retry.outcome is not None else None
        detail = str(error) if error is not None else "unknown error"
        with self._lock:
            if self._store_error is None:
                self._store_error_since = time.time()
                self.log.append("store_unreachable", store=self.store.location(""), detail=detail)
            self._store_error = detail
            self._last_error, self._last_error_at = detail, time.time()
        if self.metrics is not None:
            self.metrics.failures.labels(RETRIED).inc()
        self._set(name, state=RETRYING, error=detail)
        logger.warning("upload of %s: %s; retrying", name, detail)

    def _pause(self, seconds: float) -> None:
        if self._stop.wait(seconds):
            raise _Stopping

    def _set(self, name: str, **fields: Any) -> None:
        with self._lock:
            self._states.setdefault(name, {"state": PENDING, "error": None, "attempts": 0})
            self._states[name].update(fields)
