"""The storage engine of the buffer: chunk files, counters, state, freeze and flush. No HTTP here.

The disk is the truth. Every chunk is one JSON file in the data folder, named from its identity;
counters and the per-channel interval index are rebuilt from those files at start-up, and
``StatDesc.json`` is only a cache of them. One lock serialises every change of state; the costly
part of a write (serialising, writing and fsyncing the temporary file) happens outside it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

import orjson
from sortedcontainers import SortedList

from databuffer.errors import ArchiveFailed, Conflict, DiskFull, Frozen, NotFrozen
from databuffer.eventlog import EventLog, utc_iso
from databuffer.index import ChannelIndex, Span, gaps_between
from glitchflow_core.chunk import CHANNEL_RE, DEFAULT_CHANNEL, Chunk, ChunkError, parse_chunk

logger = logging.getLogger("databuffer.storage")

OPERATIONAL = "OPERATIONAL"
FROZEN = "FROZEN"
STAT_FILE = "StatDesc.json"
STATE_FILE = "Dsstat.json"
LOG_FILE = "LogStream.json"
MANIFEST = "manifest.json"

MAX_T0 = 1e11
"""t0 bound (about 3,000 years of GPS time) so that t0 in nanoseconds fits the 20 name digits."""

STAT_CACHE_INTERVAL = 0.25
"""Seconds ``StatDesc.json`` may lag the chunk files while writes stream in."""

RECENT_ARCHIVED = 131_072
"""Archived files still recognised as duplicates when sent again (a retry racing a flush)."""

_NS = 1_000_000_000
_NAME_RE = re.compile(
    r"^(?P<ch>[A-Za-z0-9%._\-]+)__(?P<ns>\d{20})__(?P<n>[1-9]\d*)__(?P<dt>[0-9.e+\-]+)\.json$"
)
_ARCHIVE_RE = re.compile(r"^(?P<batch>\d{6,})-\d{8}T\d{6}Z(?:-\d+)?$")
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


# --------------------------------------------------------------------------- naming


def t0_nanoseconds(t0: float) -> int:
    """``t0`` in integer nanoseconds, rounded; exact for the integer part of GPS times."""
    whole = int(t0)
    return whole * _NS + round((t0 - whole) * _NS)


def chunk_filename(channel: str, t0: float, n: int, dt: float) -> str:
    """The file name of a chunk: deterministic from its identity, filesystem-safe, sortable.

    ``quote(channel)__<t0 ns, 20 digits>__<n>__<repr(dt)>.json``; never starts with a dot (those
    are temporary files).

    Raises
    ------
    ChunkError
        When ``t0`` does not fit the name (beyond `MAX_T0`) or the channel is not a channel name.
    """
    if not 0 <= t0 < MAX_T0:
        raise ChunkError("t", f"t0 must be a GPS time below {MAX_T0:.0e} s")
    if channel != DEFAULT_CHANNEL and not CHANNEL_RE.match(channel):
        raise ChunkError("channel", "must look like 'L1:GWOSC-4KHZ_R1_STRAIN'")
    return f"{quote(channel, safe='')}__{t0_nanoseconds(t0):020d}__{n}__{dt!r}.json"


@dataclass(frozen=True, slots=True)
class ChunkName:
    """The identity read back from a chunk file name."""

    channel: str
    t0_ns: int
    n: int
    dt: float

    @property
    def start(self) -> float:
        return self.t0_ns / _NS

    @property
    def end(self) -> float:
        return self.start + self.n * self.dt


def parse_filename(name: str) -> ChunkName | None:
    """The identity encoded in a chunk file name, or None when ``name`` is not one."""
    match = _NAME_RE.match(name)
    if match is None:
        return None
    channel = unquote(match["ch"])
    try:
        dt = float(match["dt"])
    except ValueError:
        return None
    if not dt > 0 or (channel != DEFAULT_CHANNEL and not CHANNEL_RE.match(channel)):
        return None
    parsed = ChunkName(channel, int(match["ns"]), int(match["n"]), dt)
    # Only the canonical spelling counts, so one identity never has two files.
    if chunk_filename(channel, parsed.start, parsed.n, dt) != name:
        return None
    return parsed


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class BatchState:
    """What ``Dsstat.json`` holds. Never a token."""

    dstatus: Literal["OPERATIONAL", "FROZEN"] = OPERATIONAL
    user: str | None = None
    batch: int = 1
    batch_started: float | None = None
    frozen_at: float | None = None
    frozen_reason: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The persisted and served form, times as UTC ISO strings."""
        doc = asdict(self)
        for key in ("batch_started", "frozen_at"):
            doc[key] = utc_iso(doc[key]) if doc[key] is not None else None
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> BatchState:
        def when(value: object) -> float | None:
            if not isinstance(value, str):
                return None
            return datetime.fromisoformat(value).timestamp()

        status = doc.get("dstatus")
        batch = doc.get("batch")
        return cls(
            dstatus=FROZEN if status == FROZEN else OPERATIONAL,
            user=doc.get("user") if isinstance(doc.get("user"), str) else None,
            batch=batch if isinstance(batch, int) and batch >= 1 else 1,
            batch_started=when(doc.get("batch_started")),
            frozen_at=when(doc.get("frozen_at")),
            frozen_reason=doc.get("frozen_reason")
            if isinstance(doc.get("frozen_reason"), str)
            else None,
        )


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of `Storage.write`: ``CREATED`` (stored now) or ``DUPLICATE`` (stored before)."""

    resp: Literal["CREATED", "DUPLICATE"]
    file: str
    bytes: int
    n_itm: int
    buff_size: int
    batch: int
    frozen: bool
    archive: str | None = None
    """For a duplicate of a chunk already flushed: the archive folder holding it."""

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        if doc["archive"] is None:
            del doc["archive"]
        return doc


@dataclass(frozen=True, slots=True)
class Stat:
    """Counters and state at one instant."""

    n_itm: int
    buff_size: int
    batch: int
    dstatus: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class FreezeResult:
    """Outcome of `Storage.freeze_if`."""

    frozen: bool
    froze_now: bool
    stat: Stat


@dataclass(frozen=True, slots=True)
class FlushResult:
    """Outcome of `Storage.flush`: the archived batch and its manifest."""

    batch: int
    archive: str
    n_f: int
    bt_wrt: int
    manifest: dict[str, Any]


# --------------------------------------------------------------------------- file helpers


def fsync_dir(path: Path) -> None:
    """Make the renames inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(folder: Path, data: bytes, prefix: str, *, drop_cache: bool = False) -> Path:
    """Write ``data`` to a new dot-named file in ``folder`` and fsync it; return its path.

    With ``drop_cache`` the file's pages leave the page cache once they are on disk. A chunk is
    written once and read at most once, by the training job, long after; without this the page
    cache grows by every chunk, and taking ever new pages made the kernel's copy into it the
    largest single cost of a write (8 threads writing 375 kB files with fsync here: 1.2-1.5 ms
    of system CPU a file, against 0.33-0.41 ms when the pages are dropped and so reused).
    """
    fd, name = tempfile.mkstemp(dir=folder, prefix=f".{prefix}.", suffix=".tmp")
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
        if drop_cache and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    os.close(fd)
    return Path(name)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` by ``data`` atomically: temporary file, fsync, rename, fsync."""
    if durable:
        tmp = write_temp(path.parent, data, path.name)
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        tmp = Path(name)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


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


def _archive_stamp(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y%m%dT%H%M%SZ")


def _manifest_names(manifest: object) -> list[str] | None:
    """The file names a manifest lists, or None when it is not a manifest with a file list."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        return None
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in files]
    return names if all(isinstance(name, str) for name in names) else None


def _remove_temp_files(folder: Path) -> int:
    removed = 0
    for entry in os.scandir(folder):
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            os.unlink(entry.path)
            removed += 1
    return removed


# --------------------------------------------------------------------------- the engine


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
        self._clock = clock
        self._lock = threading.Lock()
        for folder in (self.data_dir, self.adm_dir, self.log_dir, self.archive_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self.log = EventLog(self.log_dir / LOG_FILE, log_max_bytes, log_backups)
        self._sync_lock = threading.Lock()
        self._renamed = 0  # renames into the data folder so far
        self._synced = 0  # renames made durable by an fsync of the folder
        self._stat_lock = threading.Lock()
        self._stat_dirty = False
        self._stat_timer_lock = threading.Lock()
        self._stat_timer: threading.Timer | None = None
        self._closed = False
        # The most recently archived files, so that a retry racing with flushes is still
        # recognised as a duplicate (name -> (batch, archive folder)), oldest first.
        self._recent: OrderedDict[str, tuple[int, str]] = OrderedDict()
        self._reset_index()
        self._state = BatchState()
        self._recover()

    # ----------------------------------------------------------------- start-up

    def _reset_index(self) -> None:
        self._names: SortedList = SortedList()  # (channel, t0_ns, name): channel, then GPS time
        self._files: dict[str, int] = {}  # name -> bytes
        self._channels: dict[str, ChannelIndex] = {}
        self.n_itm = 0
        self.buff_size = 0

    def _recover(self) -> None:
        """Rebuild everything from the disk: the files are the truth, the caches follow them."""
        # The archive folder too: check_writable writes its probe there.
        removed = sum(
            _remove_temp_files(folder) for folder in (self.data_dir, self.adm_dir, self.archive_dir)
        )
        restored = self._recover_partial_archives()
        state = self._load_state()
        last_archived = max(self._archived_batches(), default=0)
        self._load_recent()
        if state.batch <= last_archived:
            # A flush renamed its archive but died before saving the new state.
            state = BatchState(batch=last_archived + 1)
        oldest = None
        unknown = 0
        for entry in os.scandir(self.data_dir):
            if entry.name.startswith(".") or not entry.is_file():
                continue
            parsed = parse_filename(entry.name)
            if parsed is None:
                unknown += 1
                continue
            info = entry.stat()
            self._add_locked(entry.name, parsed, info.st_size)
            oldest = info.st_mtime if oldest is None else min(oldest, info.st_mtime)
        if unknown:
            logger.warning("ignoring files that are not chunk files", extra={"count": unknown})
        if self.n_itm and state.batch_started is None:
            state = replace(state, batch_started=oldest)
        if not self.n_itm and state.dstatus == OPERATIONAL:
            state = replace(state, batch_started=None)
        if state != self._load_state():
            self._save_state(state)
        self._state = state
        self._write_stat_cache()
        self.log.append(
            "start",
            batch=state.batch,
            dstatus=state.dstatus,
            n_itm=self.n_itm,
            buff_size=self.buff_size,
            temp_removed=removed,
            restored_from_partial_archive=restored,
        )

    def _recover_partial_archives(self) -> int:
        """Put back the files of a flush that died before its archive was renamed into place."""
        restored = 0
        for entry in os.scandir(self.archive_dir):
            if not (entry.name.startswith(".") and entry.is_dir()):
                continue
            staging = Path(entry.path)
            for item in os.scandir(staging):
                if parse_filename(item.name) is None:
                    continue
                target = self.data_dir / item.name
                if target.exists():
                    os.unlink(item.path)
                else:
                    os.replace(item.path, target)
                    restored += 1
            shutil.rmtree(staging)
        if restored:
            fsync_dir(self.data_dir)
        return restored

    def _load_recent(self) -> None:
        """Remember the newest archived files (up to `RECENT_ARCHIVED`), from the manifests."""
        batches: list[tuple[int, str, list[str]]] = []
        held = 0
        for folder in self._archive_names():
            if held >= RECENT_ARCHIVED:
                break
            try:
                manifest = orjson.loads((self.archive_dir / folder / MANIFEST).read_bytes())
            except (OSError, orjson.JSONDecodeError) as exc:
                logger.warning("unreadable manifest in %s: %s", folder, exc)
                continue
            names = _manifest_names(manifest)
            if names is None:
                logger.warning("manifest in %s has no list of named files, skipped", folder)
                continue
            # The folder name is where the files are, whatever the manifest says.
            batches.append((int(folder.split("-", 1)[0]), folder, names))
            held += len(names)
        for batch, archive, names in reversed(batches):
            self._remember_archived(batch, archive, names)

    def _remember_archived(self, batch: int, archive: str, names: list[str]) -> None:
        for name in names:
            self._recent[name] = (batch, archive)
            self._recent.move_to_end(name)
        while len(self._recent) > RECENT_ARCHIVED:
            self._recent.popitem(last=False)

    def _archived_batches(self) -> Iterator[int]:
        for entry in os.scandir(self.archive_dir):
            match = _ARCHIVE_RE.match(entry.name)
            if match and entry.is_dir():
                yield int(match["batch"])

    def _load_state(self) -> BatchState:
        path = self.adm_dir / STATE_FILE
        try:
            doc = orjson.loads(path.read_bytes())
        except FileNotFoundError:
            return BatchState()
        except (orjson.JSONDecodeError, OSError, ValueError) as exc:
            logger.error("unreadable %s, starting OPERATIONAL: %s", STATE_FILE, exc)
            return BatchState()
        return BatchState.from_json(doc) if isinstance(doc, dict) else BatchState()

    def _save_state(self, state: BatchState) -> None:
        atomic_write(self.adm_dir / STATE_FILE, orjson.dumps(state.as_json()))

    # ----------------------------------------------------------------- index

    def _add_locked(self, name: str, parsed: ChunkName, nbytes: int) -> None:
        self._names.add((parsed.channel, parsed.t0_ns, name))
        self._files[name] = nbytes
        index = self._channels.get(parsed.channel)
        if index is None:
            index = self._channels[parsed.channel] = ChannelIndex()
        index.add(Span(parsed.start, parsed.end, parsed.dt, name, nbytes))
        self.n_itm += 1
        self.buff_size += nbytes

    # ----------------------------------------------------------------- reading

    @property
    def state(self) -> BatchState:
        """The current `BatchState`."""
        return self._state

    def stat(self) -> Stat:
        """Counters, batch number and state."""
        with self._lock:
            return Stat(self.n_itm, self.buff_size, self._state.batch, self._state.dstatus)

    def names(self, limit: int, offset: int = 0) -> tuple[list[str], int]:
        """Chunk file names sorted by channel then GPS time, one page, and the total."""
        with self._lock:
            page = self._names[offset : offset + limit] if limit > 0 else []
            return [name for _, _, name in page], len(self._names)

    def channels(self) -> dict[str, dict[str, Any]]:
        """Per channel: files, bytes, GPS span, covered segments and gaps."""
        with self._lock:
            return {channel: index.describe() for channel, index in sorted(self._channels.items())}

    def _archive_names(self) -> list[str]:
        """Archive folders, newest first."""
        return sorted(
            (e.name for e in os.scandir(self.archive_dir) if _ARCHIVE_RE.match(e.name)),
            reverse=True,
        )

    def batches(self, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """Manifests of archived batches, newest first, one page, and the total."""
        names = self._archive_names()
        manifests = []
        for name in names[offset : offset + limit] if limit > 0 else []:
            try:
                manifests.append(orjson.loads((self.archive_dir / name / MANIFEST).read_bytes()))
            except (OSError, orjson.JSONDecodeError) as exc:
                manifests.append({"archive": name, "error": f"manifest unreadable: {exc}"})
        return manifests, len(names)

    def check_writable(self) -> None:
        """Raise OSError unless a file can be created in every folder the engine writes."""
        for folder in (self.data_dir, self.adm_dir, self.archive_dir):
            tmp = write_temp(folder, b"ready", "readyz")
            os.unlink(tmp)

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
        body : bytes, optional
            The bytes ``chunk`` was validated from, stored as they are (validation admits only
            the fields ``h``, ``t`` and ``channel``): re-encoding 16,384 floats would cost as
            much as the write. Without it the chunk's canonical form is stored.
        freeze_at : int, optional
            Freeze, in the same critical section, when this write brings ``buff_size`` to it.
        max_age : float, optional
            Also freeze when the batch's first chunk is older than this many seconds.

        Returns
        -------
        WriteResult
            ``CREATED`` when stored now, ``DUPLICATE`` when the same chunk is already stored (not
            counted again); either only once the stored file is durable.

        Raises
        ------
        Frozen
            The buffer is frozen; nothing was stored.
        Conflict
            The chunk overlaps stored samples of its channel with different data.
        DiskFull
            No space left; nothing was stored.
        ChunkError
            ``t0`` too large to be named.
        """
        name = chunk_filename(chunk.channel, chunk.t0, chunk.n, chunk.dt)
        parsed = ChunkName(chunk.channel, t0_nanoseconds(chunk.t0), chunk.n, chunk.dt)
        data = body if body is not None else chunk.canonical_bytes()
        with self._lock:
            early = self._check_locked(name, parsed, data, chunk)
            renamed = self._renamed
        if early is not None:
            # The original write may not have made its rename durable yet.
            self._sync_data_dir(renamed)
            return early
        try:
            tmp: Path | None = write_temp(self.data_dir, data, "chunk", drop_cache=True)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                self.log.append("disk_full", file=name)
                raise DiskFull(f"no space left writing {name}") from exc
            raise
        try:
            with self._lock:
                result = self._check_locked(name, parsed, data, chunk)
                renamed = self._renamed
                if result is None:
                    os.replace(tmp, self.data_dir / name)
                    tmp = None
                    self._renamed += 1
                    renamed = self._renamed
                    if not self.n_itm:
                        self._state = replace(self._state, batch_started=self._clock())
                    self._add_locked(name, parsed, len(data))
                    self.log.append(
                        "write",
                        file=name,
                        bytes=len(data),
                        channel=chunk.channel,
                        batch=self._state.batch,
                    )
                    froze = self._freeze_on_write_locked(freeze_at, max_age)
                    result = WriteResult(
                        "CREATED",
                        name,
                        len(data),
                        self.n_itm,
                        self.buff_size,
                        self._state.batch,
                        froze,
                    )
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        # Acknowledged only once durable: our own rename, or the original one of a duplicate.
        self._sync_data_dir(renamed)
        if result.resp == "DUPLICATE":
            return result
        if result.frozen:
            self._flush_stat_cache()
        else:
            self._mark_stat_dirty()
        return result

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
        self, name: str, parsed: ChunkName, data: bytes, chunk: Chunk
    ) -> WriteResult | None:
        """DUPLICATE result, None when the chunk may be stored, or raise Conflict / Frozen."""
        state = self._state
        archived = self._recent.get(name)
        if name in self._files or archived is not None:
            if archived is None:
                batch, archive, path = state.batch, None, self.data_dir / name
            else:
                batch, archive = archived
                path = self.archive_dir / archive / name
            stored = path.read_bytes()
            if _same_chunk(stored, data, chunk):
                self.log.append("duplicate", file=name, batch=batch)
                return WriteResult(
                    "DUPLICATE",
                    name,
                    len(stored),  # what is on disk, whatever this copy's spelling
                    self.n_itm,
                    self.buff_size,
                    batch,
                    False,
                    archive,
                )
            self.log.append("conflict", file=name, existing=name, batch=batch)
            raise Conflict("same chunk identity already stored with different samples", name)
        if state.dstatus == FROZEN:
            raise Frozen(state.batch)
        index = self._channels.get(parsed.channel)
        if index is not None:
            span = index.overlapping(parsed.start, parsed.end, parsed.dt)
            if span is not None:
                self.log.append("conflict", file=name, existing=span.name, batch=state.batch)
                raise Conflict(f"overlaps stored chunk {span.name}", span.name)
        return None

    # ----------------------------------------------------------------- freeze

    def _freeze_on_write_locked(self, freeze_at: int | None, max_age: float | None) -> bool:
        if freeze_at is not None and self.buff_size >= freeze_at:
            self._freeze_locked("policy", f"buff_size {self.buff_size} >= freeze_at {freeze_at}")
            return True
        if max_age is not None and self._age_locked() >= max_age:
            self._freeze_locked("policy", f"batch age >= max_age {max_age:g}s")
            return True
        return False

    def _age_locked(self) -> float:
        started = self._state.batch_started
        return self._clock() - started if (self.n_itm and started is not None) else -1.0

    def _freeze_locked(self, user: str, reason: str) -> None:
        now = self._clock()
        self._state = replace(
            self._state, dstatus=FROZEN, user=user, frozen_at=now, frozen_reason=reason
        )
        try:
            self._save_state(self._state)
        except OSError as exc:
            # Frozen in memory all the same: refusing writes is the safe side.
            logger.error("could not persist the freeze: %s", exc)
        self.log.append(
            "freeze",
            batch=self._state.batch,
            user=user,
            reason=reason,
            n_itm=self.n_itm,
            buff_size=self.buff_size,
        )
        self._stat_dirty = True

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
            was_frozen = self._state.dstatus == FROZEN
            if not was_frozen:
                if min_size is None and max_age is None:
                    self._freeze_locked(user, "requested")
                elif min_size is not None and self.buff_size >= min_size:
                    self._freeze_locked(user, f"buff_size {self.buff_size} >= {min_size}")
                elif max_age is not None and self._age_locked() >= max_age:
                    self._freeze_locked(user, f"batch age >= max_age {max_age:g}s")
            frozen = self._state.dstatus == FROZEN
            stat = Stat(self.n_itm, self.buff_size, self._state.batch, self._state.dstatus)
        self._flush_stat_cache()
        return FreezeResult(frozen, frozen and not was_frozen, stat)

    # ----------------------------------------------------------------- flush

    def flush(self, msg: str | None = None, force: bool = False) -> FlushResult:
        """Move exactly the current batch into its archive folder, reset, unfreeze.

        The folder is ``<batch:06d>-<UTC YYYYmmddTHHMMSSZ>`` with a ``manifest.json``. The batch is
        first assembled in a hidden staging folder and renamed into place; on any failure every
        file goes back, nothing changes and `ArchiveFailed` is raised.

        Raises
        ------
        NotFrozen
            The buffer is OPERATIONAL and ``force`` is false.
        ArchiveFailed
            Archiving failed; the batch is untouched.
        """
        hashed = self._hash_batch(force)
        with self._lock:
            state = self._state
            if state.dstatus != FROZEN and not force:
                raise NotFrozen("buffer is not frozen")
            now = self._clock()
            archive = self._archive_name_locked(state.batch, now)
            if hashed is not None and hashed[0] != state.batch:
                hashed = None  # another flush came first: these were other files
            try:
                manifest = self._archive_locked(
                    archive, state, now, msg, hashed[1] if hashed else {}
                )
            except OSError as exc:
                detail = f"archiving batch {state.batch} failed: {exc.strerror or exc}"
                self.log.append("flush_failed", batch=state.batch, detail=detail)
                raise ArchiveFailed(detail, disk_full=exc.errno in _DISK_FULL) from exc
            n_f, bt_wrt = self.n_itm, self.buff_size
            self._remember_archived(state.batch, archive, list(self._files))
            self._reset_index()
            self._state = BatchState(batch=state.batch + 1)
            self.log.append(
                "flush", batch=state.batch, archive=archive, n_f=n_f, bt_wrt=bt_wrt, msg=msg
            )
            self._stat_dirty = True
        self._flush_stat_cache()
        return FlushResult(state.batch, archive, n_f, bt_wrt, manifest)

    def _hash_batch(self, force: bool) -> tuple[int, dict[str, tuple[str, int]]] | None:
        """The batch number and its files' (sha256, bytes), computed without holding the lock.

        Hashing a large batch takes seconds; under the lock it would stall every reader. A frozen
        batch cannot change, and chunk files are never rewritten, so the flush only hashes under
        the lock what was added since (a forced flush of an OPERATIONAL batch). None when there
        is nothing to flush.
        """
        with self._lock:
            if self._state.dstatus != FROZEN and not force:
                return None
            batch, names = self._state.batch, list(self._files)
        hashed = {}
        for name in names:
            try:
                hashed[name] = _hash_file(self.data_dir / name)
            except OSError:
                continue  # hashed again under the lock, where a failure aborts the flush
        return batch, hashed

    def _archive_name_locked(self, batch: int, now: float) -> str:
        base = f"{batch:06d}-{_archive_stamp(now)}"
        name, suffix = base, 1
        while (self.archive_dir / name).exists():
            suffix += 1
            name = f"{base}-{suffix}"
        return name

    def _archive_locked(
        self,
        archive: str,
        state: BatchState,
        now: float,
        msg: str | None,
        hashed: dict[str, tuple[str, int]],
    ) -> dict[str, Any]:
        staging = self.archive_dir / f".{archive}.partial"
        final = self.archive_dir / archive
        moved: list[str] = []
        renamed = False
        try:
            staging.mkdir()
            files = []
            for _, _, name in self._names:
                digest, size = hashed.get(name) or _hash_file(self.data_dir / name)
                os.replace(self.data_dir / name, staging / name)
                moved.append(name)
                files.append({"name": name, "bytes": size, "sha256": digest})
            channels = {}
            for channel, index in sorted(self._channels.items()):
                segments = index.segments()
                channels[channel] = {
                    "n_itm": len(index),
                    "bytes": index.nbytes,
                    "start": segments[0][0] if segments else None,
                    "end": segments[-1][1] if segments else None,
                    "segments": segments,
                    "gaps": gaps_between(segments),
                }
            manifest = {
                "batch": state.batch,
                "archive": archive,
                "created": utc_iso(state.batch_started) if state.batch_started else None,
                "frozen_at": utc_iso(state.frozen_at) if state.frozen_at else None,
                "flushed_at": utc_iso(now),
                "frozen_by": state.user,
                "frozen_reason": state.frozen_reason,
                "forced": state.dstatus != FROZEN,
                "msg": msg,
                "n_f": self.n_itm,
                "bt_wrt": self.buff_size,
                "files": files,
                "channels": channels,
            }
            atomic_write(staging / MANIFEST, orjson.dumps(manifest))
            os.replace(staging, final)
            renamed = True
            fsync_dir(self.archive_dir)
            fsync_dir(self.data_dir)
            self._save_state(BatchState(batch=state.batch + 1))
        except OSError:
            self._rollback_archive(staging, final, moved, renamed)
            raise
        return manifest

    def _rollback_archive(
        self, staging: Path, final: Path, moved: list[str], renamed: bool
    ) -> None:
        """Undo a failed flush: every moved file back into the data folder, no archive left."""
        try:
            if renamed:
                os.replace(final, staging)
            for name in moved:
                os.replace(staging / name, self.data_dir / name)
            if staging.exists():
                shutil.rmtree(staging)
            fsync_dir(self.data_dir)
            self._save_state(self._state)
        except OSError as exc:
            # Start-up recovery finishes the job (partial archives are put back there).
            logger.error("rollback of a failed flush incomplete: %s", exc)

    # ----------------------------------------------------------------- StatDesc cache

    def _mark_stat_dirty(self) -> None:
        """Rewrite ``StatDesc.json`` soon: at most once per `STAT_CACHE_INTERVAL` under load.

        Replacing a file costs a forced write-back on ext4, so doing it for every chunk would
        halve the ingest rate; the cache may lag the files by that interval (the files are the
        truth, and freeze, flush and close rewrite it at once).
        """
        self._stat_dirty = True
        with self._stat_timer_lock:
            if self._stat_timer is not None or self._closed:
                return
            self._stat_timer = threading.Timer(STAT_CACHE_INTERVAL, self._timer_flush)
            self._stat_timer.daemon = True
            self._stat_timer.start()

    def _timer_flush(self) -> None:
        with self._stat_timer_lock:
            self._stat_timer = None
        self._flush_stat_cache()

    def _flush_stat_cache(self) -> None:
        """Rewrite ``StatDesc.json`` if stale; concurrent callers coalesce into one writer."""
        while self._stat_dirty:
            if not self._stat_lock.acquire(blocking=False):
                return  # the holder re-checks the flag before leaving
            try:
                while self._stat_dirty:
                    self._stat_dirty = False
                    self._write_stat_cache()
            finally:
                self._stat_lock.release()

    def _write_stat_cache(self) -> None:
        with self._lock:
            doc = {
                "n_itm": self.n_itm,
                "buff_size": self.buff_size,
                "batch": self._state.batch,
                "dstatus": self._state.dstatus,
            }
        try:
            atomic_write(self.adm_dir / STAT_FILE, orjson.dumps(doc), durable=False)
        except OSError as exc:
            logger.warning("could not rewrite %s: %s", STAT_FILE, exc)

    def close(self) -> None:
        """Write the caches, log the stop and close the event log."""
        with self._stat_timer_lock:
            if self._closed:
                return
            self._closed = True
            if self._stat_timer is not None:
                self._stat_timer.cancel()
                self._stat_timer = None
        self._stat_dirty = True
        self._flush_stat_cache()
        self.log.append("stop", batch=self._state.batch, n_itm=self.n_itm, buff_size=self.buff_size)
        self.log.close()
