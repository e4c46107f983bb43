"""Read-back speed: 10 minutes of a 16 kHz channel through ``GET /data``, against the files.

Writes 600 s of a 16,384 Hz channel in 1 s chunks through the buffer's storage engine (the first
half flushed to the archive folder, the second half left in the batch being filled), starts the
three services on that folder, then prints:

- the whole 600 s through ``/data`` (API -> logic -> buffer -> files), in MB/s of chunk files
  covered and of JSON answered, against reading and parsing the same chunk files directly
  (``read_bytes`` + the services' chunk parser + ``np.concatenate``);
- reads of 1, 10, 60 and 600 s: time per second of range stays flat (cost in proportion to the
  range), and a 1 s read costs the same whatever the position in the 10 minutes.

Usage: ``.venv/bin/python bench/bench_readback.py [--seconds 600] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

from databuffer.storage import Storage
from glitchflow_core.chunk import parse_chunk
from glitchflow_stack import Layout, Stack, free_port, service_processes

CHANNEL = "H1:BENCH-16KHZ"
RATE = 16384
T0 = 1_300_000_000.0
MB = 1e6


def populate(root: Path, seconds: int) -> list[Path]:
    """Write ``seconds`` 1 s chunks; the first half is archived. The chunk files, in time order."""
    storage = Storage(root / "data", root / "adm", root / "log", root / "archive")
    rng = np.random.default_rng(0)
    try:
        for i in range(seconds):
            body = orjson.dumps(
                {
                    "h": rng.normal(scale=1e-21, size=RATE),
                    "t": [T0 + i, 1 / RATE],
                    "channel": CHANNEL,
                },
                option=orjson.OPT_SERIALIZE_NUMPY,
            )
            storage.write(parse_chunk(body), body=body)
            if i == seconds // 2 - 1:
                storage.flush("bench: first half archived", force=True)
    finally:
        storage.close()
    files = [p for p in root.rglob("*.json") if "__" in p.name]
    return sorted(files, key=lambda p: p.name)


def read_files(files: list[Path]) -> tuple[float, int, np.ndarray]:
    """Seconds to read and parse ``files`` into one array, their bytes, the array."""
    began = time.perf_counter()
    parts = []
    nbytes = 0
    for path in files:
        data = path.read_bytes()
        nbytes += len(data)
        parts.append(parse_chunk(data, max_samples=len(data)).h)
    samples = np.concatenate(parts)
    return time.perf_counter() - began, nbytes, samples


def timed_get(api: httpx.Client, start: float, end: float) -> tuple[float, bytes]:
    began = time.perf_counter()
    answer = api.get("/data", params={"channel": CHANNEL, "start": start, "end": end})
    elapsed = time.perf_counter() - began
    answer.raise_for_status()
    return elapsed, answer.content


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=600)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-readback-") as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        files = populate(root, args.seconds)
        file_bytes = sum(p.stat().st_size for p in files)
        print(
            f"wrote {len(files)} chunk files, {file_bytes / MB:.1f} MB "
            f"({args.seconds} s of {RATE} Hz) in {time.perf_counter() - began:.1f} s"
        )
        direct = [read_files(files)[0] for _ in range(args.repeat)]
        _, _, reference = read_files(files)
        layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
        env = {
            "GLITCHFLOW_MAX_READ_SECONDS": str(args.seconds),
            "GLITCHFLOW_UPSTREAM_TIMEOUT": "300",
            "GLITCHFLOW_LOG_LEVEL": "WARNING",
        }
        stack = Stack(service_processes(layout, root, 1 << 40, env=env))
        stack.start()
        try:
            with httpx.Client(base_url=layout.api_url, timeout=600) as api:
                end = T0 + args.seconds
                whole = []
                for _ in range(args.repeat):
                    elapsed, body = timed_get(api, T0, end)
                    whole.append(elapsed)
                doc = orjson.loads(body)
                assert np.array_equal(np.asarray(doc["h"]), reference), "not bit-exact"
                best_direct, best_api = min(direct), min(whole)
                print(
                    f"direct  read+parse of the files: {best_direct:6.2f} s "
                    f"{file_bytes / MB / best_direct:7.1f} MB/s of chunk files"
                )
                print(
                    f"GET /data {args.seconds} s (API->logic->buffer): {best_api:6.2f} s "
                    f"{file_bytes / MB / best_api:7.1f} MB/s of chunk files, "
                    f"{len(body) / MB / best_api:.1f} MB/s of JSON ({len(body) / MB:.0f} MB), "
                    f"{best_direct / best_api:.2f}x the direct read"
                )
                print("range   median time   per second of range")
                for seconds in (1, 10, 60, args.seconds):
                    times = [
                        timed_get(
                            api,
                            T0 + args.seconds / 2 - seconds / 2 + 0.5,
                            T0 + args.seconds / 2 + seconds / 2 + 0.5,
                        )[0]
                        if seconds < args.seconds
                        else timed_get(api, T0, end)[0]
                        for _ in range(max(args.repeat, 5 if seconds <= 60 else 1))
                    ]
                    med = statistics.median(times)
                    print(f"{seconds:5d} s  {med * 1e3:9.1f} ms  {med / seconds * 1e3:8.2f} ms/s")
                print("1 s read at        median time")
                for where in (0.1, args.seconds / 4, args.seconds / 2 + 1, args.seconds - 2):
                    times = [timed_get(api, T0 + where, T0 + where + 1)[0] for _ in range(5)]
                    label = "archived" if where < args.seconds / 2 else "live"
                    print(
                        f"GPS +{where:6.1f} ({label:8s}) {statistics.median(times) * 1e3:7.1f} ms"
                    )
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
