"""Export speed: an archived ~100 MiB batch to gwpy HDF5, against ``cp -r`` of the same files.

Builds the batch with the buffer's own storage engine (H1 and L1 synthetic strain, 1 s chunks
at 4096 Hz, about 93 kB each), then in one run times ``cp -r`` of the batch folder and
``glitchflow export`` of it (read, size and sha256 check, parse with the services' chunk parser,
join segments, write HDF5 with gwpy), each ``--rounds`` times from a warm page cache, and prints
MB/s of chunk files for both and their ratio. Target: export >= 0.5 x cp.

    .venv/bin/python bench/bench_export.py [--mib 100] [--rounds 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # gwpy 4.1 reads astropy's deprecated COPY_IF_NEEDED at import; import it before timing.
    warnings.filterwarnings("ignore", "COPY_IF_NEEDED is no longer needed")
    import gwpy.segments
    import gwpy.timeseries  # noqa: F401

from databuffer.storage import Storage
from glitchflow_archive import LocalArchive
from glitchflow_core.chunk import parse_chunk
from glitchflow_dataset.export import export_batch
from gwclient.chunks import plan_chunks
from gwclient.synthetic import synthetic_series

RATE = 4096.0
START = 1_400_000_000.0


def build_batch(root: Path, mib: float) -> Path:
    """A flushed batch of about ``mib`` MiB of chunk files; its folder."""
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    bytes_per_second = 2 * 93_000  # two channels, ~93 kB a chunk of 4096 samples
    duration = max(4, round(mib * 1024 * 1024 / bytes_per_second))
    source = TimeSeriesDict()
    for det in ("H1", "L1"):
        h, _ = synthetic_series(det, duration, RATE, START, seed=1, glitches=5)
        source[f"{det}:SYNTH-STRAIN"] = TimeSeries(h, t0=START, sample_rate=RATE)
    storage = Storage(root / "data", root / "adm", root / "log", root / "archive")
    try:
        for chunk in plan_chunks(source, 1.0):
            body = chunk.body()
            storage.write(parse_chunk(body), body=body)
        storage.freeze_if("bench")
        return root / "archive" / storage.flush("bench").archive
    finally:
        storage.close()


def time_cp(folder: Path, scratch: Path) -> float:
    target = scratch / "cp"
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(folder), str(target)], check=True)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def time_export(folder: Path, scratch: Path) -> float:
    store, ref = LocalArchive.open_folder(folder)
    out = scratch / "batch.h5"
    start = time.perf_counter()
    export_batch(store, ref, out)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="profile one export")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        scratch = Path(tmp)
        print(f"building a {args.mib:g} MiB batch with the buffer's engine...", flush=True)
        folder = build_batch(scratch / "store", args.mib)
        files = [p for p in folder.iterdir() if p.name != "manifest.json"]
        nbytes = sum(p.stat().st_size for p in files)
        print(f"batch: {len(files)} chunk files, {nbytes / 2**20:.1f} MiB in {folder.name}")
        time_cp(folder, scratch)  # warm the page cache for both
        cp_times, export_times = [], []
        for _ in range(args.rounds):
            cp_times.append(time_cp(folder, scratch))
            export_times.append(time_export(folder, scratch))
        cp = nbytes / statistics.median(cp_times) / 1e6
        export = nbytes / statistics.median(export_times) / 1e6
        print(
            f"cp -r          {cp:8.1f} MB/s  (median of {args.rounds}: "
            f"{statistics.median(cp_times):.3f} s)"
        )
        print(
            f"glitchflow export {export:5.1f} MB/s  (median of {args.rounds}: "
            f"{statistics.median(export_times):.3f} s)"
        )
        print(f"ratio export/cp: {export / cp:.2f} (target >= 0.5)")
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(time_export, folder, scratch)
            pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
