"""A fresh datastore_logic app per test, its databuffer mocked at the transport with respx."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import respx
from flask.testing import FlaskClient

from datastore_logic import create_app
from datastore_logic.settings import Settings

BUFFER = "http://buffer.test:8080"


@pytest.fixture
def buffer() -> Iterator[respx.MockRouter]:
    """The databuffer, mocked; unmatched requests fail the test."""
    with respx.mock(base_url=BUFFER, assert_all_called=False) as router:
        yield router


@pytest.fixture
def make_client() -> Callable[..., FlaskClient]:
    """``make_client(max_size=..., service_token=...)``: a test client of a fresh app."""

    def make(**overrides: object) -> FlaskClient:
        values: dict[str, object] = {"db_burl": BUFFER, "max_size": 1000, "upstream_timeout": 2.0}
        values.update(overrides)
        return create_app(Settings(**values)).test_client()

    return make


@pytest.fixture
def client(make_client: Callable[..., FlaskClient]) -> FlaskClient:
    """A test client with MAX_SIZE 1000 and no token."""
    return make_client()
