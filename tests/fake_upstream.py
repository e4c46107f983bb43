"""A real HTTP server standing in for the next service in the chain, scripted per test.

The services talk to their upstream with urllib3 (datastore_logic) and aiohttp (glitchflow_api),
so their unit tests mock the upstream at the socket: an aiohttp server on 127.0.0.1, on a free
port, in its own thread (so that both a Flask test client and an async test can use it).

    upstream.post("/sendF").respond(201, json={"resp": "CREATED"})
    upstream.get("/stat").reply(Reply(200, json=...), Reply(503, json=...))  # one per call
    upstream.post("/stream").reply(Delay(5))          # answers after the client gave up
    upstream.post("/stream").reply(Hangup())          # closes the connection, no answer
    route.calls.last.json(), route.calls.last.query, route.call_count

A request that matches no route is answered 599 and fails the test at teardown.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Reply:
    """An answer: status, body (``json``, ``text``, ``html`` or raw ``content``) and headers."""

    status: int = 200
    json: Any = None
    text: str | None = None
    html: str | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        headers = dict(self.headers)
        if self.json is not None:
            body, ctype = orjson.dumps(self.json), "application/json"
        elif self.html is not None:
            body, ctype = self.html.encode(), "text/html; charset=utf-8"
        elif self.text is not None:
            body, ctype = self.text.encode(), "text/plain; charset=utf-8"
        else:
            body, ctype = self.content or b"", "application/octet-stream"
        headers.setdefault("Content-Type", ctype)
        return web.Response(status=self.status, body=body, headers=headers)


@dataclass(frozen=True)
class Delay:
    """Answer ``reply`` only after ``seconds`` (longer than the client's timeout, in tests)."""

    seconds: float
    reply: Reply = field(default_factory=Reply)


@dataclass(frozen=True)
class Hangup:
    """Close the connection without answering."""


Action = Reply | Delay | Hangup


@dataclass(frozen=True)
class Call:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: CIMultiDict[str]  # case-insensitive, as HTTP headers are
    content: bytes
    received: float = field(default_factory=time.monotonic)
    """When the request had arrived whole (`time.monotonic`)."""

    def json(self) -> Any:
        return orjson.loads(self.content)


class Calls(list[Call]):
    """The calls of a route, oldest first."""

    @property
    def last(self) -> Call:
        return self[-1]


class Route:
    """What one method and path answer: the same action each time, or a list used up in turn."""

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.calls = Calls()
        self._actions: list[Action] = [Reply(200)]
        self._lock = threading.Lock()

    def respond(self, status: int = 200, **kwargs: Any) -> Route:
        """Answer every call with ``Reply(status, **kwargs)``."""
        return self.reply(Reply(status, **kwargs))

    def reply(self, *actions: Action) -> Route:
        """Answer with ``actions`` in turn, the last one repeated."""
        with self._lock:
            self._actions = list(actions)
        return self

    @property
    def called(self) -> bool:
        return bool(self.calls)

    @property
    def call_count(self) -> int:
        return len(self.calls)

    def _next(self, call: Call) -> Action:
        with self._lock:
            self.calls.append(call)
            return self._actions.pop(0) if len(self._actions) > 1 else self._actions[0]


class FakeUpstream:
    """The server; `start` and `stop` it, or use the ``fake_upstream`` fixture."""

    def __init__(self, port: int = 0) -> None:
        self.routes: dict[tuple[str, str], Route] = {}
        self.unmatched: list[Call] = []
        self.port = port
        """The port to listen on; 0 for any free one (then known once started)."""
        self.url = f"http://127.0.0.1:{port}" if port else ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def route(self, method: str, path: str) -> Route:
        """The route of ``method`` and ``path`` (made on first use)."""
        key = (method.upper(), path)
        if key not in self.routes:
            self.routes[key] = Route(*key)
        return self.routes[key]

    def get(self, path: str) -> Route:
        return self.route("GET", path)

    def post(self, path: str) -> Route:
        return self.route("POST", path)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = Call(
            request.method,
            request.path,
            dict(request.query),
            CIMultiDict(request.headers),
            await request.read(),
        )
        route = self.routes.get((request.method, request.path))
        if route is None:
            self.unmatched.append(call)
            return web.Response(status=599, text=f"no route for {request.method} {request.path}")
        action = route._next(call)
        if isinstance(action, Delay):
            await asyncio.sleep(action.seconds)
            return action.reply.response()
        if isinstance(action, Hangup):
            assert request.transport is not None
            request.transport.abort()
            return web.Response()  # never sent: the connection is gone
        return action.response()

    async def _start(self) -> str:
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        port = server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> FakeUpstream:
        self._thread.start()
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _stop(self) -> None:
        # Requests still delayed are dropped: their clients gave up long ago.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stop serving (its port then refuses connections); a no-op unless running."""
        if not self.running:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def serve() -> Iterator[FakeUpstream]:
    """Body of a fixture: a started server, stopped after the test; no unmatched request."""
    upstream = FakeUpstream().start()
    try:
        yield upstream
    finally:
        upstream.stop()
    assert not upstream.unmatched, f"requests no route matched: {upstream.unmatched}"
