"""The archive read side over folders flushed by the buffer's own engine."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
from dataset.conftest import archive_batch

from glitchflow_archive import (
    BatchIncomplete,
    BatchNotFound,
    FileMismatch,
    LocalArchive,
)
from glitchflow_core.chunk import parse_chunk
from gwclient.chunks import chunk_array

START = 1_400_000_000.0


def _chunks(t0: float, seconds: int = 2):
    h = np.random.default_rng(int(t0) % 1000).normal(size=256 * seconds)
    return list(chunk_array(h, t0, 1 / 256, "L1:TEST-STRAIN", 1.0))


@pytest.fixture
def three_batches(tmp_path):
    """Batches 1, 2, 3 flushed in turn by one buffer data folder."""
    data_dir = tmp_path / "store"
    for i in range(3):
        archive_batch(data_dir, _chunks(START + 10 * i))
    return LocalArchive(data_dir / "archive")


def test_batches_are_listed_oldest_first_with_their_locations(three_batches):
    refs = three_batches.list_batches()
    assert [r.batch for r in refs] == [1, 2, 3]
    assert all(r.location == str(three_batches.root / r.name) for r in refs)


def test_resolve_by_id_name_and_latest(three_batches):
    refs = three_batches.list_batches()
    assert three_batches.resolve("2") == refs[1]
    assert three_batches.resolve(refs[0].name) == refs[0]
    assert three_batches.resolve("latest") == refs[2]


def test_latest_skips_a_batch_still_without_manifest(three_batches):
    newest = three_batches.list_batches()[-1]
    (three_batches.root / newest.name / "manifest.json").unlink()
    assert three_batches.resolve("latest").batch == 2
    with pytest.raises(BatchIncomplete, match=r"half-written: no manifest\.json"):
        three_batches.read_manifest(newest)


def test_verified_files_are_the_stored_chunks_in_manifest_order(three_batches):
    ref = three_batches.resolve("1")
    manifest = three_batches.verify(ref)
    assert manifest.batch == 1 and len(manifest.files) == 2
    read = list(three_batches.read_verified(ref, manifest))
    assert [e.name for e, _ in read] == [f.name for f in manifest.files]
    for entry, data in read:
        assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert [parse_chunk(d).t0 for _, d in read] == [START, START + 1]


def test_a_changed_file_is_found_by_verify(three_batches):
    ref = three_batches.resolve("3")
    manifest = three_batches.read_manifest(ref)
    path = three_batches.root / ref.name / manifest.files[1].name
    path.write_bytes(path.read_bytes().replace(b"]", b" ]", 1))
    with pytest.raises(FileMismatch, match="bytes, the manifest says"):
        three_batches.verify(ref)


def test_unknown_batches_and_roots_are_named(three_batches, tmp_path):
    with pytest.raises(BatchNotFound, match="no archived batch 9 in "):
        three_batches.resolve("9")
    with pytest.raises(BatchNotFound, match="no archive folder "):
        LocalArchive(tmp_path / "nowhere").resolve("latest")
    with pytest.raises(BatchNotFound, match="not named like an archived batch"):
        LocalArchive.open_folder(tmp_path)


def test_the_archive_library_imports_no_service_and_nothing_heavy():
    import subprocess

    code = (
        "import sys, glitchflow_archive, glitchflow_dataset.cli; "
        "bad = {'databuffer', 'datastore_logic', 'glitchflow_api', 'gwclient', 'gwpy', 'sklearn'}"
        " & {m.split('.')[0] for m in sys.modules}; print(sorted(bad))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
