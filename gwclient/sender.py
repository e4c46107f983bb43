"""Send chunks to ``POST /streamdata``: one aiohttp session, bounded concurrency, safe retries.

A chunk's identity is ``(channel, t0, len(h), dt)`` and the API answers a repeated chunk with
``DUPLICATE`` instead of storing it twice, so ``/streamdata`` is idempotent and a chunk is retried
by the project's one policy (`glitchflow_core.retry.RetryPolicy`): connection errors and timeouts,
429 and 5xx (503 ``FROZEN`` included, waiting its ``Retry-After``), with jittered exponential
backoff, capped by attempts and by total time per chunk. Other 4xx answers are final. A 401/403
stops the stream (no other chunk could pass), and so does a chunk that exhausted its retries,
since the service is then down.

A frozen buffer is where the long waits happen: the batch is full and stays frozen until it is
flushed. `FrozenWatch` says so once, with what frees it, and shows how long the stream has waited.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import tenacity

from glitchflow_core.edge import BINARY_MEDIA, JSON_MEDIA, NDJSON_MEDIA
from glitchflow_core.retry import RetryPolicy, retryable_status
from glitchflow_core.upstream import Answer
from gwclient.chunks import PlannedChunk, plan_chunks

TOKEN_ENV = "GLITCHFLOW_TOKEN"  # noqa: S105 - a variable name, not a secret
STREAM_PATH = "/streamdata"
MAX_ERRORS_KEPT = 20
MAX_GAPS_SHOWN = 3
FROZEN_EVERY = 30.0
"""Seconds between the lines that show a frozen wait, when there is no progress bar."""
FROZEN_HELP = (
    "the buffer is FROZEN: its batch is full and waits to be used for training. It takes data "
    "again once that batch is flushed, by the Airflow DAG (after training) or by hand with "
    "client_scripts/cleanbuf.sh (POST /cleanbuf). Waiting up to {max_wait:g} s per chunk "
    "(--max-wait); Ctrl-C stops with a summary."
)

__all__ = ["Gap", "RetryPolicy", "Sender", "Summary", "send_chunks", "stream", "stream_async"]


@dataclass(frozen=True)
class Gap:
    """GPS seconds ``[start, end)`` of one channel that were not delivered."""

    channel: str
    start: float
    end: float

    def __str__(self) -> str:
        return f"{self.channel} GPS {self.start:g}-{self.end:g} ({self.end - self.start:g} s)"


def gaps_of(chunks: Sequence[PlannedChunk], delivered: set[int]) -> list[Gap]:
    """The spans of ``chunks`` whose index is not in ``delivered``, adjacent ones merged."""
    missing = sorted(
        (chunks[i] for i in range(len(chunks)) if i not in delivered),
        key=lambda chunk: (chunk.channel, chunk.t0),
    )
    gaps: list[Gap] = []
    for chunk in missing:
        end = chunk.t0 + chunk.duration
        last = gaps[-1] if gaps else None
        if last and last.channel == chunk.channel and chunk.t0 <= last.end + chunk.dt / 2:
            gaps[-1] = Gap(last.channel, last.start, max(last.end, end))
        else:
            gaps.append(Gap(chunk.channel, chunk.t0, end))
    return gaps


@dataclass
class Summary:
    """What happened to the chunks of one stream.

    ``created`` + ``duplicates`` were delivered (stored, now or before); ``refused`` got a final
    4xx (409 conflict, 422 invalid, 401 ...); ``failed`` ran out of retries; ``interrupted`` were
    sent but had no answer when the stream was stopped (Ctrl-C); ``skipped`` were never sent.
    ``gaps`` are the spans of data not delivered.
    """

    total: int = 0
    sent: int = 0
    created: int = 0
    duplicates: int = 0
    refused: int = 0
    failed: int = 0
    interrupted: int = 0
    skipped: int = 0
    retries: int = 0
    bytes: int = 0
    samples: int = 0
    data_seconds: float = 0.0
    elapsed: float = 0.0
    batches: set[int] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)

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
        interrupted = f", {self.interrupted} interrupted" if self.interrupted else ""
        text = (
            f"{self.delivered}/{self.total} chunks delivered ({self.created} created, "
            f"{self.duplicates} duplicates, {self.refused} refused, {self.failed} failed, "
            f"{self.skipped} skipped{interrupted}), {self.sent} sent, "
            f"{self.bytes / 1e6:.2f} MB and {self.data_seconds:g} s "
            f"of data in {self.elapsed:.2f} s ({self.rate / 1e6:.2f} MB/s, "
            f"{self.chunk_rate:.1f} chunks/s, {self.retries} retries); {self._gaps()}"
        )
        if self.errors:
            text += f"; first error: {self.errors[0]}"
        return text

    def _gaps(self) -> str:
        if not self.gaps:
            return "no gaps"
        shown = ", ".join(str(gap) for gap in self.gaps[:MAX_GAPS_SHOWN])
        hidden = len(self.gaps) - MAX_GAPS_SHOWN
        more = f" and {hidden} more" if hidden > 0 else ""
        return f"{len(self.gaps)} gaps: {shown}{more}"

    def _error(self, message: str) -> None:
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(message)


class FrozenWatch:
    """Says once that the buffer is frozen and what frees it, then shows the wait.

    ``notify`` prints a line; with a progress ``bar`` the wait shows as its postfix, without one
    as a line every `FROZEN_EVERY` seconds.
    """

    def __init__(self, notify: Callable[[str], None], bar: Any, max_wait: float) -> None:
        self.notify = notify
        self.bar = bar
        self.max_wait = max_wait
        self.told = False
        self.since: float | None = None
        self.shown = 0.0

    def frozen(self) -> None:
        """A chunk met the frozen buffer and will wait."""
        now = time.monotonic()
        if self.since is None:
            self.since = self.shown = now
            if not self.told:
                self.notify(FROZEN_HELP.format(max_wait=self.max_wait))
                self.told = True
            else:
                self.notify("the buffer is FROZEN again; waiting")
        waited = now - self.since
        if not self.bar.disable:
            self.bar.set_postfix_str(f"buffer FROZEN, waiting {waited:.0f} s")
        elif now - self.shown >= FROZEN_EVERY:
            self.shown = now
            self.notify(f"the buffer is still FROZEN after {waited:.0f} s; waiting")

    def delivered(self) -> None:
        """A chunk went in: the buffer takes data again, if it was frozen."""
        if self.since is None:
            return
        waited = time.monotonic() - self.since
        self.since = None
        if not self.bar.disable:
            self.bar.set_postfix_str("")
        self.notify(f"the buffer takes data again after {waited:.0f} s FROZEN")


def stream_url(url: str) -> str:
    """The ``/streamdata`` URL from a base URL (a URL already ending in it is kept)."""
    url = url.rstrip("/")
    return url if url.endswith(STREAM_PATH) else url + STREAM_PATH


def _label(chunk: PlannedChunk) -> str:
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


def _reason(status: int, payload: bytes) -> str:
    """``409 CONFLICT overlaps ...``: the status, ``resp`` word and detail of an answer."""
    resp, detail = _resp(payload)
    return f"{status} {resp or ''} {detail if detail is not None else ''}".strip()


def _batch_of(payload: bytes) -> int | None:
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    for candidate in (doc, doc.get("body") if isinstance(doc, dict) else None):
        if isinstance(candidate, dict) and isinstance(candidate.get("batch"), int):
            return candidate["batch"]
    return None


def _frozen(answer: Answer) -> bool:
    return answer.status_code == 503 and _resp(answer.content)[0] == "FROZEN"


class _FinalFrozen(Exception):
    """Raised by a send that must not wait on a frozen buffer: tenacity does not retry it."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("FROZEN")
        self.answer = answer


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
        on_done: Callable[[PlannedChunk, str], None] | None = None,
        on_frozen: Callable[[], None] | None = None,
        stop_on_failure: bool = True,
        wait_frozen: bool = True,
        binary: bool | None = None,
    ) -> None:
        self.session = session
        self.url = stream_url(url)
        auth = {}
        # A token read from a file often ends with a newline, which no server would accept.
        token = token.strip() if token else None
        if token:
            auth["Authorization"] = f"Bearer {token}"
        self.headers = {"Content-Type": JSON_MEDIA, **auth}
        self.binary_headers = {"Content-Type": BINARY_MEDIA, **auth}
        self.ndjson_headers = {"Content-Type": NDJSON_MEDIA, **auth}
        self.binary_allowed = binary is not False
        """False once the server refused a binary chunk (415), or when asked to send JSON."""
        self.use_binary = binary is True
        """Send chunks as float64 samples: asked for, or offered by the server (Accept-Post)."""
        self.multi_allowed = True
        """False once the server refused several chunks in one request (415): one at a time."""
        self.retry = retry or RetryPolicy()
        self.summary = summary if summary is not None else Summary()
        self.on_done = on_done
        self.on_frozen = on_frozen
        self.stop_on_failure = stop_on_failure
        self.wait_frozen = wait_frozen
        """False: a 503 FROZEN answer is final (the chunk is refused), as the demo wants."""
        self.stopped = False

    async def send(self, chunk: PlannedChunk) -> str:
        """Send one chunk until it is delivered, refused, or out of retries; returns the outcome.

        The outcome is ``"created"``, ``"duplicate"``, ``"refused"`` or ``"failed"``.
        """
        import aiohttp

        body = b""
        started = time.monotonic()
        attempts = 0
        self.summary.sent += 1

        async def post() -> Answer:
            nonlocal attempts, body
            attempts += 1
            reply = None
            if self.use_binary:
                body = chunk.binary_body()
                reply = await self._post(body, self.binary_headers, chunk.binary_params())
                if reply.status_code == 415:  # a server without the binary form: JSON from now
                    self.use_binary = self.binary_allowed = False
                    reply = None
            if reply is None:
                body = chunk.body()
                reply = await self._post(body, self.headers)
            return reply

        try:
            answer = await self._with_retries(post)
        except _FinalFrozen as final:
            payload = final.answer.content
            reason = _reason(final.answer.status_code, payload)
            return self._done(chunk, "refused", 0, payload, f"{_label(chunk)}: {reason}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}".strip(": ")
            return self._gave_up(chunk, attempts, started, reason, b"")

        status, payload = answer.status_code, answer.content
        if 200 <= status < 300:
            outcome = "duplicate" if _resp(payload)[0] == "DUPLICATE" else "created"
            return self._done(chunk, outcome, len(body), payload)
        reason = _reason(status, payload)
        if retryable_status(status):  # still failing when the policy gave up
            return self._gave_up(chunk, attempts, started, reason, payload)
        if status in (401, 403):
            self.stopped = True
        return self._done(chunk, "refused", 0, payload, f"{_label(chunk)}: {reason}")

    async def _with_retries(self, post: Callable[[], Awaitable[Answer]]) -> Answer:
        """``post()`` under the retry policy: a repeated chunk is answered DUPLICATE, never
        stored twice, so every write may be repeated; a FROZEN answer is final (`_FinalFrozen`)
        unless the sender waits on a frozen buffer."""
        import aiohttp

        async def attempt() -> Answer:
            reply = await post()
            if not self.wait_frozen and _frozen(reply):
                raise _FinalFrozen(reply)
            return reply

        return await self.retry.acall(
            attempt,
            idempotent=True,
            not_sent=(aiohttp.ClientConnectorError,),
            no_answer=(aiohttp.ClientError, TimeoutError),
            before_sleep=self._before_retry,
        )

    async def _post(
        self, body: bytes, headers: dict[str, str], params: dict[str, str] | None = None
    ) -> Answer:
        """One POST; the answer's ``Accept-Post`` switches to the binary form when offered."""
        async with self.session.post(self.url, data=body, headers=headers, params=params) as answer:
            reply = Answer(answer.status, await answer.read(), answer.headers)
        if self.binary_allowed and BINARY_MEDIA in reply.headers.get("Accept-Post", ""):
            self.use_binary = True
        return reply

    async def send_batch(self, chunks: Sequence[PlannedChunk]) -> list[str]:
        """Send several chunks in one NDJSON request; each is answered, retried and tallied on
        its own (a chunk refused FROZEN is sent again, with the others still waiting, after
        the ``Retry-After`` of the answer). Returns each chunk's outcome, as `send`."""
        import aiohttp

        if len(chunks) < 2 or not self.multi_allowed:
            return [await self.send(chunk) for chunk in chunks]
        started = time.monotonic()
        attempts = 0
        self.summary.sent += len(chunks)
        pending = list(range(len(chunks)))
        outcomes: list[str] = ["failed"] * len(chunks)

        async def post() -> Answer:
            nonlocal attempts
            attempts += 1
            body = b"\n".join(chunks[i].body() for i in pending) + b"\n"
            reply = await self._post(body, self.ndjson_headers)
            if reply.status_code == 207:
                reply = self._batch_results(chunks, pending, outcomes, reply)
            return reply

        try:
            answer = await self._with_retries(post)
        except _FinalFrozen as final:
            answer = final.answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = f"{type(exc).__name__}: {exc}".strip(": ")
            for i in pending:
                outcomes[i] = self._gave_up(chunks[i], attempts, started, reason, b"")
            return outcomes
        status, payload = answer.status_code, answer.content
        if status == 415 and pending == list(range(len(chunks))):
            # A server that takes one chunk a request: so be it, from now on.
            self.multi_allowed = False
            self.summary.sent -= len(chunks)
            return [await self.send(chunk) for chunk in chunks]
        reason = _reason(status, payload)
        for i in pending:
            if retryable_status(status):
                outcomes[i] = self._gave_up(chunks[i], attempts, started, reason, payload)
            else:
                if status in (401, 403):
                    self.stopped = True
                error = f"{_label(chunks[i])}: {reason}"
                outcomes[i] = self._done(chunks[i], "refused", 0, payload, error)
        return outcomes

    def _batch_results(
        self, chunks: Sequence[PlannedChunk], pending: list[int], outcomes: list[str], reply: Answer
    ) -> Answer:
        """Tally the final results of a 207 MULTI answer; keep in ``pending`` the chunks to send
        again, and answer for them as one refusal (503 with the longest ``Retry-After``)."""
        try:
            results = orjson.loads(reply.content).get("results")
        except (orjson.JSONDecodeError, AttributeError):
            results = None
        if not isinstance(results, list) or len(results) != len(pending):
            return Answer(502, b'{"resp":"UPSTREAM_ERROR","detail":"MULTI without results"}', {})
        again: list[int] = []
        wait: int | None = None
        frozen = False
        for i, result in zip(pending, results, strict=True):
            status, resp = int(result.get("status") or 0), str(result.get("resp") or "")
            payload = orjson.dumps(result)
            if 200 <= status < 300:
                outcome = "duplicate" if resp == "DUPLICATE" else "created"
                outcomes[i] = self._done(chunks[i], outcome, len(chunks[i].body()), payload)
            elif retryable_status(status):
                again.append(i)
                frozen = frozen or resp == "FROZEN"
                if isinstance(result.get("retry_after"), int):
                    wait = max(wait or 0, result["retry_after"])
            else:
                error = f"{_label(chunks[i])}: {_reason(status, payload)}"
                outcomes[i] = self._done(chunks[i], "refused", 0, payload, error)
        pending[:] = again
        if not again:
            return reply
        doc = {"resp": "FROZEN" if frozen else "RETRY", "chunks": len(again)}
        headers = {} if wait is None else {"Retry-After": str(wait)}
        return Answer(503, orjson.dumps(doc), headers)

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        self.summary.retries += 1
        outcome = state.outcome
        if self.on_frozen and outcome and not outcome.failed and _frozen(outcome.result()):
            self.on_frozen()

    def _gave_up(
        self, chunk: PlannedChunk, attempts: int, started: float, reason: str, payload: bytes
    ) -> str:
        if self.stop_on_failure:
            self.stopped = True
        spent = time.monotonic() - started
        why = f"gave up after {attempts} attempts in {spent:.1f} s, last: {reason}"
        return self._done(chunk, "failed", 0, payload, f"{_label(chunk)}: {why}")

    def _done(
        self, chunk: PlannedChunk, outcome: str, sent: int, payload: bytes, error: str | None = None
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
    chunks: Sequence[PlannedChunk],
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
    summary: Summary | None = None,
    notify: Callable[[str], None] | None = None,
    wait_frozen: bool = True,
    batch: int = 1,
    binary: bool | None = None,
) -> Summary:
    """Send ``chunks`` in order with at most ``concurrency`` requests in flight.

    ``batch`` chunks go in one request (NDJSON; 1: one chunk a request). ``binary``: None
    sends float64 samples once the server offers it (``Accept-Post``), True from the start
    (JSON again on 415), False never.

    ``realtime`` releases each chunk when its data would have arrived from the detector (its
    ``t0`` relative to the first chunk, divided by ``speed``). ``progress`` shows a tqdm bar
    (None: only when stderr is a terminal). Pass ``session`` to reuse an `aiohttp.ClientSession`.
    ``summary`` is filled in as chunks finish, so that a caller whose stream was interrupted
    (Ctrl-C) still has it. ``notify`` gets the lines that explain a wait on a frozen buffer.
    ``wait_frozen=False`` makes a FROZEN answer final (the chunk is refused).
    """
    import aiohttp
    from tqdm import tqdm

    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if speed <= 0:
        raise ValueError("speed must be > 0")
    summary = summary if summary is not None else Summary()
    summary.total = len(chunks)
    bar = tqdm(
        total=len(chunks),
        unit="chunk",
        disable=(not sys.stderr.isatty()) if progress is None else not progress,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    retry = retry or RetryPolicy()
    watch = FrozenWatch(notify, bar, retry.max_elapsed) if notify else None
    delivered: set[int] = set()
    finished = 0

    def done(_chunk: PlannedChunk, outcome: str) -> None:
        nonlocal finished
        finished += 1
        bar.update(1)
        if watch and outcome in ("created", "duplicate"):
            watch.delivered()

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
        on_done=done,
        on_frozen=watch.frozen if watch else None,
        wait_frozen=wait_frozen,
        binary=binary,
    )
    groups = iter([range(i, min(i + batch, len(chunks))) for i in range(0, len(chunks), batch)])
    data_start = chunks[0].t0 if chunks else 0.0
    wall_start = time.monotonic()

    async def worker() -> None:
        for group in groups:  # shared iterator: each chunk goes to exactly one worker
            if sender.stopped:
                continue
            if realtime:
                due = wall_start + (chunks[group[-1]].t0 - data_start) / speed
                pause = due - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            if len(group) == 1:
                outcomes = [await sender.send(chunks[group[0]])]
            else:
                outcomes = await sender.send_batch([chunks[i] for i in group])
            delivered.update(
                i for i, o in zip(group, outcomes, strict=True) if o in ("created", "duplicate")
            )

    workers = min(concurrency, max(1, -(-len(chunks) // batch)))
    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:  # also when cancelled (Ctrl-C): the summary says what was left
        summary.elapsed = time.monotonic() - wall_start
        summary.skipped = summary.total - summary.sent
        summary.interrupted = summary.sent - finished
        summary.gaps = gaps_of(chunks, delivered)
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
    data : TimeSeries, TimeSeriesDict, mapping or iterable of `PlannedChunk`
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
