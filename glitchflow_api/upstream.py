"""The datastore_logic client: one ``aiohttp.ClientSession`` per app, failures as exceptions.

aiohttp, not httpx: every chunk crosses this hop, and forwarding a 375 kB body cost 0.77-0.91 ms
of CPU through ``httpx.AsyncClient`` (even over aiohttp's transport) against 0.33-0.39 ms through
an ``aiohttp.ClientSession`` (measured here, eight requests in flight to the same server), on a
hop that is CPU-bound at full load.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson

from glitchflow_core.logs import request_id_headers
from glitchflow_core.retry import hop_policy
from glitchflow_core.upstream import Answer, UpstreamTimeout, UpstreamUnreachable

UPSTREAM = "datastore_logic"
MAX_CONNECTIONS = 256
"""Connections open to datastore_logic at most; requests beyond wait for one."""


class LogicClient:
    """Talks to datastore_logic through one pooled session, made and closed in the lifespan."""

    def __init__(self, base_url: str, timeout: float, token: str | None) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.retry = hop_policy(timeout)
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout),
            # No cookies, no redirects, no proxy variables: this is a hop between two services.
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
            raise_for_status=False,
        )

    async def aclose(self) -> None:
        """Close the pool."""
        await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """Send one request and read the whole answer, all within the timeout.

        Only refused connections are retried (nothing was sent), by `hop_policy`: a few quick
        tries within the timeout. Every answer, 503 with ``Retry-After`` included, is returned.

        Raises
        ------
        UpstreamTimeout
            When datastore_logic did not answer in time.
        UpstreamUnreachable
            When no connection could be made, or it broke before an answer.
        """
        headers = {**request_id_headers(), **(headers or {})}
        if json is not None:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        try:
            # A bound on the whole exchange: aiohttp has connect and read timeouts but none for
            # sending, so a peer that stops reading a large body would otherwise hold us forever.
            async with asyncio.timeout(self.timeout):
                return await self._send(method, path, params, content, headers)
        except TimeoutError as exc:
            raise UpstreamTimeout(UPSTREAM, f"no answer within {self.timeout:g} s") from exc

    async def _send(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        content: bytes | None,
        headers: dict[str, str] | None,
    ) -> Answer:
        url = self.base_url + path

        async def send() -> Answer:
            async with self._session.request(
                method, url, params=params, data=content, headers=headers, allow_redirects=False
            ) as answer:
                return Answer(answer.status, await answer.read(), answer.headers)

        try:
            return await self.retry.acall(
                send, idempotent=method == "GET", not_sent=(aiohttp.ClientConnectorError,)
            )
        except aiohttp.ClientConnectorError as exc:  # refused, or no such host
            raise UpstreamUnreachable(UPSTREAM, _connect_failure(exc)) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise UpstreamTimeout(UPSTREAM, f"no answer within {self.timeout:g} s") from exc
        except aiohttp.ClientError as exc:
            detail = f"connection broken before an answer ({type(exc).__name__})"
            raise UpstreamUnreachable(UPSTREAM, detail) from exc


def _connect_failure(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "cannot resolve the host name"
    return "connection refused"
