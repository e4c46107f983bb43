"""Send chunks to ``POST /streamdata``: one aiohttp session, bounded concurrency, safe retries.

A chunk's identity is ``(channel, t0, len(h), dt)`` and the API answers a repeated chunk with
``DUPLICATE`` instead of storing it twice, so retrying after a lost answer can never double-count.
What is retried: connection errors and timeouts, 429, and 5xx (503 ``FROZEN`` included, waiting at
least its ``Retry-After``), with exponential backoff and jitter, capped by attempts and by total
time per chunk. Other 4xx answers are final. A 401/403 stops the stream (no other chunk could pass),
and so does a chunk that exhausted its retries, since the service is then down.
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from gwclient.chunks import Chunk, plan_chunks

TOKEN_ENV = "GLITCHFLOW_TOKEN"  # noqa: S105 - a variable name, not a secret
STREAM_PATH = "/streamdata"
MAX_ERRORS_KEPT = 20


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry one chunk.

    ``max_attempts`` bounds sends that failed (connection errors, 429, 5xx other than FROZEN);
    ``max_elapsed`` bounds the seconds spent on one chunk, waits for a frozen buffer included (the
    buffer stays frozen until the training DAG flushes it, which may take minutes).
    """

    max_attempts: int = 8
    max_elapsed: float = 600.0
    base_delay: float = 0.25
    max_delay: float = 30.0
    wait_frozen: bool = True
    """False: a 503 FROZEN answer is final (the chunk is refused), for callers that stop there."""

    def backoff(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after the ``failures``-th failure: exponential, half of it jittered."""
        delay = min(self.max_delay, self.base_delay * 2 ** max(0, failures - 1))
        return delay / 2 + rng.uniform(0, delay / 2)

    def after_retry_after(self, retry_after: float, rng: random.Random) -> float:
        """Seconds to wait when the server said ``Retry-After``: that, plus up to 10% jitter."""
        return retry_after + rng.uniform(0, max(0.05, 0.1 * retry_after))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass
class Summary:
    """What happened to the chunks of one stream.

    ``created`` + ``duplicates`` were delivered (stored, now or before); ``refused`` got a final
    4xx (409 conflict, 422 invalid, 401 ...); ``failed`` ran out of retries; ``skipped`` were never
    sent because the stream stopped early.
    """

    total: int = 0
    created: int = 0
    duplicates: int = 0
    refused: int = 0
    failed: int = 0
    skipped: int = 0
    retries: int = 0
    bytes: int = 0
    samples: int = 0
    data_seconds: float = 0.0
    elapsed: float = 0.0
    batches: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        """Chunks the service holds: created now or acknowledged as duplicates."""
        return self.created + self.duplicates

    @property
    def ok(self) -> bool:
        """True when every chunk was delivered."""
        return self.delivered == self.total

    @property
    def rate(self) -> float:
        """Delivered bytes per second of wall time."""
        return self.bytes / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def chunk_rate(self) -> float:
        """Delivered chunks per second of wall time."""
        return self.delivered / self.elapsed if self.elapsed > 0 else 0.0

    def line(self) -> str:
        """The one-line summary the CLI prints."""
        text = (
            f"{self.delivered}/{self.total} chunks delivered ({self.created} created, "
            f"{self.duplicates} duplicates, {self.refused} refused, {self.failed} failed, "
            f"{self.skipped} skipped), {self.bytes / 1e6:.2f} MB and {self.data_seconds:g} s "
            f"of data in {self.elapsed:.2f} s ({self.rate / 1e6:.2f} MB/s, "
            f"{self.chunk_rate:.1f} chunks/s, {self.retries} retries)"
        )
        if self.errors:
            text += f"; first error: {self.errors[0]}"
        return text

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


def stream_url(url: str) -> str:
    """The ``/streamdata`` URL from a base URL (a URL already ending in it is kept)."""
    url = url.rstrip("/")
    return url if url.endswith(STREAM_PATH) else url + STREAM_PATH


def _label(chunk: Chunk) -> str:
    return f"{chunk.channel}@{chunk.t0!r}+{chunk.n}"


def _resp(payload: bytes) -> tuple[str, Any]:
    """The ``resp`` word and the ``detail`` (or ``body``) of a JSON answer, tolerating non-JSON."""
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "", payload[:200].decode("utf-8", "replace")
    if not isinstance(doc, dict):
        return "", doc
    return str(doc.get("resp", "")), doc.get("detail", doc.get("body"))


def _batch_of(payload: bytes) -> int | None:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    for candidate in (doc, doc.get("body") if isinstance(doc, dict) else None):
        if isinstance(candidate, dict) and isinstance(candidate.get("batch"), int):
            return candidate["batch"]
    return None


class _Stop(Exception):
    """Raised inside a worker to stop the stream (auth refused, or the service is down)."""


class Sender:
    """Sends chunks over one `aiohttp.ClientSession` and tallies a `Summary`."""

    def __init__(
        self,
        session: Any,
        url: str,
        *,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        summary: Summary | None = None,
        rng: random.Random | None = None,
        on_done: Callable[[Chunk, str], None] | None = None,
        stop_on_failure: bool = True,
    ) -> None:
        self.session = session
        self.url = stream_url(url)
        self.headers = {"Content-Type": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.retry = retry or RetryPolicy()
        self.summary = summary if summary is not None else Summary()
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.on_done = on_done
        self.stop_on_failure = stop_on_failure
        self.stopped = False

    async def send(self, chunk: Chunk) -> str:
        """Send one chunk until it is delivered, refused, or out of retries; returns the outcome.

        The outcome is ``"created"``, ``"duplicate"``, ``"refused"`` or ``"failed"``.
        """
        import aiohttp

        body = chunk.body()
        started = time.monotonic()
        failures = 0
        attempts = 0
        while True:
            attempts += 1
            retry_after: float | None = None
            try:
                async with self.session.post(self.url, data=body, headers=self.headers) as answer:
                    payload = await answer.read()
                    status = answer.status
                    retry_after = parse_retry_after(answer.headers.get("Retry-After"))
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, payload = 0, b""
                reason = f"{type(exc).__name__}: {exc}".strip(": ")
            else:
                resp, detail = _resp(payload)
                reason = f"{status} {resp or ''} {detail if detail is not None else ''}".strip()

            if 200 <= status < 300:
                resp, _ = _resp(payload)
                outcome = "duplicate" if resp == "DUPLICATE" else "created"
                return self._done(chunk, outcome, len(body), payload)
            retryable = status == 0 or status == 429 or status >= 500
            if not retryable:
                if status in (401, 403):
                    self.stopped = True
                return self._done(chunk, "refused", 0, payload, f"{_label(chunk)}: {reason}")

            frozen = status == 503 and _resp(payload)[0] == "FROZEN"
            if frozen and not self.retry.wait_frozen:
                return self._done(chunk, "refused", 0, payload, f"{_label(chunk)}: {reason}")
            if not frozen:
                failures += 1
            if retry_after is not None:
                delay = self.retry.after_retry_after(retry_after, self.rng)
            else:
                delay = self.retry.backoff(attempts, self.rng)
            spent = time.monotonic() - started
            if failures >= self.retry.max_attempts or spent + delay > self.retry.max_elapsed:
                if self.stop_on_failure:
                    self.stopped = True
                why = f"gave up after {attempts} attempts in {spent:.1f} s, last: {reason}"
                return self._done(chunk, "failed", 0, payload, f"{_label(chunk)}: {why}")
            self.summary.retries += 1
            await asyncio.sleep(delay)

    def _done(
        self, chunk: Chunk, outcome: str, sent: int, payload: bytes, error: str | None = None
    ) -> str:
        s = self.summary
        if outcome == "created":
            s.created += 1
        elif outcome == "duplicate":
            s.duplicates += 1
        elif outcome == "refused":
            s.refused += 1
        else:
            s.failed += 1
        if outcome in ("created", "duplicate"):
            s.bytes += sent
            s.samples += chunk.n
            s.data_seconds += chunk.duration
            batch = _batch_of(payload)
            if batch is not None:
                s.batches.add(batch)
        if error:
            s._error(error)
        if self.on_done is not None:
            self.on_done(chunk, outcome)
        return outcome


async def send_chunks(
    chunks: Sequence[Chunk],
    url: str,
    *,
    token: str | None = None,
    concurrency: int = 4,
    realtime: bool = False,
    speed: float = 1.0,
    retry: RetryPolicy | None = None,
    timeout: float = 60.0,
    progress: bool | None = False,
    session: Any = None,
) -> Summary:
    """Send ``chunks`` in order with at most ``concurrency`` requests in flight.

    ``realtime`` releases each chunk when its data would have arrived from the detector (its
    ``t0`` relative to the first chunk, divided by ``speed``). ``progress`` shows a tqdm bar
    (None: only when stderr is a terminal). Pass ``session`` to reuse an `aiohttp.ClientSession`.
    """
    import aiohttp
    from tqdm import tqdm

    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if speed <= 0:
        raise ValueError("speed must be > 0")
    summary = Summary(total=len(chunks))
    bar = tqdm(
        total=len(chunks),
        unit="chunk",
        disable=(not sys.stderr.isatty()) if progress is None else not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    owned = session is None
    if owned:
        session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10.0)),
            connector=aiohttp.TCPConnector(limit=concurrency),
        )
    sender = Sender(
        session,
        url,
        token=token,
        retry=retry,
        summary=summary,
        on_done=lambda _chunk, _outcome: bar.update(1),
    )
    queue = iter(chunks)
    data_start = chunks[0].t0 if chunks else 0.0
    wall_start = time.monotonic()

    async def worker() -> None:
        for chunk in queue:  # shared iterator: each chunk goes to exactly one worker
            if sender.stopped:
                summary.skipped += 1
                bar.update(1)
                continue
            if realtime:
                due = wall_start + (chunk.t0 - data_start) / speed
                pause = due - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            await sender.send(chunk)

    try:
        await asyncio.gather(*(worker() for _ in range(min(concurrency, max(1, len(chunks))))))
    finally:
        summary.elapsed = time.monotonic() - wall_start
        bar.close()
        if owned:
            await session.close()
    return summary


async def stream_async(
    data: Any,
    url: str,
    *,
    token: str | None = None,
    chunk_seconds: float = 1.0,
    concurrency: int = 4,
    realtime: bool = False,
    speed: float = 1.0,
    retry: RetryPolicy | None = None,
    timeout: float = 60.0,
    progress: bool | None = False,
    session: Any = None,
) -> Summary:
    """Stream a gwpy `TimeSeries`, a `TimeSeriesDict` (or any mapping of series), or chunks.

    Parameters
    ----------
    data : TimeSeries, TimeSeriesDict, mapping or iterable of `Chunk`
        What to send; each series' channel name comes from the data.
    url : str
        Base URL of the API (``http://127.0.0.1:8000``) or its ``/streamdata`` URL.
    token : str, optional
        Bearer token; default: the ``GLITCHFLOW_TOKEN`` environment variable.
    chunk_seconds : float
        Seconds of data per chunk; the last chunk of a series may be shorter.
    concurrency : int
        Requests in flight at most.
    realtime : bool
        Pace chunks at the data rate (times ``speed``) instead of sending as fast as possible.
    retry : RetryPolicy, optional
        Retry limits; see `RetryPolicy`.

    Returns
    -------
    Summary
        Counts of created, duplicate, refused, failed and skipped chunks, bytes and timing.
    """
    chunks = plan_chunks(data, chunk_seconds)
    if token is None:
        token = os.environ.get(TOKEN_ENV) or None
    return await send_chunks(
        chunks,
        url,
        token=token,
        concurrency=concurrency,
        realtime=realtime,
        speed=speed,
        retry=retry,
        timeout=timeout,
        progress=progress,
        session=session,
    )


def stream(data: Any, url: str, **kwargs: Any) -> Summary:
    """Blocking `stream_async`, for scripts and notebooks; takes the same arguments.

    In a notebook whose event loop is already running, ``await stream_async(...)`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(stream_async(data, url, **kwargs))
    raise RuntimeError("an event loop is running here: use `await gwclient.stream_async(...)`")
