"""The current batch and its life: chunks counted in, frozen by the one rule, sealed and archived.

`CurrentBatch` holds the batch's state (``Dsstat.json``), the index of its files and the names
of recently archived files. It has no lock and starts no thread: the engine
(`databuffer.storage`) calls every method under its lock, and does around them the slow I/O
that must not hold it (writing chunk files, fsyncs, hashing).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from databuffer.archive import Archive, Hashes
from databuffer.errors import Conflict, Frozen
from databuffer.eventlog import EventLog
from databuffer.index import ArchivedNames, BatchIndex, index_folder
from databuffer.naming import ChunkIdentity
from databuffer.rate import IngestRate
from databuffer.results import FlushResult, Stat, WriteResult
from databuffer.state import (
    FROZEN,
    OPERATIONAL,
    BatchState,
    StatCache,
    freeze_reason,
    load_state,
    save_state,
)
from glitchflow_core.chunk import Chunk, ChunkError, parse_chunk

logger = logging.getLogger("databuffer.batch")


def same_chunk(stored: bytes, data: bytes, chunk: Chunk) -> bool:
    """True when the stored bytes hold ``chunk``: the same bytes, or the same samples written
    differently (key order, spacing, ``1`` for ``1.0``, an explicit default channel)."""
    if stored == data:
        return True
    try:
        again = parse_chunk(stored, max_samples=max(chunk.n, 1))
    except ChunkError:
        return False
    return again.canonical_bytes() == chunk.canonical_bytes()


class CurrentBatch:
    """The batch being filled (or frozen): state, index, archived names; only under a lock."""

    def __init__(
        self,
        state_path: Path,
        data_dir: Path,
        archive: Archive,
        log: EventLog,
        stat_cache: StatCache,
        clock: Callable[[], float],
    ) -> None:
        self.state_path = state_path
        self.data_dir = data_dir
        self.archive = archive
        self.log = log
        self.stat_cache = stat_cache
        self.clock = clock
        self.state = BatchState()
        self.index = BatchIndex()
        # Where recently archived files went, so that a retry racing with flushes is still
        # recognised as a duplicate and told which batch holds it.
        self.archived = ArchivedNames()
        # Kept across batches: the rate is of the stream, not of one batch.
        self.rate = IngestRate(clock)

    def recover(self) -> None:
        """Rebuild from the disk: the chunk files and archives are the truth, the state follows."""
        saved = state = load_state(self.state_path)
        for batch, folder, names in self.archive.recent_files(self.archived.capacity):
            self.archived.remember(batch, folder, names)
        last_archived = self.archive.last_batch()
        if state.batch <= last_archived:
            # A flush renamed its archive but died before saving the new state.
            state = BatchState(batch=last_archived + 1)
        self.index, oldest = index_folder(self.data_dir)
        if self.index.stored_files and state.batch_started is None:
            state = replace(state, batch_started=oldest)
        if not self.index.stored_files and state.dstatus == OPERATIONAL:
            state = replace(state, batch_started=None)
        if state != saved:
            save_state(self.state_path, state)
        self.state = state

    def stat(self) -> Stat:
        """Counters, batch number and state."""
        return Stat(
            self.index.stored_files, self.index.stored_bytes, self.state.batch, self.state.dstatus
        )

    # ----------------------------------------------------------------- chunks in

    def check(
        self, name: str, identity: ChunkIdentity, data: bytes, chunk: Chunk
    ) -> WriteResult | None:
        """DUPLICATE result, None when the chunk may be stored, or raise Conflict / Frozen."""
        state = self.state
        if name in self.index:
            return self._duplicate(name, data, chunk, state.batch, None)
        archived = self.archived.get(name)
        if archived is not None:
            return self._duplicate(name, data, chunk, *archived)
        if state.dstatus == FROZEN:
            raise Frozen(state.batch)
        span = self.index.overlapping(identity)
        if span is not None:
            self.log.append("conflict", file=name, existing=span.name, batch=state.batch)
            self.index.refuse(identity)
            raise Conflict(f"overlaps stored chunk {span.name}", span.name)
        return None

    def _duplicate(
        self, name: str, data: bytes, chunk: Chunk, batch: int, archive: str | None
    ) -> WriteResult:
        """DUPLICATE when the stored file ``name`` (of ``batch``) holds ``chunk``, else Conflict."""
        folder = self.data_dir if archive is None else self.archive.root / archive
        stored = (folder / name).read_bytes()
        if not same_chunk(stored, data, chunk):
            self.log.append("conflict", file=name, existing=name, batch=batch)
            if archive is None:
                self.index.refuse(ChunkIdentity.of(chunk))
            raise Conflict("same chunk identity already stored with different samples", name)
        self.log.append("duplicate", file=name, batch=batch)
        # The size on disk, whatever this copy's spelling.
        return WriteResult("DUPLICATE", name, len(stored), self.stat(), batch, False, archive)

    def add(
        self,
        name: str,
        identity: ChunkIdentity,
        size: int,
        freeze_at: int | None,
        max_age: float | None,
    ) -> WriteResult:
        """Count the chunk file ``name`` just stored; freeze when that makes the batch due."""
        if not self.index.stored_files:
            self.state = replace(self.state, batch_started=self.clock())
        self.index.add(name, identity, size)
        self.rate.record(size, identity.n * identity.dt)
        batch = self.state.batch
        self.log.append("write", file=name, bytes=size, channel=identity.channel, batch=batch)
        froze = self.freeze_if_due("policy", freeze_at, max_age)
        return WriteResult("CREATED", name, size, self.stat(), batch, froze)

    # ----------------------------------------------------------------- freeze

    def age(self) -> float:
        """Seconds since the batch's first chunk; -1 for an empty batch."""
        started = self.state.batch_started
        if not self.index.stored_files or started is None:
            return -1.0
        return self.clock() - started

    def freeze_if_due(self, user: str, size_limit: int | None, max_age: float | None) -> bool:
        """Freeze when `freeze_reason` says so; True when this call froze the batch."""
        reason = freeze_reason(self.index.stored_bytes, size_limit, self.age(), max_age)
        if reason is not None:
            self.freeze(user, reason)
        return reason is not None

    def freeze(self, user: str, reason: str) -> None:
        """Freeze now, for ``reason``; saved, logged, and the counters cache marked stale."""
        self.state = replace(
            self.state, dstatus=FROZEN, user=user, frozen_at=self.clock(), frozen_reason=reason
        )
        try:
            save_state(self.state_path, self.state)
        except OSError as exc:
            # Frozen in memory all the same: refusing writes is the safe side.
            logger.error("could not persist the freeze: %s", exc)
        stat = self.stat()
        self.log.append(
            "freeze",
            batch=stat.batch,
            user=user,
            reason=reason,
            n_itm=stat.stored_files,
            buff_size=stat.stored_bytes,
        )
        self.stat_cache.mark_stale()

    # ----------------------------------------------------------------- flush

    def seal(self, msg: str | None, hashed: Hashes) -> FlushResult:
        """Archive the batch (`Archive.seal`, ``hashed`` spares hashing again) and open the next.

        Raises
        ------
        OSError
            Archiving failed; every file is back and the state is as it was.
        """
        state, index = self.state, self.index
        following = BatchState(batch=state.batch + 1)
        try:
            folder, manifest = self.archive.seal(
                state,
                index,
                msg,
                self.clock(),
                self.data_dir,
                hashed,
                commit=lambda: save_state(self.state_path, following),
            )
        except OSError:
            self._restore_saved(state)
            raise
        self.archived.remember(state.batch, folder, index.names())
        result = FlushResult(state.batch, folder, index.stored_files, index.stored_bytes, manifest)
        return self._reopen(following, msg, result)

    def unfreeze_empty(self, msg: str | None) -> FlushResult:
        """Flush an empty batch: nothing to archive, only back to OPERATIONAL, same number.

        Raises
        ------
        OSError
            The state could not be saved; it is as it was.
        """
        state = self.state
        reopened = BatchState(batch=state.batch)
        if reopened != state:
            try:
                save_state(self.state_path, reopened)
            except OSError:
                self._restore_saved(state)
                raise
        return self._reopen(reopened, msg, FlushResult(state.batch, None, 0, 0, None))

    def _reopen(self, state: BatchState, msg: str | None, flushed: FlushResult) -> FlushResult:
        """Take ``state`` with an empty index once ``flushed`` is done; log it."""
        self.log.append(
            "flush",
            batch=flushed.batch,
            archive=flushed.archive,
            n_f=flushed.stored_files,
            bt_wrt=flushed.stored_bytes,
            msg=msg,
        )
        self.state = state
        self.index = BatchIndex()
        self.stat_cache.mark_stale()
        return flushed

    def _restore_saved(self, state: BatchState) -> None:
        """Put ``state`` back in ``Dsstat.json`` after a failed flush (it may be replaced)."""
        try:
            save_state(self.state_path, state)
        except OSError as exc:
            logger.error("could not restore %s after a failed flush: %s", self.state_path, exc)
