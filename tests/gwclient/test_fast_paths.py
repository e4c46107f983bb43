"""gwclient's binary chunks and multi-chunk requests: against aiohttp test servers that offer or
refuse them, and against the real stack."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from aiohttp import web

from glitchflow_core.chunk import parse_binary_chunk, parse_chunk
from gwclient.chunks import chunk_array
from gwclient.sender import RetryPolicy, send_chunks

FAST = RetryPolicy(max_attempts=4, max_elapsed=20.0, base_delay=0.01, max_delay=0.05)
OFFER = {"Accept-Post": "application/json, application/octet-stream, application/x-ndjson"}


def chunks(n: int = 6, samples: int = 16, channel: str = "H1:TEST-STRAIN"):
    data = np.random.default_rng(3).normal(scale=1e-21, size=n * samples)
    return list(chunk_array(data, 1_000_000_000.0, 1 / samples, channel, 1.0))


class Server:
    """A /streamdata that stores by identity; ``offer``: it says it takes binary and NDJSON,
    else it refuses both with 415 (an older API)."""

    def __init__(self, offer: bool, frozen_once: int | None = None) -> None:
        self.offer = offer
        self.frozen_once = frozen_once
        """Answer the chunk at this position of the first NDJSON request FROZEN."""
        self.stored: dict[tuple, np.ndarray] = {}
        self.media: list[str] = []

    def store(self, chunk) -> dict:
        if chunk.identity in self.stored:
            return {"status": 200, "resp": "DUPLICATE"}
        self.stored[chunk.identity] = chunk.h.copy()
        return {"status": 201, "resp": "CREATED"}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        media = request.content_type
        self.media.append(media)
        headers = OFFER if self.offer else {}
        if media != "application/json" and not self.offer:
            return web.json_response({"resp": "INVALID"}, status=415)
        if media == "application/octet-stream":
            q = request.query
            chunk = parse_binary_chunk(body, q.get("channel"), q.get("t0"), q.get("dt"))
            answer = self.store(chunk)
            return web.json_response(answer, status=answer["status"], headers=headers)
        if media == "application/x-ndjson":
            results = []
            for position, line in enumerate(body.splitlines()):
                if self.frozen_once == position:
                    self.frozen_once = None
                    results.append({"status": 503, "resp": "FROZEN", "retry_after": 0})
                    continue
                results.append(self.store(parse_chunk(line)))
            return web.json_response(
                {"resp": "MULTI", "results": results}, status=207, headers=headers
            )
        answer = self.store(parse_chunk(body))
        return web.json_response(answer, status=answer["status"], headers=headers)


@pytest.fixture
def serve(aiohttp_server):
    async def start(server: Server) -> str:
        app = web.Application()
        app.router.add_post("/streamdata", server.handle)
        return str((await aiohttp_server(app)).make_url("")).rstrip("/")

    return start


async def test_binary_once_the_server_offers_it(serve) -> None:
    server = Server(offer=True)
    sent = chunks()
    summary = await send_chunks(sent, await serve(server), retry=FAST, concurrency=1)
    assert summary.ok and summary.created == 6
    assert server.media == ["application/json"] + ["application/octet-stream"] * 5
    for chunk in sent:
        assert server.stored[(chunk.channel, chunk.t0, chunk.n, chunk.dt)].tobytes() == (
            chunk.h.tobytes()
        )


async def test_binary_asked_for_falls_back_to_json_on_415(serve) -> None:
    server = Server(offer=False)
    summary = await send_chunks(chunks(), await serve(server), retry=FAST, binary=True)
    assert summary.ok and summary.created == 6
    assert server.media.count("application/octet-stream") >= 1
    assert server.media[-1] == "application/json"
    assert len(server.stored) == 6


async def test_json_only_when_asked(serve) -> None:
    server = Server(offer=True)
    summary = await send_chunks(chunks(), await serve(server), retry=FAST, binary=False)
    assert summary.ok
    assert set(server.media) == {"application/json"}


async def test_batches_go_as_ndjson_and_each_chunk_is_tallied(serve) -> None:
    server = Server(offer=True, frozen_once=1)
    summary = await send_chunks(chunks(7), await serve(server), retry=FAST, batch=3, concurrency=1)
    assert summary.ok and (summary.created, summary.sent) == (7, 7), summary.line()
    assert summary.retries == 1  # the FROZEN chunk, sent again alone
    # Two batches, the FROZEN chunk again, and the last chunk alone (binary: offered).
    assert sorted(server.media) == ["application/octet-stream"] + ["application/x-ndjson"] * 3
    assert len(server.stored) == 7


async def test_batches_to_a_server_without_them_go_one_by_one(serve) -> None:
    server = Server(offer=False)
    summary = await send_chunks(chunks(5), await serve(server), retry=FAST, batch=5)
    assert summary.ok and (summary.created, summary.sent) == (5, 5), summary.line()
    assert server.media == ["application/x-ndjson"] + ["application/json"] * 5


def stored(data_dir: Path) -> dict[tuple, np.ndarray]:
    parsed = [parse_chunk(p.read_bytes()) for p in (data_dir / "data").glob("*.json")]
    return {chunk.identity: chunk.h for chunk in parsed}


@pytest.mark.e2e
async def test_real_stack_binary_and_batched_streams_store_every_sample(
    stack_factory, tmp_path
) -> None:
    data_dir = tmp_path / "store"
    _, layout = stack_factory(data_dir=data_dir)
    binary = chunks(8, 256, "H1:TEST-STRAIN")
    batched = chunks(40, 16, "L1:TEST-STRAIN")
    first = await send_chunks(binary, layout.api_url, retry=FAST, binary=True)
    second = await send_chunks(batched, layout.api_url, retry=FAST, batch=16)
    assert (first.created, second.created) == (8, 40), (first.line(), second.line())
    on_disk = stored(data_dir)
    for chunk in binary + batched:
        assert on_disk[(chunk.channel, chunk.t0, chunk.n, chunk.dt)].tobytes() == (
            chunk.h.tobytes()
        )
    # The same chunks again, the other way round: all duplicates.
    again = await send_chunks(binary, layout.api_url, retry=FAST, batch=4, binary=False)
    assert (again.duplicates, again.created) == (8, 0)
    stats = httpx.get(layout.api_url + "/stats").json()
    assert stats["n_itm"] == 48
    assert orjson.loads(httpx.get(layout.api_url + "/desc").content)["resp"] == "OPERATIONAL"
