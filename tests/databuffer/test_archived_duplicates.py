"""A chunk sent again after its batch was uploaded (local chunk files removed): the engine
compares it without the local copy, outside its lock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from databuffer.errors import ArchiveStoreUnavailable, Conflict
from databuffer.storage import Storage
from glitchflow_archive import StoreUnavailable
from glitchflow_core.chunk import parse_chunk

DT = 1.0 / 4096


def body(t0: float, h: list[float]) -> bytes:
    return orjson.dumps({"h": h, "t": [t0, DT], "channel": "H1:TEST"})


@pytest.fixture
def uploaded(tmp_path: Path) -> tuple[str, bytes]:
    """A flushed batch of one chunk whose local chunk file went, as after a verified upload;
    its archive folder and the chunk's bytes."""
    storage = Storage(tmp_path / "data", tmp_path / "adm", tmp_path / "log", tmp_path / "archive")
    sent = body(1e9, [1.0, 2.0, 3.0])
    storage.write(parse_chunk(sent), body=sent)
    archive = storage.flush("test", force=True).archive
    storage.close()
    assert archive is not None
    for path in (tmp_path / "archive" / archive).iterdir():
        if path.name != "manifest.json":
            path.unlink()
    return archive, sent


def reopen(tmp_path: Path, read: Callable[[str, str], bytes] | None) -> Storage:
    return Storage(
        tmp_path / "data",
        tmp_path / "adm",
        tmp_path / "log",
        tmp_path / "archive",
        read_archived=read,
    )


def refuse(archive: str, name: str) -> bytes:
    raise StoreUnavailable("store down")


def test_same_bytes_are_a_duplicate_without_reading_the_store(tmp_path, uploaded) -> None:
    archive, sent = uploaded
    storage = reopen(tmp_path, refuse)  # the store is down: not needed
    try:
        result = storage.write(parse_chunk(sent), body=sent)
        assert (result.resp, result.batch, result.archive) == ("DUPLICATE", 1, archive)
        assert storage.stat().stored_files == 0
    finally:
        storage.close()


def test_other_spelling_is_compared_with_the_stored_file(tmp_path, uploaded) -> None:
    archive, sent = uploaded
    reads = []

    def read(folder: str, name: str) -> bytes:
        reads.append((folder, name))
        return sent

    storage = reopen(tmp_path, read)
    try:
        respelled = orjson.dumps({"channel": "H1:TEST", "t": [1e9, DT], "h": [1, 2, 3]})
        result = storage.write(parse_chunk(respelled), body=respelled)
        assert (result.resp, result.size) == ("DUPLICATE", len(sent))
        assert reads == [(archive, result.file)]
        other = body(1e9, [1.0, 2.0, 4.0])
        with pytest.raises(Conflict):
            storage.write(parse_chunk(other), body=other)
        assert storage.stat().stored_files == 0
    finally:
        storage.close()


def test_store_down_and_other_bytes_is_unavailable_nothing_stored(tmp_path, uploaded) -> None:
    storage = reopen(tmp_path, refuse)
    try:
        other = body(1e9, [1.0, 2.0, 4.0])
        with pytest.raises(ArchiveStoreUnavailable, match="to compare: store down"):
            storage.write(parse_chunk(other), body=other)
        assert storage.stat().stored_files == 0
        assert list((tmp_path / "data").iterdir()) == []
    finally:
        storage.close()
