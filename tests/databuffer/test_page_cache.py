"""Chunk files leave the page cache once durable; other files the buffer writes stay cached."""

from __future__ import annotations

import ctypes
import mmap
import os
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

from databuffer.atomic import write_temp
from databuffer.storage import Storage
from glitchflow_core.chunk import Chunk

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="mincore(2) and posix_fadvise are Linux calls"
)


def cached_pages(path: Path) -> tuple[int, int]:
    """(pages of ``path`` in the page cache, pages of ``path``), by mincore(2).

    The file is mapped, never read: mapping faults nothing in, and mincore only reports.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.argtypes = (
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,
    )
    libc.mmap.restype = ctypes.c_void_p
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    size = path.stat().st_size
    pages = (size + mmap.PAGESIZE - 1) // mmap.PAGESIZE
    vector = ctypes.create_string_buffer(pages)
    fd = os.open(path, os.O_RDONLY)
    try:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if address in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap failed")
        try:
            if libc.mincore(address, size, vector) != 0:
                raise OSError(ctypes.get_errno(), "mincore failed")
        finally:
            libc.munmap(address, size)
    finally:
        os.close(fd)
    return sum(byte & 1 for byte in vector.raw), pages


def test_stored_chunk_leaves_the_page_cache(storage: Storage) -> None:
    h = np.random.default_rng(3).standard_normal(16_384) * 1e-21
    result = storage.write(Chunk(channel="H1:TEST", t0=1_000_000_000.0, dt=1 / 16_384, h=h))
    path = storage.data_dir / result.file
    cached, pages = cached_pages(path)
    assert pages >= 64  # a 1-s chunk at 16 kHz: hundreds of kB
    assert cached <= 1, f"{cached} of {pages} pages still cached"
    # Dropped from the cache, not lost: the file reads back whole.
    assert path.stat().st_size == result.size
    assert np.array_equal(np.array(orjson.loads(path.read_bytes())["h"]), h)


def test_write_temp_keeps_pages_cached_unless_asked(tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    kept = write_temp(tmp_path, data, "kept")
    dropped = write_temp(tmp_path, data, "dropped", drop_cache=True)
    assert cached_pages(kept)[0] == cached_pages(kept)[1]
    assert cached_pages(dropped)[0] <= 1
    assert kept.read_bytes() == dropped.read_bytes() == data
