"""Archived batches to upload (the SeaweedFS server's fixtures are in ``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from databuffer.storage import Storage
from glitchflow_core.chunk import parse_chunk

T0 = 1_126_259_462.0
DT = 1.0 / 4096
CHANNEL = "H1:GWOSC-4KHZ_R1_STRAIN"


def chunk_body(i: int, n: int = 256) -> bytes:
    h = (np.random.default_rng(i).standard_normal(n) * 1e-21).tolist()
    return orjson.dumps({"h": h, "t": [T0 + i * n * DT, DT], "channel": CHANNEL})


def open_storage(data_dir: Path) -> Storage:
    return Storage(data_dir / "data", data_dir / "adm", data_dir / "log", data_dir / "archive")


@pytest.fixture
def archive_local() -> Callable[..., str]:
    """``archive_local(data_dir, chunks=5)``: a batch of ``chunks`` chunks, flushed; its folder."""

    def make(data_dir: Path, chunks: int = 5, first: int = 0) -> str:
        storage = open_storage(data_dir)
        try:
            for i in range(first, first + chunks):
                body = chunk_body(i)
                storage.write(parse_chunk(body), body=body)
            storage.freeze_if("test")
            result = storage.flush("test")
        finally:
            storage.close()
        assert result.archive is not None
        return result.archive

    return make
