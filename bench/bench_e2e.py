"""End-to-end ingest through ``/streamdata`` of the real stack, against the single-hop limit.

Starts databuffer, datastore_logic (gunicorn) and glitchflow_api (uvicorn) as real processes on
free loopback ports, with durable writes and a MAX_SIZE large enough never to freeze, plus two
single-hop servers that only write the body to a file with fsync: ``bench/reference_server.py``
(the reference the ratio is measured against) and ``bench/plain_aiohttp_server.py`` (the plainest
aiohttp server for the job, which shows that the reference is no slower than it). Posts 1-s
chunks at 16 kHz (16,384 samples, each with its own t0) at concurrency 1, 4 and 16, the three
servers in turn, and prints chunks/s, MB/s and p50/p99 latency of each and the ratio of the end
to end to the faster single hop. Each level runs ``--repeat`` times; the medians are printed.
Then an open-loop load at half the highest end-to-end rate measured (a chunk every 1/rate
seconds whatever the answers) gives the p99 latency at half the maximum offered load.
Targets: >= 0.4 of the single hop at concurrency 16, p99 <= 50 ms at half load.

    .venv/bin/python bench/bench_e2e.py [--count 300] [--repeat 3] [--concurrency 1 4 16]
        [--logic-workers 1] [--logic-threads 8] [--api-workers 1]

The worker/thread choice in ``datastore_logic/gunicorn.conf.py`` comes from this script (figures
in docs/PERFORMANCE.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import httpx
from loadgen import SAMPLES, Figures, line, make_bodies, post_all, post_at_rate

from glitchflow_stack import Layout, ManagedProcess, Stack, free_port, service_processes

ROOT = Path(__file__).resolve().parent.parent
WARM_UP = 20
"""Chunks posted to each server, untimed, before the first run."""


def median_figures(runs: list[Figures]) -> Figures:
    """The run with the median rate (its latencies stay consistent with its rate)."""
    return sorted(runs, key=lambda f: f.rate)[len(runs) // 2]


def single_hop(name: str, script: str, folder: str) -> ManagedProcess:
    """A single-hop server of ``bench/`` (not started) writing the bodies into ``folder``."""
    port = free_port()
    argv = [sys.executable, str(ROOT / "bench" / script), "--port", str(port), "--dir", folder]
    return ManagedProcess(name, argv, f"http://127.0.0.1:{port}")


def level_arguments(doc: str) -> argparse.ArgumentParser:
    """A parser with the options of runs by concurrency level, and ``--dir``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="chunks per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per level (median printed)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--dir", type=Path, default=None, help="data folder (default: a temp dir)")
    return parser


def main() -> int:
    parser = level_arguments(__doc__)
    parser.add_argument("--logic-workers", type=int, default=1)
    parser.add_argument("--logic-threads", type=int, default=8)
    parser.add_argument("--api-workers", type=int, default=1)
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
        singles = [
            single_hop("reference", "reference_server.py", f"{tmp}/reference"),
            single_hop("plain", "plain_aiohttp_server.py", f"{tmp}/plain"),
        ]
        body_size = len(make_bodies(1, 0)[0])
        print(
            f"chunk: {SAMPLES} samples, {body_size / 1e3:.0f} kB; {args.count} chunks per run, "
            f"{args.repeat} runs per level; logic {args.logic_workers} workers x "
            f"{args.logic_threads} threads, api {args.api_workers} worker(s)"
        )
        ratios = {}
        try:
            stack.start()
            for proc in singles:
                proc.start()
                proc.wait_ready(20, path="/healthz")
            targets = {proc.name: (proc.url, "/sendF") for proc in singles}
            targets["end-to-end"] = (layout.api_url, "/streamdata")
            first_t0 = 1_400_000_000.0
            # An untimed warm-up of each (connections, worker threads, fresh folders).
            warm_up = make_bodies(WARM_UP, first_t0)
            first_t0 += WARM_UP
            for url, path in targets.values():
                asyncio.run(post_all(url, path, warm_up, 4))
            best = 0.0
            for concurrency in args.concurrency:
                runs: dict[str, list[Figures]] = {name: [] for name in targets}
                for repeat in range(args.repeat):
                    bodies = make_bodies(args.count, first_t0)
                    first_t0 += args.count
                    # Each run starts with another server, so the machine's drift hits all.
                    names = list(targets)
                    for name in names[repeat % 3 :] + names[: repeat % 3]:
                        url, path = targets[name]
                        runs[name].append(asyncio.run(post_all(url, path, bodies, concurrency)))
                ref, plain, e2e = (median_figures(r) for r in runs.values())
                best = max(best, e2e.rate)
                ratio = e2e.rate / max(ref.rate, plain.rate)
                ratios[concurrency] = ratio
                print(f"concurrency {concurrency}:")
                print(line("reference", ref))
                print(line("plain", plain))
                print(line("end-to-end", e2e))
                print(
                    f"  reference / plain {ref.rate / plain.rate:5.2f}; "
                    f"end to end / single hop {ratio:5.2f}"
                )
            rate = best / 2
            bodies = make_bodies(args.count, first_t0)
            half = asyncio.run(post_at_rate(layout.api_url, "/streamdata", bodies, rate))
            print(f"open loop at {rate:.0f} chunks/s (half of {best:.0f}):")
            print(line("end-to-end", half))
            stat = httpx.get(f"{layout.api_url}/stats").json()
            print(f"/stats after the run: {stat}")
        finally:
            for proc in singles:
                proc.stop()
            stack.stop()
        summary = ", ".join(f"c={c}: {r:.2f}" for c, r in ratios.items())
        print(f"end to end / single hop: {summary} (target >= 0.4 at c=16)")
        print(f"p99 at half load {half.pct(0.99):.1f} ms (target <= 50 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
