"""How the buffer's start-up, memory and the cheap calls grow with the number of stored chunks.

For each size, writes that many chunk files straight into a fresh data folder, in the buffer's
on-disk format (`bench_status.write_chunks`: 64 samples, three channels, a gap every 1,000), then:

- starts the buffer alone ``--starts`` times on that folder (it rebuilds its index from the
  files, as after a ``kill -9``) and times spawn to ``/readyz`` = 200, in wall time and in CPU
  time of the buffer (the latter less inflated by other work on a shared machine);
- starts the logic and the API on it and times ``--requests`` calls of the API's ``/stats``,
  ``/train`` (answers WAITING: the freeze decision on a batch not yet full), ``/status`` (the
  status JSON), the buffer's ``/stat``, and chunks written through ``/streamdata`` (each write
  makes the freeze decision under the buffer's lock; durable, so an fsync each);
- reads the buffer's resident memory (VmRSS) after start-up and after the calls.

Prints medians, and for each figure how it grows from the smallest size to the largest. With
``--baseline DIR`` (a checkout of another revision, e.g. ``git worktree add /tmp/base main``)
that revision's buffer is started too, alternately with this one, on the same folder.

    .venv/bin/python bench/bench_scale.py [--sizes 1000 10000 100000] [--starts 3] [--requests 30]
        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
from bench_status import CHANNELS, DT, SAMPLES, T0, write_chunks

from glitchflow_stack import Layout, ManagedProcess, Stack, free_port, service_processes

POLL = 0.02
"""Seconds between two polls of ``/readyz`` while the buffer starts."""


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MB (``VmRSS``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far: on a machine shared with other
    work, closer than the wall time to what a quiet machine would take."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_seconds(proc: ManagedProcess, timeout: float = 300) -> tuple[float, float]:
    """Start ``proc``; the seconds until its ``/readyz`` answers 200, and the CPU seconds it
    used meanwhile."""
    started = time.perf_counter()
    proc.start()
    deadline = started + timeout
    with httpx.Client(timeout=timeout) as client:
        while time.perf_counter() < deadline:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.output()[-2000:]}")
            try:
                if client.get(f"{proc.url}/readyz").status_code == 200:
                    return time.perf_counter() - started, cpu_seconds(proc.pid)
            except httpx.TransportError:
                pass
            time.sleep(POLL)
    raise RuntimeError(f"{proc.name} not ready after {timeout} s")


def median_ms(call: Callable[[], httpx.Response], requests: int) -> float:
    """Median milliseconds of ``requests`` calls (after one that is not timed)."""
    call().raise_for_status()
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        call().raise_for_status()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def chunk_writer(client: httpx.Client, api_url: str, count: int) -> Callable[[], httpx.Response]:
    """A call that posts the next new chunk of the first channel, after the stored ones."""
    # write_chunks spreads ``count`` chunks over the channels, one chunk missing every 1,000.
    per_channel = -(-count // len(CHANNELS))
    t0 = [T0 + (per_channel + per_channel // 1000 + 10) * SAMPLES * DT]
    h = [1e-21 * (i % 7) for i in range(SAMPLES)]

    def write() -> httpx.Response:
        body = orjson.dumps({"h": h, "t": [t0[0], DT], "channel": CHANNELS[0]})
        t0[0] += SAMPLES * DT
        answer = client.post(
            f"{api_url}/streamdata", content=body, headers={"content-type": "application/json"}
        )
        if answer.status_code != 201:
            raise RuntimeError(f"write answered {answer.status_code}: {answer.text[:200]}")
        return answer

    return write


def measure(count: int, starts: int, requests: int, baseline: Path | None) -> dict[str, float]:
    """Every figure for a folder of ``count`` chunks."""
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        stored = write_chunks(root / "data", count)
        print(f"{count:>8} chunks written in {time.perf_counter() - began:.1f} s", flush=True)
        layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
        env = {"GLITCHFLOW_LOG_LEVEL": "WARNING"}
        times: dict[str, list[tuple[float, float]]] = {"buffer start-up": []}
        if baseline is not None:
            times["baseline start-up"] = []
        for _ in range(starts):
            for what in times:
                buffer = service_processes(layout, root, 10 * stored, env=env)[0]
                if what.startswith("baseline"):
                    # -P: the baseline's packages, not the current folder's, come first.
                    buffer.argv = [sys.executable, "-P", *buffer.argv[1:]]
                    buffer.env = {**buffer.env, "PYTHONPATH": str(baseline)}
                try:
                    times[what].append(start_seconds(buffer))
                finally:
                    buffer.stop()
        for what, pairs in times.items():
            figures[f"{what} s"] = statistics.median(wall for wall, _ in pairs)
            figures[f"{what} CPU s"] = statistics.median(cpu for _, cpu in pairs)
        processes = service_processes(layout, root, 10 * stored, env=env)
        stack = Stack(processes)
        try:
            stack.start(timeout=300)
            figures["buffer RSS after start MB"] = rss_mb(processes[0].pid)
            with httpx.Client(timeout=60) as client:
                api = layout.api_url
                stats = client.get(f"{api}/stats").json()
                if stats["n_itm"] != count:
                    raise RuntimeError(f"/stats says {stats}, {count} chunks were written")
                train = {"user": "bench", "token": "bench"}
                calls: dict[str, Callable[[], httpx.Response]] = {
                    "API /stats ms": lambda: client.get(f"{api}/stats"),
                    "API /train (WAITING) ms": lambda: client.post(f"{api}/train", json=train),
                    "API /status ms": lambda: client.get(f"{api}/status"),
                    "buffer /stat ms": lambda: client.get(f"{layout.buffer_url}/stat"),
                    "API /streamdata write ms": chunk_writer(client, api, count),
                }
                for what, call in calls.items():
                    figures[what] = median_ms(call, requests)
                if client.post(f"{api}/train", json=train).json().get("resp") != "WAITING":
                    raise RuntimeError("/train did not answer WAITING")
            figures["buffer RSS after calls MB"] = rss_mb(processes[0].pid)
        finally:
            stack.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--starts", type=int, default=3, help="buffer starts per size (median)")
    parser.add_argument("--requests", type=int, default=30, help="timed calls of each (median)")
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of another revision, started alternately"
    )
    args = parser.parse_args()
    results = {
        count: measure(count, args.starts, args.requests, args.baseline) for count in args.sizes
    }
    first, last = args.sizes[0], args.sizes[-1]
    print()
    print(f"{'median':<28}" + "".join(f"{count:>12,}" for count in args.sizes) + "   growth")
    for what in results[first]:
        row = "".join(f"{results[count][what]:>12.2f}" for count in args.sizes)
        growth = results[last][what] / results[first][what]
        print(f"{what:<28}{row}   x{growth:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
