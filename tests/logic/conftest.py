"""A fresh datastore_logic app per test, its databuffer a real HTTP server scripted per test.

The app talks to the buffer with urllib3 (`datastore_logic.upstream.BufferClient`), so the
buffer is `fake_upstream.FakeUpstream`: an aiohttp server on 127.0.0.1 that answers what the
test told it to, records the requests it received, and fails the test on a request no route
matches. A buffer that is down is a closed port (``closed_url``); one that comes up while the
app retries a refused connection is ``late_buffer``; ``pauses`` records those retries.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from fake_upstream import FakeUpstream, serve
from flask import Flask
from flask.testing import FlaskClient
from ports import free_port

from datastore_logic import create_app
from datastore_logic import upstream as upstream_module
from datastore_logic.settings import Settings


@pytest.fixture
def buffer() -> Iterator[FakeUpstream]:
    """The databuffer, a started fake server; unmatched requests fail the test."""
    yield from serve()


@pytest.fixture
def closed_url() -> str:
    """The URL of a port nothing listens on: connections to it are refused."""
    return f"http://127.0.0.1:{free_port()}"


@pytest.fixture
def make_client(buffer: FakeUpstream) -> Iterator[Callable[..., FlaskClient]]:
    """``make_client(max_size=..., service_token=...)``: a test client of a fresh app.

    Its ``db_burl`` is the ``buffer`` server unless overridden; every app's connection pool is
    closed at teardown (before the server stops), so no socket is left to the garbage collector.
    """
    apps: list[Flask] = []

    def make(**overrides: object) -> FlaskClient:
        values: dict[str, object] = {
            "db_burl": buffer.url,
            "max_size": 1000,
            "upstream_timeout": 2.0,
        }
        values.update(overrides)
        app = create_app(Settings(**values))
        apps.append(app)
        return app.test_client()

    yield make
    for app in apps:
        app.extensions["glitchflow"]["buffer"].close()


@pytest.fixture
def client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    """A test client with MAX_SIZE 1000 and no token."""
    return make_client()


class Clock:
    """Stands in for `time` in `datastore_logic.upstream`: records the retry pauses.

    The pauses still happen, with their real length; each hook runs at the start of each pause.
    """

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self.hooks: list[Callable[[], object]] = []
        self.monotonic = time.monotonic

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        for hook in self.hooks:
            hook()
        time.sleep(seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The `Clock` of `BufferClient` during the test."""
    stand_in = Clock()
    monkeypatch.setattr(upstream_module, "time", stand_in)
    return stand_in


@pytest.fixture
def pauses(clock: Clock) -> list[float]:
    """The pauses `BufferClient` took, one before each retry of a refused connection."""
    return clock.pauses


@pytest.fixture
def late_buffer(clock: Clock) -> Iterator[FakeUpstream]:
    """A databuffer on a free port that starts only once a refused connection is retried.

    Until then nothing listens on its ``url``: the first connection is refused, and the retry
    after the first pause reaches the server. Unmatched requests fail the test.
    """
    upstream = FakeUpstream(port=free_port())

    def start_once() -> None:
        if not upstream.running:
            upstream.start()

    clock.hooks.append(start_once)
    yield upstream
    upstream.stop()
    assert not upstream.unmatched, f"requests no route matched: {upstream.unmatched}"
