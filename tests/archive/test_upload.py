"""The buffer's archive tier against a real SeaweedFS: upload, verify, remove, resume, faults."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from seaweed import SeaweedS3
from waiting import wait_for

from databuffer.archive import Archive
from databuffer.errors import ArchiveStoreUnavailable
from databuffer.eventlog import EventLog
from databuffer.upload import FAILED, RETRYING, UPLOADED_STATE, Uploader
from glitchflow_archive import MANIFEST, RESULTS, UPLOADED, LocalArchive, S3Archive
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


@dataclass(frozen=True)
class Tier:
    """One test's archive tier: its data folder, the S3 server and a fresh bucket."""

    data_dir: Path
    s3: SeaweedS3
    bucket: str
    archive_local: Callable[..., str]
    make_uploader: Callable[..., Uploader]

    @property
    def archive_dir(self) -> Path:
        return self.data_dir / "archive"

    def archive(self, chunks: int, first: int = 0) -> str:
        """A flushed batch of ``chunks`` chunks in the local archive; its folder's name."""
        return self.archive_local(self.data_dir, chunks=chunks, first=first)

    def uploader(self, **kwargs: Any) -> Uploader:
        return self.make_uploader(self.data_dir, self.s3, self.bucket, **kwargs)

    def remote(self) -> S3Archive:
        return S3Archive(self.s3.location(self.bucket))


@pytest.fixture
def tier(
    tmp_path: Path,
    s3: SeaweedS3,
    bucket: str,
    archive_local: Callable[..., str],
    make_uploader: Callable[..., Uploader],
) -> Tier:
    return Tier(tmp_path, s3, bucket, archive_local, make_uploader)


def chunk_files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir() if p.name not in (MANIFEST, UPLOADED)}


def test_flushed_batch_is_uploaded_verified_then_removed_locally(tier: Tier) -> None:
    name = tier.archive(chunks=5)
    local_files = chunk_files(tier.archive_dir / name)
    uploader = tier.uploader()
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    finally:
        uploader.stop()
    remote = tier.remote()
    manifest = remote.verify(remote.resolve(name))  # reads every byte back, checks sha256
    assert {f.name for f in manifest.files} == local_files
    folder = tier.archive_dir / name
    assert chunk_files(folder) == set()
    assert (folder / MANIFEST).is_file()
    marker = orjson.loads((folder / UPLOADED).read_bytes())
    assert marker["location"] == f"s3://{tier.bucket}/{name}"
    assert marker["local_copy"] is False


def test_keep_local_keeps_the_local_copy(tier: Tier) -> None:
    name = tier.archive(chunks=3)
    before = chunk_files(tier.archive_dir / name)
    uploader = tier.uploader(keep_local=True)
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    finally:
        uploader.stop()
    assert chunk_files(tier.archive_dir / name) == before
    assert uploader.batch_state(name)["local_copy"] is True
    local = LocalArchive(tier.archive_dir)
    local.verify(local.resolve(name))


def test_a_pending_upload_resumes_at_start_up(tier: Tier) -> None:
    first = tier.archive(chunks=3)
    second = tier.archive(chunks=3, first=3)
    # A crash half-way: one file of the first batch already in the bucket, no manifest.
    remote = tier.remote()
    local = LocalArchive(tier.archive_dir)
    entry = local.read_manifest(local.resolve(first)).files[0]
    remote.put(first, entry.name, local.read_bytes(first, entry.name), entry.sha256)
    assert remote.list_batches() == []
    uploader = tier.uploader()
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
    assert tier.uploader().start() == 0


def test_store_killed_mid_upload_comes_back_and_the_batch_arrives_whole(tier: Tier) -> None:
    name = tier.archive(chunks=200)
    remote = tier.remote()
    uploader = tier.uploader()
    uploader.start()
    try:
        wait_for(lambda: len(remote.list_files(name)) >= 5, timeout=30)
        tier.s3.kill()
        wait_for(lambda: uploader.batch_state(name)["state"] == RETRYING)
        assert uploader.status()["reachable"] is False
        assert chunk_files(tier.archive_dir / name)  # nothing removed locally
        tier.s3.start()  # same ports, same folder
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
        assert uploader.status()["reachable"] is True
    finally:
        uploader.stop()
    manifest = remote.verify(remote.resolve(name))
    assert len(manifest.files) == 200


def test_store_paused_mid_upload_times_out_and_resumes(tier: Tier) -> None:
    name = tier.archive(chunks=200)
    remote = tier.remote()
    uploader = tier.uploader()
    uploader.start()
    try:
        wait_for(lambda: len(remote.list_files(name)) >= 5, timeout=30)
        tier.s3.pause()
        try:
            wait_for(lambda: uploader.status()["reachable"] is False)
        finally:
            tier.s3.resume()
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    finally:
        uploader.stop()
    assert len(remote.verify(remote.resolve(name)).files) == 200


def test_damaged_local_copy_is_kept_and_reported(tier: Tier) -> None:
    name = tier.archive(chunks=3)
    victim = sorted(chunk_files(tier.archive_dir / name))[0]
    (tier.archive_dir / name / victim).write_bytes(b"{}")
    uploader = tier.uploader()
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == FAILED)
    finally:
        uploader.stop()
    state = uploader.batch_state(name)
    assert victim in state["error"]
    assert victim in chunk_files(tier.archive_dir / name)
    assert tier.remote().list_batches() == []


def test_a_batch_archived_while_running_is_found_and_resubmitting_it_changes_nothing(
    tier: Tier,
) -> None:
    tier.archive_dir.mkdir()
    uploader = tier.uploader()
    assert uploader.start() == 0
    name = tier.archive(chunks=2)  # not submitted: the idle rescan finds it
    wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
    # A repeated flush of the batch (it names its batch id) submits it again: nothing to do.
    assert uploader.submit(name)["state"] == UPLOADED_STATE
    # "uploaded" is said once the marker is written, a moment before the job leaves the queue.
    wait_for(lambda: uploader.status()["pending"] == 0)


def test_results_recorded_before_and_after_the_upload_reach_the_bucket(tier: Tier) -> None:
    archive = Archive(tier.archive_dir)
    early = tier.archive(chunks=2)
    archive.record_results(1, {"dag_run_id": "early"}, 0.0)
    uploader = tier.uploader()
    # Not uploaded yet: the upload takes the results with it.
    assert uploader.put_results(early, b"{}") is None
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(early)["state"] == UPLOADED_STATE)
        remote = tier.remote()
        assert orjson.loads(remote.read_bytes(early, RESULTS))["dag_run_id"] == "early"
        # Uploaded, chunk files gone: a new record replaces both copies.
        folder, record, replaced = archive.record_results(1, {"dag_run_id": "late"}, 1.0)
        assert (folder, replaced) == (early, True)
        where = uploader.put_results(folder, orjson.dumps(record))
    finally:
        uploader.stop()
    assert where == f"s3://{tier.bucket}/{early}/{RESULTS}"
    assert orjson.loads(remote.read_bytes(early, RESULTS)) == record
    local = tier.archive_dir / early
    assert chunk_files(local) == {RESULTS}  # the chunks went, the results stay
    assert orjson.loads((local / RESULTS).read_bytes()) == record
    assert remote.verify(remote.resolve(early)).batch == 1  # results.json is no chunk


def test_results_of_an_uploaded_batch_with_the_store_down_are_kept_and_refused(tier: Tier) -> None:
    name = tier.archive(chunks=2)
    uploader = tier.uploader()
    uploader.start()
    try:
        wait_for(lambda: uploader.batch_state(name)["state"] == UPLOADED_STATE)
        tier.s3.stop()
        folder, record, _ = Archive(tier.archive_dir).record_results(1, {"a": 1}, 0.0)
        with pytest.raises(ArchiveStoreUnavailable, match="kept locally"):
            uploader.put_results(folder, orjson.dumps(record))
    finally:
        uploader.stop()
    assert (tier.archive_dir / name / RESULTS).is_file()
