"""The buffer's archive tier against a real SeaweedFS: upload, verify, remove, resume, faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from seaweed import SeaweedS3
from waiting import wait_for

from databuffer.eventlog import EventLog
from databuffer.upload import FAILED, RETRYING, UPLOADED_STATE, Uploader
from glitchflow_archive import MANIFEST, UPLOADED, LocalArchive, S3Archive
from glitchflow_core.retry import RetryPolicy

FAST_RETRY = RetryPolicy(
    max_attempts=10**6, max_elapsed=float("inf"), base_delay=0.05, max_delay=0.5
)


@pytest.fixture
def make_uploader() -> Iterator[Callable[..., Uploader]]:
    """``make_uploader(data_dir, s3, bucket, keep_local=False)``; stopped, its log closed, after."""
    made: list[tuple[Uploader, EventLog]] = []

    def make(data_dir: Path, s3: SeaweedS3, bucket: str, **kwargs: Any) -> Uploader:
        log = EventLog(data_dir / "log" / f"uploads-{len(made)}.json")
        store = S3Archive(s3.location(bucket, timeout=1.0))
        uploader = Uploader(data_dir / "archive", store, log, policy=FAST_RETRY, **kwargs)
        made.append((uploader, log))
        return uploader

    yield make
    for uploader, log in made:
        uploader.stop()
        log.close()


def chunk_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name not in (MANIFEST, UPLOADED)}


def test_flushed_batch_is_uploaded_verified_then_removed_locally(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    name = archive_local(tmp_path, chunks=5)
    local_files = chunk_files(tmp_path / "archive" / name)
    uploader = make_uploader(tmp_path, s3, bucket)
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    finally:
        uploader.stop()
    remote = S3Archive(s3.location(bucket))
    manifest = remote.verify(remote.resolve(name))  # reads every byte back, checks sha256
    assert {f.name for f in manifest.files} == local_files
    folder = tmp_path / "archive" / name
    assert chunk_files(folder) == set()
    assert (folder / MANIFEST).is_file()
    marker = orjson.loads((folder / UPLOADED).read_bytes())
    assert marker["location"] == f"s3://{bucket}/{name}"
    assert marker["local_copy"] is False


def test_keep_local_keeps_the_local_copy(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    name = archive_local(tmp_path, chunks=3)
    before = chunk_files(tmp_path / "archive" / name)
    uploader = make_uploader(tmp_path, s3, bucket, keep_local=True)
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    finally:
        uploader.stop()
    assert chunk_files(tmp_path / "archive" / name) == before
    assert uploader.batch_state(name)["local_copy"] is True
    local = LocalArchive(tmp_path / "archive")
    local.verify(local.resolve(name))


def test_a_pending_upload_resumes_at_start_up(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    first = archive_local(tmp_path, chunks=3)
    second = archive_local(tmp_path, chunks=3, first=3)
    # A crash half-way: one file of the first batch already in the bucket, no manifest.
    remote = S3Archive(s3.location(bucket))
    local = LocalArchive(tmp_path / "archive")
    entry = local.read_manifest(local.resolve(first)).files[0]
    remote.put(first, entry.name, local.read_bytes(first, entry.name), entry.sha256)
    assert remote.list_batches() == []
    uploader = make_uploader(tmp_path, s3, bucket)
    assert uploader.start() == 2
    try:
        wait_for(
            lambda: all(uploader.batch_state(n)["state"] == UPLOADED_STATE for n in (first, second))
        )
    finally:
        uploader.stop()
    assert [r.name for r in remote.list_batches()] == [first, second]
    for ref in remote.list_batches():
        remote.verify(ref)
    # Uploaded batches are not queued again.
    assert make_uploader(tmp_path, s3, bucket).start() == 0


def test_store_killed_mid_upload_comes_back_and_the_batch_arrives_whole(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    name = archive_local(tmp_path, chunks=200)
    remote = S3Archive(s3.location(bucket))
    uploader = make_uploader(tmp_path, s3, bucket)
    uploader.start()
    try:
        wait_for(lambda: len(remote.list_files(name)) >= 5, timeout=30)
        s3.kill()
        wait_for(lambda: uploader.batch_state(name)["state"] == RETRYING)
        assert uploader.status()["reachable"] is False
        assert chunk_files(tmp_path / "archive" / name)  # nothing removed locally
        s3.start()  # same ports, same folder
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
        assert uploader.status()["reachable"] is True
    finally:
        uploader.stop()
    manifest = remote.verify(remote.resolve(name))
    assert len(manifest.files) == 200


def test_store_paused_mid_upload_times_out_and_resumes(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    name = archive_local(tmp_path, chunks=200)
    remote = S3Archive(s3.location(bucket))
    uploader = make_uploader(tmp_path, s3, bucket)
    uploader.start()
    try:
        wait_for(lambda: len(remote.list_files(name)) >= 5, timeout=30)
        s3.pause()
        try:
            wait_for(lambda: uploader.status()["reachable"] is False)
        finally:
            s3.resume()
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    finally:
        uploader.stop()
    assert len(remote.verify(remote.resolve(name)).files) == 200


def test_damaged_local_copy_is_kept_and_reported(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    name = archive_local(tmp_path, chunks=3)
    victim = sorted(chunk_files(tmp_path / "archive" / name))[0]
    (tmp_path / "archive" / name / victim).write_bytes(b"{}")
    uploader = make_uploader(tmp_path, s3, bucket)
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == FAILED)
    finally:
        uploader.stop()
    state = uploader.batch_state(name)
    assert victim in state["error"]
    assert victim in chunk_files(tmp_path / "archive" / name)
    assert S3Archive(s3.location(bucket)).list_batches() == []


def test_a_batch_archived_while_running_is_found_and_resubmitting_it_changes_nothing(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> None:
    (tmp_path / "archive").mkdir()
    uploader = make_uploader(tmp_path, s3, bucket)
    assert uploader.start() == 0
    name = archive_local(tmp_path, chunks=2)  # not submitted: the idle rescan finds it
    wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    # A repeated flush of the batch (it names its batch id) submits it again: nothing to do.
    assert uploader.submit(name)["state"] == UPLOADED_STATE
    assert uploader.status()["pending"] == 0
