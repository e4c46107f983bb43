"""Copy an archived batch from the local folder to the object store, manifest last, and check it.

`upload_batch` is idempotent: a file already stored with the manifest's size and sha256 is not
sent again, so a repeat after a crash or a lost connection sends only what is missing.
"""

from __future__ import annotations

from glitchflow_archive.store import (
    MANIFEST,
    ArchiveStore,
    BatchRef,
    FileMismatch,
    Manifest,
)


def upload_batch(source: ArchiveStore, target: ArchiveStore, ref: BatchRef) -> Manifest:
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
        for entry, data in source.read_verified(ref, manifest):
            if not _stored_as_listed(target, ref.name, entry.name, entry.nbytes, entry.sha256):
                target.put(ref.name, entry.name, data, entry.sha256)
        # Last: from now on the batch is listed, whole.
        target.put(ref.name, MANIFEST, raw)
    verify_stored(target, ref, manifest)
    return manifest


def _stored_as_listed(target: ArchiveStore, name: str, file: str, nbytes: int, sha256: str) -> bool:
    stored = target.head(name, file)
    return stored is not None and stored.nbytes == nbytes and stored.sha256 == sha256


def verify_stored(target: ArchiveStore, ref: BatchRef, manifest: Manifest) -> None:
    """Check that ``target`` holds every file of ``manifest`` with its size and sha256, as the
    store itself recorded them (no byte is read back).

    Raises
    ------
    FileMismatch
        A file is missing or differs.
    """
    for entry in manifest.files:
        stored = target.head(ref.name, entry.name)
        if stored is None:
            raise FileMismatch(f"batch {ref.name}: {entry.name} is missing in the store")
        if stored.nbytes != entry.nbytes or stored.sha256 != entry.sha256:
            raise FileMismatch(
                f"batch {ref.name}: {entry.name} in the store has {stored.nbytes} bytes and "
                f"sha256 {stored.sha256}, the manifest says {entry.nbytes} and {entry.sha256}"
            )
