"""Sealed batches in the archive: one folder per batch, its chunk files and ``manifest.json``.

A batch's folder is ``<batch:06d>-<UTC YYYYmmddTHHMMSSZ>`` (``-2``, ``-3``... when taken): unique,
sortable, filesystem-safe. It is assembled in a hidden staging folder (``.<name>.partial``), its
manifest written last, and renamed into place, so a visible archive folder is always complete; a
crash before the rename leaves a staging folder whose files start-up puts back.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from databuffer.atomic import atomic_write, fsync_dir
from databuffer.errors import ArchiveFailed
from databuffer.eventlog import utc_iso
from databuffer.index import BatchIndex
from databuffer.naming import parse_filename
from databuffer.results import FlushResult
from databuffer.state import FROZEN, BatchState
from glitchflow_archive import RESULTS

logger = logging.getLogger("databuffer.archive")

MANIFEST = "manifest.json"
Hashes = dict[str, tuple[str, int]]
"""File name -> (sha256 hex digest, bytes)."""
_FOLDER_RE = re.compile(r"^(?P<batch>\d{6,})-\d{8}T\d{6}Z(?:-\d+)?$")


def hash_file(path: Path) -> tuple[str, int]:
    """``(sha256 hex digest, bytes)`` of a file."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def hash_files(folder: Path, names: Iterable[str]) -> Hashes:
    """`hash_file` of each named file that can be read; `Archive.store` hashes the others."""
    hashed = {}
    for name in names:
        try:
            hashed[name] = hash_file(folder / name)
        except OSError:
            continue
    return hashed


def manifest_names(manifest: object) -> list[str] | None:
    """The file names a manifest lists, or None when it is not a manifest with a file list."""
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list):
        return None
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in files]
    return names if all(isinstance(name, str) for name in names) else None


def folder_batch(folder: str) -> int:
    """The batch number an archive folder name starts with."""
    return int(folder.split("-", 1)[0])


class Archive:
    """The archive root: sealed batches, newest first by folder name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folders(self) -> list[str]:
        """Archive folder names, newest first."""
        names = (e.name for e in os.scandir(self.root) if _FOLDER_RE.match(e.name) and e.is_dir())
        return sorted(names, reverse=True)

    def last_batch(self) -> int:
        """The highest archived batch number, 0 when nothing is archived."""
        return max((folder_batch(name) for name in self.folders()), default=0)

    def folder_of(self, batch: int) -> str | None:
        """The archive folder of ``batch``, or None when it is not archived."""
        return next((name for name in self.folders() if folder_batch(name) == batch), None)

    def manifest(self, folder: str) -> Any:
        """The parsed ``manifest.json`` of an archive folder.

        Raises
        ------
        OSError, orjson.JSONDecodeError
            Missing or unreadable.
        """
        return orjson.loads((self.root / folder / MANIFEST).read_bytes())

    def manifests(self, limit: int, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
        """One page of manifests, newest first (an unreadable one says so), and the total; each
        with the ``results`` recorded for its batch (`results`, null when none are)."""
        folders = self.folders()
        page = []
        for folder in folders[offset : offset + limit] if limit > 0 else []:
            try:
                manifest = self.manifest(folder)
            except (OSError, orjson.JSONDecodeError) as exc:
                manifest = {"archive": folder, "error": f"manifest unreadable: {exc}"}
            if isinstance(manifest, dict):
                manifest["results"] = self.results(folder)
            page.append(manifest)
        return page, len(folders)

    def results(self, folder: str) -> dict[str, Any] | None:
        """The results recorded for the batch in ``folder`` (`record_results`); None when none
        are recorded, or when the file cannot be read (logged)."""
        try:
            doc = orjson.loads((self.root / folder / RESULTS).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, orjson.JSONDecodeError) as exc:
            logger.warning("unreadable %s in %s: %s", RESULTS, folder, exc)
            return None
        return doc if isinstance(doc, dict) else None

    def record_results(
        self, batch: int, results: dict[str, Any], now: float
    ) -> tuple[str, dict[str, Any], bool] | None:
        """Write ``results`` as ``results.json`` of archived ``batch``, atomically and durably;
        a later record replaces it. None when ``batch`` is not archived.

        Returns
        -------
        tuple
            The archive folder, the record as written (``results`` with ``batch``, ``archive``
            and ``recorded_at``), and whether it replaced an earlier one.
        """
        folder = self.folder_of(batch)
        if folder is None:
            return None
        path = self.root / folder / RESULTS
        replaced = path.exists()
        record = {**results, "batch": batch, "archive": folder, "recorded_at": utc_iso(now)}
        atomic_write(path, orjson.dumps(record))
        return folder, record, replaced

    def flushed(self, batch: int) -> FlushResult | None:
        """What the flush of ``batch`` archived, from its manifest; None when not archived.

        Raises
        ------
        ArchiveFailed
            The archive folder is there but its manifest is unreadable or has no counts.
        """
        folder = self.folder_of(batch)
        if folder is None:
            return None
        try:
            manifest = self.manifest(folder)
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ArchiveFailed(f"manifest of archive {folder} unreadable: {exc}") from exc
        counts = (
            [manifest.get(key) for key in ("n_f", "bt_wrt")] if isinstance(manifest, dict) else []
        )
        if len(counts) != 2 or not all(isinstance(count, int) for count in counts):
            raise ArchiveFailed(f"manifest of archive {folder} has no file and byte counts")
        return FlushResult(batch, folder, counts[0], counts[1], manifest, already_flushed=True)

    def recent_files(self, limit: int) -> list[tuple[int, str, list[str]]]:
        """``(batch, folder, file names)`` of the newest archives holding about ``limit`` files,
        oldest first; archives whose manifest lists no files are skipped (and logged)."""
        batches: list[tuple[int, str, list[str]]] = []
        held = 0
        for folder in self.folders():
            if held >= limit:
                break
            try:
                names = manifest_names(self.manifest(folder))
            except (OSError, orjson.JSONDecodeError) as exc:
                logger.warning("unreadable manifest in %s: %s", folder, exc)
                continue
            if names is None:
                logger.warning("manifest in %s has no list of named files, skipped", folder)
                continue
            # The folder name is where the files are, whatever the manifest says.
            batches.append((folder_batch(folder), folder, names))
            held += len(names)
        return batches[::-1]

    def seal(
        self,
        state: BatchState,
        index: BatchIndex,
        msg: str | None,
        now: float,
        data_dir: Path,
        hashed: Hashes,
        commit: Callable[[], None],
        *,
        pause: float = 0.0,
        folder: str | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Archive the batch ``state`` and ``index`` describe (`store`); its folder and manifest.

        ``pause``: seconds writes were refused while it was filled. ``folder``: the name
        reserved when the batch was sealed, used unless a folder has it already.
        """
        reserved = folder is not None and _FOLDER_RE.match(folder) is not None
        if not reserved or folder_batch(folder) != state.batch or (self.root / folder).exists():
            folder = self.new_folder_name(state.batch, now)
        head = {
            "batch": state.batch,
            "archive": folder,
            "created": utc_iso(state.batch_started) if state.batch_started else None,
            "frozen_at": utc_iso(state.frozen_at) if state.frozen_at else None,
            "flushed_at": utc_iso(now),
            "frozen_by": state.user,
            "frozen_reason": state.frozen_reason,
            "forced": state.dstatus != FROZEN,
            "msg": msg,
            "pause_seconds": round(pause, 3),
            "n_f": index.stored_files,
            "bt_wrt": index.stored_bytes,
            "channels": index.channels(),
        }
        return folder, self.store(folder, data_dir, index.names(), hashed, head, commit)

    def new_folder_name(self, batch: int, now: float) -> str:
        """A folder name for ``batch`` sealed at ``now`` that no folder has yet."""
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        base = name = f"{batch:06d}-{stamp}"
        suffix = 1
        while (self.root / name).exists():
            suffix += 1
            name = f"{base}-{suffix}"
        return name

    def store(
        self,
        folder: str,
        data_dir: Path,
        names: list[str],
        hashed: Hashes,
        manifest: dict[str, Any],
        commit: Callable[[], None],
    ) -> dict[str, Any]:
        """Move the files ``names`` of ``data_dir`` into the new archive ``folder``.

        ``manifest`` gets the ``files`` list (name, bytes, sha256; from ``hashed`` where given) and
        is written last, then the staging folder is renamed into place and ``commit`` runs. Any
        OSError on the way, ``commit``'s included, moves every file back and leaves no folder.

        Returns
        -------
        dict
            The manifest as written.
        """
        staging = self.root / f".{folder}.partial"
        final = self.root / folder
        moved: list[str] = []
        renamed = False
        try:
            staging.mkdir()
            files = []
            for name in names:
                digest, size = hashed.get(name) or hash_file(data_dir / name)
                os.replace(data_dir / name, staging / name)
                moved.append(name)
                files.append({"name": name, "bytes": size, "sha256": digest})
            manifest = {**manifest, "files": files}
            atomic_write(staging / MANIFEST, orjson.dumps(manifest))
            os.replace(staging, final)
            renamed = True
            fsync_dir(self.root)
            fsync_dir(data_dir)
            commit()
        except OSError:
            self._take_back(staging, final, data_dir, moved, renamed)
            raise
        return manifest

    def _take_back(
        self, staging: Path, final: Path, data_dir: Path, moved: list[str], renamed: bool
    ) -> None:
        """Undo a failed `store`: every moved file back into ``data_dir``, no folder left."""
        try:
            if renamed:
                os.replace(final, staging)
            for name in moved:
                os.replace(staging / name, data_dir / name)
            if staging.exists():
                shutil.rmtree(staging)
            fsync_dir(data_dir)
        except OSError as exc:
            # Start-up finishes the job (`restore_partial`).
            logger.error("rollback of a failed flush incomplete: %s", exc)

    def restore_partial(self, data_dir: Path) -> int:
        """Put back into ``data_dir`` the files of a flush that died before its rename."""
        restored = 0
        for entry in os.scandir(self.root):
            if not (entry.name.startswith(".") and entry.is_dir()):
                continue
            for item in os.scandir(entry.path):
                if parse_filename(item.name) is None:
                    continue
                target = data_dir / item.name
                if target.exists():
                    os.unlink(item.path)
                else:
                    os.replace(item.path, target)
                    restored += 1
            shutil.rmtree(entry.path)
        if restored:
            fsync_dir(data_dir)
        return restored
