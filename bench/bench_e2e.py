"""End-to-end ingest through ``/streamdata`` of the real stack, against the single-hop limit.

Starts databuffer, datastore_logic (gunicorn) and glitchflow_api (uvicorn) as real processes on
free loopback ports, with durable writes and a MAX_SIZE large enough never to freeze, plus
``bench/reference_server.py`` (a server that only writes the body to a file with fsync). Posts
1-s chunks at 16 kHz (16,384 samples, each with its own t0) at concurrency 1, 4 and 16 and prints
chunks/s, MB/s and p50/p99 latency of both, and the ratio. Each level runs ``--repeat`` times;
the medians are printed. Target: >= 250 chunks/s end to end and >= 0.3 of the single hop.

    .venv/bin/python bench/bench_e2e.py [--count 300] [--repeat 3] [--concurrency 1 4 16]
        [--logic-workers 1] [--logic-threads 8] [--api-workers 1]

The worker/thread choice in ``datastore_logic/gunicorn.conf.py`` comes from this script (figures
in that file's docstring).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
from loadgen import SAMPLES, Figures, line, make_bodies, post_all

from glitchflow_stack import Layout, ManagedProcess, Stack, free_port, service_processes

ROOT = Path(__file__).resolve().parent.parent


def median_figures(runs: list[Figures]) -> Figures:
    """The run with the median rate (its latencies stay consistent with its rate)."""
    return sorted(runs, key=lambda f: f.rate)[len(runs) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="chunks per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per level (median printed)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--logic-workers", type=int, default=1)
    parser.add_argument("--logic-threads", type=int, default=8)
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="data folder (default: a temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-e2e-", dir=args.dir) as tmp:
        layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
        env = {"GLITCHFLOW_LOG_LEVEL": "WARNING"}
        stack = Stack(
            service_processes(
                layout,
                Path(tmp) / "buffer",
                10**13,
                logic_workers=args.logic_workers,
                logic_threads=args.logic_threads,
                api_workers=args.api_workers,
                env=env,
            )
        )
        ref_port = free_port()
        reference = ManagedProcess(
            "reference",
            [
                sys.executable,
                str(ROOT / "bench" / "reference_server.py"),
                "--port",
                str(ref_port),
                "--dir",
                f"{tmp}/reference",
            ],
            f"http://127.0.0.1:{ref_port}",
        )
        body_size = len(make_bodies(1, 0)[0])
        print(
            f"chunk: {SAMPLES} samples, {body_size / 1e3:.0f} kB; {args.count} chunks per run, "
            f"{args.repeat} runs per level; logic {args.logic_workers} workers x "
            f"{args.logic_threads} threads, api {args.api_workers} worker(s)"
        )
        ratios = []
        try:
            stack.start()
            reference.start()
            reference.wait_ready(20, path="/healthz")
            first_t0 = 1_400_000_000.0
            for concurrency in args.concurrency:
                refs, e2es = [], []
                for _ in range(args.repeat):
                    bodies = make_bodies(args.count, first_t0)
                    first_t0 += args.count
                    refs.append(asyncio.run(post_all(reference.url, "/sendF", bodies, concurrency)))
                    e2es.append(
                        asyncio.run(post_all(layout.api_url, "/streamdata", bodies, concurrency))
                    )
                ref, e2e = median_figures(refs), median_figures(e2es)
                ratio = e2e.rate / ref.rate
                ratios.append(ratio)
                print(f"concurrency {concurrency}:")
                print(line("single-hop", ref))
                print(line("end-to-end", e2e))
                print(f"  ratio      {ratio:8.2f}")
            stat = httpx.get(f"{layout.api_url}/stats").json()
            print(f"/stats after the run: {stat}")
        finally:
            reference.stop()
            stack.stop()
        print(f"lowest ratio {min(ratios):.2f} (target >= 0.3); mean {statistics.mean(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
