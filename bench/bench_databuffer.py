"""Durable ingest throughput of the databuffer against a plain reference server, on this machine.

Starts ``python -m databuffer`` and ``bench/reference_server.py`` on free loopback ports, posts
16,384-sample chunks (1 s at 16 kHz, each with its own t0) at several concurrency levels, and
prints chunks/s, MB/s and p50/p99 latency of both and their ratio. Target: ratio >= 0.6. A
third server, the reference with the buffer's durability protocol (``--atomic``: two journal
commits in sequence instead of one), shows what the buffer costs beyond that protocol.

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

from glitchflow_stack import ManagedProcess, free_port

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
        buffer_port, plain_port, atomic_port = free_port(), free_port(), free_port()
        buffer_env = {"GLITCHFLOW_DATA_DIR": f"{tmp}/buffer", "GLITCHFLOW_LOG_LEVEL": "WARNING"}
        buffer_argv = [sys.executable, "-m", "databuffer", "--port", str(buffer_port)]
        reference = [sys.executable, str(ROOT / "bench" / "reference_server.py")]
        plain_argv = [*reference, "--port", str(plain_port), "--dir", f"{tmp}/plain"]
        atomic_argv = [
            *reference, "--port", str(atomic_port), "--dir", f"{tmp}/atomic", "--atomic",
        ]  # fmt: skip
        body_size = len(make_bodies(1, 0)[0])
        print(f"chunk: {SAMPLES} samples, {body_size / 1e3:.0f} kB; {args.count} chunks per run")
        print(
            "reference: writes the body to a file with fsync; atomic: the same with the buffer's\n"
            "durability protocol (temp file, fsync, rename, fsync of the folder)"
        )
        ratios, atomic_ratios = [], []
        with (
            serve("databuffer", buffer_argv, buffer_port, buffer_env) as buffer_url,
            serve("reference", plain_argv, plain_port, {}) as plain_url,
            serve("atomic", atomic_argv, atomic_port, {}) as atomic_url,
        ):
            first_t0 = 1_400_000_000.0
            for concurrency in args.concurrency:
                # Alternate short runs of the servers so that drift of the shared disk hits all.
                plain, atomic, buffer = Figures(), Figures(), Figures()
                per_round = max(args.count // args.rounds, 1)
                for _ in range(args.rounds):
                    bodies = make_bodies(per_round, first_t0)
                    first_t0 += per_round
                    for url, figures in (
                        (plain_url, plain),
                        (atomic_url, atomic),
                        (buffer_url, buffer),
                    ):
                        figures.add(asyncio.run(post_all(url, "/sendF", bodies, concurrency)))
                ratios.append(buffer.rate / plain.rate)
                atomic_ratios.append(buffer.rate / atomic.rate)
                print(f"concurrency {concurrency}:")
                print(line("reference", plain))
                print(line("atomic", atomic))
                print(line("databuffer", buffer))
                print(
                    f"  ratio      {ratios[-1]:8.2f} of the reference, "
                    f"{atomic_ratios[-1]:.2f} of atomic"
                )
            stat = httpx.get(f"{buffer_url}/stat").json()
            print(f"databuffer /stat after the run: {stat}")
        print(
            f"lowest ratio {min(ratios):.2f} (target >= 0.6), median "
            f"{statistics.median(ratios):.2f}; against atomic: lowest {min(atomic_ratios):.2f}, "
            f"median {statistics.median(atomic_ratios):.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
