"""Read archived batches: list them, read a manifest, read chunk files verified against it.

An archived batch is named ``<batch:06d>-<UTC YYYYmmddTHHMMSSZ>[-N]`` and holds its chunk files
and ``manifest.json``, written last: a batch without a manifest is half-written. `ArchiveStore`
holds every rule about batches and manifests; a backend (`LocalArchive`, later an S3 bucket)
only lists names and reads bytes.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

MANIFEST = "manifest.json"
RESULTS = "results.json"
"""What became of an archived batch after its flush (export, training), recorded beside its
manifest; not one of its chunk files, so no manifest lists it."""

BATCH_NAME_RE = re.compile(r"^(?P<batch>\d{6,})-\d{8}T\d{6}Z(?:-\d+)?$")
"""The name of an archived batch, as the buffer writes it."""

_CHUNK_NAME_RE = re.compile(r"^[^./][^/]*__\d{20}__[1-9]\d*__[^/]+\.json$")
"""A chunk file name (``channel__t0ns__n__dt.json``); only these count as a batch's files."""

LATEST = "latest"

READ_THREADS = 2
READ_AHEAD = 16
"""Files read and hashed ahead of the consumer, in threads: reads and sha256 release the GIL,
so they overlap with the caller's parsing on another core; the bound keeps memory small."""


class ArchiveError(Exception):
    """Base of every archive problem; ``str(exc)`` is one line naming it."""


class BatchNotFound(ArchiveError):
    """Raised when no archived batch has the requested id or name."""


class BatchIncomplete(ArchiveError):
    """Raised when a batch has no manifest: its flush is still running or died half-way."""


class ManifestInvalid(ArchiveError):
    """Raised when ``manifest.json`` is not JSON or lacks the fields every manifest has."""


class FileMismatch(ArchiveError):
    """Raised when a chunk file is missing, unlisted, or differs from the manifest's size or
    sha256."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One chunk file as the manifest lists it."""

    name: str
    nbytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class Manifest:
    """A batch's manifest: its id, folder name, files, and the whole document."""

    batch: int
    archive: str
    files: tuple[FileEntry, ...]
    doc: dict[str, Any]

    @property
    def nbytes(self) -> int:
        """Bytes of chunk files in the batch."""
        return sum(f.nbytes for f in self.files)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a store says about one file: its size and its sha256 (hex), as the store recorded
    them (S3 checks the sha256 when the file is put)."""

    nbytes: int
    sha256: str | None


@dataclass(frozen=True, slots=True)
class BatchRef:
    """An archived batch: its id, its name in the store, and where it is (path or URL)."""

    batch: int
    name: str
    location: str


def _parse_manifest(raw: bytes, name: str) -> Manifest:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ManifestInvalid(f"batch {name}: manifest.json is not valid JSON") from exc
    if not isinstance(doc, dict):
        raise ManifestInvalid(f"batch {name}: manifest.json is not a JSON object")
    batch, files = doc.get("batch"), doc.get("files")
    if isinstance(batch, bool) or not isinstance(batch, int):
        raise ManifestInvalid(f"batch {name}: manifest.json has no integer 'batch'")
    if not isinstance(files, list):
        raise ManifestInvalid(f"batch {name}: manifest.json has no 'files' list")
    entries = []
    for item in files:
        try:
            entry = FileEntry(str(item["name"]), int(item["bytes"]), str(item["sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestInvalid(
                f"batch {name}: manifest.json lists a file without name, bytes and sha256"
            ) from exc
        # No manifest entry may become a path outside the batch.
        if not _CHUNK_NAME_RE.match(entry.name):
            raise ManifestInvalid(f"batch {name}: manifest.json lists {entry.name!r}, not a chunk")
        entries.append(entry)
    return Manifest(batch, name, tuple(entries), doc)


class ArchiveStore(ABC):
    """Archived batches in some store; subclasses implement the four primitives below."""

    # ----------------------------------------------------------------- primitives

    @abstractmethod
    def names(self) -> list[str]:
        """Every batch name in the store, complete or not (order free)."""

    @abstractmethod
    def incomplete_names(self) -> list[str]:
        """Names of batches still being written (a flush's staging area), if the store has one."""

    @abstractmethod
    def list_files(self, name: str) -> list[str]:
        """File names inside batch ``name``."""

    @abstractmethod
    def read_bytes(self, name: str, file: str) -> bytes:
        """The bytes of ``file`` in batch ``name``; `FileNotFoundError` when absent."""

    @abstractmethod
    def location(self, name: str) -> str:
        """Where batch ``name`` is, for messages and reports (a path or a URL)."""

    def reads_locally(self, name: str) -> bool:
        """True when batch ``name`` is read from local files, with no client or connection that
        a forked process would share with its parent (so readers may fork); False here."""
        return False

    # ----------------------------------------------------------------- shared rules

    def _ref(self, name: str) -> BatchRef:
        match = BATCH_NAME_RE.match(name)
        if match is None:
            raise BatchNotFound(f"{name!r} is not an archived batch name")
        return BatchRef(int(match["batch"]), name, self.location(name))

    def list_batches(self) -> list[BatchRef]:
        """Archived batches (with or without a manifest), oldest first."""
        refs = [self._ref(n) for n in self.names() if BATCH_NAME_RE.match(n)]
        return sorted(refs, key=lambda r: (r.batch, r.name))

    def resolve(self, spec: str) -> BatchRef:
        """The batch named by ``spec``: a batch id (``7``), ``latest``, or a batch name.

        ``latest`` is the newest batch with a manifest. Several folders of one id (a rare name
        clash within one second) resolve to the newest.

        Raises
        ------
        BatchNotFound
            No such batch.
        BatchIncomplete
            The batch exists only half-written.
        """
        batches = self.list_batches()
        spec = spec.strip()
        if spec == LATEST:
            for ref in reversed(batches):
                if MANIFEST in self.list_files(ref.name):
                    return ref
            raise BatchNotFound("no archived batch with a manifest in " + self.location(""))
        if spec.isdigit():
            wanted = int(spec)
            found = [r for r in batches if r.batch == wanted]
            if found:
                return found[-1]
            staging = [n for n in self.incomplete_names() if n.startswith(f"{wanted:06d}-")]
            if staging:
                raise BatchIncomplete(
                    f"batch {wanted} is half-written ({staging[0]} has no manifest)"
                )
            raise BatchNotFound(f"no archived batch {wanted} in {self.location('')}")
        if any(r.name == spec for r in batches):
            return self._ref(spec)
        raise BatchNotFound(f"no archived batch {spec!r} in {self.location('')}")

    def read_manifest(self, ref: BatchRef) -> Manifest:
        """The batch's manifest.

        Raises
        ------
        BatchIncomplete
            No ``manifest.json``: the batch is half-written.
        ManifestInvalid
            It is not a manifest.
        """
        try:
            raw = self.read_bytes(ref.name, MANIFEST)
        except FileNotFoundError as exc:
            raise BatchIncomplete(
                f"batch {ref.name} is half-written: no manifest.json in {ref.location}"
            ) from exc
        return _parse_manifest(raw, ref.name)

    def unlisted_files(self, ref: BatchRef, manifest: Manifest) -> list[str]:
        """Chunk files in the batch that its manifest does not list."""
        listed = {f.name for f in manifest.files}
        return sorted(
            n for n in self.list_files(ref.name) if _CHUNK_NAME_RE.match(n) and n not in listed
        )

    def read_verified(self, ref: BatchRef, manifest: Manifest) -> Iterator[tuple[FileEntry, bytes]]:
        """Each listed chunk file and its bytes, checked against the manifest's size and sha256.

        Raises
        ------
        FileMismatch
            A file is missing, unlisted, or its size or sha256 differs (raised before any file
            is yielded for a missing or unlisted one, at that file for a differing one).
        """
        self.check_listing(ref, manifest)
        with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="archive-read") as pool:
            pending: deque[tuple[FileEntry, Future[bytes]]] = deque()
            entries = iter(manifest.files)
            try:
                while True:
                    while len(pending) < READ_AHEAD:
                        entry = next(entries, None)
                        if entry is None:
                            break
                        pending.append((entry, pool.submit(self.read_checked, ref, entry)))
                    if not pending:
                        return
                    entry, future = pending.popleft()
                    yield entry, future.result()
            finally:
                for _, future in pending:
                    future.cancel()

    def check_listing(self, ref: BatchRef, manifest: Manifest) -> None:
        """Raise `FileMismatch` when a listed file is missing or a chunk file is unlisted."""
        present = set(self.list_files(ref.name))
        for entry in manifest.files:
            if entry.name not in present:
                raise FileMismatch(f"batch {ref.name}: {entry.name} is in the manifest but missing")
        unlisted = self.unlisted_files(ref, manifest)
        if unlisted:
            raise FileMismatch(f"batch {ref.name}: {unlisted[0]} is not in the manifest")

    def read_checked(self, ref: BatchRef, entry: FileEntry) -> bytes:
        """The bytes of one listed file; `FileMismatch` if it is missing or differs."""
        try:
            data = self.read_bytes(ref.name, entry.name)
        except FileNotFoundError as exc:
            raise FileMismatch(
                f"batch {ref.name}: {entry.name} is in the manifest but missing"
            ) from exc
        check_file(ref, entry, data)
        return data

    def verify(self, ref: BatchRef) -> Manifest:
        """Read the manifest and check every file against it; the manifest when all agree."""
        manifest = self.read_manifest(ref)
        for _ in self.read_verified(ref, manifest):
            pass
        return manifest


class WritableStore(ArchiveStore):
    """A store batches can be put into: files first, ``manifest.json`` last, which completes the
    batch (before it, the batch is only in `incomplete_names`)."""

    @abstractmethod
    def put(self, name: str, file: str, data: bytes, sha256: str | None = None) -> None:
        """Store ``data`` as ``file`` of batch ``name``.

        Raises
        ------
        FileMismatch
            ``sha256`` is given and ``data`` does not match it (nothing is stored).
        """

    @abstractmethod
    def head(self, name: str, file: str) -> StoredObject | None:
        """Size and sha256 of ``file`` in batch ``name``; None when it is not there."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove batch ``name``, its manifest first, so it is never listed half-removed."""


def check_file(ref: BatchRef, entry: FileEntry, data: bytes) -> None:
    """Raise `FileMismatch` unless ``data`` has the size and sha256 the manifest lists."""
    if len(data) != entry.nbytes:
        raise FileMismatch(
            f"batch {ref.name}: {entry.name} has {len(data)} bytes, "
            f"the manifest says {entry.nbytes}"
        )
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise FileMismatch(f"batch {ref.name}: {entry.name} does not match its manifest sha256")
