"""What the benchmarks share: the chunk bodies, the load generator and the figures it prints.

The load generator is aiohttp, as in gwclient: on this 2-core machine it shares the CPU with the
servers it measures, and it costs a fifth of the CPU of httpx's async client for a 375 kB body
(0.25 ms against 1.2 ms a request, measured here), so it takes as little as it can from them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp
import numpy as np
import orjson

SAMPLES = 16_384
DT = 1.0 / SAMPLES
CHANNEL = "L1:GWOSC-16KHZ_R1_STRAIN"


def make_bodies(count: int, first_t0: float) -> list[bytes]:
    """``count`` distinct 1-s chunks at 16 kHz; the samples are shared, t0 advances by 1 s."""
    rng = np.random.default_rng(7)
    h = orjson.dumps(rng.standard_normal(SAMPLES) * 1e-21, option=orjson.OPT_SERIALIZE_NUMPY)
    head = b'{"channel":"' + CHANNEL.encode() + b'","h":' + h + b',"t":['
    tail = b"," + orjson.dumps(DT) + b"]}"
    return [head + orjson.dumps(first_t0 + i) + tail for i in range(count)]


@dataclass
class Figures:
    """Chunks sent, in how long, and each request's latency."""

    chunks: int = 0
    seconds: float = 0.0
    nbytes: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds

    @property
    def mbps(self) -> float:
        return self.nbytes / self.seconds / 1e6

    def add(self, other: Figures) -> None:
        """Fold another run into this one."""
        self.chunks += other.chunks
        self.seconds += other.seconds
        self.nbytes += other.nbytes
        self.latencies += other.latencies

    def pct(self, q: float) -> float:
        """Latency percentile ``q`` (0..1) in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1e3


async def post_all(url: str, path: str, bodies: list[bytes], concurrency: int) -> Figures:
    """Post every body with ``concurrency`` requests in flight; every answer must be 201."""
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                async with session.post(path, data=body, headers=headers) as response:
                    await response.read()
                latencies.append(time.perf_counter() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if set(statuses) != {201}:
        raise RuntimeError(f"{url}{path}: unexpected answers {statuses}")
    return Figures(len(bodies), elapsed, sum(map(len, bodies)), latencies)


async def post_at_rate(url: str, path: str, bodies: list[bytes], rate: float) -> Figures:
    """Open-loop load: post body ``i`` at ``i / rate`` seconds whatever the answers before it.

    Each latency runs from the time the request was due, not from when it went out, so a server
    that falls behind shows its queueing (no coordinated omission); every answer must be 201.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def send(body: bytes, due: float) -> None:
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            async with session.post(path, data=body, headers=headers) as response:
                await response.read()
            latencies.append(time.perf_counter() - due)
            statuses[response.status] = statuses.get(response.status, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(send(body, started + i / rate) for i, body in enumerate(bodies)))
        elapsed = time.perf_counter() - started
    if set(statuses) != {201}:
        raise RuntimeError(f"{url}{path}: unexpected answers {statuses}")
    return Figures(len(bodies), elapsed, sum(map(len, bodies)), latencies)


def line(name: str, f: Figures) -> str:
    """One printed row: rate, throughput and latency."""
    return (
        f"  {name:<12} {f.rate:8.1f} chunks/s {f.mbps:8.1f} MB/s "
        f"p50 {f.pct(0.50):7.2f} ms  p99 {f.pct(0.99):7.2f} ms"
    )
