"""A fresh glitchflow_api app per test, in front of a real HTTP server standing in for the logic.

The API talks to datastore_logic with an ``aiohttp.ClientSession``; the `logic` fixture is a
`fake_upstream.FakeUpstream` on 127.0.0.1 that the app's ``ds_burl`` points at, scripted per
test. The test's own client reaches the app in process, through ``httpx.ASGITransport``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from fake_upstream import FakeUpstream, serve

from glitchflow_api import create_app
from glitchflow_api.settings import Settings

WRITER = "writer-token-0123456789"
ADMIN = "admin-token-0123456789"
SERVICE = "service-token-0123456789"


@dataclass(frozen=True)
class TokenSet:
    """The tokens `secured_api` is configured with."""

    writer: str = WRITER
    admin: str = ADMIN
    service: str = SERVICE


@pytest.fixture
def tokens() -> TokenSet:
    """The writer, admin and service tokens of `secured_api`."""
    return TokenSet()


@pytest.fixture
def logic() -> Iterator[FakeUpstream]:
    """datastore_logic: a real server, scripted per test; a request no route matches fails it."""
    yield from serve()


@pytest.fixture
def make_api(logic: FakeUpstream) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with make_api(max_samples=8) as api``: a client of a fresh app, ds_burl `logic`."""

    @asynccontextmanager
    async def api(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        values: dict[str, object] = {"ds_burl": logic.url, "upstream_timeout": 2.0}
        values.update(overrides)
        app = create_app(Settings(**values))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
                yield client

    return api


@pytest.fixture
async def api(make_api) -> AsyncIterator[httpx.AsyncClient]:
    """An open API (no tokens) in front of `logic`."""
    async with make_api() as client:
        yield client


@pytest.fixture
async def secured_api(make_api) -> AsyncIterator[httpx.AsyncClient]:
    """An API with writer, admin and service tokens."""
    async with make_api(writer_tokens=WRITER, admin_tokens=ADMIN, service_token=SERVICE) as client:
        yield client
