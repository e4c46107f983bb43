"""Time of ``GET /status`` and of the status page with 1,000 and 100,000 stored chunks.

For each size, writes that many chunk files (64 samples each, over three channels, with a gap
every 1,000 chunks) straight into a fresh data folder, starts the three services on it (the
buffer indexes the files at start-up, as after a restart), and times the JSON status and the page
at the API and at the logic: median and p90 over ``--requests`` requests, after one warm-up.

    .venv/bin/python bench/bench_status.py [--sizes 1000 100000] [--requests 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from databuffer.naming import chunk_filename
from glitchflow_stack import Layout, Stack, free_port, service_processes

CHANNELS = ("H1:GDS-CALIB_STRAIN", "L1:GDS-CALIB_STRAIN", "V1:Hrec_hoft_16384Hz")
SAMPLES = 64
DT = 1 / 4096
T0 = 1_400_000_000.0


def write_chunks(data: Path, count: int) -> int:
    """``count`` chunk files in ``data`` (as the buffer names them); their total bytes."""
    data.mkdir(parents=True)
    h = np.random.default_rng(0).normal(scale=1e-21, size=SAMPLES)
    total = 0
    for i in range(count):
        channel = CHANNELS[i % len(CHANNELS)]
        k = i // len(CHANNELS)
        t0 = T0 + (k + k // 1000) * SAMPLES * DT  # one chunk's worth missing every 1,000
        body = orjson.dumps(
            {"h": h, "t": [t0, DT], "channel": channel}, option=orjson.OPT_SERIALIZE_NUMPY
        )
        (data / chunk_filename(channel, t0, SAMPLES, DT)).write_bytes(body)
        total += len(body)
    # On disk before anything is timed: else the kernel writes 100,000 new files back while the
    # calls are measured, and they look slower with more files for that reason alone.
    os.sync()
    return total


def timed(client: httpx.Client, url: str, requests: int) -> tuple[float, float, int]:
    """Median and p90 in ms of ``requests`` GETs of ``url`` (after one), and the answer's size."""
    size = len(client.get(url).content)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        answer = client.get(url)
        times.append((time.perf_counter() - start) * 1e3)
        answer.raise_for_status()
    times.sort()
    return statistics.median(times), times[int(0.9 * (len(times) - 1))], size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    print(f"{'chunks':>8} {'what':<24} {'median ms':>10} {'p90 ms':>8} {'answer kB':>10}")
    for count in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-status-") as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            stored = write_chunks(root / "data", count)
            wrote = time.perf_counter() - start
            layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
            env = {"GLITCHFLOW_LOG_LEVEL": "WARNING"}
            stack = Stack(service_processes(layout, root, 10 * stored, env=env))
            start = time.perf_counter()
            stack.start(timeout=300)
            started = time.perf_counter() - start
            print(f"{count:>8} (files written in {wrote:.1f} s, stack ready in {started:.1f} s)")
            try:
                with httpx.Client(timeout=60) as client:
                    stats = client.get(f"{layout.api_url}/stats").json()
                    assert stats["n_itm"] == count, stats
                    for what, url in (
                        ("API /status", f"{layout.api_url}/status"),
                        (
                            "API /status?page=last",
                            f"{layout.api_url}/status?page={-(-count // 50)}",
                        ),
                        ("API /dspage", f"{layout.api_url}/dspage"),
                        ("logic /status", f"{layout.logic_url}/status"),
                        ("logic / (page)", f"{layout.logic_url}/"),
                        ("buffer /status", f"{layout.buffer_url}/status"),
                    ):
                        median, p90, size = timed(client, url, args.requests)
                        print(
                            f"{count:>8} {what:<24} {median:>10.2f} {p90:>8.2f} {size / 1e3:>10.1f}"
                        )
            finally:
                stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
