"""Archive tier speed: upload an archived batch to a local SeaweedFS, verify it, read it back.

Builds a batch of ``--chunks`` files of 1 s at 4096 Hz (about 93 kB each) with the buffer's own
storage engine, starts ``weed mini`` on free ports (the test fixture's server), then times
`glitchflow_archive.upload_batch` (chunk files, manifest last, HEAD-verify by stored sha256),
a repeat of it (everything already there: HEADs only), and a full read-back verify
(`ArchiveStore.verify`: every byte read and hashed), and prints MB/s and files/s for each.

    .venv/bin/python bench/bench_archive_upload.py [--chunks 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from seaweed import SeaweedS3

from databuffer.storage import Storage
from glitchflow_archive import LocalArchive, S3Archive, upload_batch
from glitchflow_core.chunk import parse_chunk

RATE = 4096
T0 = 1_126_259_462.0


def build_batch(root: Path, chunks: int) -> int:
    storage = Storage(root / "data", root / "adm", root / "log", root / "archive")
    try:
        rng = np.random.default_rng(0)
        for i in range(chunks):
            h = (rng.standard_normal(RATE) * 1e-21).tolist()
            body = orjson.dumps({"h": h, "t": [T0 + i, 1.0 / RATE], "channel": "H1:BENCH"})
            storage.write(parse_chunk(body), body=body)
        storage.freeze_if("bench")
        return storage.flush("bench").stored_bytes
    finally:
        storage.close()


def timed(label: str, nbytes: int, files: int, run) -> None:
    start = time.perf_counter()
    run()
    took = time.perf_counter() - start
    print(
        f"{label:<34} {took:7.2f} s  {nbytes / took / 1e6:8.1f} MB/s  {files / took:8.0f} files/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nbytes = build_batch(root / "buffer", args.chunks)
        server = SeaweedS3(root / "seaweed")
        server.start()
        try:
            bucket = f"bench-{uuid.uuid4().hex[:12]}"
            remote = S3Archive(server.location(bucket, timeout=30.0))
            remote.client.create_bucket(Bucket=bucket)
            local = LocalArchive(root / "buffer" / "archive")
            (ref,) = local.list_batches()
            print(f"batch: {args.chunks} files, {nbytes / 1e6:.1f} MB, weed mini on 127.0.0.1")
            timed("upload + verify (HEAD sha256)", nbytes, args.chunks,
                  lambda: upload_batch(local, remote, ref))  # fmt: skip
            timed("repeat (already stored)", nbytes, args.chunks,
                  lambda: upload_batch(local, remote, ref))  # fmt: skip
            timed("read-back verify (every byte)", nbytes, args.chunks,
                  lambda: remote.verify(remote.resolve(ref.name)))  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
