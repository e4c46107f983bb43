"""Atomic files and chunk file names, without the engine."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from databuffer.atomic import atomic_write, is_temp_name, remove_temp_files, write_temp
from databuffer.naming import chunk_filename, parse_filename
from glitchflow_core.chunk import MAX_GPS, ChunkError


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "Dsstat.json"
    target.write_bytes(b"old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dsstat.json"]


def test_failed_replace_keeps_the_old_file_and_removes_the_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "Dsstat.json"
    target.write_bytes(b"old")

    def failing(src: object, dst: object) -> None:
        raise OSError(errno.EIO, "injected")

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dsstat.json"]


def test_temporary_files_are_hidden_never_chunk_names_and_removed(tmp_path: Path) -> None:
    tmp = write_temp(tmp_path, b"half a chunk", "chunk")
    assert tmp.parent == tmp_path
    assert is_temp_name(tmp.name) and tmp.name.startswith(".")
    assert parse_filename(tmp.name) is None
    (tmp_path / "keep.tmp").write_bytes(b"not ours")
    assert remove_temp_files(tmp_path) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tmp"]


def test_name_bound_is_the_core_gps_bound() -> None:
    assert parse_filename(chunk_filename("default", MAX_GPS - 1, 4, 0.25)) is not None
    with pytest.raises(ChunkError) as info:
        chunk_filename("default", MAX_GPS, 4, 0.25)
    assert info.value.field == "t"


def test_a_name_rounding_up_to_the_bound_is_not_a_chunk_name() -> None:
    assert parse_filename("default__99999999999999999999__4__0.25.json") is None
