"""The sender against real aiohttp test servers: retries, refusals, duplicates, pacing, tokens."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import numpy as np
import orjson
import pytest
from aiohttp import web

from glitchflow_core.chunk import parse_chunk
from gwclient import cli
from gwclient.chunks import chunk_array
from gwclient.sender import Gap, RetryPolicy, Summary, send_chunks, stream

# gwpy 4.1 still reads astropy's COPY_IF_NEEDED, which astropy 8 deprecates; nothing of ours.
GWPY_WARNING = pytest.mark.filterwarnings(
    "ignore:COPY_IF_NEEDED is no longer needed"
    ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
)
FAST = RetryPolicy(max_attempts=4, max_elapsed=20.0, base_delay=0.01, max_delay=0.05)


def chunks(n: int = 3, channel: str = "H1:TEST-STRAIN", samples: int = 8):
    data = np.arange(n * samples, dtype=np.float64)
    return list(chunk_array(data, 1000.0, 1 / samples, channel, 1.0))


def json_answer(status: int, resp: str, **extra) -> web.Response:
    return web.json_response({"resp": resp, **extra}, status=status)


class FakeApi:
    """A /streamdata that stores chunks by identity, as the real API does, and can misbehave."""

    def __init__(self, script: Callable[[FakeApi, int, tuple], web.Response | None] | None = None):
        self.script = script
        self.stored: dict[tuple, bytes] = {}
        self.calls: Counter[tuple] = Counter()
        self.times: dict[tuple, list[float]] = {}
        self.headers: list[dict[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.delay = 0.0
        self.gate = 0
        """Hold the first requests until this many are in flight together (0: no gate), 10 s max."""
        self.gate_open = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        chunk = parse_chunk(body)
        key = chunk.identity
        self.calls[key] += 1
        self.times.setdefault(key, []).append(time.monotonic())
        self.headers.append(dict(request.headers))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate:
                if self.in_flight >= self.gate:
                    self.gate_open.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.gate_open.wait(), 10.0)
                self.gate_open.set()  # once only: a client that never gets there fails once
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.script is not None:
                answer = self.script(self, self.calls[key], key)
                if answer is not None:
                    return answer
            if key in self.stored:
                return json_answer(200, "DUPLICATE", body={"batch": 1})
            self.stored[key] = body
            return json_answer(201, "CREATED", body={"batch": 1, "bytes": len(body)})
        finally:
            self.in_flight -= 1

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/streamdata", self.handle)
        return app


@pytest.fixture
def serve(aiohttp_server):
    async def start(api: FakeApi) -> str:
        server = await aiohttp_server(api.app())
        return str(server.make_url("")).rstrip("/")

    return start


async def test_frozen_then_created_waits_for_retry_after(serve):
    def frozen_first(api, call, key):
        if call == 1:
            return web.json_response(
                {"resp": "FROZEN", "batch": 1}, status=503, headers={"Retry-After": "1"}
            )
        return None

    api = FakeApi(frozen_first)
    url = await serve(api)
    summary = await send_chunks(chunks(2), url, retry=FAST, concurrency=2)
    assert summary.ok and summary.created == 2 and summary.retries == 2
    for times in api.times.values():
        assert len(times) == 2
        assert times[1] - times[0] >= 1.0  # Retry-After honoured, not the 10 ms backoff


async def test_frozen_waits_do_not_use_up_the_attempts(serve):
    def frozen_five_times(api, call, key):
        if call <= 5:
            return web.json_response({"resp": "FROZEN"}, status=503, headers={"Retry-After": "0"})
        return None

    api = FakeApi(frozen_five_times)
    summary = await send_chunks(chunks(1), await serve(api), retry=FAST)
    assert summary.ok and summary.created == 1
    assert sum(api.calls.values()) == 6


async def test_invalid_chunk_is_refused_and_not_retried(serve):
    def invalid(api, call, key):
        return web.json_response(
            {"resp": "INVALID", "detail": {"field": "h", "reason": "contains NaN or infinity"}},
            status=422,
        )

    api = FakeApi(invalid)
    summary = await send_chunks(chunks(3), await serve(api), retry=FAST)
    assert (summary.refused, summary.created, summary.retries) == (3, 0, 0)
    assert not summary.ok
    assert all(count == 1 for count in api.calls.values())
    assert "422 INVALID" in summary.errors[0] and "'field': 'h'" in summary.errors[0]


async def test_conflict_is_refused_and_not_retried(serve):
    api = FakeApi(lambda api, call, key: json_answer(409, "CONFLICT", detail="overlaps"))
    summary = await send_chunks(chunks(1), await serve(api), retry=FAST)
    assert summary.refused == 1 and sum(api.calls.values()) == 1


async def test_duplicates_count_as_delivered(serve):
    api = FakeApi()
    url = await serve(api)
    first = await send_chunks(chunks(3), url)
    again = await send_chunks(chunks(3), url)
    assert (first.created, first.duplicates) == (3, 0)
    assert (again.created, again.duplicates, again.delivered) == (0, 3, 3)
    assert again.ok
    assert len(api.stored) == 3


async def test_server_errors_and_429_are_retried_with_backoff(serve):
    def flaky(api, call, key):
        if call == 1:
            return json_answer(502, "UPSTREAM_UNREACHABLE", upstream="databuffer")
        if call == 2:
            return json_answer(429, "BUSY")
        return None

    api = FakeApi(flaky)
    summary = await send_chunks(chunks(2), await serve(api), retry=FAST)
    assert summary.ok and summary.created == 2 and summary.retries == 4


async def test_lost_answer_is_retried_and_stored_once(serve):
    """The write lands but the answer is lost: the retry is acknowledged as a duplicate."""

    class DroppingApi(FakeApi):
        async def handle(self, request):
            answer = await super().handle(request)
            key = parse_chunk(await request.read()).identity
            if self.calls[key] == 1:
                request.transport.close()  # stored, but the client never hears it
            return answer

    api = DroppingApi()
    summary = await send_chunks(chunks(3), await serve(api), retry=FAST)
    assert summary.ok
    assert (summary.created, summary.duplicates) == (0, 3)
    assert len(api.stored) == 3 and all(n == 2 for n in api.calls.values())


async def test_retries_are_capped_and_the_rest_is_skipped(serve):
    api = FakeApi(lambda api, call, key: json_answer(500, "ERROR"))
    summary = await send_chunks(chunks(5), await serve(api), retry=FAST, concurrency=1)
    assert (summary.failed, summary.skipped, summary.delivered) == (1, 4, 0)
    assert sum(api.calls.values()) == FAST.max_attempts
    assert "gave up after 4 attempts" in summary.errors[0]


async def test_retries_are_capped_by_total_time(serve):
    api = FakeApi(
        lambda api, call, key: web.json_response(
            {"resp": "FROZEN"}, status=503, headers={"Retry-After": "30"}
        )
    )
    policy = RetryPolicy(max_attempts=100, max_elapsed=1.0)
    url = await serve(api)
    # Retry-After 30 > max_elapsed: one last try at the deadline, not after the 30 s asked.
    summary = await asyncio.wait_for(send_chunks(chunks(1), url, retry=policy), 20.0)
    assert summary.failed == 1 and sum(api.calls.values()) == 2
    assert "gave up after 2 attempts" in summary.errors[0]
    ((first, last),) = api.times.values()
    assert last - first >= 0.9


async def test_connection_refused_fails_after_its_attempts():
    from ports import free_port

    url = f"http://127.0.0.1:{free_port()}"
    summary = await send_chunks(chunks(2), url, retry=FAST, concurrency=1)
    assert summary.failed == 1 and summary.skipped == 1
    assert "Cannot connect" in summary.errors[0] or "Connect" in summary.errors[0]


async def test_bad_token_stops_the_stream(serve):
    api = FakeApi(lambda api, call, key: json_answer(401, "UNAUTHORIZED"))
    summary = await send_chunks(chunks(4), await serve(api), token="wrong", concurrency=1)
    assert (summary.refused, summary.skipped) == (1, 3)
    assert sum(api.calls.values()) == 1


async def test_token_is_sent_as_bearer(serve, monkeypatch):
    from gwclient.sender import stream_async

    api = FakeApi()
    url = await serve(api)
    await send_chunks(chunks(1), url, token="s3cret-token-value")
    monkeypatch.setenv("GLITCHFLOW_TOKEN", "from-the-environment\n")  # as a file gives it
    await stream_async(chunks(1, channel="L1:TEST-STRAIN"), url)
    assert [h.get("Authorization") for h in api.headers] == [
        "Bearer s3cret-token-value",
        "Bearer from-the-environment",
    ]
    assert all(h["Content-Type"] == "application/json" for h in api.headers)


async def test_concurrency_is_bounded(serve):
    api = FakeApi()
    api.gate = 3  # the first requests wait for each other: reaching 3 at once does not hang on luck
    api.delay = 0.05
    summary = await send_chunks(chunks(20), await serve(api), concurrency=3)
    assert summary.created == 20
    assert api.max_in_flight == 3


@pytest.mark.parametrize("speed", [1.0, 0.5])
async def test_realtime_never_sends_a_chunk_before_its_time(serve, speed):
    # Pacing is by absolute due times, so a chunk held up by load may go late and the next one
    # right after it: only "never early" holds, whatever the load, and only a bug breaks it.
    api = FakeApi()
    data = np.zeros(40)
    paced = list(chunk_array(data, 50.0, 0.01, "H1:TEST-STRAIN", 0.1))  # 4 chunks of 0.1 s
    url = await serve(api)
    started = time.monotonic()  # no later than the sender's own start
    summary = await send_chunks(paced, url, realtime=True, concurrency=4, speed=speed)
    finished = time.monotonic()
    assert summary.ok and summary.created == len(paced)
    epsilon = 1e-3
    for chunk in paced:
        due = started + (chunk.t0 - paced[0].t0) / speed
        (received,) = api.times[(chunk.channel, chunk.t0, chunk.n, chunk.dt)]
        assert received >= due - epsilon, (chunk.t0, received - started)
    last_due = (paced[-1].t0 - paced[0].t0) / speed
    assert finished - started >= last_due - epsilon
    assert summary.elapsed >= last_due - epsilon


async def test_received_bodies_rebuild_the_series(serve):
    api = FakeApi()
    data = np.random.default_rng(0).normal(size=1000) * 1e-21
    sent = list(chunk_array(data, 1126259462.0, 1 / 256, "L1:GWOSC-4KHZ_R1_STRAIN", 1.0))
    summary = await send_chunks(sent, await serve(api), concurrency=4)
    assert summary.created == len(sent) and summary.bytes == sum(len(c.body()) for c in sent)
    stored = sorted((parse_chunk(b) for b in api.stored.values()), key=lambda c: c.t0)
    assert np.concatenate([c.h for c in stored]).tobytes() == data.tobytes()
    assert summary.batches == {1}


def test_summary_line_names_every_count():
    s = Summary(total=5, created=2, duplicates=1, refused=1, failed=1, bytes=2_000_000, elapsed=2)
    assert not s.ok
    line = s.line()
    for text in ("3/5 chunks delivered", "2 created", "1 duplicates", "1 refused", "1 failed"):
        assert text in line
    assert "1.00 MB/s" in line


# -- the blocking API and the command, against a server in its own thread ---------------------


@pytest.fixture
def threaded_api() -> Iterator[tuple[FakeApi, str]]:
    api = FakeApi()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, object] = {}

    async def run() -> None:
        runner = web.AppRunner(api.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        holder["runner"] = runner
        holder["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(run(), loop).result(10)
    ready.wait(10)
    yield api, f"http://127.0.0.1:{holder['port']}"
    runner = holder["runner"]
    assert isinstance(runner, web.AppRunner)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_stream_blocking_api_sends_a_series(threaded_api):
    api, url = threaded_api
    summary = stream(chunks(3), url + "/streamdata", concurrency=2)
    assert summary.ok and summary.created == 3 and len(api.stored) == 3


async def test_stream_blocking_api_refuses_inside_a_running_loop():
    with pytest.raises(RuntimeError, match="stream_async"):
        stream(chunks(1), "http://127.0.0.1:1")


@GWPY_WARNING
def test_cli_streams_synthetic_data_and_prints_a_summary(threaded_api, capsys):
    api, url = threaded_api
    status = cli.main(
        [
            "--url",
            url,
            "--synthetic",
            "--detector",
            "H1,L1",
            "--duration",
            "3",
            "--sample-rate",
            "256",
            "--glitches",
            "1",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert out.startswith("gwclient: 6/6 chunks delivered (6 created")
    assert {key[0] for key in api.stored} == {"H1:SYNTH-STRAIN", "L1:SYNTH-STRAIN"}
    doc = orjson.loads(next(iter(api.stored.values())))
    assert set(doc) == {"h", "t", "channel"}


@GWPY_WARNING
def test_cli_exits_non_zero_when_a_chunk_is_refused(threaded_api, capsys, monkeypatch):
    api, url = threaded_api
    api.script = lambda api, call, key: json_answer(409, "CONFLICT")
    monkeypatch.setenv("SRV", url + "/streamdata")  # the original variable
    status = cli.main(["--synthetic", "--duration", "1", "--sample-rate", "64", "--quiet"])
    assert status == cli.EXIT_UNDELIVERED
    assert "0/1 chunks delivered" in capsys.readouterr().out


def frozen_answer(retry_after: str = "0") -> web.Response:
    return web.json_response(
        {"resp": "FROZEN", "body": {"batch": 1}}, status=503, headers={"Retry-After": retry_after}
    )


async def test_summary_counts_what_was_sent_and_names_the_gaps(serve):
    refused = {1002.0, 1003.0, 1005.0}
    api = FakeApi(
        lambda api, call, key: json_answer(409, "CONFLICT") if key[1] in refused else None
    )
    summary = await send_chunks(chunks(6), await serve(api), retry=FAST, concurrency=2)
    assert (summary.sent, summary.created, summary.refused, summary.skipped) == (6, 3, 3, 0)
    assert summary.gaps == [
        Gap("H1:TEST-STRAIN", 1002.0, 1004.0),  # two chunks in a row: one gap
        Gap("H1:TEST-STRAIN", 1005.0, 1006.0),
    ]
    line = summary.line()
    assert "6 sent" in line
    assert "2 gaps: H1:TEST-STRAIN GPS 1002-1004 (2 s), H1:TEST-STRAIN GPS 1005-1006 (1 s)" in line


async def test_a_stream_without_gaps_says_so(serve):
    summary = await send_chunks(chunks(2), await serve(FakeApi()))
    assert summary.gaps == [] and "no gaps" in summary.line()


async def test_frozen_buffer_is_explained_once_and_the_wait_shown(serve, monkeypatch):
    from gwclient import sender

    monkeypatch.setattr(sender, "FROZEN_EVERY", 0.2)
    thaw = time.monotonic() + 1.0  # frozen for the first second, for every chunk

    def frozen_for_a_while(api, call, key):
        return frozen_answer("0") if time.monotonic() < thaw else None

    notices: list[str] = []
    api = FakeApi(frozen_for_a_while)
    summary = await send_chunks(
        chunks(3), await serve(api), retry=FAST, concurrency=3, notify=notices.append
    )
    assert summary.ok and summary.created == 3
    explained = [n for n in notices if "is FROZEN:" in n]
    assert len(explained) == 1, notices  # once, not once per chunk or per retry
    assert "client_scripts/cleanbuf.sh" in explained[0] and "Airflow" in explained[0]
    assert notices[0] is explained[0]
    assert any("still FROZEN after" in n for n in notices[1:-1]), notices
    assert "takes data again" in notices[-1]


async def test_a_frozen_answer_is_final_when_not_waiting(serve):
    api = FakeApi(lambda api, call, key: frozen_answer("0"))
    summary = await send_chunks(chunks(2), await serve(api), retry=FAST, wait_frozen=False)
    assert (summary.refused, summary.retries) == (2, 0)
    assert sum(api.calls.values()) == 2
    assert all("503 FROZEN" in error for error in summary.errors)


@GWPY_WARNING
def test_cli_explains_a_frozen_buffer_on_stderr(threaded_api, capsys):
    api, url = threaded_api
    api.script = lambda api, call, key: frozen_answer("0") if call == 1 else None
    status = cli.main(
        [
            "--url",
            url,
            "--synthetic",
            "--duration",
            "2",
            "--sample-rate",
            "64",
            "--concurrency",
            "1",
        ]
    )
    captured = capsys.readouterr()
    assert status == 0
    assert captured.err.count("is FROZEN:") == 1
    assert "takes data again" in captured.err
    assert captured.out.startswith("gwclient: 2/2 chunks delivered (2 created")
    assert "no gaps" in captured.out


@GWPY_WARNING
def test_cli_quiet_prints_only_the_summary(threaded_api, capsys):
    api, url = threaded_api
    api.script = lambda api, call, key: frozen_answer("0") if call == 1 else None
    status = cli.main(["--url", url, "--synthetic", "--duration", "1", "--sample-rate", "64", "-q"])
    captured = capsys.readouterr()
    assert status == 0 and "FROZEN" not in captured.err
    assert captured.out.count("\n") == 1


def test_ctrl_c_on_a_frozen_buffer_stops_with_a_summary(threaded_api):
    api, url = threaded_api
    api.script = lambda api, call, key: frozen_answer("1")  # frozen until the user gives up
    command = [sys.executable, "-m", "gwclient", "--url", url, "--synthetic", "--duration", "3"]
    command += ["--sample-rate", "64", "--concurrency", "2"]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while sum(api.calls.values()) < 3 and time.monotonic() < deadline:  # a retry: told
            time.sleep(0.05)
        assert sum(api.calls.values()) >= 3, "gwclient never reached the server"
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 130, err
    assert err.count("is FROZEN:") == 1, err
    assert "interrupted" in err and "Traceback" not in err
    assert out.startswith("gwclient: 0/3 chunks delivered (0 created, 0 duplicates"), out
    assert "2 interrupted" in out and "1 skipped" in out and "2 sent" in out
    assert "1 gaps: H1:SYNTH-STRAIN GPS" in out and "(3 s)" in out


def test_ctrl_c_while_reading_the_source_exits_130_quietly(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "load_source", interrupted)
    assert cli.main(["--url", "http://127.0.0.1:1", "--synthetic"]) == cli.EXIT_INTERRUPTED
    assert "interrupted before anything was sent" in capsys.readouterr().err
