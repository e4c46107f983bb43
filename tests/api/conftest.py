"""A fresh glitchflow_api app per test, datastore_logic mocked at the transport with respx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import respx

from glitchflow_api import create_app
from glitchflow_api.settings import Settings

LOGIC = "http://logic.test:5000"
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
def logic() -> Iterator[respx.MockRouter]:
    """datastore_logic, mocked; requests that match no route fail the test."""
    # The API's client runs over aiohttp, so respx mocks at httpx's transport selection; the
    # test's own ASGI client goes through the same hook and is passed through to the app.
    with respx.mock(assert_all_called=False, using="httpx") as router:
        router.route(host="api.test").pass_through()
        yield router


@asynccontextmanager
async def _api(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
    values: dict[str, object] = {"ds_burl": LOGIC, "upstream_timeout": 2.0}
    values.update(overrides)
    app = create_app(Settings(**values))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


@pytest.fixture
def make_api() -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """``async with make_api(max_samples=8) as api``: a client of a fresh app."""
    return _api


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    """An open API (no tokens) in front of the mocked logic."""
    async with _api() as client:
        yield client


@pytest.fixture
async def secured_api() -> AsyncIterator[httpx.AsyncClient]:
    """An API with writer, admin and service tokens."""
    async with _api(writer_tokens=WRITER, admin_tokens=ADMIN, service_token=SERVICE) as client:
        yield client
