"""The API's real upstream client (`LogicClient`, aiohttp) against real sockets, no mocks.

A refused or broken connection must be reported as unreachable (502), a slow upstream as a
timeout (504), and a working one relayed; never FROZEN or WAITING. The first tests drive
`LogicClient` itself; the last ones the whole app in front of the same kinds of servers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import httpx
import pytest
from fake_upstream import Delay, FakeUpstream, Hangup, Reply
from ports import free_port

from glitchflow_api.upstream import UPSTREAM, LogicClient
from glitchflow_core.retry import BACKOFF_BASE, CONNECT_ATTEMPTS
from glitchflow_core.upstream import UpstreamTimeout, UpstreamUnreachable

ApiFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
ClientFactory = Callable[..., LogicClient]
LARGE_BODY = b"x" * (32 * 1024 * 1024)
"""Far more than the loopback socket buffers hold: sending it stalls when nobody reads."""


@pytest.fixture
async def make_client() -> AsyncIterator[ClientFactory]:
    """``make_client(url, timeout=2.0, token=None)``: a `LogicClient`, closed after the test."""
    made: list[LogicClient] = []

    def make(base_url: str, timeout: float = 2.0, token: str | None = None) -> LogicClient:
        made.append(LogicClient(base_url, timeout, token))
        return made[-1]

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def closing_server() -> AsyncIterator[str]:
    """A server that accepts each connection and closes it without answering."""

    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def deaf_server() -> AsyncIterator[str]:
    """A server that accepts connections and never reads from them.

    Not a `FakeUpstream`: that one reads each request whole before it decides what to do.
    """
    held: list[asyncio.StreamWriter] = []

    async def never_read(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(never_read, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# --- LogicClient ------------------------------------------------------------------------------


async def test_client_refused_connection_is_unreachable_after_retries(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[float] = []
    real_connect = aiohttp.TCPConnector.connect

    async def counting_connect(self: aiohttp.TCPConnector, *args: Any, **kwargs: Any) -> Any:
        attempts.append(time.monotonic())
        return await real_connect(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.TCPConnector, "connect", counting_connect)
    client = make_client(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(UpstreamUnreachable) as failure:
        await client.request("POST", "/stream", content=b"{}")
    assert failure.value.upstream == UPSTREAM
    assert failure.value.body()["resp"] == "UPSTREAM_UNREACHABLE"
    assert len(attempts) == CONNECT_ATTEMPTS
    pauses = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    for attempt, pause in enumerate(pauses):
        # At least half the exponential step: the other half is jitter.
        assert pause >= 0.5 * BACKOFF_BASE * 2**attempt * 0.95, pauses


async def test_client_upstream_that_stops_reading_a_large_body_is_a_timeout(
    make_client: ClientFactory, deaf_server: str
) -> None:
    client = make_client(deaf_server, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as failure:
        await asyncio.wait_for(client.request("POST", "/stream", content=LARGE_BODY), 30)
    elapsed = time.monotonic() - started
    assert failure.value.upstream == UPSTREAM
    assert failure.value.status == 504
    assert 0.9 <= elapsed < 2.0, f"gave up after {elapsed:.2f} s, not after the 1 s timeout"


async def test_client_slow_answer_is_a_timeout_and_not_repeated(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.post("/freezeds").reply(Delay(2, Reply(200, json={"resp": "FROZEN"})))
    client = make_client(logic.url, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await client.request("POST", "/freezeds", json={"user": "airflow"})
    assert time.monotonic() - started < 1.5
    assert route.call_count == 1


async def test_client_busy_answer_is_passed_back_not_waited_on(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.get("/bufstat").reply(
        Reply(503, json={"resp": "BUSY"}, headers={"Retry-After": "1"}), Reply(200, json={})
    )
    answer = await make_client(logic.url).request("GET", "/bufstat")  # idempotent, yet once
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert route.call_count == 1


async def test_client_broken_connection_is_unreachable(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.post("/stream").reply(Hangup())
    client = make_client(logic.url)
    with pytest.raises(UpstreamUnreachable) as failure:
        await client.request("POST", "/stream", content=b"{}")
    assert failure.value.upstream == UPSTREAM
    assert route.call_count == 1, "a request that was sent is never repeated"


async def test_client_connection_closed_without_answer_is_unreachable(
    make_client: ClientFactory, closing_server: str
) -> None:
    client = make_client(closing_server)
    with pytest.raises(UpstreamUnreachable):
        await client.request("GET", "/bufstat")


@pytest.mark.parametrize(
    ("token", "expected"), [("svc-token-0123", "Bearer svc-token-0123"), (None, None)]
)
async def test_client_sends_the_service_token(
    make_client: ClientFactory, logic: FakeUpstream, token: str | None, expected: str | None
) -> None:
    route = logic.get("/bufstat").respond(200, json={"n_itm": 0})
    await make_client(logic.url, token=token).request("GET", "/bufstat")
    assert route.calls.last.headers.get("authorization") == expected


async def test_client_serialises_json_with_its_content_type(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.post("/flushbuf").respond(200, json={"resp": "CLEANED"})
    answer = await make_client(logic.url).request(
        "POST", "/flushbuf", json={"msg": "trained", "force": False}
    )
    assert answer.status_code == 200
    assert route.calls.last.json() == {"msg": "trained", "force": False}
    assert route.calls.last.headers["content-type"] == "application/json"


async def test_client_sends_content_as_it_is(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    body = b'{"h": [1.0,  2.0], "t": [1e9, 0.5]}'  # not re-encoded: the spacing survives
    route = logic.post("/stream").respond(201, json={"resp": "CREATED"})
    await make_client(logic.url).request(
        "POST", "/stream", content=body, headers={"Content-Type": "application/json"}
    )
    assert route.calls.last.content == body
    assert route.calls.last.headers["content-type"] == "application/json"


async def test_client_sends_params_in_the_query(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.get("/dumpf").respond(200, json={"nmlist": []})
    await make_client(logic.url).request("GET", "/dumpf", params={"limit": 1, "offset": 2})
    assert route.calls.last.query == {"limit": "1", "offset": "2"}


async def test_client_keeps_the_path_prefix_of_base_url(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.get("/logic/bufstat").respond(200, json={"n_itm": 3})
    answer = await make_client(f"{logic.url}/logic").request("GET", "/bufstat")
    assert (answer.status_code, answer.content) == (200, b'{"n_itm":3}')
    assert route.call_count == 1


async def test_client_answer_is_read_whole_with_case_insensitive_headers(
    make_client: ClientFactory, logic: FakeUpstream
) -> None:
    route = logic.post("/stream").respond(
        503, json={"resp": "FROZEN", "batch": 4}, headers={"Retry-After": "12"}
    )
    answer = await make_client(logic.url).request("POST", "/stream", content=b"{}")
    assert answer.status_code == 503
    assert route.call_count == 1  # passed back at once: the client, not the service, waits
    assert answer.content == b'{"resp":"FROZEN","batch":4}'
    assert answer.headers["retry-after"] == answer.headers["RETRY-AFTER"] == "12"
    assert answer.headers["content-type"] == "application/json"


# --- the app in front of the same servers -----------------------------------------------------


async def test_refused_connection_is_unreachable(make_api: ApiFactory) -> None:
    async with make_api(ds_burl=f"http://127.0.0.1:{free_port()}") as api:
        answer = await api.post("/train", json={"user": "airflow", "token": "t"})
    assert answer.status_code == 502
    assert answer.json()["resp"] == "UPSTREAM_UNREACHABLE"


async def test_dropped_connection_is_unreachable(make_api: ApiFactory, closing_server: str) -> None:
    async with make_api(ds_burl=closing_server) as api:
        answer = await api.get("/stats")
    assert answer.status_code == 502
    assert answer.json()["resp"] == "UPSTREAM_UNREACHABLE"


async def test_slow_upstream_is_a_timeout(make_api: ApiFactory, logic: FakeUpstream) -> None:
    logic.post("/freezeds").reply(Delay(2, Reply(200, json={"resp": "WAITING"})))
    async with make_api(upstream_timeout=0.3) as api:
        answer = await api.post("/train", json={"user": "airflow", "token": "t"})
    assert answer.status_code == 504
    assert answer.json()["resp"] == "UPSTREAM_TIMEOUT"


async def test_real_upstream_answer_is_relayed(make_api: ApiFactory, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").respond(
        201, json={"resp": "CREATED", "file": "f.json", "batch": 1}
    )
    body = b'{"h": [1.0, 2.0], "t": [1000000000, 0.5]}'
    async with make_api() as api:
        answer = await api.post(
            "/streamdata", content=body, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 201
    assert answer.json()["resp"] == "CREATED"
    assert [call.content for call in stream.calls] == [body], "the bytes are forwarded unchanged"


async def test_upstream_that_stops_reading_a_large_body_is_a_timeout(
    make_api: ApiFactory, deaf_server: str
) -> None:
    # 8 MB cannot fit in the socket buffers: the send itself stalls, not the wait for an answer.
    h = b",".join([b"1.0e-21"] * 1_000_000)
    body = b'{"h": [' + h + b'], "t": [1000000000, 0.0001]}'
    async with make_api(ds_burl=deaf_server, upstream_timeout=1.0) as api:
        answer = await asyncio.wait_for(
            api.post("/streamdata", content=body, headers={"content-type": "application/json"}),
            timeout=30,
        )
    assert answer.status_code == 504
    assert answer.json()["resp"] == "UPSTREAM_TIMEOUT"


async def test_unknown_host_is_reported_as_such() -> None:
    # Resolving .invalid fails at once; the 2 s bound is for a loaded machine's resolver thread.
    client = LogicClient("http://no-such-host.invalid:5000", 2.0, None)
    try:
        with pytest.raises(UpstreamUnreachable) as failure:
            await client.request("GET", "/bufstat")
    finally:
        await client.aclose()
    assert failure.value.detail == "cannot resolve the host name"
