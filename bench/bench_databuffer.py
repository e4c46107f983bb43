"""Durable ingest throughput of the databuffer against a plain reference server, on this machine.

Starts ``python -m databuffer`` and ``bench/reference_server.py`` on free loopback ports, posts
16,384-sample chunks (1 s at 16 kHz, each with its own t0) at several concurrency levels, and
prints chunks/s, MB/s and p50/p99 latency of both and their ratio. Target: ratio >= 0.6.

    .venv/bin/python bench/bench_databuffer.py [--count 400] [--concurrency 1 4 16] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 16_384
DT = 1.0 / SAMPLES
CHANNEL = "L1:GWOSC-16KHZ_R1_STRAIN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(argv: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    """Run a server process until the block ends; yield its base URL once /healthz answers."""
    proc = subprocess.Popen(
        argv, cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv} exited: {proc.stderr.read().decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{argv} did not answer /healthz")
            time.sleep(0.05)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_bodies(count: int, first_t0: float) -> list[bytes]:
    """``count`` distinct chunks; the samples are shared, t0 advances by one second each."""
    rng = np.random.default_rng(7)
    h = orjson.dumps((rng.standard_normal(SAMPLES) * 1e-21), option=orjson.OPT_SERIALIZE_NUMPY)
    head = b'{"channel":"' + CHANNEL.encode() + b'","h":' + h + b',"t":['
    tail = b"," + orjson.dumps(DT) + b"]}"
    return [head + orjson.dumps(first_t0 + i) + tail for i in range(count)]


@dataclass
class Figures:
    chunks: int
    seconds: float
    nbytes: int
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.chunks / self.seconds

    @property
    def mbps(self) -> float:
        return self.nbytes / self.seconds / 1e6

    def add(self, other: Figures) -> None:
        self.chunks += other.chunks
        self.seconds += other.seconds
        self.nbytes += other.nbytes
        self.latencies += other.latencies

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1e3


async def post_all(url: str, path: str, bodies: list[bytes], concurrency: int) -> Figures:
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(path, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if set(statuses) != {201}:
        raise RuntimeError(f"{url}{path}: unexpected answers {statuses}")
    return Figures(len(bodies), elapsed, sum(map(len, bodies)), latencies)


def line(name: str, f: Figures) -> str:
    return (
        f"  {name:<10} {f.rate:8.1f} chunks/s {f.mbps:8.1f} MB/s "
        f"p50 {f.pct(0.50):7.2f} ms  p99 {f.pct(0.99):7.2f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=400, help="chunks per run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=4, help="alternations per level")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-databuffer-") as tmp:
        buffer_port, reference_port = free_port(), free_port()
        buffer_env = {"GLITCHFLOW_DATA_DIR": f"{tmp}/buffer", "GLITCHFLOW_LOG_LEVEL": "WARNING"}
        buffer_argv = [sys.executable, "-m", "databuffer", "--port", str(buffer_port)]
        reference_argv = [
            sys.executable,
            str(ROOT / "bench" / "reference_server.py"),
            "--port",
            str(reference_port),
            "--dir",
            f"{tmp}/reference",
        ]
        body_size = len(make_bodies(1, 0)[0])
        print(f"chunk: {SAMPLES} samples, {body_size / 1e3:.0f} kB; {args.count} chunks per run")
        ratios = []
        with (
            serve(buffer_argv, buffer_port, buffer_env) as buffer_url,
            serve(reference_argv, reference_port, {}) as reference_url,
        ):
            first_t0 = 1_400_000_000.0
            for concurrency in args.concurrency:
                # Alternate short runs of both servers so that drift of the shared disk hits both.
                reference = Figures(0, 0.0, 0, [])
                buffer = Figures(0, 0.0, 0, [])
                per_round = max(args.count // args.rounds, 1)
                for _ in range(args.rounds):
                    bodies = make_bodies(per_round, first_t0)
                    first_t0 += per_round
                    reference.add(
                        asyncio.run(post_all(reference_url, "/sendF", bodies, concurrency))
                    )
                    buffer.add(asyncio.run(post_all(buffer_url, "/sendF", bodies, concurrency)))
                ratio = buffer.rate / reference.rate
                ratios.append(ratio)
                print(f"concurrency {concurrency}:")
                print(line("reference", reference))
                print(line("databuffer", buffer))
                print(f"  ratio      {ratio:8.2f}")
            stat = httpx.get(f"{buffer_url}/stat").json()
            print(f"databuffer /stat after the run: {stat}")
        print(f"lowest ratio {min(ratios):.2f} (target >= 0.6); mean {statistics.mean(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
