"""Read-back from the object store: gwpy's H1/L1/V1 second, archived to SeaweedFS, local copy gone.

The three services run as real processes with the archive tier on a real SeaweedFS bucket and no
local retention. The whole second is streamed by gwclient; its last chunk fills the batch, which
is sealed (rotate), taken by ``/train`` and flushed by ``/cleanbuf``; once the buffer has uploaded
and verified it and removed its local chunk files, every sample read back comes from the bucket.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gwpy.timeseries import TimeSeriesDict
from ports import free_port
from readback import conftest as hlv
from seaweed import SeaweedS3
from waiting import wait_for

import gwclient
from glitchflow_archive import MANIFEST, UPLOADED
from glitchflow_stack import Layout, Stack, service_processes
from gwclient.chunks import plan_chunks

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(240),
    hlv.GWPY_WARNINGS,
]
T0, DT = hlv.T0, hlv.DT


@pytest.fixture(scope="module")
def bucket_only(tmp_path_factory, seaweed: SeaweedS3, original) -> Iterator[Layout]:
    """The stack once the second is a batch held only in the bucket (one stack: tests only read)."""
    seaweed.ensure_running()
    bucket = seaweed.new_bucket()
    chunks = plan_chunks(original, hlv.CHUNK * DT)
    batch_bytes = sum(len(chunk.body()) for chunk in chunks)  # stored as sent: the last one fills
    tmp_path = tmp_path_factory.mktemp("readback-s3")
    env = {
        **seaweed.env(bucket),
        "GLITCHFLOW_ARCHIVE_RETRY_MAX_DELAY": "0.5",
        "GLITCHFLOW_FREEZE_MODE": "rotate",
        "GLITCHFLOW_LOG_LEVEL": "WARNING",
    }
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    running = Stack(service_processes(layout, tmp_path / "buf", batch_bytes, env=env))
    running.start()
    try:
        archive_to_the_bucket(layout, chunks, tmp_path / "buf" / "archive")
        yield layout
    finally:
        running.stop()


def archive_to_the_bucket(layout: Layout, chunks: list, archive_root: Path) -> None:
    assert gwclient.stream(chunks, layout.api_url).ok
    with httpx.Client(base_url=layout.api_url, timeout=30) as api:
        assert api.get("/stats").json()["n_itm"] == 0  # every chunk is in the sealed batch 1
        train = api.post("/train", json={"user": "readback", "token": "-"}).json()
        assert (train["resp"], train["batch"]) == ("FROZEN", 1), train
        cleaned = api.post("/cleanbuf", json={"msg": "to the bucket"})
        assert cleaned.status_code == 200, cleaned.text
        archive = cleaned.json()["archive"]

        def uploaded_and_removed() -> bool:
            (item,) = api.get("/status").json()["archives"]["items"]
            # Retention off: only the manifest and the upload marker stay in the local folder.
            local = sorted(p.name for p in (archive_root / archive).iterdir())
            return item["upload"]["state"] == "uploaded" and local == [MANIFEST, UPLOADED]

        wait_for(uploaded_and_removed, timeout=120)


RANGES = [
    (T0 + 10.5 * DT, T0 + 900.5 * DT),  # inside one chunk
    (T0 + 2000.5 * DT, T0 + 2100.5 * DT),  # across a chunk boundary (2048)
    (T0 + 0.3, T0 + 0.8),  # several chunks
    (T0 + 0.875, T0 + 1),  # the last chunk, whole
    (T0, T0 + 1),  # the whole second
]


@pytest.mark.parametrize(("start", "end"), RANGES)
@pytest.mark.parametrize("channel", hlv.CHANNELS)
def test_subranges_come_back_bit_exact_from_the_bucket(
    bucket_only: Layout, original: TimeSeriesDict, channel: str, start: float, end: float
) -> None:
    answer = httpx.get(
        f"{bucket_only.api_url}/data",
        params={"channel": channel, "start": start, "end": end},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["channel"], doc["dt"], doc["gaps"]) == (channel, DT, [])
    assert hlv.same_bits(doc["h"], hlv.expected(original[channel], start, end))


@pytest.mark.parametrize("how", ["format", "accept"])
def test_hdf5_from_the_bucket_reads_back_with_gwpy(
    bucket_only: Layout, original: TimeSeriesDict, tmp_path: Path, how: str
) -> None:
    start, end = T0 + 0.1, T0 + 0.9
    series = hlv.read_hdf5(bucket_only.api_url, "L1:LDAS-STRAIN", start, end, how, tmp_path)
    assert hlv.same_bits(series.value, hlv.expected(original["L1:LDAS-STRAIN"], start, end))
    assert series.t0.value == pytest.approx(start, abs=DT)
