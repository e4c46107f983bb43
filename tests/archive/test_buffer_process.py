"""The buffer as a real process with the archive tier on, against a real SeaweedFS."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from archive.conftest import chunk_body
from ports import free_port
from prometheus_text import scrape, value
from seaweed import SeaweedS3
from waiting import wait_for

from glitchflow_archive import MANIFEST, UPLOADED, S3Archive
from glitchflow_stack.supervisor import ManagedProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def start_buffer(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """``start_buffer(env)``: the buffer on a free port with its data in ``tmp_path/buffer``."""
    started: list[ManagedProcess] = []

    def start(env: dict[str, str]) -> ManagedProcess:
        port = free_port()
        argv = [sys.executable, "-m", "databuffer", "--host", "127.0.0.1", "--port", str(port)]
        settings = {
            **env,
            "GLITCHFLOW_DATA_DIR": str(tmp_path / "buffer"),
            "GLITCHFLOW_ARCHIVE_RETRY_MAX_DELAY": "0.5",
            "GLITCHFLOW_ARCHIVE_S3_TIMEOUT": "1",
        }
        process = ManagedProcess("databuffer", argv, f"http://127.0.0.1:{port}", env=settings)
        started.append(process.start())
        process.wait_ready(path="/healthz")
        return process

    yield start
    for process in started:
        process.stop()


def store_batch(client: httpx.Client, first: int, chunks: int = 4) -> dict[str, Any]:
    for i in range(first, first + chunks):
        sent = client.post(
            "/sendF", content=chunk_body(i), headers={"content-type": "application/json"}
        )
        assert sent.status_code in (200, 201), sent.text
    cleaned = client.post("/cleanall", json={"msg": "test", "force": True})
    assert cleaned.status_code == 200, cleaned.text
    return cleaned.json()


def upload_of(client: httpx.Client, archive: str) -> dict[str, Any]:
    answer = client.get("/batches", params={"limit": 100}).json()
    return next(b["upload"] for b in answer["batches"] if b["archive"] == archive)


def test_flush_answers_at_once_then_the_batch_is_uploaded_and_removed_locally(
    tmp_path: Path, s3: SeaweedS3, bucket: str, start_buffer: Callable[..., ManagedProcess]
) -> None:
    buffer = start_buffer(s3.env(bucket))
    with httpx.Client(base_url=buffer.url, timeout=10) as client:
        ready = client.get("/readyz").json()
        assert ready["resp"] == "READY" and ready["archive_store"]["reachable"] is True
        cleaned = store_batch(client, 0)
        archive = cleaned["archive"]
        assert cleaned["upload"]["state"] in ("pending", "uploading", "uploaded")
        assert cleaned["upload"].get("target", cleaned["upload"]["location"]) == (
            f"s3://{bucket}/{archive}"
        )
        wait_for(lambda: upload_of(client, archive)["state"] == "uploaded")
        assert upload_of(client, archive)["location"] == f"s3://{bucket}/{archive}"
    folder = tmp_path / "buffer" / "archive" / archive
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, UPLOADED]
    remote = S3Archive(s3.location(bucket))
    assert len(remote.verify(remote.resolve(archive)).files) == 4


def test_store_down_is_degraded_and_a_restarted_buffer_resumes_the_upload(
    tmp_path: Path, s3: SeaweedS3, bucket: str, start_buffer: Callable[..., ManagedProcess]
) -> None:
    buffer = start_buffer(s3.env(bucket))
    s3.kill()
    with httpx.Client(base_url=buffer.url, timeout=10) as client:
        wait_for(lambda: client.get("/readyz").json()["resp"] == "DEGRADED")
        ready = client.get("/readyz")
        assert ready.status_code == 200  # ingest goes on: degraded, not down
        assert ready.json()["reason"].startswith("archive store unreachable")
        cleaned = store_batch(client, 100)
        archive = cleaned["archive"]
        assert cleaned["upload"]["location"] == str(tmp_path / "buffer" / "archive" / archive)
        wait_for(lambda: upload_of(client, archive)["state"] == "retrying")
        status = client.get("/batches").json()["archive_store"]
        assert status["reachable"] is False and status["error"]
    buffer.kill()  # kill -9 with the upload pending
    folder = tmp_path / "buffer" / "archive" / archive
    assert len(list(folder.iterdir())) == 5  # 4 chunks and the manifest, nothing lost

    s3.start()  # same ports, same folder
    buffer = start_buffer(s3.env(bucket))
    with httpx.Client(base_url=buffer.url, timeout=10) as client:
        wait_for(lambda: upload_of(client, archive)["state"] == "uploaded")
        ready = client.get("/readyz").json()
        assert ready["resp"] == "READY" and ready["archive_store"]["reachable"] is True
    remote = S3Archive(s3.location(bucket))
    assert [r.name for r in remote.list_batches()] == [archive]
    assert len(remote.verify(remote.resolve(archive)).files) == 4
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, UPLOADED]


def test_upload_metrics_count_a_known_workload(
    s3: SeaweedS3, bucket: str, start_buffer: Callable[..., ManagedProcess]
) -> None:
    buffer = start_buffer(s3.env(bucket))
    with httpx.Client(base_url=buffer.url, timeout=10) as client:
        flushed = [store_batch(client, first, chunks=3) for first in (0, 10, 20)]
        for cleaned in flushed:
            wait_for(lambda c=cleaned: upload_of(client, c["archive"])["state"] == "uploaded")
        sent = sum(cleaned["bt_wrt"] for cleaned in flushed)
        samples = scrape(buffer.url)
        assert value(samples, "glitchflow_uploads_total") == 3
        assert value(samples, "glitchflow_uploaded_bytes_total") == sent
        assert value(samples, "glitchflow_upload_duration_seconds_count") == 3
        assert value(samples, "glitchflow_upload_duration_seconds_sum") > 0
        assert value(samples, "glitchflow_upload_failures_total", outcome="retried") == 0
        assert value(samples, "glitchflow_upload_failures_total", outcome="failed") == 0
        assert value(samples, "glitchflow_upload_pending_batches") == 0
        assert value(samples, "glitchflow_archive_store_reachable") == 1

        s3.kill()  # the store goes away: the next batch waits, each try counted
        fourth = store_batch(client, 30, chunks=2)
        wait_for(lambda: upload_of(client, fourth["archive"])["state"] == "retrying")
        samples = scrape(buffer.url)
        assert value(samples, "glitchflow_archive_store_reachable") == 0
        assert value(samples, "glitchflow_upload_pending_batches") == 1
        assert value(samples, "glitchflow_upload_failures_total", outcome="retried") >= 1
        assert value(samples, "glitchflow_uploads_total") == 3

        s3.start()
        wait_for(lambda: upload_of(client, fourth["archive"])["state"] == "uploaded")
        samples = scrape(buffer.url)
        assert value(samples, "glitchflow_uploads_total") == 4
        assert value(samples, "glitchflow_uploaded_bytes_total") == sent + fourth["bt_wrt"]
        assert value(samples, "glitchflow_upload_pending_batches") == 0
        assert value(samples, "glitchflow_archive_store_reachable") == 1
