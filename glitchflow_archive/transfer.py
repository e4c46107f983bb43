"""Copy an archived batch from the local folder to the object store, manifest last, and check it.

`upload_batch` is idempotent: a file already stored with the manifest's size and sha256 is not
sent again, so a repeat after a crash or a lost connection sends only what is missing.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor

from glitchflow_archive.store import (
    MANIFEST,
    ArchiveStore,
    BatchRef,
    FileEntry,
    FileMismatch,
    Manifest,
    WritableStore,
)

UPLOAD_THREADS = 4
"""Requests in flight to the store at once: each file is one small PUT or HEAD whose time is
mostly the round trip, so a few overlap well (the boto3 client is thread-safe)."""


def upload_batch(source: ArchiveStore, target: WritableStore, ref: BatchRef) -> Manifest:
    """Put batch ``ref`` of ``source`` into ``target``: every chunk file, then ``manifest.json``.

    The source files are checked against the manifest as they are read (a damaged local copy is
    never uploaded), and the stored copy is checked afterwards (`verify_stored`).

    Returns
    -------
    Manifest
        The batch's manifest, once the stored copy matches it.

    Raises
    ------
    ArchiveError
        `FileMismatch` when a source file or the stored copy differs from the manifest;
        the target's own errors (an unreachable store) as they come.
    """
    manifest = source.read_manifest(ref)
    raw = source.read_bytes(ref.name, MANIFEST)
    if target.head(ref.name, MANIFEST) is None:
        with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="archive-upload") as pool:
            sending: deque[Future[None]] = deque()
            for entry, data in source.read_verified(ref, manifest):
                sending.append(pool.submit(_send_unless_stored, target, ref.name, entry, data))
                while len(sending) > 2 * UPLOAD_THREADS:
                    sending.popleft().result()  # bounded memory; the first error stops it
            for future in sending:
                future.result()
        # Last, once every file is stored: from now on the batch is listed, whole.
        target.put(ref.name, MANIFEST, raw)
    verify_stored(target, ref, manifest)
    return manifest


def _send_unless_stored(target: WritableStore, name: str, entry: FileEntry, data: bytes) -> None:
    stored = target.head(name, entry.name)
    if stored is None or (stored.nbytes, stored.sha256) != (entry.nbytes, entry.sha256):
        target.put(name, entry.name, data, entry.sha256)


def verify_stored(target: WritableStore, ref: BatchRef, manifest: Manifest) -> None:
    """Check that ``target`` holds every file of ``manifest`` with its size and sha256, as the
    store itself recorded them (no byte is read back).

    Raises
    ------
    FileMismatch
        A file is missing or differs.
    """
    with ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="archive-verify") as pool:
        heads = pool.map(lambda e: target.head(ref.name, e.name), manifest.files)
        found = list(zip(manifest.files, heads, strict=True))
    for entry, stored in found:
        if stored is None:
            raise FileMismatch(f"batch {ref.name}: {entry.name} is missing in the store")
        if stored.nbytes != entry.nbytes or stored.sha256 != entry.sha256:
            raise FileMismatch(
                f"batch {ref.name}: {entry.name} in the store has {stored.nbytes} bytes and "
                f"sha256 {stored.sha256}, the manifest says {entry.nbytes} and {entry.sha256}"
            )
