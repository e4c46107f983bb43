"""The storage engine of the buffer: writes, freeze and flush of chunk files. No HTTP here.

The disk is the truth. Every chunk is one file in the data folder, named from its identity
(`databuffer.naming`, written by `databuffer.atomic`); the batch index and its counters
(`databuffer.index`) are rebuilt from those files at start-up. One lock serialises every change of
state; the costly part of a write (writing and fsyncing the temporary file) happens outside it.
Sealed batches go to the archive (`databuffer.archive`); the admin files are `databuffer.state`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from databuffer.archive import Archive, hash_files
from databuffer.atomic import fsync_dir, remove_temp_files, write_temp
from databuffer.errors import ArchiveFailed, Conflict, DiskFull, Frozen, NotFrozen, UnknownBatch
from databuffer.eventlog import EventLog
from databuffer.index import ArchivedNames, BatchIndex, index_folder
from databuffer.naming import ChunkIdentity, chunk_filename
from databuffer.results import FlushResult, FreezeResult, Stat, WriteResult
from databuffer.state import (
    FROZEN,
    OPERATIONAL,
    STAT_FILE,
    STATE_FILE,
    BatchState,
    StatCache,
    freeze_reason,
    load_state,
    save_state,
)
from glitchflow_core.chunk import Chunk, ChunkError, parse_chunk

logger = logging.getLogger("databuffer.storage")

LOG_FILE = "LogStream.json"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}
Hashes = dict[str, tuple[str, int]]


def _same_chunk(stored: bytes, data: bytes, chunk: Chunk) -> bool:
    """True when the stored file holds ``chunk``: the same bytes, or the same samples written
    differently (key order, spacing, ``1`` for ``1.0``, an explicit default channel)."""
    if stored == data:
        return True
    try:
        again = parse_chunk(stored, max_samples=max(chunk.n, 1))
    except ChunkError:
        return False
    return again.canonical_bytes() == chunk.canonical_bytes()


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
    ) -> None:
        self.data_dir = Path(data_dir)
        self.adm_dir = Path(adm_dir)
        self.log_dir = Path(log_dir)
        self.archive_dir = Path(archive_dir)
        for folder in (self.data_dir, self.adm_dir, self.log_dir, self.archive_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(self.log_dir / LOG_FILE, log_max_bytes, log_backups)
        self.archive = Archive(self.archive_dir)
        self._clock = clock
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._renamed = 0  # renames into the data folder so far
        self._synced = 0  # renames made durable by an fsync of the folder
        self._closed = False
        self._state_path = self.adm_dir / STATE_FILE
        self._stat_cache = StatCache(self.adm_dir / STAT_FILE, lambda: self.stat().as_json())
        # Where recently archived files went, so that a retry racing with flushes is still
        # recognised as a duplicate and told which batch holds it.
        self._archived = ArchivedNames()
        self._index = BatchIndex()
        self._state = BatchState()
        self._recover()

    # ----------------------------------------------------------------- start-up

    def _recover(self) -> None:
        """Rebuild everything from the disk: the files are the truth, the caches follow them."""
        # The archive folder too: check_writable writes its probe there.
        folders = (self.data_dir, self.adm_dir, self.archive_dir)
        removed = sum(remove_temp_files(folder) for folder in folders)
        restored = self.archive.restore_partial(self.data_dir)
        saved = state = load_state(self._state_path)
        for batch, folder, names in self.archive.recent_files(self._archived.capacity):
            self._archived.remember(batch, folder, names)
        last_archived = self.archive.last_batch()
        if state.batch <= last_archived:
            # A flush renamed its archive but died before saving the new state.
            state = BatchState(batch=last_archived + 1)
        self._index, oldest = index_folder(self.data_dir)
        if self._index.stored_files and state.batch_started is None:
            state = replace(state, batch_started=oldest)
        if not self._index.stored_files and state.dstatus == OPERATIONAL:
            state = replace(state, batch_started=None)
        if state != saved:
            save_state(self._state_path, state)
        self._state = state
        self._stat_cache.write()
        self.log.append(
            "start",
            batch=state.batch,
            dstatus=state.dstatus,
            n_itm=self._index.stored_files,
            buff_size=self._index.stored_bytes,
            temp_removed=removed,
            restored_from_partial_archive=restored,
        )

    # ----------------------------------------------------------------- reading

    @property
    def state(self) -> BatchState:
        """The current `BatchState`."""
        return self._state

    @property
    def stored_files(self) -> int:
        """Chunk files in the current batch."""
        return self._index.stored_files

    @property
    def stored_bytes(self) -> int:
        """Bytes of the chunk files in the current batch."""
        return self._index.stored_bytes

    def stat(self) -> Stat:
        """Counters, batch number and state."""
        with self._lock:
            return self._stat_locked()

    def _stat_locked(self) -> Stat:
        index, state = self._index, self._state
        return Stat(index.stored_files, index.stored_bytes, state.batch, state.dstatus)

    def names(self, limit: int, offset: int = 0) -> tuple[list[str], int]:
        """Chunk file names sorted by channel then GPS time, one page, and the total."""
        with self._lock:
            return self._index.names(max(limit, 0), offset), self._index.stored_files

    def channels(self) -> dict[str, dict[str, Any]]:
        """Per channel: files, bytes, GPS span, covered segments and gaps."""
        with self._lock:
            return self._index.channels()

    def batches(self, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Manifests of archived batches, newest first, one page, and the total."""
        return self.archive.manifests(limit, offset)

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

        Returns
        -------
        WriteResult
            ``CREATED`` when stored now, ``DUPLICATE`` when the same chunk is already stored, in
            this batch or an archived one (not counted again); either only once the stored file
            is durable.

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
            result = self._check_locked(name, identity, data, chunk)
            renamed = self._renamed
        if result is not None:
            # The original write may not have made its rename durable yet.
            self._sync_data_dir(renamed)
            return result
        try:
            tmp = write_temp(self.data_dir, data, "chunk", drop_cache=True)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                self.log.append("disk_full", file=name)
                raise DiskFull(f"no space left writing {name}") from exc
            raise
        placed = False
        try:
            with self._lock:
                result = self._check_locked(name, identity, data, chunk)
                if result is None:
                    result = self._store_locked(tmp, name, identity, len(data), freeze_at, max_age)
                    placed = True
                renamed = self._renamed
        finally:
            if not placed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        # Acknowledged only once durable: our own rename, or the original one of a duplicate.
        self._sync_data_dir(renamed)
        if result.resp == "CREATED":
            if result.frozen:
                self._stat_cache.refresh()
            else:
                self._stat_cache.refresh_soon()
        return result

    def _store_locked(
        self,
        tmp: Path,
        name: str,
        identity: ChunkIdentity,
        size: int,
        freeze_at: int | None,
        max_age: float | None,
    ) -> WriteResult:
        """Rename the written temporary file into place, count it, freeze if that filled it."""
        os.replace(tmp, self.data_dir / name)
        self._renamed += 1
        if not self._index.stored_files:
            self._state = replace(self._state, batch_started=self._clock())
        self._index.add(name, identity, size)
        batch = self._state.batch
        self.log.append("write", file=name, bytes=size, channel=identity.channel, batch=batch)
        froze = self._freeze_if_due_locked("policy", freeze_at, max_age)
        return WriteResult("CREATED", name, size, self._stat_locked(), batch, froze)

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

    def _check_locked(
        self, name: str, identity: ChunkIdentity, data: bytes, chunk: Chunk
    ) -> WriteResult | None:
        """DUPLICATE result, None when the chunk may be stored, or raise Conflict / Frozen."""
        state = self._state
        if name in self._index:
            return self._duplicate_locked(name, data, chunk, state.batch, None)
        archived = self._archived.get(name)
        if archived is not None:
            return self._duplicate_locked(name, data, chunk, *archived)
        if state.dstatus == FROZEN:
            raise Frozen(state.batch)
        span = self._index.overlapping(identity)
        if span is not None:
            self.log.append("conflict", file=name, existing=span.name, batch=state.batch)
            raise Conflict(f"overlaps stored chunk {span.name}", span.name)
        return None

    def _duplicate_locked(
        self, name: str, data: bytes, chunk: Chunk, batch: int, archive: str | None
    ) -> WriteResult:
        """DUPLICATE when the stored file ``name`` (of ``batch``) holds ``chunk``, else Conflict."""
        folder = self.data_dir if archive is None else self.archive_dir / archive
        stored = (folder / name).read_bytes()
        if not _same_chunk(stored, data, chunk):
            self.log.append("conflict", file=name, existing=name, batch=batch)
            raise Conflict("same chunk identity already stored with different samples", name)
        self.log.append("duplicate", file=name, batch=batch)
        # The size on disk, whatever this copy's spelling.
        return WriteResult(
            "DUPLICATE", name, len(stored), self._stat_locked(), batch, False, archive
        )

    # ----------------------------------------------------------------- freeze

    def _age_locked(self) -> float:
        started = self._state.batch_started
        if not self._index.stored_files or started is None:
            return -1.0
        return self._clock() - started

    def _freeze_if_due_locked(
        self, user: str, size_limit: int | None, max_age: float | None
    ) -> bool:
        """Freeze when `freeze_reason` says so; True when this call froze the batch."""
        reason = freeze_reason(self._index.stored_bytes, size_limit, self._age_locked(), max_age)
        if reason is not None:
            self._freeze_locked(user, reason)
        return reason is not None

    def _freeze_locked(self, user: str, reason: str) -> None:
        self._state = replace(
            self._state, dstatus=FROZEN, user=user, frozen_at=self._clock(), frozen_reason=reason
        )
        try:
            save_state(self._state_path, self._state)
        except OSError as exc:
            # Frozen in memory all the same: refusing writes is the safe side.
            logger.error("could not persist the freeze: %s", exc)
        stat = self._stat_locked()
        self.log.append(
            "freeze",
            batch=stat.batch,
            user=user,
            reason=reason,
            n_itm=stat.stored_files,
            buff_size=stat.stored_bytes,
        )
        self._stat_cache.mark_stale()

    def freeze_if(
        self, user: str, min_size: int | None = None, max_age: float | None = None
    ) -> FreezeResult:
        """Freeze when the batch holds ``min_size`` bytes or is older than ``max_age`` seconds.

        With neither given the freeze is unconditional. An already frozen buffer stays frozen.

        Returns
        -------
        FreezeResult
            Whether the buffer is frozen now, whether this call froze it, and the counters.
        """
        with self._lock:
            froze_now = False
            if self._state.dstatus != FROZEN:
                if min_size is None and max_age is None:
                    self._freeze_locked(user, "requested")
                    froze_now = True
                else:
                    froze_now = self._freeze_if_due_locked(user, min_size, max_age)
            stat = self._stat_locked()
        self._stat_cache.refresh()
        return FreezeResult(stat.dstatus == FROZEN, froze_now, stat)

    # ----------------------------------------------------------------- flush

    def flush(
        self, msg: str | None = None, *, batch: int | None = None, force: bool = False
    ) -> FlushResult:
        """Archive the current batch, or answer for the batch ``batch`` names; reset, unfreeze.

        Without ``batch``: the current batch is archived when frozen or ``force``d, even
        partial; an empty one is only unfrozen (nothing archived, the batch number stays).
        With the current batch's number: it is archived when frozen or ``force``d, even empty.
        With an archived batch's number: that batch's archive, ``already_flushed``, nothing
        changed. The archive folder is ``<batch:06d>-<UTC YYYYmmddTHHMMSSZ>`` with a manifest;
        on any failure every file goes back and nothing changes.

        Raises
        ------
        NotFrozen
            The current batch is OPERATIONAL and ``force`` is false.
        UnknownBatch
            ``batch`` is neither the current batch nor archived.
        ArchiveFailed
            Archiving failed (the batch is untouched), or the named archive cannot be read.
        """
        hashed_batch, hashed = self._hash_current(batch, force)
        with self._lock:
            state = self._state
            if batch is None or batch == state.batch:
                if hashed_batch != state.batch:
                    hashed = {}  # another flush came first: these were other files
                result = self._flush_current_locked(state, msg, batch is None, force, hashed)
            else:
                result = None
        if result is None:
            assert batch is not None  # only a named batch can be another than the current one
            flushed = self.archive.flushed(batch)
            if flushed is None:
                detail = f"batch {batch} is not the current batch ({state.batch}) nor archived"
                raise UnknownBatch(batch, detail)
            return flushed
        self._stat_cache.refresh()
        return result

    def _hash_current(self, batch: int | None, force: bool) -> tuple[int, Hashes]:
        """The current batch number and its files' (sha256, bytes) when the flush will archive it.

        Computed without the lock: hashing a large batch takes seconds, and under the lock it
        would stall every reader. Chunk files are never rewritten; a file added meanwhile (a
        forced flush of an OPERATIONAL batch) is hashed under the lock.
        """
        with self._lock:
            state = self._state
            if batch not in (None, state.batch) or (state.dstatus != FROZEN and not force):
                return state.batch, {}
            names = self._index.names()
        return state.batch, hash_files(self.data_dir, names)

    def _flush_current_locked(
        self, state: BatchState, msg: str | None, unnamed: bool, force: bool, hashed: Hashes
    ) -> FlushResult:
        if state.dstatus != FROZEN and not force:
            raise NotFrozen("buffer is not frozen")
        index = self._index
        try:
            if unnamed and not index.stored_files:  # nothing to archive: only unfreeze
                next_state = BatchState(batch=state.batch)
                if next_state != state:
                    save_state(self._state_path, next_state)
                result = FlushResult(state.batch, None, 0, 0, None)
            else:
                next_state = BatchState(batch=state.batch + 1)
                folder, manifest = self.archive.seal(
                    state,
                    index,
                    msg,
                    self._clock(),
                    self.data_dir,
                    hashed,
                    commit=lambda: save_state(self._state_path, next_state),
                )
                result = FlushResult(
                    state.batch, folder, index.stored_files, index.stored_bytes, manifest
                )
        except OSError as exc:
            self._restore_saved_state(state)
            detail = f"archiving batch {state.batch} failed: {exc.strerror or exc}"
            self.log.append("flush_failed", batch=state.batch, detail=detail)
            raise ArchiveFailed(detail, disk_full=exc.errno in _DISK_FULL) from exc
        if result.archive is not None:
            self._archived.remember(state.batch, result.archive, index.names())
            self._index = BatchIndex()
        self._state = next_state
        self.log.append(
            "flush",
            batch=state.batch,
            archive=result.archive,
            n_f=result.stored_files,
            bt_wrt=result.stored_bytes,
            msg=msg,
        )
        self._stat_cache.mark_stale()
        return result

    def _restore_saved_state(self, state: BatchState) -> None:
        """Put ``state`` back in ``Dsstat.json`` after a failed flush (it may be replaced)."""
        try:
            save_state(self._state_path, state)
        except OSError as exc:
            logger.error("could not restore %s after a failed flush: %s", STATE_FILE, exc)

    # ----------------------------------------------------------------- stop

    def close(self) -> None:
        """Write the counters cache, log the stop and close the event log; once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stat_cache.close()
        stat = self.stat()
        self.log.append(
            "stop", batch=stat.batch, n_itm=stat.stored_files, buff_size=stat.stored_bytes
        )
        self.log.close()
