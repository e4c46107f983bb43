"""Archived batches for the dataset tests, made by the buffer's own storage engine in-process.

Tests may import services; the dataset and archive libraries may not.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pytest

from databuffer.storage import Storage
from glitchflow_core.chunk import parse_chunk
from gwclient.chunks import PlannedChunk, plan_chunks

with warnings.catch_warnings():
    # gwpy 4.1 reads astropy's deprecated COPY_IF_NEEDED once, at import: import it here, once,
    # so that test modules can import gwpy at their top.
    warnings.filterwarnings("ignore", "COPY_IF_NEEDED is no longer needed")
    import gwpy.segments
    import gwpy.spectrogram
    import gwpy.timeseries  # noqa: F401

# gwpy 4.1 still reads astropy's COPY_IF_NEEDED, which astropy 8 deprecates; nothing of ours.
GWPY_WARNING = (
    "ignore:COPY_IF_NEEDED is no longer needed"
    ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
)


def archive_batch(data_dir: Path, chunks: Iterable[PlannedChunk]) -> Path:
    """Store ``chunks`` with the buffer's engine, freeze and flush; the archived batch folder."""
    storage = Storage(data_dir / "data", data_dir / "adm", data_dir / "log", data_dir / "archive")
    try:
        for chunk in chunks:
            body = chunk.body()
            storage.write(parse_chunk(body), body=body)
        storage.freeze_if("test")
        result = storage.flush("test")
    finally:
        storage.close()
    return data_dir / "archive" / result.archive


def drop(chunks: list[PlannedChunk], channel: str, *indices: int) -> list[PlannedChunk]:
    """``chunks`` without the ``indices``-th chunks of ``channel`` (in time order): gaps."""
    mine = [c for c in chunks if c.channel == channel]
    gone = {id(mine[i]) for i in indices}
    return [c for c in chunks if id(c) not in gone]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m glitchflow_dataset ARGS`` as a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "glitchflow_dataset", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def shipped():
    """The real H1/L1/V1 second that ships with gwpy, as gwclient reads it."""
    from gwclient import sources

    return sources.read_file(sources.shipped_sample_path())


@pytest.fixture
def archived() -> Callable[..., Path]:
    """``archived(data_dir, source, chunk_seconds=0.25)``: a source archived as one batch."""

    def make(data_dir: Path, source: object, chunk_seconds: float = 0.25) -> Path:
        return archive_batch(data_dir, plan_chunks(source, chunk_seconds))

    return make


def samples_equal(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality of two float64 arrays."""
    return np.asarray(a, dtype=np.float64).tobytes() == np.asarray(b, dtype=np.float64).tobytes()
