"""The databuffer client: one pooled ``httpx.Client`` per worker process, failures as exceptions."""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any

import httpx

from glitchflow_core.upstream import (
    BACKOFF_BASE,
    CONNECT_ATTEMPTS,
    UpstreamTimeout,
    UpstreamUnreachable,
)

UPSTREAM = "databuffer"


class BufferClient:
    """Talks to the databuffer; the pooled client is made lazily, once per process.

    gunicorn forks its workers after the app factory may have run, and a connection pool must not
    be shared across a fork, so the client is keyed on the process id.
    """

    def __init__(self, base_url: str, timeout: float, token: str | None) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client: httpx.Client | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> httpx.Client:
        """This process's pooled client."""
        pid = os.getpid()
        if self._client is None or self._pid != pid:
            with self._lock:
                if self._client is None or self._pid != pid:
                    self._client = httpx.Client(
                        base_url=self.base_url,
                        headers=self._headers,
                        timeout=httpx.Timeout(self.timeout),
                        limits=httpx.Limits(max_connections=128, max_keepalive_connections=64),
                    )
                    self._pid = pid
        return self._client

    def close(self) -> None:
        """Close this process's pool, if it has one."""
        if self._client is not None and self._pid == os.getpid():
            self._client.close()
        self._client = None

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; retry only refused connections, with jittered exponential backoff.

        Raises
        ------
        UpstreamTimeout
            When the buffer did not answer in time.
        UpstreamUnreachable
            When no connection could be made, or it broke before an answer.
        """
        deadline = time.monotonic() + self.timeout
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return self.client.request(method, path, **kwargs)
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout(UPSTREAM, f"no answer within {self.timeout:g} s") from exc
            except httpx.ConnectError as exc:
                pause = BACKOFF_BASE * 2**attempt * (0.5 + random.random())  # noqa: S311
                if attempt + 1 == CONNECT_ATTEMPTS or time.monotonic() + pause > deadline:
                    raise UpstreamUnreachable(UPSTREAM, "connection refused") from exc
                time.sleep(pause)
            except httpx.TransportError as exc:
                raise UpstreamUnreachable(UPSTREAM, type(exc).__name__) from exc
        raise AssertionError("unreachable")  # pragma: no cover
