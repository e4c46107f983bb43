"""The storage engine of the buffer: writes, freeze and flush of chunk files. No HTTP here.

The disk is the truth. Every chunk is one file in the data folder, named from its identity
(`databuffer.naming`); the current batch (`databuffer.batch`: its state, index and freeze rule)
is rebuilt from those files at start-up. This engine adds concurrency and durability: one lock
serialises every change of the batch, while the costly parts (writing and fsyncing a chunk's
temporary file, hashing a batch before archiving it) happen outside it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

from databuffer.archive import Archive, Hashes, hash_files
from databuffer.atomic import fsync_dir, remove_temp_files, write_temp
from databuffer.batch import ArchivedChunk, CurrentBatch
from databuffer.errors import (
    ArchiveFailed,
    ArchiveStoreUnavailable,
    DiskFull,
    NotArchived,
    NotFrozen,
    StorageError,
    UnknownBatch,
)
from databuffer.eventlog import EventLog
from databuffer.index import BatchIndex, Span
from databuffer.naming import ChunkIdentity, chunk_filename
from databuffer.overview import ArchiveSummaries, RecentStrain, channel_summary, chunk_entries
from databuffer.results import FlushResult, FreezeResult, Stat, WriteResult
from databuffer.sealed import SEALED_ROOT, SealedBatch, SealedQueue
from databuffer.state import FROZEN, STAT_FILE, STATE_FILE, BatchState, StatCache
from glitchflow_archive import ArchiveError
from glitchflow_core.chunk import Chunk

LOG_FILE = "LogStream.json"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
WRITE_THREADS = 32
"""Threads that write and fsync the files of a multi-chunk write at once: fsyncs of the same
file system issued together share the journal's commits, where one after the other each waits
for its own (figures in docs/PERFORMANCE.md)."""


class Storage:
    """Durable, concurrent chunk store with freeze and flush.

    Parameters
    ----------
    data_dir, adm_dir, log_dir, archive_dir : Path
        Chunk files of the current batch; ``StatDesc.json`` and ``Dsstat.json``; ``LogStream.json``;
        flushed batches. Created when missing.
    log_max_bytes, log_backups : int
        Rotation of the event log.
    clock : callable
        Unix time; tests pass their own.
    on_pause : callable, optional
        Called with ``(batch, seconds)`` once per batch, when it stops being the batch being
        filled: how long writes were refused meanwhile (0 when they never were).
    read_archived : callable, optional
        ``read_archived(archive folder, file name) -> bytes`` reads an archived chunk file
        wherever the archive keeps it (the bucket, once uploaded): how a repeated chunk whose
        local copy went is compared when its bytes differ from the stored ones.
    """

    def __init__(
        self,
        data_dir: Path,
        adm_dir: Path,
        log_dir: Path,
        archive_dir: Path,
        *,
        log_max_bytes: int = 16 * 1024 * 1024,
        log_backups: int = 5,
        clock: Callable[[], float] = time.time,
        on_pause: Callable[[int, float], None] | None = None,
        read_archived: Callable[[str, str], bytes] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self._read_archived = read_archived
        self.adm_dir = Path(adm_dir)
        self.log_dir = Path(log_dir)
        self.archive_dir = Path(archive_dir)
        for folder in (self.data_dir, self.adm_dir, self.log_dir, self.archive_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(self.log_dir / LOG_FILE, log_max_bytes, log_backups)
        self.archive = Archive(self.archive_dir)
        self._recent = RecentStrain(self.data_dir)
        self._archive_summaries = ArchiveSummaries(self.archive)
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._renamed = 0  # renames into the data folder so far
        self._synced = 0  # renames made durable by an fsync of the folder
        self._closed = False
        self._writers: ThreadPoolExecutor | None = None
        # Free bytes on the data volume when the last write found none (None: it did not).
        self._disk_full_free: int | None = None
        self._stat_cache = StatCache(self.adm_dir / STAT_FILE, lambda: self.stat().as_json())
        self._batch = CurrentBatch(
            self.adm_dir / STATE_FILE,
            self.data_dir,
            self.archive,
            self.log,
            self._stat_cache,
            clock,
            SealedQueue(self.archive_dir / SEALED_ROOT),
            on_pause,
        )
        # The files are the truth; leftovers of a crash go first. The archive folder too
        # (check_writable writes its probe there), and each archived batch's folder: its upload
        # marker and recorded results are replaced atomically there.
        batches = (self.archive_dir / name for name in self.archive.folders())
        folders = (self.data_dir, self.adm_dir, self.archive_dir, *batches)
        removed = sum(remove_temp_files(folder) for folder in folders)
        restored = self.archive.restore_partial(self.data_dir)
        self._batch.recover()
        self._stat_cache.write()
        self.log.append(
            "start",
            **self._batch.stat().as_json(),
            sealed=[sealed.batch for sealed in self._batch.sealed],
            temp_removed=removed,
            restored_from_partial_archive=restored,
        )

    # ----------------------------------------------------------------- reading

    @property
    def state(self) -> BatchState:
        """The current `BatchState`."""
        return self._batch.state

    @property
    def stored_files(self) -> int:
        """Chunk files in the current batch."""
        return self._batch.index.stored_files

    @property
    def stored_bytes(self) -> int:
        """Bytes of the chunk files in the current batch."""
        return self._batch.index.stored_bytes

    def stat(self) -> Stat:
        """Counters, batch number and state."""
        with self._lock:
            return self._batch.stat()

    def names(self, limit: int, offset: int = 0) -> tuple[list[str], int]:
        """Chunk file names sorted by channel then GPS time, one page, and the total."""
        with self._lock:
            index = self._batch.index
            return index.names(max(limit, 0), offset), index.stored_files

    def channels(self) -> dict[str, dict[str, Any]]:
        """Per channel: files, bytes, GPS span, covered segments and gaps."""
        with self._lock:
            return self._batch.index.channels()

    def overview(self, limit: int, offset: int = 0) -> dict[str, Any]:
        """What the status page shows, in a time independent of the number of stored chunks.

        Counters, state, per-channel coverage and the ingest rate are kept as chunks arrive;
        besides them only one page of the sorted index, the newest chunk file of each channel
        (cached) and the newest archives' manifests (cached) are read.
        """
        with self._lock:
            batch = self._batch
            state = batch.state
            now = batch.clock()
            stat = batch.stat()
            indexes = batch.index.channel_indexes()
            channels = [channel_summary(channel, index) for channel, index in indexes]
            newest = [index.newest for _, index in indexes]
            entries = batch.index.entries(max(limit, 0), offset)
            rate = batch.rate.as_json()
            sealed = [
                {**held.summary(), "waiting_s": round(max(0.0, now - held.sealed_at), 3)}
                for held in batch.sealed
            ]
            pause = self._pause_locked()
        for summary, span in zip(channels, newest, strict=True):
            if span is not None:
                samples = round((span.end - span.start) / span.dt)
                summary["recent"] = self._recent.preview(summary["channel"], span.name, samples)
        archives, archive_total = self._archive_summaries.newest()
        frozen_at = state.frozen_at if state.dstatus == FROZEN else None
        return {
            "now": now,
            "stat": stat.as_json(),
            "state": state.as_json(),
            "frozen_for_s": None if frozen_at is None else max(0.0, now - frozen_at),
            "rate": rate,
            "sealed": sealed,
            "ingest_pause": pause,
            "channels": channels,
            "chunks": {
                "items": chunk_entries(entries),
                "total": stat.stored_files,
                "offset": offset,
                "limit": limit,
            },
            "archives": {"items": archives, "total": archive_total},
        }

    def spans_in_buffer(
        self, channel: str, start: float, end: float
    ) -> list[tuple[int, Path, list[Span] | None]]:
        """Per batch held here, the spans of ``channel`` overlapping ``[start, end)``.

        ``(batch, folder of its files, spans)``, spans None when the batch has no such channel:
        the sealed batches waiting (rotate mode), oldest first, each in its own folder, then
        the batch being filled.
        """
        held = []
        with self._lock:
            for batch, folder, index in self._held_locked():
                channel_index = index.channel(channel)
                spans = None if channel_index is None else channel_index.between(start, end)
                held.append((batch, folder, spans))
        return held

    def channel_spans_in_buffer(self) -> list[tuple[int, dict[str, list[Span]]]]:
        """Per batch held here (as `spans_in_buffer`), every channel's spans."""
        with self._lock:
            return [(batch, index.spans()) for batch, _, index in self._held_locked()]

    def _held_locked(self) -> list[tuple[int, Path, BatchIndex]]:
        """The sealed batches, oldest first, then the batch being filled: number, folder, index."""
        current = self._batch
        held = [(sealed.batch, sealed.folder, sealed.index) for sealed in current.sealed]
        return [*held, (current.state.batch, self.data_dir, current.index)]

    def newest_gps(self) -> dict[str, float]:
        """Per channel of the current batch, the GPS time just after its newest sample."""
        with self._lock:
            return self._batch.index.newest_ends()

    def batches(self, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Manifests of archived batches, newest first, one page, and the total; each with the
        ``results`` recorded for it (null when none are)."""
        return self.archive.manifests(limit, offset)

    def record_results(
        self, batch: int, results: dict[str, Any]
    ) -> tuple[str, dict[str, Any], bool]:
        """Record what became of archived ``batch`` (export, training) beside its manifest.

        An archived folder never changes but for this file, so no lock is held while it is
        written; a repeat replaces the record (`Archive.record_results`).

        Raises
        ------
        NotArchived
            ``batch`` is the batch being filled or a sealed one not flushed yet.
        UnknownBatch
            ``batch`` never existed.
        """
        recorded = self.archive.record_results(batch, results, self._batch.clock())
        if recorded is not None:
            self.log.append("results", batch=batch, archive=recorded[0], replaced=recorded[2])
            return recorded
        with self._lock:
            current = self._batch.state.batch
            sealed = self._batch.sealed.get(batch) is not None
        if sealed or batch == current:
            where = "sealed, waiting for its flush" if sealed else "the batch being filled"
            raise NotArchived(batch, f"batch {batch} is not archived yet ({where})")
        raise UnknownBatch(batch, f"batch {batch} is not archived (no such batch)")

    def sealed_batches(self) -> list[SealedBatch]:
        """The sealed batches waiting to be handed over, oldest first.

        Each keeps its chunk files (``index.names()``) in its ``folder`` until the flush
        archives them; a sealed batch's files never change.
        """
        with self._lock:
            return list(self._batch.sealed)

    def describe(self) -> dict[str, Any]:
        """The state answer: `BatchState` of the batch being filled, the sealed queue (no file
        lists) and the ingest pause (seconds writes were refused) per batch."""
        with self._lock:
            batch = self._batch
            return {
                **batch.state.as_json(),
                "sealed": [sealed.summary() for sealed in batch.sealed],
                "ingest_pause": self._pause_locked(),
            }

    def _pause_locked(self) -> dict[str, Any]:
        """The ingest pause: refused now or not, the current pause, the total, per batch."""
        batch = self._batch
        paused = batch.pause_now()
        return {
            "paused": batch.state.dstatus == FROZEN,
            "current_seconds": round(paused, 3),
            "total_seconds": round(batch.pause_total + paused, 3),
            "batches": [
                {"batch": number, "seconds": round(seconds, 3)}
                for number, seconds in reversed(batch.pauses)
            ],
        }

    def pause_seconds(self) -> tuple[float, bool]:
        """Seconds writes were refused since start-up (the current freeze included), and
        whether they are refused now."""
        with self._lock:
            paused = self._batch.pause_now()
            return self._batch.pause_total + paused, self._batch.state.dstatus == FROZEN

    def check_writable(self) -> None:
        """Raise OSError unless a file can be created in every folder the engine writes."""
        for folder in (self.data_dir, self.adm_dir, self.archive_dir):
            os.unlink(write_temp(folder, b"ready", "readyz"))

    # ----------------------------------------------------------------- writing

    def write(
        self,
        chunk: Chunk,
        freeze_at: int | None = None,
        max_age: float | None = None,
        *,
        body: bytes | None = None,
        max_sealed: int | None = None,
    ) -> WriteResult:
        """Store a chunk durably, or recognise it as already stored.

        Parameters
        ----------
        chunk : Chunk
            A validated chunk.
        freeze_at : int, optional
            Freeze, in the same critical section, when this write brings the batch to this many
            bytes (`freeze_reason`).
        max_age : float, optional
            Also freeze when the batch's first chunk is older than this many seconds.
        body : bytes, optional
            The bytes ``chunk`` was validated from, stored as they are (validation admits only
            the fields ``h``, ``t`` and ``channel``), which spares re-encoding the samples.
            Without it the chunk's canonical form is stored.
        max_sealed : int, optional
            Rotate mode: the write that makes the batch due seals it into the queue and the
            next chunk opens a new batch, unless this many sealed batches already wait (then
            the batch freezes until a flush makes room). None: hold mode, the batch freezes.

        Returns
        -------
        WriteResult
            ``CREATED`` when stored now, ``DUPLICATE`` when the same chunk is already stored, in
            this batch, a sealed one or an archived one (not counted again); either only once
            the stored file is durable.

        Raises
        ------
        Frozen
            The buffer is frozen; nothing was stored.
        Conflict
            The chunk overlaps stored samples of its channel with different data.
        DiskFull
            No space left; nothing was stored.
        ChunkError
            ``t0`` beyond the GPS bound, so it cannot be named.
        """
        name = chunk_filename(chunk.channel, chunk.t0, chunk.n, chunk.dt)
        identity = ChunkIdentity.of(chunk)
        data = body if body is not None else chunk.canonical_bytes()
        with self._lock:
            result = self._batch.check(name, identity, data, chunk)
            renamed = self._renamed
        if isinstance(result, ArchivedChunk):
            return self._compare_archived(result, data, chunk)
        if result is not None:
            # The original write may not have made its rename durable yet.
            self._sync_data_dir(renamed)
            return result
        try:
            tmp = write_temp(self.data_dir, data, "chunk", drop_cache=True)
        except OSError as exc:
            self._raise_if_disk_full(exc, name)
            raise
        placed = False
        try:
            with self._lock:
                result = self._batch.check(name, identity, data, chunk)
                if result is None:
                    try:
                        os.replace(tmp, self.data_dir / name)
                    except OSError as exc:  # a folder that must grow to take one more name
                        self._raise_if_disk_full(exc, name)
                        raise
                    placed = True
                    self._renamed += 1
                    result = self._batch.add(
                        name, identity, len(data), freeze_at, max_age, max_sealed
                    )
                renamed = self._renamed
        finally:
            if not placed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        if isinstance(result, ArchivedChunk):  # stored, archived and uploaded meanwhile
            return self._compare_archived(result, data, chunk)
        # Acknowledged only once durable: our own rename, or the original one of a duplicate.
        self._sync_data_dir(renamed)
        if result.resp == "CREATED":
            self._disk_full_free = None
            if result.frozen:
                self._stat_cache.refresh()
            else:
                self._stat_cache.refresh_soon()
        return result

    def write_many(
        self,
        chunks: Sequence[tuple[Chunk, bytes | None]],
        freeze_at: int | None = None,
        max_age: float | None = None,
        *,
        max_sealed: int | None = None,
    ) -> list[WriteResult | StorageError]:
        """Store several chunks, each on its own, in order, as `write` would one after another.

        Each chunk gets its own outcome: a `WriteResult` (``CREATED`` or ``DUPLICATE``), or the
        `StorageError` that refused it (`Frozen`, `Conflict`, `DiskFull`, ...). The files are
        written and fsynced together (`WRITE_THREADS`), then counted one by one in order
        under the lock: a chunk that fills the batch freezes it (hold: the chunks after it are
        refused with `Frozen`) or seals it (rotate: the chunks after it open the next batch).
        Every outcome is durable before this returns, as for `write`.

        Parameters
        ----------
        chunks : sequence of (Chunk, bytes or None)
            Validated chunks and the bytes each was validated from (None: store the
            canonical form, as for a binary chunk).
        freeze_at, max_age, max_sealed
            As for `write`, for every chunk.
        """
        pending = [
            (
                chunk_filename(chunk.channel, chunk.t0, chunk.n, chunk.dt),
                ChunkIdentity.of(chunk),
                body if body is not None else chunk.canonical_bytes(),
                chunk,
            )
            for chunk, body in chunks
        ]
        outcomes: list[WriteResult | StorageError | None] = [None] * len(pending)
        # What is known before any file is written (duplicates, conflicts, a frozen batch)
        # needs none.
        archived: dict[int, ArchivedChunk] = {}
        with self._lock:
            for i, (name, identity, data, chunk) in enumerate(pending):
                try:
                    found = self._batch.check(name, identity, data, chunk)
                except StorageError as exc:
                    outcomes[i] = exc
                    continue
                if isinstance(found, ArchivedChunk):
                    archived[i] = found
                else:
                    outcomes[i] = found
            renamed = self._renamed
        self._compare_all_archived(archived, pending, outcomes)
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        # Counted as they come out of the writers, in order: the renames of the first chunks
        # overlap the fsyncs of the last.
        written = self._write_temps([pending[i] for i in todo])
        temps: list[Path | StorageError] = []
        placed: set[int] = set()
        try:
            for i in todo:
                tmp = next(written)
                temps.append(tmp)
                if isinstance(tmp, StorageError):
                    outcomes[i] = tmp
                    continue
                name, identity, data, chunk = pending[i]
                with self._lock:
                    try:
                        result = self._batch.check(name, identity, data, chunk)
                        if result is None:
                            self._place(tmp, name)
                            placed.add(i)
                            result = self._batch.add(
                                name, identity, len(data), freeze_at, max_age, max_sealed
                            )
                    except StorageError as exc:
                        outcomes[i] = exc
                        continue
                    if isinstance(result, ArchivedChunk):  # archived and uploaded meanwhile
                        archived[i] = result
                    else:
                        outcomes[i] = result
                    renamed = self._renamed
        finally:
            temps.extend(written)  # after a failure, the files still being written
            for i, tmp in zip(todo, temps, strict=True):
                if i not in placed and isinstance(tmp, Path):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(tmp)
        self._compare_all_archived(
            {i: found for i, found in archived.items() if outcomes[i] is None}, pending, outcomes
        )
        self._sync_data_dir(renamed)
        created = [o for o in outcomes if isinstance(o, WriteResult) and o.resp == "CREATED"]
        if created:
            self._disk_full_free = None
        if any(result.frozen for result in created):
            self._stat_cache.refresh()
        elif created:
            self._stat_cache.refresh_soon()
        return [outcome for outcome in outcomes if outcome is not None]

    def _place(self, tmp: Path, name: str) -> None:
        """Rename a written chunk file to its name (under the lock); `DiskFull` when the folder
        cannot take one more name."""
        try:
            os.replace(tmp, self.data_dir / name)
        except OSError as exc:
            self._raise_if_disk_full(exc, name)
            raise
        self._renamed += 1

    def _compare_all_archived(
        self,
        archived: dict[int, ArchivedChunk],
        pending: Sequence[tuple[str, ChunkIdentity, bytes, Chunk]],
        outcomes: list[WriteResult | StorageError | None],
    ) -> None:
        """The outcome of each chunk an uploaded batch holds: DUPLICATE or its refusal."""
        for i, found in archived.items():
            _, _, data, chunk = pending[i]
            try:
                outcomes[i] = self._compare_archived(found, data, chunk)
            except StorageError as exc:
                outcomes[i] = exc

    def _write_temps(
        self, pending: Sequence[tuple[str, ChunkIdentity, bytes, Chunk]]
    ) -> Iterator[Path | StorageError]:
        """The temporary file of each chunk, in order, written and fsynced together (each
        yielded once done), or why it failed."""

        def write_one(item: tuple[str, ChunkIdentity, bytes, Chunk]) -> Path | StorageError:
            name, _, data, _ = item
            try:
                return write_temp(self.data_dir, data, "chunk", drop_cache=True)
            except OSError as exc:
                try:
                    self._raise_if_disk_full(exc, name)
                except DiskFull as full:
                    return full
                return StorageError(f"writing {name} failed: {exc.strerror or exc}")

        if len(pending) < 2:
            return iter([write_one(item) for item in pending])
        if self._writers is None:
            with self._lock:
                if self._writers is None:
                    self._writers = ThreadPoolExecutor(WRITE_THREADS, "chunk-writer")
        return self._writers.map(write_one, pending)

    def _compare_archived(self, found: ArchivedChunk, data: bytes, chunk: Chunk) -> WriteResult:
        """DUPLICATE or Conflict for a chunk an uploaded batch holds, its bytes read unlocked.

        A retry sends the same bytes: their sha256 is the manifest's, and no read is needed
        (the store may be down). Other bytes are compared with the stored file, read from
        wherever the archive keeps it.

        Raises
        ------
        Conflict
            The stored chunk has other samples.
        ArchiveStoreUnavailable
            The stored file cannot be read to compare (the store is unreachable): 503 with
            ``Retry-After``, the retry will compare again.
        ArchiveFailed
            The archive holds the chunk nowhere this buffer can read.
        """
        stored = data if self._archived_sha256(found) == hashlib.sha256(data).hexdigest() else None
        if stored is None:
            if self._read_archived is None:
                raise ArchiveFailed(f"archived chunk {found.name} is not held here to compare")
            try:
                stored = self._read_archived(found.archive, found.name)
            except (ArchiveError, OSError) as exc:
                detail = f"cannot read archived chunk {found.name} to compare: {exc}"
                raise ArchiveStoreUnavailable(detail) from exc
        with self._lock:
            return self._batch.duplicate_of(
                found.name, stored, data, chunk, found.batch, found.archive
            )

    def _archived_sha256(self, found: ArchivedChunk) -> str | None:
        """The sha256 the manifest of ``found``'s batch lists for it; None when unreadable."""
        try:
            manifest = self.archive.manifest(found.archive)
        except (OSError, orjson.JSONDecodeError):
            return None
        files = manifest.get("files") if isinstance(manifest, dict) else None
        for entry in files if isinstance(files, list) else ():
            if isinstance(entry, dict) and entry.get("name") == found.name:
                return entry.get("sha256")
        return None

    def _raise_if_disk_full(self, exc: OSError, name: str) -> None:
        """Raise `DiskFull` for a write that found no space (nothing of it was kept)."""
        if exc.errno not in _DISK_FULL:
            return
        self._disk_full_free = self._free_space()[0]
        self.log.append("disk_full", file=name)
        raise DiskFull(f"no space left writing {name}") from exc

    def _free_space(self) -> tuple[int, int]:
        """Bytes and inodes an unprivileged writer may still take on the data folder's volume."""
        vfs = os.statvfs(self.data_dir)
        inodes = vfs.f_favail if vfs.f_files else -1  # -1: the volume does not count inodes
        return vfs.f_bavail * vfs.f_frsize, inodes

    def space_problem(self, needed: int) -> str | None:
        """Why the data folder's volume cannot take a chunk of ``needed`` bytes now, or None.

        It cannot when it has fewer bytes free, no inode free, or when the last write found no
        space left (a quota, reserved blocks) and a chunk's worth has not been freed since; a
        write that succeeds clears that.
        """
        free, inodes = self._free_space()
        if free < needed:
            return f"{free} bytes free on the data volume, less than a chunk may take ({needed})"
        if inodes == 0:
            return "no inode free on the data volume"
        failed_at = self._disk_full_free
        if failed_at is not None and free < failed_at + needed:
            return "the last write found no space left, and no chunk's worth was freed since"
        return None

    def _sync_data_dir(self, rename: int) -> None:
        """Make rename number ``rename`` durable before the write is acknowledged.

        Outside the state lock, and grouped: one fsync of the folder covers every rename done
        before it started, so concurrent writers share it instead of queueing one each.
        """
        with self._sync_lock:
            if self._synced >= rename:
                return
            with self._lock:
                target = self._renamed
            fsync_dir(self.data_dir)
            self._synced = target

    # ----------------------------------------------------------------- freeze

    def freeze_if(
        self,
        user: str,
        min_size: int | None = None,
        max_age: float | None = None,
        max_sealed: int | None = None,
    ) -> FreezeResult:
        """Close the batch when it holds ``min_size`` bytes or is older than ``max_age`` seconds;
        answer for the oldest batch waiting for training.

        With neither given the close is unconditional (in rotate mode, of a non-empty batch).
        ``max_sealed`` as in `write`: None freezes the batch, a number seals it. An already
        frozen buffer stays frozen.

        Returns
        -------
        FreezeResult
            For the oldest sealed batch when one waits (FROZEN, its counts and reserved
            archive folder), else for the current batch (FROZEN or not); whether this call
            closed a batch.
        """
        with self._lock:
            batch = self._batch
            froze_now = False
            if batch.state.dstatus != FROZEN:
                if min_size is None and max_age is None:
                    if max_sealed is None or batch.index.stored_files:
                        batch.close(user, "requested", max_sealed)
                        froze_now = True
                else:
                    froze_now = batch.freeze_if_due(user, min_size, max_age, max_sealed)
            oldest = batch.sealed.oldest()
            waiting = len(batch.sealed)
            stat = batch.stat()
        self._stat_cache.refresh()
        if oldest is not None:
            stat = Stat(oldest.stored_files, oldest.stored_bytes, oldest.batch, FROZEN)
            return FreezeResult(True, froze_now, stat, oldest.archive or None, waiting)
        return FreezeResult(stat.dstatus == FROZEN, froze_now, stat, None, waiting)

    # ----------------------------------------------------------------- flush

    def flush(
        self, msg: str | None = None, *, batch: int | None = None, force: bool = False
    ) -> FlushResult:
        """Archive the oldest sealed batch, else the current one, or the batch ``batch`` names.

        Without ``batch``: the oldest sealed batch when one waits; else the current batch is
        archived when frozen or ``force``d, even partial, and the buffer reopens; an empty one
        is only unfrozen (nothing archived, the batch number stays).
        With a sealed batch's number: that batch is archived.
        With the current batch's number: it is archived when frozen or ``force``d, even empty.
        With an archived batch's number: that batch's archive, ``already_flushed``, nothing
        changed. On any failure every file goes back and nothing changes.

        Raises
        ------
        NotFrozen
            The current batch is OPERATIONAL and ``force`` is false.
        UnknownBatch
            ``batch`` is neither the current batch nor archived.
        ArchiveFailed
            Archiving failed (the batch is untouched), or the named archive cannot be read.
        """
        sealed = self._flush_sealed(msg, batch)
        if sealed is not None:
            return sealed
        hashed_batch, hashed = self._hash_current(batch, force)
        with self._lock:
            state = self._batch.state
            result = None
            if batch is None or batch == state.batch:
                if state.dstatus != FROZEN and not force:
                    raise NotFrozen("buffer is not frozen")
                if hashed_batch != state.batch:
                    hashed = {}  # another flush came first: these were other files
                result = self._flush_current_locked(msg, batch is None, hashed)
        if result is not None:
            self._stat_cache.refresh()
            return result
        assert batch is not None  # only a named batch can be another than the current one
        flushed = self.archive.flushed(batch)
        if flushed is None:
            detail = f"batch {batch} is not the current batch ({state.batch}) nor archived"
            raise UnknownBatch(batch, detail)
        return flushed

    def _flush_sealed(self, msg: str | None, batch: int | None) -> FlushResult | None:
        """Archive the sealed batch ``batch`` (None: the oldest); None when no such batch waits.

        Its files never change, so they are hashed without the lock.
        """
        while True:
            with self._lock:
                queue = self._batch.sealed
                sealed = queue.oldest() if batch is None else queue.get(batch)
            if sealed is None:
                return None
            hashed = hash_files(sealed.folder, sealed.index.names())
            with self._lock:
                if self._batch.sealed.get(sealed.batch) is not sealed:
                    # Another flush took it meanwhile: the named batch is archived now; an
                    # unnamed flush takes the next oldest.
                    if batch is None:
                        continue
                    return self.archive.flushed(batch)
                try:
                    result = self._batch.flush_sealed(sealed, msg, hashed)
                except OSError as exc:
                    detail = f"archiving batch {sealed.batch} failed: {exc.strerror or exc}"
                    self.log.append("flush_failed", batch=sealed.batch, detail=detail)
                    raise ArchiveFailed(detail, disk_full=exc.errno in _DISK_FULL) from exc
            self._stat_cache.refresh()
            return result

    def _hash_current(self, batch: int | None, force: bool) -> tuple[int, Hashes]:
        """The current batch number and its files' (sha256, bytes) when a flush will archive it.

        Computed without the lock: hashing a large batch takes seconds, and under the lock it
        would stall every reader. Chunk files are never rewritten; a file added meanwhile (a
        forced flush of an OPERATIONAL batch) is hashed under the lock.
        """
        with self._lock:
            state = self._batch.state
            if batch not in (None, state.batch) or (state.dstatus != FROZEN and not force):
                return state.batch, {}
            names = self._batch.index.names()
        return state.batch, hash_files(self.data_dir, names)

    def _flush_current_locked(self, msg: str | None, unnamed: bool, hashed: Hashes) -> FlushResult:
        batch = self._batch
        number = batch.state.batch
        try:
            if unnamed and not batch.index.stored_files:
                return batch.unfreeze_empty(msg)
            return batch.seal(msg, hashed)
        except OSError as exc:
            detail = f"archiving batch {number} failed: {exc.strerror or exc}"
            self.log.append("flush_failed", batch=number, detail=detail)
            raise ArchiveFailed(detail, disk_full=exc.errno in _DISK_FULL) from exc

    # ----------------------------------------------------------------- stop

    def close(self) -> None:
        """Write the counters cache, log the stop and close the event log; once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._writers is not None:
            self._writers.shutdown()
        self._stat_cache.close()
        self.log.append("stop", **self.stat().as_json())
        self.log.close()
