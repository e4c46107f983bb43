"""Fixtures of the databuffer tests: a fresh storage engine or app per test, on ``tmp_path``."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from databuffer.app import create_app
from databuffer.eventlog import EventLog
from databuffer.settings import Settings
from databuffer.storage import Storage


@pytest.fixture
def open_storage(tmp_path: Path) -> Iterator[Callable[..., Storage]]:
    """Open (or reopen, as after a restart) the engine on the same folders."""
    opened: list[Storage] = []

    def open_(**kwargs: object) -> Storage:
        storage = Storage(
            tmp_path / "data",
            tmp_path / "adm",
            tmp_path / "log",
            tmp_path / "archive",
            **kwargs,  # type: ignore[arg-type]
        )
        opened.append(storage)
        return storage

    yield open_
    for storage in opened:
        storage.close()


@pytest.fixture
def storage(open_storage: Callable[..., Storage]) -> Storage:
    return open_storage()


@pytest.fixture
async def make_client(tmp_path: Path) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """An httpx client on a fresh app built by the factory with ``tmp_path`` storage."""
    opened: list[tuple[Starlette, httpx.AsyncClient]] = []

    def make(**overrides: object) -> httpx.AsyncClient:
        settings = Settings(data_dir=tmp_path / "buffer", **overrides)  # type: ignore[arg-type]
        app = create_app(settings)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://databuffer"
        )
        client.app = app  # type: ignore[attr-defined]
        opened.append((app, client))
        return client

    yield make
    for app, client in opened:
        await client.aclose()
        app.state.storage.close()


@pytest.fixture
def client(make_client: Callable[..., httpx.AsyncClient]) -> httpx.AsyncClient:
    return make_client()


class FailingFile:
    """The live event log on a full volume: each write stores ``keep`` bytes, then fails."""

    def __init__(self, real: Any, keep: int = 0) -> None:
        self.real = real
        self.keep = keep

    def write(self, data: bytes) -> int:
        if self.keep:
            self.real.write(bytes(data[: self.keep]))
            self.real.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def full_log_volume(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Make every append to an event log fail with ENOSPC, as on a full ``LOGROOT`` volume."""

    def fill_up(log: EventLog, keep: int = 0) -> None:
        monkeypatch.setattr(log, "_file", FailingFile(log._file, keep))

    return fill_up
