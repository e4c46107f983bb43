"""The ingest paths of ``/streamdata`` side by side, through the real stack, in one run.

Starts databuffer, datastore_logic (gunicorn) and glitchflow_api (uvicorn) as real processes on
free loopback ports, with durable writes and a MAX_SIZE that never freezes, then for each of
``--repeat`` rounds posts:

- 1-s chunks at 16 kHz (16,384 samples) as JSON, and the same number as binary float64
  (``application/octet-stream``): samples/s of each and their ratio (target: binary >= 2x JSON);
- small chunks (``--small`` samples) one per request, and batched ``--batch`` per NDJSON
  request: chunks/s of each (target: >= 2,000 small chunks/s batched).

Medians over the rounds are printed (the machine is shared: single runs are noisy).

    .venv/bin/python bench/bench_ingest_paths.py [--count 200] [--concurrency 8] [--repeat 3]
        [--small 16] [--small-count 4000] [--batch 200]
    .venv/bin/python bench/bench_ingest_paths.py --micro   # per-chunk CPU of parsing, in-process
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
import orjson
from loadgen import CHANNEL, DT, SAMPLES

from glitchflow_stack import Layout, Stack, free_port, service_processes

Request = tuple[str, bytes, dict[str, str]]
JSON = {"content-type": "application/json"}
BINARY = {"content-type": "application/octet-stream"}
NDJSON_MEDIA = "application/x-ndjson"
NDJSON = {"content-type": NDJSON_MEDIA}


async def post_requests(url: str, requests: list[Request], concurrency: int) -> float:
    """Post every request with ``concurrency`` in flight; seconds taken. Every chunk must be
    CREATED (201, or 207 with only CREATED results)."""
    queue = list(reversed(requests))
    bad: list[str] = []
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:

        async def worker() -> None:
            while queue:
                path, body, headers = queue.pop()
                async with session.post(path, data=body, headers=headers) as answer:
                    payload = await answer.read()
                if answer.status == 207:
                    counts = orjson.loads(payload)["counts"]
                    if set(counts) != {"CREATED"}:
                        bad.append(str(counts))
                elif answer.status != 201:
                    bad.append(f"{answer.status} {payload[:200]!r}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    if bad:
        raise RuntimeError(f"{url}: unexpected answers, first: {bad[0]}")
    return elapsed


def big_chunks(count: int, first_t0: float, binary: bool) -> list[Request]:
    """``count`` 1-s chunks at 16 kHz, as JSON or as binary (same samples, t0 advancing)."""
    h = np.random.default_rng(7).standard_normal(SAMPLES) * 1e-21
    if binary:
        raw = h.astype("<f8").tobytes()
        return [
            (f"/streamdata?channel={CHANNEL}&t0={first_t0 + i!r}&dt={DT!r}", raw, BINARY)
            for i in range(count)
        ]
    head = b'{"channel":"' + CHANNEL.encode() + b'","h":'
    head += orjson.dumps(h, option=orjson.OPT_SERIALIZE_NUMPY) + b',"t":['
    tail = b"," + orjson.dumps(DT) + b"]}"
    return [("/streamdata", head + orjson.dumps(first_t0 + i) + tail, JSON) for i in range(count)]


def small_lines(count: int, samples: int, first_t0: float) -> list[bytes]:
    """``count`` contiguous small chunks of ``samples`` samples, as JSON lines."""
    h = orjson.dumps(
        np.random.default_rng(8).standard_normal(samples) * 1e-21,
        option=orjson.OPT_SERIALIZE_NUMPY,
    )
    span = samples * DT
    return [
        b'{"channel":"'
        + CHANNEL.encode()
        + b'","h":'
        + h
        + b',"t":['
        + orjson.dumps(first_t0 + i * span)
        + b","
        + orjson.dumps(DT)
        + b"]}"
        for i in range(count)
    ]


def micro(rounds: int = 200) -> None:
    """Per-chunk CPU of what differs between the paths, in this process (median of 5)."""
    from glitchflow_core.chunk import chunk_bodies, parse_binary_chunk, parse_chunk

    h = np.random.default_rng(7).standard_normal(SAMPLES) * 1e-21
    body = big_chunks(1, 1e9, binary=False)[0][1]
    raw = h.astype("<f8").tobytes()
    chunk = parse_binary_chunk(raw, CHANNEL, "1000000000.0", repr(DT))
    lines = b"\n".join(small_lines(200, 16, 1e9))

    def timed(work) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(rounds):
                work()
            runs.append((time.perf_counter() - started) / rounds * 1e3)
        return statistics.median(runs)

    print("per chunk of 16,384 samples, ms (median of 5 x 200):")
    print(f"  parse JSON (simdjson)      {timed(lambda: parse_chunk(body)):.3f}")
    binary = timed(lambda: parse_binary_chunk(raw, CHANNEL, "1000000000.0", repr(DT)))
    print(f"  parse binary               {binary:.3f}")
    print(f"  JSON form of a binary one  {timed(chunk.canonical_bytes):.3f}")
    split = timed(lambda: [parse_chunk(b) for b in chunk_bodies(lines, NDJSON_MEDIA, 10**4)])
    print(f"  NDJSON of 200 small chunks, split and parsed: {split:.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="16k-sample chunks per path")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=16, help="samples of a small chunk")
    parser.add_argument("--small-count", type=int, default=4000, help="small chunks batched")
    parser.add_argument("--single-count", type=int, default=400, help="small chunks one by one")
    parser.add_argument("--batch", type=int, default=200, help="small chunks per request")
    parser.add_argument("--dir", type=Path, default=None, help="data folder (default: temp)")
    parser.add_argument("--micro", action="store_true", help="only the in-process CPU costs")
    args = parser.parse_args()
    if args.micro:
        micro()
        return 0

    figures: dict[str, list[float]] = {
        "json": [],
        "binary": [],
        "small_single": [],
        "small_batched": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-paths-", dir=args.dir) as tmp:
        layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
        env = {"GLITCHFLOW_LOG_LEVEL": "WARNING"}
        stack = Stack(service_processes(layout, Path(tmp) / "buffer", 10**13, env=env))
        print(
            f"{args.count} chunks of {SAMPLES} samples per path at concurrency "
            f"{args.concurrency}; small chunks of {args.small} samples: {args.single_count} one "
            f"a request, {args.small_count} in requests of {args.batch}; {args.repeat} rounds"
        )
        t0 = 1_300_000_000.0
        try:
            stack.start()
            for round_ in range(args.repeat):
                url = layout.api_url
                requests = big_chunks(args.count, t0, binary=False)
                t0 += args.count
                seconds = asyncio.run(post_requests(url, requests, args.concurrency))
                figures["json"].append(args.count * SAMPLES / seconds)
                requests = big_chunks(args.count, t0, binary=True)
                t0 += args.count
                seconds = asyncio.run(post_requests(url, requests, args.concurrency))
                figures["binary"].append(args.count * SAMPLES / seconds)

                lines = small_lines(args.single_count, args.small, t0)
                t0 += args.single_count * args.small * DT + 1
                requests = [("/streamdata", line, JSON) for line in lines]
                seconds = asyncio.run(post_requests(url, requests, args.concurrency))
                figures["small_single"].append(args.single_count / seconds)

                lines = small_lines(args.small_count, args.small, t0)
                t0 += args.small_count * args.small * DT + 1
                requests = [
                    ("/streamdata", b"\n".join(lines[i : i + args.batch]), NDJSON)
                    for i in range(0, len(lines), args.batch)
                ]
                seconds = asyncio.run(post_requests(url, requests, args.concurrency))
                figures["small_batched"].append(args.small_count / seconds)
                print(
                    f"round {round_ + 1}: JSON {figures['json'][-1] / 1e6:.2f} M samples/s, "
                    f"binary {figures['binary'][-1] / 1e6:.2f} M samples/s, small one a "
                    f"request {figures['small_single'][-1]:.0f} chunks/s, batched "
                    f"{figures['small_batched'][-1]:.0f} chunks/s",
                    flush=True,
                )
        finally:
            stack.stop()
    med = {name: statistics.median(values) for name, values in figures.items()}
    print("medians:")
    print(f"  JSON chunks     {med['json'] / 1e6:8.2f} M samples/s")
    print(
        f"  binary chunks   {med['binary'] / 1e6:8.2f} M samples/s  "
        f"ratio {med['binary'] / med['json']:.2f} (target >= 2)"
    )
    print(f"  small, single   {med['small_single']:8.0f} chunks/s")
    print(
        f"  small, batched  {med['small_batched']:8.0f} chunks/s  "
        f"(x{med['small_batched'] / med['small_single']:.1f}; target >= 2000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
