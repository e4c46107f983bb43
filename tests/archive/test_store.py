"""put, get, list, verify: the same interface over a local folder and a real S3 bucket."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import orjson
import pytest
from ports import free_port
from seaweed import SeaweedS3

from glitchflow_archive import (
    MANIFEST,
    BatchIncomplete,
    FileMismatch,
    LocalArchive,
    S3Archive,
    StoreRefused,
    StoreUnavailable,
    WritableStore,
    upload_batch,
    verify_stored,
)

NAME = "000007-20260101T000000Z"
FILES = {
    f"H1:TEST__{i:020d}__4__0.25.json": orjson.dumps({"h": [i, 1.0, 2.0, 3.0], "t": [i, 0.25]})
    for i in range(3)
}


def manifest_for(files: dict[str, bytes], batch: int = 7) -> bytes:
    entries = [
        {"name": n, "bytes": len(d), "sha256": hashlib.sha256(d).hexdigest()}
        for n, d in files.items()
    ]
    return orjson.dumps({"batch": batch, "archive": NAME, "files": entries})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> WritableStore:
    if request.param == "local":
        return LocalArchive(tmp_path / "archive")
    s3: SeaweedS3 = request.getfixturevalue("s3")
    bucket = s3.new_bucket()
    return S3Archive(s3.location(bucket, prefix="archive"))


def put_batch(store: WritableStore, files: dict[str, bytes] = FILES) -> None:
    for name, data in files.items():
        store.put(NAME, name, data, hashlib.sha256(data).hexdigest())
    store.put(NAME, MANIFEST, manifest_for(files))


def test_put_then_get_list_and_verify(store: WritableStore) -> None:
    put_batch(store)
    (ref,) = store.list_batches()
    assert (ref.batch, ref.name) == (7, NAME)
    assert store.resolve("7") == ref
    assert store.read_bytes(NAME, next(iter(FILES))) == next(iter(FILES.values()))
    manifest = store.verify(ref)
    assert [f.name for f in manifest.files] == list(FILES)
    read = dict(store.read_verified(ref, manifest))
    assert read == {f: FILES[f.name] for f in manifest.files}
    head = store.head(NAME, next(iter(FILES)))
    assert head is not None and head.nbytes == len(next(iter(FILES.values())))


def test_batch_without_manifest_is_not_listed(store: WritableStore) -> None:
    for name, data in FILES.items():
        store.put(NAME, name, data)
    assert store.list_batches() == []
    assert store.incomplete_names() == [NAME]
    with pytest.raises(BatchIncomplete):
        store.resolve("7")
    store.put(NAME, MANIFEST, manifest_for(FILES))
    assert [r.name for r in store.list_batches()] == [NAME]
    assert store.incomplete_names() == []


def test_put_refuses_bytes_not_matching_their_sha256(store: WritableStore) -> None:
    name, data = next(iter(FILES.items()))
    with pytest.raises((FileMismatch, StoreRefused)):
        store.put(NAME, name, data, hashlib.sha256(b"other").hexdigest())
    assert store.head(NAME, name) is None


def test_get_of_a_missing_file_is_file_not_found(store: WritableStore) -> None:
    put_batch(store)
    with pytest.raises(FileNotFoundError):
        store.read_bytes(NAME, "H1:TEST__00000000000000000099__4__0.25.json")


def test_verify_finds_a_file_changed_after_upload(store: WritableStore) -> None:
    put_batch(store)
    name = next(iter(FILES))
    store.put(NAME, name, b'{"h":[9,9,9,9],"t":[0,0.25]}')
    (ref,) = store.list_batches()
    with pytest.raises(FileMismatch, match=name):
        store.verify(ref)
    with pytest.raises(FileMismatch, match=name):
        verify_stored(store, ref, store.read_manifest(ref))


def test_delete_removes_the_whole_batch(store: WritableStore) -> None:
    put_batch(store)
    store.delete(NAME)
    assert store.list_batches() == []
    assert store.incomplete_names() == []


def test_upload_batch_copies_local_to_s3_and_repeats_send_nothing(
    tmp_path: Path, s3: SeaweedS3, bucket: str
) -> None:
    local = LocalArchive(tmp_path / "archive")
    put_batch(local)
    remote = S3Archive(s3.location(bucket))
    (ref,) = local.list_batches()
    manifest = upload_batch(local, remote, ref)
    assert remote.verify(remote.resolve("7")) == manifest
    sent: list[str] = []
    real_put = remote.put
    remote.put = lambda *a, **k: (sent.append(a[1]), real_put(*a, **k))  # type: ignore[method-assign]
    upload_batch(local, remote, ref)
    assert sent == []


def test_upload_batch_refuses_a_damaged_local_copy(
    tmp_path: Path, s3: SeaweedS3, bucket: str
) -> None:
    local = LocalArchive(tmp_path / "archive")
    put_batch(local)
    name = next(iter(FILES))
    (tmp_path / "archive" / NAME / name).write_bytes(b'{"h":[0,0,0,0],"t":[0,0.25]}')
    remote = S3Archive(s3.location(bucket))
    with pytest.raises(FileMismatch, match=name):
        upload_batch(local, remote, local.list_batches()[0])
    assert remote.list_batches() == []


def test_wrong_credentials_are_refused_not_retried(s3: SeaweedS3, bucket: str) -> None:
    store = S3Archive(s3.location(bucket, secret_access_key="not-the-secret"))
    with pytest.raises(StoreRefused, match=r"403|SignatureDoesNotMatch|AccessDenied"):
        store.check_reachable()


def test_listing_during_upload_never_shows_a_half_batch(
    tmp_path: Path, s3: SeaweedS3, bucket: str
) -> None:
    files = {
        f"H1:TEST__{i:020d}__4__0.25.json": orjson.dumps({"h": [i, 1, 2, 3], "t": [i, 0.25]})
        for i in range(60)
    }
    local = LocalArchive(tmp_path / "archive")
    put_batch(local, files)
    remote = S3Archive(s3.location(bucket))
    reader = S3Archive(s3.location(bucket))
    done = threading.Event()
    seen_whole: list[int] = []
    seen_incomplete = 0

    def upload() -> None:
        try:
            upload_batch(local, remote, local.list_batches()[0])
        finally:
            done.set()

    thread = threading.Thread(target=upload)
    thread.start()
    while not done.is_set():
        listed = reader.list_batches()
        if listed:
            seen_whole.append(len(reader.verify(listed[0]).files))
        elif reader.incomplete_names():
            seen_incomplete += 1
    thread.join()
    assert seen_incomplete > 0  # the listing did run while files were going up
    assert all(n == len(files) for n in seen_whole)
    assert len(reader.verify(reader.list_batches()[0]).files) == len(files)


def test_unreachable_store_raises_store_unavailable(s3: SeaweedS3, bucket: str) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    store = S3Archive(s3.location(bucket, endpoint=nobody, timeout=0.5))
    with pytest.raises(StoreUnavailable):
        store.list_batches()
