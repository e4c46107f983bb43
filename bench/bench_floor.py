"""The framework floor of the ingest chain, beside the single hop and the real stack, in one run.

Starts, as real processes on free loopback ports: the two single-hop servers of
`bench/bench_e2e.py` (plain aiohttp and the reference, each writing the body with fsync); the
floor chain of `bench/floor_apps.py` (FastAPI -> Flask under gunicorn gthread -> Starlette, the
services' servers, settings and HTTP clients, with nothing but the relay and the buffer's durable
write); the same floor with the two simdjson parses the real API and buffer do ("floor+parse");
and the real stack (databuffer, datastore_logic, glitchflow_api). Posts the same 1-s chunks
(16,384 samples, 375 kB of JSON, `bench/loadgen.py`) to each at concurrency 1, 4 and 16 (warm-up
first, ``--repeat`` runs per level, the first target rotating, medians printed) and prints
chunks/s, p50/p99, the ratio to the faster single hop and the CPU ms per chunk of each process
(user+system from /proc, the whole process group, so gunicorn's worker counts) and of this
client; "by CPU" is the single hop's CPU per chunk over the target's, the ratio reached where
both are CPU-bound (as on 2 cores), which other load changes much less than the rates. Then JSON
against binary float64 (131 kB bodies, stored in their 375 kB JSON form) at
``--binary-concurrency``, through the floor and the real stack: the best binary/JSON ratio the
chain's frameworks allow while the buffer still writes JSON files.

    .venv/bin/python bench/bench_floor.py [--count 300] [--repeat 3] [--concurrency 1 4 16]
        [--binary-count 200] [--binary-concurrency 16]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench_e2e import WARM_UP, level_arguments, median_figures, single_hop
from bench_ingest_paths import big_chunks, post_requests
from loadgen import SAMPLES, line, make_bodies, post_all

from glitchflow_stack import Layout, ManagedProcess, Stack, free_port, service_processes

HERE = Path(__file__).resolve().parent
TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def floor_chain(name: str, folder: str, parse: bool) -> list[ManagedProcess]:
    """The floor's buffer, logic and API (not started), each forwarding to the one before."""
    procs: list[ManagedProcess] = []
    upstream = ""
    for hop in ("buffer", "logic", "api"):
        port = free_port()
        argv = [sys.executable, str(HERE / "floor_apps.py"), hop, "--port", str(port)]
        env = {"FLOOR_UPSTREAM": upstream, "FLOOR_DIR": folder, "FLOOR_PARSE": str(int(parse))}
        upstream = f"http://127.0.0.1:{port}"
        procs.append(ManagedProcess(f"{name}-{hop}", argv, upstream, env=env))
    return procs


def group_cpu(pgid: int) -> tuple[int, int]:
    """User and system clock ticks of every live process in process group ``pgid``."""
    user = system = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            user += int(fields[11])
            system += int(fields[12])
    return user, system


def cpu_snapshot(procs: list[ManagedProcess]) -> dict[str, tuple[float, float]]:
    """User and system CPU ms of each process (group) and of this client."""
    snap = {p.name.split("-")[-1]: group_cpu(p.pid) for p in procs}
    snap = {name: (u * TICK_MS, s * TICK_MS) for name, (u, s) in snap.items()}
    times = os.times()
    snap["client"] = (times.user * 1e3, times.system * 1e3)
    return snap


def cpu_line(used: dict[str, list[float]], chunks: int) -> str:
    """CPU ms per chunk, ``user+system`` for each process, and their total."""
    parts = [f"{name} {u / chunks:.2f}+{s / chunks:.2f}" for name, (u, s) in used.items()]
    total = sum(u + s for u, s in used.values()) / chunks
    return f"    cpu ms/chunk (user+sys): {', '.join(parts)}; total {total:.2f}"


def measured(procs: list[ManagedProcess], coro) -> tuple[object, dict[str, tuple[float, float]]]:
    """Run ``coro``; its result and the user and system CPU ms each process spent meanwhile."""
    before = cpu_snapshot(procs)
    result = asyncio.run(coro)
    after = cpu_snapshot(procs)
    return result, {k: (u - before[k][0], s - before[k][1]) for k, (u, s) in after.items()}


class Target:
    """One server or chain posted to, with the CPU its processes used over its runs."""

    def __init__(self, name: str, url: str, path: str, procs: list[ManagedProcess]) -> None:
        self.name, self.url, self.path, self.procs = name, url, path, procs
        self.reset()

    def reset(self) -> None:
        self.runs: list = []
        self.used: dict[str, list[float]] = {}
        self.chunks = 0

    def run(self, coro, chunks: int) -> None:
        """Run ``coro``, keep its result and add the CPU it cost."""
        result, used = measured(self.procs, coro)
        self.runs.append(result)
        for name, (u, s) in used.items():
            total = self.used.setdefault(name, [0.0, 0.0])
            total[0] += u
            total[1] += s
        self.chunks += chunks

    def cpu(self) -> float:
        """CPU ms per chunk, all processes and the client, over the runs so far."""
        return sum(u + s for u, s in self.used.values()) / self.chunks


def main() -> int:
    parser = level_arguments(__doc__)
    parser.add_argument("--binary-count", type=int, default=200, help="chunks per binary run")
    parser.add_argument("--binary-concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-floor-", dir=args.dir) as tmp:
        layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
        env = {"GLITCHFLOW_LOG_LEVEL": "WARNING"}
        real = Stack(service_processes(layout, Path(tmp) / "buffer", 10**13, env=env))
        floor = Stack(floor_chain("floor", f"{tmp}/floor", parse=False))
        parsed = Stack(floor_chain("parse", f"{tmp}/parse", parse=True))
        singles = [
            single_hop("plain", "plain_aiohttp_server.py", f"{tmp}/plain"),
            single_hop("reference", "reference_server.py", f"{tmp}/reference"),
        ]
        targets = [Target(p.name, p.url, "/sendF", [p]) for p in singles]
        for name, stack in (("floor", floor), ("floor+parse", parsed), ("real", real)):
            api = stack.processes[-1]
            targets.append(Target(name, api.url, "/streamdata", stack.processes))
        print(
            f"chunk: {SAMPLES} samples, {len(make_bodies(1, 0)[0]) / 1e3:.0f} kB; "
            f"{args.count} chunks per run, {args.repeat} runs per level; load {os.getloadavg()}"
        )
        stacks = [floor, parsed, real]
        try:
            for proc in singles:
                proc.start()
                proc.wait_ready(20, path="/healthz")
            for stack in stacks:
                stack.start()
            t0 = 1_400_000_000.0
            warm_up = make_bodies(WARM_UP, t0)
            t0 += WARM_UP
            for target in targets:
                asyncio.run(post_all(target.url, target.path, warm_up, 4))
            for concurrency in args.concurrency:
                for target in targets:
                    target.reset()
                for repeat in range(args.repeat):
                    bodies = make_bodies(args.count, t0)
                    t0 += args.count
                    shift = repeat % len(targets)
                    for target in targets[shift:] + targets[:shift]:
                        run = post_all(target.url, target.path, bodies, concurrency)
                        target.run(run, len(bodies))
                medians = {target.name: median_figures(target.runs) for target in targets}
                best = max(medians["plain"].rate, medians["reference"].rate)
                least = min(target.cpu() for target in targets[:2])
                print(f"concurrency {concurrency} (load {os.getloadavg()[0]:.1f}):")
                for target in targets:
                    figures = medians[target.name]
                    ratio = f"{figures.rate / best:.2f} (by CPU {least / target.cpu():.2f})"
                    print(f"{line(target.name, figures)}  / single hop {ratio}")
                    print(cpu_line(target.used, target.chunks))
            print(f"JSON against binary at concurrency {args.binary_concurrency}:")
            for target in targets[2:3] + targets[-1:]:
                kinds = {
                    binary: Target(f"{target.name}, {kind}", target.url, "", target.procs)
                    for binary, kind in ((False, "JSON"), (True, "binary"))
                }
                for repeat in range(args.repeat):
                    for binary in (repeat % 2 == 1, repeat % 2 == 0):
                        requests = big_chunks(args.binary_count, t0, binary)
                        t0 += args.binary_count
                        run = post_requests(target.url, requests, args.binary_concurrency)
                        kinds[binary].run(run, len(requests))
                rates = {}
                for binary, kind in kinds.items():
                    rates[binary] = statistics.median(
                        args.binary_count * SAMPLES / s for s in kind.runs
                    )
                    print(f"  {kind.name:<20} {rates[binary] / 1e6:5.2f} M samples/s")
                    print(cpu_line(kind.used, kind.chunks))
                print(f"  {target.name}: binary / JSON {rates[True] / rates[False]:.2f}")
        finally:
            for stack in reversed(stacks):
                stack.stop()
            for proc in singles:
                proc.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
