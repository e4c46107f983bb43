"""Read, check against the manifest and parse a batch's chunk files, in one process or several.

Most of an export's CPU is `parse_chunk` (simdjson into float64, then the chunk's checks), which
holds the GIL, then sha256 and reads. By default a batch is read in this process, reads and
hashes running ahead in threads (both release the GIL). With ``workers`` > 1 a batch held in
local files is cut into contiguous slices by bytes, one per process: the caller reads, checks and
parses the first slice while forked workers do the same with the others, then send their samples
back through a pipe as raw float64 bytes (one copy, no pickling of arrays). That pays where cores
are idle; on the shared 2-core VM one process was as fast or faster (docs/PERFORMANCE.md), so it
is not the default. Every file passes the same checks either way, and a bad batch names the same
file: the first bad one in manifest order. A batch read from a bucket, or a caller running
threads (fork copies only the calling thread), is read in one process.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import struct
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from glitchflow_archive import ArchiveError, ArchiveStore, BatchRef, FileEntry, Manifest
from glitchflow_core.chunk import Chunk, ChunkError, parse_chunk
from glitchflow_dataset.errors import DatasetError

_HEADER = struct.Struct("<Q")


def parse_stored(ref: BatchRef, entry: FileEntry, data: bytes) -> Chunk:
    """``data`` of ``entry`` parsed by the services' parser; `DatasetError` if not a chunk."""
    try:
        # Every sample takes at least two bytes: this bound never refuses a stored chunk.
        return parse_chunk(data, max_samples=max(len(data) // 2, 1))
    except ChunkError as exc:
        raise DatasetError(f"batch {ref.name}: {entry.name} is not a valid chunk ({exc})") from exc


def read_chunks(store: ArchiveStore, ref: BatchRef, manifest: Manifest) -> Iterator[Chunk]:
    """Every chunk of the batch in manifest order, in this process, verified and parsed.

    Raises
    ------
    glitchflow_archive.ArchiveError
        A file is missing, unlisted or differs from the manifest.
    DatasetError
        A file is not a valid chunk.
    """
    for entry, data in store.read_verified(ref, manifest):
        yield parse_stored(ref, entry, data)


def read_batch(
    store: ArchiveStore, ref: BatchRef, manifest: Manifest, *, workers: int | None = None
) -> list[Chunk]:
    """Every chunk of the batch in manifest order, verified and parsed, in ``workers`` processes
    (default 1) when the batch is in local files and this process runs no other thread.

    Raises
    ------
    glitchflow_archive.ArchiveError
        A file is missing, unlisted or differs from the manifest.
    DatasetError
        A file is not a valid chunk.
    """
    slices = plan_slices(store, ref, manifest, workers)
    if len(slices) < 2:
        return list(read_chunks(store, ref, manifest))
    store.check_listing(ref, manifest)
    context = multiprocessing.get_context("fork")
    running: list[tuple[multiprocessing.process.BaseProcess, int]] = []
    try:
        for part in slices[1:]:
            read_end, write_end = os.pipe()
            try:
                process = context.Process(
                    target=_worker,
                    args=(store, ref, part, read_end, write_end),
                    name="glitchflow-export-reader",
                    daemon=True,
                )
                process.start()
            except BaseException:
                os.close(read_end)
                raise
            finally:
                os.close(write_end)
            running.append((process, read_end))
        chunks = [parse_stored(ref, e, store.read_checked(ref, e)) for e in slices[0]]
        for process, read_end in running:
            chunks.extend(_receive(ref, process, read_end))
        return chunks
    finally:
        for process, read_end in running:
            os.close(read_end)
            if process.is_alive():  # the caller's slice failed first: its error is the one
                process.kill()
            process.join()


def plan_slices(
    store: ArchiveStore, ref: BatchRef, manifest: Manifest, workers: int | None = None
) -> list[list[FileEntry]]:
    """The manifest's files cut into one slice per process `read_batch` would run."""
    if (
        workers is None
        or workers < 2
        or not store.reads_locally(ref.name)
        or threading.active_count() > 1
        or "fork" not in multiprocessing.get_all_start_methods()
    ):
        return [list(manifest.files)]
    return _slices(manifest.files, min(workers, len(manifest.files)))


def _slices(files: Sequence[FileEntry], parts: int) -> list[list[FileEntry]]:
    """``files`` cut into at most ``parts`` contiguous slices of about equal bytes."""
    total = max(sum(f.nbytes for f in files), 1)
    out: list[list[FileEntry]] = [[] for _ in range(parts)]
    before = 0
    for entry in files:
        out[min(parts - 1, before * parts // total)].append(entry)
        before += entry.nbytes
    return [part for part in out if part]


def _worker(
    store: ArchiveStore, ref: BatchRef, entries: list[FileEntry], read_end: int, write_end: int
) -> None:
    """In a forked process: read, check and parse ``entries``; write to ``write_end`` a header,
    the pickled ``(meta, error)`` and, without an error, each chunk's float64 samples."""
    os.close(read_end)
    with open(write_end, "wb") as pipe:
        try:
            chunks = [parse_stored(ref, e, store.read_checked(ref, e)) for e in entries]
        except (ArchiveError, DatasetError, OSError) as exc:
            # The caller raises it as its own: the same type and message as one process gives.
            payload = pickle.dumps((None, exc))
            pipe.write(_HEADER.pack(len(payload)) + payload)
            return
        meta = [(c.channel, c.t0, c.dt, c.n) for c in chunks]
        payload = pickle.dumps((meta, None))
        pipe.write(_HEADER.pack(len(payload)) + payload)
        for chunk in chunks:
            pipe.write(memoryview(chunk.h).cast("B"))


def _receive(
    ref: BatchRef, process: multiprocessing.process.BaseProcess, read_end: int
) -> list[Chunk]:
    """The chunks a worker sends, as views into one array; its error raised here."""
    with open(read_end, "rb", closefd=False) as pipe:
        header = pipe.read(_HEADER.size)
        payload = pipe.read(_HEADER.unpack(header)[0]) if len(header) == _HEADER.size else b""
        if not payload:
            process.join()
            raise DatasetError(
                f"batch {ref.name}: a reader process died (exit status {process.exitcode})"
            )
        # Our own child's bytes, through a pipe only it and this process hold.
        meta, error = pickle.loads(payload)  # noqa: S301
        if error is not None:
            raise error
        samples = np.empty(sum(m[3] for m in meta), dtype=np.float64)
        received = pipe.readinto(memoryview(samples).cast("B"))
    if received != samples.nbytes:
        process.join()
        raise DatasetError(
            f"batch {ref.name}: a reader process died (exit status {process.exitcode})"
        )
    chunks, offset = [], 0
    for channel, t0, dt, n in meta:
        chunks.append(Chunk(channel=channel, t0=t0, dt=dt, h=samples[offset : offset + n]))
        offset += n
    return chunks
