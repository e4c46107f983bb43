"""The current batch and its life: chunks counted in, frozen by the one rule, sealed and archived.

`CurrentBatch` holds the batch's state (``Dsstat.json``), the index of its files, the queue of
sealed batches (`databuffer.sealed`) and the names of recently archived files. What a full batch
does is the policy the write (or freeze request) carries: ``hold`` freezes it in place, writes are
refused until it is flushed; ``rotate`` seals it into the queue and the next chunk opens the next
batch, unless ``max_sealed`` batches already wait (then it freezes in place, `awaiting_seal`,
and is sealed by the flush that makes room). It has no lock and starts no thread: the engine
(`databuffer.storage`) calls every method under its lock, and does around them the slow I/O
that must not hold it (writing chunk files, fsyncs, hashing).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from databuffer.archive import Archive, Hashes, folder_batch
from databuffer.errors import Conflict, Frozen
from databuffer.eventlog import EventLog
from databuffer.index import ArchivedNames, BatchIndex, index_folder
from databuffer.naming import ChunkIdentity
from databuffer.rate import IngestRate
from databuffer.results import FlushResult, Stat, WriteResult
from databuffer.sealed import SealedBatch, SealedQueue
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

PAUSES_KEPT = 100
"""Batches whose ingest pause `CurrentBatch.pauses` keeps for the state answer."""


@dataclass(frozen=True, slots=True)
class ArchivedChunk:
    """A chunk file of the archived batch ``batch`` (folder ``archive``) whose local copy went
    after a verified upload: what `CurrentBatch.check` answers instead of reading the bucket
    under the engine's lock."""

    name: str
    batch: int
    archive: str


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
        sealed: SealedQueue,
        on_pause: Callable[[int, float], None] | None = None,
    ) -> None:
        self.state_path = state_path
        self.sealed = sealed
        # (batch, seconds writes were refused while it was the batch being filled), newest last.
        self.pauses: deque[tuple[int, float]] = deque(maxlen=PAUSES_KEPT)
        self.pause_total = 0.0
        self.on_pause = on_pause
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
        archived = {folder_batch(folder) for folder in self.archive.folders()}
        self.sealed.recover(self.data_dir, archived)
        last = max(max(archived, default=0), self.sealed.last_batch())
        if state.batch <= last:
            # A flush renamed its archive, or a seal wrote its record, but died before saving
            # the new state.
            state = BatchState(batch=last + 1)
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
    ) -> WriteResult | ArchivedChunk | None:
        """DUPLICATE result, None when the chunk may be stored, or raise Conflict / Frozen.

        `ArchivedChunk` when an archived batch holds the file but no longer keeps it in the
        local folder (uploaded): the caller compares it without the lock (`duplicate_of`).
        """
        state = self.state
        if name in self.index:
            return self._duplicate(name, data, chunk, state.batch, None)
        sealed = self.sealed.holding(name)
        if sealed is not None:
            return self._duplicate(name, data, chunk, sealed.batch, None, sealed.folder)
        archived = self.archived.get(name)
        if archived is not None:
            batch, archive = archived
            try:
                return self._duplicate(name, data, chunk, batch, archive)
            except FileNotFoundError:
                # Uploaded to the bucket, its local copy removed: compared outside the lock.
                return ArchivedChunk(name, batch, archive)
        if state.dstatus == FROZEN:
            raise Frozen(state.batch)
        batch, span = state.batch, self.index.overlapping(identity)
        if span is None and (found := self.sealed.overlapping(identity)) is not None:
            batch, span = found[0].batch, found[1]
        if span is not None:
            self.log.append("conflict", file=name, existing=span.name, batch=batch)
            self.index.refuse(identity)
            raise Conflict(f"overlaps stored chunk {span.name}", span.name)
        return None

    def _duplicate(
        self,
        name: str,
        data: bytes,
        chunk: Chunk,
        batch: int,
        archive: str | None,
        sealed_folder: Path | None = None,
    ) -> WriteResult:
        """DUPLICATE when the stored file ``name`` (of ``batch``) holds ``chunk``, else Conflict.

        The file is in the archive folder ``archive``, the folder of a sealed batch
        ``sealed_folder``, or (neither given) the data folder.
        """
        folder = self.data_dir if archive is None else self.archive.root / archive
        folder = sealed_folder or folder
        stored = (folder / name).read_bytes()
        sealed = sealed_folder is not None
        return self.duplicate_of(name, stored, data, chunk, batch, archive, sealed)

    def duplicate_of(
        self,
        name: str,
        stored: bytes,
        data: bytes,
        chunk: Chunk,
        batch: int,
        archive: str | None,
        sealed: bool = False,
    ) -> WriteResult:
        """DUPLICATE when ``stored``, the bytes of the file ``name`` of ``batch``, hold
        ``chunk`` (sent as ``data``), else Conflict; logged."""
        if not same_chunk(stored, data, chunk):
            self.log.append("conflict", file=name, existing=name, batch=batch)
            if archive is None:
                self.index.refuse(ChunkIdentity.of(chunk))
            raise Conflict("same chunk identity already stored with different samples", name)
        self.log.append("duplicate", file=name, batch=batch)
        # The size on disk, whatever this copy's spelling.
        return WriteResult(
            "DUPLICATE", name, len(stored), self.stat(), batch, False, archive, sealed
        )

    def add(
        self,
        name: str,
        identity: ChunkIdentity,
        size: int,
        freeze_at: int | None,
        max_age: float | None,
        max_sealed: int | None = None,
    ) -> WriteResult:
        """Count the chunk file ``name`` just stored; freeze (``max_sealed`` None, hold mode) or
        seal it (rotate mode, at most ``max_sealed`` sealed batches) when that makes it due."""
        if not self.index.stored_files:
            self.state = replace(self.state, batch_started=self.clock())
        self.index.add(name, identity, size)
        self.rate.record(size, identity.n * identity.dt)
        batch = self.state.batch
        self.log.append("write", file=name, bytes=size, channel=identity.channel, batch=batch)
        closed = self.freeze_if_due("policy", freeze_at, max_age, max_sealed)
        sealed = closed and self.sealed.get(batch) is not None
        return WriteResult("CREATED", name, size, self.stat(), batch, closed, None, sealed)

    # ----------------------------------------------------------------- freeze

    def age(self) -> float:
        """Seconds since the batch's first chunk; -1 for an empty batch."""
        started = self.state.batch_started
        if not self.index.stored_files or started is None:
            return -1.0
        return self.clock() - started

    def freeze_if_due(
        self,
        user: str,
        size_limit: int | None,
        max_age: float | None,
        max_sealed: int | None = None,
    ) -> bool:
        """Close the batch when `freeze_reason` says so; True when this call closed it.

        ``max_sealed`` None (hold mode): freeze it in place. A number (rotate mode): seal it
        into the queue, or freeze it `awaiting_seal` when ``max_sealed`` batches already wait.
        """
        reason = freeze_reason(self.index.stored_bytes, size_limit, self.age(), max_age)
        if reason is not None:
            self.close(user, reason, max_sealed)
        return reason is not None

    def close(self, user: str, reason: str, max_sealed: int | None) -> None:
        """Freeze (hold, or rotate with a full queue) or seal (rotate) the batch, for ``reason``."""
        if max_sealed is None:
            self.freeze(user, reason)
        elif len(self.sealed) >= max_sealed or not self.rotate(user, reason):
            self.freeze(user, reason, awaiting_seal=True)

    def freeze(self, user: str, reason: str, *, awaiting_seal: bool = False) -> None:
        """Freeze now, for ``reason``; saved, logged, and the counters cache marked stale."""
        self.state = replace(
            self.state,
            dstatus=FROZEN,
            user=user,
            frozen_at=self.clock(),
            frozen_reason=reason,
            awaiting_seal=awaiting_seal,
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
            awaiting_seal=awaiting_seal,
        )
        self.stat_cache.mark_stale()

    def rotate(self, user: str, reason: str) -> bool:
        """Seal the batch into the queue and open the next one; False when it could not be
        recorded (the caller freezes it instead: refusing writes is the safe side)."""
        state, now = self.state, self.clock()
        frozen = state.dstatus == FROZEN
        pause = now - state.frozen_at if frozen and state.frozen_at is not None else 0.0
        sealed = SealedBatch(
            batch=state.batch,
            folder=self.sealed.folder_of(state.batch),
            archive=self.archive.new_folder_name(state.batch, now),
            index=self.index,
            sealed_at=now,
            created=state.batch_started,
            frozen_by=state.user if frozen else user,
            frozen_reason=state.frozen_reason if frozen else reason,
            pause_seconds=pause,
        )
        try:
            self.sealed.add(sealed, self.data_dir)
        except OSError as exc:
            logger.error("could not seal batch %s: %s", state.batch, exc)
            return False
        following = BatchState(batch=state.batch + 1)
        try:
            save_state(self.state_path, following)
        except OSError as exc:
            # The record is written: start-up numbers the next batch after it all the same.
            logger.error("could not persist the batch after the sealed one: %s", exc)
        self.log.append(
            "seal",
            batch=state.batch,
            user=sealed.frozen_by,
            reason=sealed.frozen_reason,
            n_itm=sealed.stored_files,
            buff_size=sealed.stored_bytes,
            archive=sealed.archive,
            pause_seconds=round(pause, 3),
        )
        self.record_pause(state.batch, pause)
        self.state = following
        self.index = BatchIndex()
        self.stat_cache.mark_stale()
        return True

    def record_pause(self, batch: int, seconds: float) -> None:
        """Note that writes were refused ``seconds`` while ``batch`` was the batch being filled."""
        self.pauses.append((batch, seconds))
        self.pause_total += seconds
        if self.on_pause is not None:
            self.on_pause(batch, seconds)

    def pause_now(self) -> float:
        """Seconds writes have been refused so far by the current freeze; 0 when not frozen."""
        state = self.state
        if state.dstatus != FROZEN or state.frozen_at is None:
            return 0.0
        return max(self.clock() - state.frozen_at, 0.0)

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
        pause = self.pause_now()
        try:
            folder, manifest = self.archive.seal(
                state,
                index,
                msg,
                self.clock(),
                self.data_dir,
                hashed,
                commit=lambda: save_state(self.state_path, following),
                pause=pause,
            )
        except OSError:
            self._restore_saved(state)
            raise
        self.record_pause(state.batch, pause)
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
        pause = self.pause_now()
        if reopened != state:
            try:
                save_state(self.state_path, reopened)
            except OSError:
                self._restore_saved(state)
                raise
        if state.dstatus == FROZEN:
            self.record_pause(state.batch, pause)
        return self._reopen(reopened, msg, FlushResult(state.batch, None, 0, 0, None))

    def flush_sealed(self, sealed: SealedBatch, msg: str | None, hashed: Hashes) -> FlushResult:
        """Archive the sealed batch ``sealed`` and take it out of the queue; a batch frozen
        `awaiting_seal` is sealed in its place (writes resume).

        Raises
        ------
        OSError
            Archiving failed; every file is back and the batch still waits in the queue.
        """
        as_frozen = BatchState(
            dstatus=FROZEN,
            user=sealed.frozen_by,
            batch=sealed.batch,
            batch_started=sealed.created,
            frozen_at=sealed.sealed_at,
            frozen_reason=sealed.frozen_reason,
        )
        folder, manifest = self.archive.seal(
            as_frozen,
            sealed.index,
            msg,
            self.clock(),
            sealed.folder,
            hashed,
            commit=lambda: None,
            pause=sealed.pause_seconds,
            folder=sealed.archive or None,
        )
        self.sealed.remove(sealed.batch)
        self.archived.remember(sealed.batch, folder, sealed.index.names())
        result = FlushResult(
            sealed.batch, folder, sealed.stored_files, sealed.stored_bytes, manifest
        )
        self._log_flush(result, msg)
        state = self.state
        if state.dstatus == FROZEN and state.awaiting_seal and state.frozen_reason is not None:
            self.rotate(state.user or "policy", state.frozen_reason)
        self.stat_cache.mark_stale()
        return result

    def _reopen(self, state: BatchState, msg: str | None, flushed: FlushResult) -> FlushResult:
        """Take ``state`` with an empty index once ``flushed`` is done; log it."""
        self._log_flush(flushed, msg)
        self.state = state
        self.index = BatchIndex()
        self.stat_cache.mark_stale()
        return flushed

    def _log_flush(self, flushed: FlushResult, msg: str | None) -> None:
        self.log.append(
            "flush",
            batch=flushed.batch,
            archive=flushed.archive,
            n_f=flushed.stored_files,
            bt_wrt=flushed.stored_bytes,
            msg=msg,
        )

    def _restore_saved(self, state: BatchState) -> None:
        """Put ``state`` back in ``Dsstat.json`` after a failed flush (it may be replaced)."""
        try:
            save_state(self.state_path, state)
        except OSError as exc:
            logger.error("could not restore %s after a failed flush: %s", self.state_path, exc)
