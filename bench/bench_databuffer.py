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
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
from loadgen import SAMPLES, Figures, line, make_bodies, post_all

from glitchflow_core.launcher import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def serve(name: str, argv: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    """Run a server process until the block ends; yield its base URL once /healthz answers."""
    proc = ManagedProcess(name, argv, f"http://127.0.0.1:{port}", env=env).start()
    try:
        proc.wait_ready(20, path="/healthz")
        yield proc.url
    finally:
        proc.stop()


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
            serve("databuffer", buffer_argv, buffer_port, buffer_env) as buffer_url,
            serve("reference", reference_argv, reference_port, {}) as reference_url,
        ):
            first_t0 = 1_400_000_000.0
            for concurrency in args.concurrency:
                # Alternate short runs of both servers so that drift of the shared disk hits both.
                reference = Figures()
                buffer = Figures()
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
