"""``glitchflow export`` reads a batch from the bucket as it reads it from the folder."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
from dataset.conftest import GWPY_WARNING, archive_batch, samples_equal
from gwpy.timeseries import TimeSeriesDict
from seaweed import SeaweedS3

from databuffer.eventlog import EventLog
from databuffer.upload import UPLOADED_STATE, Uploader
from glitchflow_archive import MANIFEST, UPLOADED, S3Archive
from gwclient import sources
from gwclient.chunks import plan_chunks

pytestmark = pytest.mark.filterwarnings(GWPY_WARNING)


def export(batch: str, out: Path, archive_root: Path, env: dict[str, str]) -> str:
    """``python -m glitchflow_dataset export`` with only ``env``'s archive settings; its stdout."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GLITCHFLOW_ARCHIVE_S3")}
    done = subprocess.run(
        [sys.executable, "-m", "glitchflow_dataset", "export", batch, "--out", str(out),
         "--archive-root", str(archive_root)],
        capture_output=True, text=True, timeout=300, check=False, env={**clean, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def same_datasets(a: Path, b: Path, channels: list[str]) -> None:
    for name in channels:
        left, right = TimeSeriesDict.read(a, group=name), TimeSeriesDict.read(b, group=name)
        assert sorted(left) == sorted(right)
        for key in left:
            assert samples_equal(left[key].value, right[key].value)
            assert (left[key].t0, left[key].dt) == (right[key].t0, right[key].dt)
    with h5py.File(a) as fa, h5py.File(b) as fb:
        assert sorted(fa["segments"]) == sorted(fb["segments"])


def test_export_from_the_bucket_equals_export_from_the_folder(
    tmp_path: Path, s3: SeaweedS3, bucket: str
) -> None:
    shipped = sources.read_file(sources.shipped_sample_path())
    folder = archive_batch(tmp_path / "buffer", plan_chunks(shipped, 0.25))
    archive_root = folder.parent
    from_folder = tmp_path / "folder.h5"
    export(folder.name, from_folder, archive_root, {})

    log = EventLog(tmp_path / "upload-log.json")
    uploader = Uploader(archive_root, S3Archive(s3.location(bucket)), log)
    uploader.start()
    try:
        deadline = time.monotonic() + 60
        while uploader.batch_state(folder.name)["state"] != UPLOADED_STATE:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        uploader.stop()
        log.close()
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST, UPLOADED]  # chunks gone

    # The buffer's machine: the folder keeps only the manifest, the data comes from the bucket.
    from_bucket = tmp_path / "bucket.h5"
    line = export("latest", from_bucket, archive_root, s3.env(bucket))
    assert line.startswith("exported batch 1 (12 chunks")
    same_datasets(from_folder, from_bucket, list(shipped))

    # Another machine, no archive folder at all: the batch by its id.
    elsewhere = tmp_path / "elsewhere.h5"
    export("1", elsewhere, tmp_path / "no-such-folder", s3.env(bucket))
    same_datasets(from_folder, elsewhere, list(shipped))
