"""``kill -9`` of each service in turn while a retrying client streams over freezes and flushes.

After the restarts every acknowledged chunk is stored exactly once (live, sealed, or in one
archived batch, local or in the bucket), the counters equal the files, no temporary file is left
or listed, the bucket holds only whole batches, and ``GET /data`` returns every sample.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from ports import free_port
from reliability.harness import (
    CHANNELS,
    Chain,
    Flusher,
    Writer,
    assert_read_back,
    assert_stored_once,
    audit,
    flush_everything,
    plan,
    wait_for,
    wait_uploaded,
)
from seaweed import SeaweedS3

from glitchflow_archive import MANIFEST, UPLOADED, S3Archive
from glitchflow_stack import ManagedProcess
from gwclient.chunks import PlannedChunk

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

CHUNKS_PER_CHANNEL = 1000  # two channels: 2,000 chunks
SAMPLES = 32
SEED = 20261203
ORDER = ("api", "logic", "databuffer")
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Kill:
    """One ``kill -9``: the service, chunks acknowledged before it, seconds until ready again."""

    service: str
    acknowledged: int
    down_s: float


def kill_in_turn(chain: Chain, writer: Writer, rng: random.Random, rounds: int) -> list[Kill]:
    """Kill each service in turn, ``rounds`` times, at seeded moments of the stream (after a
    random number of acknowledged chunks, plus a random few milliseconds); restart it at once."""
    total = len(writer.chunks)
    order = [name for _ in range(rounds) for name in ORDER]
    marks = sorted(int(rng.uniform(0.05, 0.8) * total) for _ in order)
    done = []
    for name, mark in zip(order, marks, strict=True):
        wait_for(lambda m=mark: writer.acknowledged >= m or writer.done.is_set(), 60, "progress")
        assert not writer.done.is_set(), "the stream ended before every kill"
        time.sleep(rng.uniform(0, 0.05))
        acknowledged, killed = writer.acknowledged, time.monotonic()
        chain.kill(name)
        chain.restart(name)
        done.append(Kill(name, acknowledged, time.monotonic() - killed))
    return done


def run_stream_with_kills(chain: Chain, seed: int, flusher: Flusher) -> tuple[Writer, list[Kill]]:
    """Stream 2,000 chunks from 4 writers with the flusher running, killing each service once."""
    chunks = plan(CHUNKS_PER_CHANNEL, SAMPLES, seed=seed)
    writer = Writer(chain.api_url, chunks)
    started = time.monotonic()
    stream = writer.start(writers=4)
    flushing = flusher.start()
    try:
        kills = kill_in_turn(chain, writer, random.Random(seed), rounds=1)
        stream.join(timeout=120)
        assert not stream.is_alive(), "the stream did not finish"
    finally:
        flusher.stop.set()
        flushing.join(timeout=30)
    print(  # shown with -s: what the run went through
        f"{time.monotonic() - started:.1f} s; kills {kills}; flushed {flusher.flushed}; "
        f"retried {dict(writer.retried)}; flusher failures {dict(flusher.failures)}"
    )
    return writer, kills


def test_rotate_kill_each_service_in_turn(chain_factory) -> None:
    """Rotate mode (the default): sealed batches handed over by /train + /cleanbuf (and now and
    then the original's flush of the current, partial batch) while API, logic and buffer are
    each killed once. The bucket's part: the test below."""
    chunk_bytes = len(plan(1, SAMPLES)[0].body())
    chain = chain_factory(
        max_size=150 * chunk_bytes,  # about 13 batches in 2,000 chunks
        freeze_mode="rotate",
        max_sealed=4,
    )
    flusher = Flusher(chain.api_url, pause=0.1, partial_every=25)
    writer, kills = run_stream_with_kills(chain, SEED, flusher)

    assert [kill.service for kill in kills] == list(ORDER)
    assert len(flusher.flushed) >= 5, f"too few flushes to mean anything: {flusher.flushed}"
    inventory = audit(chain)
    assert_stored_once(inventory, writer)
    assert assert_read_back(chain, writer.chunks) == 2 * CHUNKS_PER_CHANNEL * SAMPLES


def test_hold_kill_each_service_in_turn(chain_factory) -> None:
    """Hold mode (the original's): writers wait on a frozen batch until /cleanbuf, while API,
    logic and buffer are each killed once; archives stay in the local folder."""
    chunk_bytes = len(plan(1, SAMPLES)[0].body())
    chain = chain_factory(max_size=250 * chunk_bytes, freeze_mode="hold")
    flusher = Flusher(chain.api_url, pause=0.1)
    writer, kills = run_stream_with_kills(chain, SEED + 1, flusher)

    assert [kill.service for kill in kills] == list(ORDER)
    assert len(flusher.flushed) >= 4, f"too few flushes to mean anything: {flusher.flushed}"
    assert writer.retried["FROZEN"] > 0, "no write waited on a frozen batch"
    inventory = audit(chain)
    assert_stored_once(inventory, writer)
    assert assert_read_back(chain, writer.chunks) == 2 * CHUNKS_PER_CHANNEL * SAMPLES


def test_a_retry_after_its_batch_went_to_the_bucket_is_a_duplicate(
    tmp_path: Path, s3: SeaweedS3, bucket: str
) -> None:
    """The answer of a write is lost (the API is killed), its batch is flushed and uploaded
    (the local chunk files removed), then the client's retry arrives: DUPLICATE, never stored
    again nor refused."""
    port = free_port()
    buffer = ManagedProcess(
        "databuffer",
        [sys.executable, "-m", "databuffer", "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        env={
            **s3.env(bucket),
            "GLITCHFLOW_DATA_DIR": str(tmp_path),
            "GLITCHFLOW_LOG_LEVEL": "WARNING",
        },
    )
    buffer.start()
    try:
        buffer.wait_ready(60)
        chunks = plan(3, SAMPLES, channels=CHANNELS[:1])
        with httpx.Client(base_url=buffer.url, timeout=30) as client:
            first = [client.post("/sendF", content=c.body(), headers=JSON) for c in chunks]
            assert [a.json()["resp"] for a in first] == ["CREATED"] * 3
            cleaned = client.post("/cleanall", json={"msg": "test", "force": True}).json()
            archive = cleaned["archive"]

            def uploaded() -> bool:
                batches = client.get("/batches").json()["batches"]
                return batches[0]["upload"]["state"] == "uploaded"

            wait_for(uploaded, 60, "the batch uploaded")
            assert sorted(p.name for p in (tmp_path / "archive" / archive).iterdir()) == [
                MANIFEST,
                UPLOADED,
            ]
            again = client.post("/sendF", content=chunks[1].body(), headers=JSON)
            assert again.status_code == 200, again.text
            assert again.json()["resp"] == "DUPLICATE"
            assert (again.json()["batch"], again.json()["file"]) == (1, first[1].json()["file"])
            # The same samples written otherwise: compared with the file read from the bucket.
            c = chunks[2]
            respelled = orjson.dumps({"channel": c.channel, "t": [c.t0, c.dt], "h": c.h.tolist()})
            assert respelled != c.body()
            again = client.post("/sendF", content=respelled, headers=JSON)
            assert (again.status_code, again.json()["resp"]) == (200, "DUPLICATE"), again.text
            other = PlannedChunk(c.channel, c.t0, c.dt, c.h + 1e-21).body()
            refused = client.post("/sendF", content=other, headers=JSON)
            assert (refused.status_code, refused.json()["resp"]) == (409, "CONFLICT")
            stat = client.get("/stat").json()
            assert (stat["n_itm"], stat["buff_size"]) == (0, 0)
    finally:
        buffer.stop()


def kill_when(chain: Chain, seen: Callable[[], bool], timeout: float) -> threading.Thread:
    """A thread that sends SIGKILL to the buffer the moment ``seen()`` is true (polled in a
    tight loop), so the kill lands inside the step ``seen`` detects."""
    buffer = chain.services["databuffer"]

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if seen():
                buffer.signal(signal.SIGKILL)
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def staging_folders(chain: Chain) -> list[Path]:
    """The hidden ``.<archive>.partial`` folders a flush fills before renaming them into place."""
    root = chain.data_dir / "archive"
    return [p for p in root.iterdir() if p.name.startswith(".") and p.name.endswith(".partial")]


def test_buffer_killed_in_the_middle_of_a_flush_and_of_an_upload(
    chain_factory, s3: SeaweedS3, bucket: str
) -> None:
    """Rotate mode, archive in a bucket, a writer streaming all along: the buffer is killed
    while /cleanbuf moves a sealed batch's files into its archive folder (staging folder half
    filled), restarted, the batch flushed again, then killed while the uploader has put part of
    the batch in the bucket (no manifest there yet), and restarted: the upload resumes."""
    chunks = plan(550, 16, seed=SEED + 2)  # 1,100 chunks
    chain = chain_factory(
        max_size=500 * len(chunks[0].body()),  # sealed batches of about 500 files
        freeze_mode="rotate",
        max_sealed=4,
        env={**s3.env(bucket), "GLITCHFLOW_ARCHIVE_RETRY_MAX_DELAY": "0.5"},
    )
    store = S3Archive(s3.location(bucket))
    writer = Writer(chain.api_url, chunks)
    stream = writer.start(writers=4)

    def sealed() -> list[dict]:
        return httpx.get(f"{chain.buffer_url}/dstat", timeout=10).json()["sealed"]

    wait_for(lambda: len(sealed()) >= 1, 90, "a sealed batch")
    first = sealed()[0]
    assert first["batch"] == 1

    # 1. Killed in the middle of the flush: the staging folder holds some of the files.
    watcher = kill_when(chain, lambda: any(any(p.iterdir()) for p in staging_folders(chain)), 30)
    with httpx.Client(base_url=chain.api_url, timeout=30) as admin:
        with contextlib.suppress(httpx.HTTPError):
            admin.post("/cleanbuf", json={"msg": "killed", "batch": 1})
        watcher.join()
        chain.kill("databuffer")  # reaps it (already dead when the watcher fired)
        staged = staging_folders(chain)
        assert len(staged) == 1, "the kill did not land in the middle of the flush"
        moved = len([p for p in staged[0].iterdir() if p.name != MANIFEST])
        assert 0 < moved <= first["n_f"]
        chain.restart("databuffer")
        assert staging_folders(chain) == []
        back = sealed()[0]  # the flush never happened: batch 1 waits, whole, as before
        assert (back["batch"], back["n_f"], back["bt_wrt"]) == (1, first["n_f"], first["bt_wrt"])

        # 2. Flushed again, then killed in the middle of its upload.
        cleaned = admin.post("/cleanbuf", json={"msg": "again", "batch": 1})
        assert cleaned.status_code == 200, cleaned.text
        archive = cleaned.json()["archive"]
        assert archive == first["archive"]

        def half_uploaded() -> bool:
            files = store.list_files(archive)
            return bool(files) and MANIFEST not in files

        watcher = kill_when(chain, half_uploaded, 60)
        watcher.join()
        chain.kill("databuffer")
        assert store.incomplete_names() == [archive], "the kill did not land mid-upload"
        local = chain.data_dir / "archive" / archive
        assert not (local / UPLOADED).exists()
        assert len(list(local.iterdir())) == first["n_f"] + 1  # the chunks and the manifest
        chain.restart("databuffer")  # the upload resumes at start-up

    stream.join(timeout=120)
    assert not stream.is_alive(), "the stream did not finish"
    flush_everything(chain)
    wait_uploaded(chain)
    inventory = audit(chain, store)
    assert_stored_once(inventory, writer)
    assert {where for places in inventory.places.values() for _, where in places} == {"bucket"}
    assert assert_read_back(chain, chunks) == 1100 * 16
