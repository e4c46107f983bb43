"""Export speed: an archived ~100 MiB batch to gwpy HDF5, against ``cp -r`` of the same files.

Builds the batch with the buffer's own storage engine (H1 and L1 synthetic strain, 1 s chunks
at 4096 Hz, about 93 kB each), then times, ``--rounds`` times, ``cp -r`` of the batch folder and
``export_batch`` of it (read, size and sha256 check, parse with the services' chunk parser, join
segments, write HDF5 with gwpy, fsync), in alternating order. Before every timed run the batch's
files are read once, so both start from the same warm page cache. Prints each round, the
medians, MB/s of chunk files for both and their ratio. Target: export >= 0.5 x cp.
``--cli`` also times the command line (``python -m glitchflow_dataset export FOLDER --out F``),
interpreter start and gwpy import included.

    .venv/bin/python bench/bench_export.py [--mib 100] [--rounds 7] [--workers N] [--cli]
                                           [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
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
from glitchflow_dataset.reader import plan_slices
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


def warm(folder: Path) -> None:
    """Read every file of the batch: the same page-cache state before each timed run."""
    for path in folder.iterdir():
        path.read_bytes()


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (cp, the export's workers)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def time_cp(folder: Path, scratch: Path) -> tuple[float, float]:
    """Wall and CPU seconds of ``cp -r`` of the batch folder."""
    target = scratch / "cp"
    warm(folder)
    cpu, start = cpu_seconds(), time.perf_counter()
    subprocess.run(["cp", "-r", str(folder), str(target)], check=True)
    elapsed = time.perf_counter() - start, cpu_seconds() - cpu
    shutil.rmtree(target)
    return elapsed


def time_export(folder: Path, scratch: Path, workers: int | None) -> tuple[float, float]:
    """Wall and CPU seconds of the export of the batch folder."""
    store, ref = LocalArchive.open_folder(folder)
    out = scratch / "batch.h5"
    warm(folder)
    cpu, start = cpu_seconds(), time.perf_counter()
    export_batch(store, ref, out, workers=workers)
    elapsed = time.perf_counter() - start, cpu_seconds() - cpu
    out.unlink()
    return elapsed


def time_cli(folder: Path, scratch: Path, workers: int | None) -> float:
    out = scratch / "cli.h5"
    command = [sys.executable, "-m", "glitchflow_dataset", "export", str(folder), "--out", str(out)]
    if workers is not None:
        command += ["--workers", str(workers)]
    warm(folder)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    out.unlink()
    return elapsed


def summary(name: str, nbytes: int, times: list[float]) -> float:
    """Print the median and range of ``times``; the median's MB/s."""
    median = statistics.median(times)
    print(
        f"{name:24s} {nbytes / median / 1e6:7.1f} MB/s  median {median:.3f} s of {len(times)} "
        f"(range {min(times):.3f}-{max(times):.3f} s)"
    )
    return nbytes / median / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=None, help="export processes (default 1)")
    parser.add_argument("--cli", action="store_true", help="also time the command line")
    parser.add_argument("--profile", action="store_true", help="profile one export")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        scratch = Path(tmp)
        print(f"building a {args.mib:g} MiB batch with the buffer's engine...", flush=True)
        folder = build_batch(scratch / "store", args.mib)
        files = [p for p in folder.iterdir() if p.name != "manifest.json"]
        nbytes = sum(p.stat().st_size for p in files)
        store, ref = LocalArchive.open_folder(folder)
        slices = plan_slices(store, ref, store.read_manifest(ref), args.workers)
        print(
            f"batch: {len(files)} chunk files, {nbytes / 2**20:.1f} MiB in {folder.name}; "
            f"export in {len(slices)} process(es); load average {os.getloadavg()[0]:.1f}"
        )
        cp_runs, export_runs = [], []
        for round_ in range(args.rounds):
            # Alternate which goes first: neither always inherits the other's cache state.
            if round_ % 2:
                export_runs.append(time_export(folder, scratch, args.workers))
                cp_runs.append(time_cp(folder, scratch))
            else:
                cp_runs.append(time_cp(folder, scratch))
                export_runs.append(time_export(folder, scratch, args.workers))
            (cp_wall, cp_cpu), (export_wall, export_cpu) = cp_runs[-1], export_runs[-1]
            print(
                f"  round {round_ + 1}: cp -r {cp_wall:.3f} s ({cp_cpu:.2f} s CPU), "
                f"export {export_wall:.3f} s ({export_cpu:.2f} s CPU), "
                f"ratio {cp_wall / export_wall:.2f}",
                flush=True,
            )
        cp_times, export_times = [r[0] for r in cp_runs], [r[0] for r in export_runs]
        cp = summary("cp -r", nbytes, cp_times)
        export = summary("export (in process)", nbytes, export_times)
        ratios = [c / e for c, e in zip(cp_times, export_times, strict=True)]
        print(
            f"ratio export/cp: {export / cp:.2f} of the medians; per round median "
            f"{statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f} "
            f"(target >= 0.5); load average {os.getloadavg()[0]:.1f}"
        )
        cp_cpu = statistics.median(r[1] for r in cp_runs)
        export_cpu = statistics.median(r[1] for r in export_runs)
        # On a machine busier than its cores, wall time follows CPU time: this ratio says what
        # the wall ratio tends to there.
        print(
            f"CPU seconds (median): cp -r {cp_cpu:.2f}, export {export_cpu:.2f}; "
            f"ratio {cp_cpu / export_cpu:.2f}"
        )
        if args.cli:
            cli_times = [time_cli(folder, scratch, args.workers) for _ in range(3)]
            summary("glitchflow export (CLI)", nbytes, cli_times)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(time_export, folder, scratch, args.workers)
            pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(15)


if __name__ == "__main__":
    main()
