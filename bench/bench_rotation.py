"""Ingest through several freezes, ``hold`` against ``rotate``: refused chunks and pause per batch.

Starts the three services as real processes (no tokens, loopback ports) once per freeze mode. A
live-detector-like stream posts 1-s chunks of 4096 Hz strain to ``/streamdata`` at ``--rate``
chunks per second; a refused chunk (503 FROZEN) is counted and sent again after the buffer's
``Retry-After``, as gwclient does, so the stream falls behind instead of losing data. A
DAG-like flusher polls ``/train`` every ``--poll`` seconds (the Airflow sensor) and, while it
answers FROZEN, flushes with ``/cleanbuf``. Printed per mode: chunks, refused answers, batches
flushed, the buffer's ingest pause per batch (``/dstat``) and the stream's longest wait.
Target: rotate refuses nothing and never pauses.

    .venv/bin/python bench/bench_rotation.py [--duration 60] [--poll 10] [--rate 20]
        [--max-size 8MiB] [--modes hold rotate]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import orjson

from glitchflow_core.sizes import parse_size
from glitchflow_stack import Layout, Stack, free_port, service_processes

SAMPLE_RATE = 4096
CHANNEL = "H1:BENCH-ROTATION"


@dataclass
class Run:
    """What one mode did."""

    mode: str
    sent: int = 0
    refused: int = 0
    longest_wait: float = 0.0
    flushed: list[int] = field(default_factory=list)
    pauses: list[tuple[int, float]] = field(default_factory=list)
    sealed_max: int = 0


def chunk_body(i: int, t0: float) -> bytes:
    h = np.random.default_rng(i).normal(scale=1e-21, size=SAMPLE_RATE)
    doc = {"h": h, "t": [t0 + i, 1 / SAMPLE_RATE], "channel": CHANNEL}
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


def stream(url: str, run: Run, rate: float, duration: float, stop: threading.Event) -> None:
    """Post chunk i at ``start + i / rate``; a refused chunk waits Retry-After and goes again."""
    headers = {"content-type": "application/json"}
    start = time.monotonic()
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while time.monotonic() - start < duration and not stop.is_set():
            body = chunk_body(i, 1_400_000_000.0)
            due = start + i / rate
            time.sleep(max(0.0, due - time.monotonic()))
            first_try = time.monotonic()
            while not stop.is_set():
                answer = client.post("/streamdata", content=body, headers=headers)
                if answer.status_code in (200, 201):
                    break
                if answer.status_code != 503:
                    raise RuntimeError(f"stream: {answer.status_code} {answer.text[:200]}")
                run.refused += 1
                time.sleep(float(answer.headers.get("retry-after", "1")))
            run.longest_wait = max(run.longest_wait, time.monotonic() - first_try)
            run.sent += 1
            i += 1


def flusher(url: str, run: Run, poll: float, stop: threading.Event) -> None:
    """Every ``poll`` seconds: flush while /train answers FROZEN."""
    with httpx.Client(base_url=url, timeout=60) as client:
        while not stop.wait(poll):
            while True:
                train = client.post("/train", json={"user": "bench-dag"}).json()
                run.sealed_max = max(run.sealed_max, int(train.get("sealed") or 0))
                if train.get("resp") != "FROZEN":
                    break
                clean = client.post("/cleanbuf", json={"msg": "bench", "batch": train["batch"]})
                clean.raise_for_status()
                run.flushed.append(int(train["batch"]))


def run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> Run:
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    env = {"GLITCHFLOW_LOG_LEVEL": "WARNING", "GLITCHFLOW_FREEZE_MODE": mode}
    stack = Stack(service_processes(layout, tmp / mode, args.max_size, env=env))
    run = Run(mode)
    stop = threading.Event()
    stack.start()
    try:
        threads = [
            threading.Thread(
                target=stream, args=(layout.api_url, run, args.rate, args.duration, stop)
            ),
            threading.Thread(target=flusher, args=(layout.api_url, run, args.poll, stop)),
        ]
        for thread in threads:
            thread.start()
        threads[0].join()
        stop.set()
        threads[1].join()
        desc = httpx.get(f"{layout.buffer_url}/dstat").json()
        pause = desc["ingest_pause"]
        run.pauses = [(p["batch"], p["seconds"]) for p in reversed(pause["batches"])]
        if pause["paused"]:
            run.pauses.append((desc["batch"], pause["current_seconds"]))
    finally:
        stack.stop()
    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of stream per mode")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between /train polls")
    parser.add_argument("--rate", type=float, default=20.0, help="chunks per second")
    parser.add_argument("--max-size", type=parse_size, default=parse_size("8MiB"))
    parser.add_argument("--modes", nargs="+", default=["hold", "rotate"])
    args = parser.parse_args()
    chunk = len(chunk_body(0, 0.0))
    print(
        f"stream {args.rate:g} chunks/s of {chunk / 1e3:.0f} kB "
        f"({args.rate * chunk / 1e6:.1f} MB/s)"
        f" for {args.duration:g} s; MAX_SIZE {args.max_size} bytes (a batch every "
        f"{args.max_size / (args.rate * chunk):.1f} s); the flusher polls /train every "
        f"{args.poll:g} s"
    )
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-rotation-") as tmp:
        for mode in args.modes:
            runs.append(run_mode(mode, args, Path(tmp)))
    print(f"{'':26}" + "".join(f"{run.mode:>14}" for run in runs))
    rows = [
        ("chunks stored", lambda r: f"{r.sent}"),
        ("refused answers (503)", lambda r: f"{r.refused}"),
        ("longest chunk wait, s", lambda r: f"{r.longest_wait:.2f}"),
        ("batches flushed", lambda r: f"{len(r.flushed)}"),
        ("most sealed waiting", lambda r: f"{r.sealed_max}"),
        ("total pause, s", lambda r: f"{sum(s for _, s in r.pauses):.1f}"),
        ("max pause per batch, s", lambda r: f"{max((s for _, s in r.pauses), default=0):.1f}"),
    ]
    for label, value in rows:
        print(f"{label:26}" + "".join(f"{value(run):>14}" for run in runs))
    for run in runs:
        per_batch = ", ".join(f"{batch}: {seconds:.1f}" for batch, seconds in run.pauses)
        print(f"pause per batch ({run.mode}), s: {per_batch or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
