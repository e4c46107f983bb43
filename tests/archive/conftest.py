"""A real SeaweedFS S3 server for the archive-tier tests, and archived batches to upload."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from seaweed import SeaweedS3

from databuffer.storage import Storage
from glitchflow_core.chunk import parse_chunk

T0 = 1_126_259_462.0
DT = 1.0 / 4096
CHANNEL = "H1:GWOSC-4KHZ_R1_STRAIN"


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One ``weed mini`` for the session, stopped after."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(seaweed: SeaweedS3) -> Iterator[SeaweedS3]:
    """The session's server, running (a fault test may have stopped it)."""
    seaweed.ensure_running()
    yield seaweed
    seaweed.ensure_running()


@pytest.fixture
def bucket(s3: SeaweedS3) -> str:
    return s3.new_bucket()


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
