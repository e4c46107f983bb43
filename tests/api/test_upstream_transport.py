"""The API's real upstream client (httpx over aiohttp) against real sockets, no mocks.

A refused or broken connection must be reported as unreachable (502), a slow upstream as a
timeout (504), and a working one relayed; never FROZEN or WAITING.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from aiohttp import web

from glitchflow_core.launcher import free_port

ApiFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


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


async def test_slow_upstream_is_a_timeout(make_api: ApiFactory, aiohttp_server) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(3)
        return web.json_response({"resp": "WAITING"})

    app = web.Application()
    app.router.add_post("/freezeds", slow)
    server = await aiohttp_server(app)
    async with make_api(ds_burl=str(server.make_url("")).rstrip("/"), upstream_timeout=0.3) as api:
        answer = await api.post("/train", json={"user": "airflow", "token": "t"})
    assert answer.status_code == 504
    assert answer.json()["resp"] == "UPSTREAM_TIMEOUT"


async def test_real_upstream_answer_is_relayed(make_api: ApiFactory, aiohttp_server) -> None:
    seen: list[bytes] = []

    async def stream(request: web.Request) -> web.Response:
        seen.append(await request.read())
        return web.json_response({"resp": "CREATED", "file": "f.json", "batch": 1}, status=201)

    app = web.Application()
    app.router.add_post("/stream", stream)
    server = await aiohttp_server(app)
    body = b'{"h": [1.0, 2.0], "t": [1000000000, 0.5]}'
    async with make_api(ds_burl=str(server.make_url("")).rstrip("/")) as api:
        answer = await api.post(
            "/streamdata", content=body, headers={"content-type": "application/json"}
        )
    assert answer.status_code == 201
    assert answer.json()["resp"] == "CREATED"
    assert seen == [body], "the validated bytes are forwarded unchanged"


@pytest.fixture
async def deaf_server() -> AsyncIterator[str]:
    """A server that accepts connections and never reads from them."""
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
