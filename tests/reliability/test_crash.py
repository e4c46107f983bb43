"""``kill -9`` of each service in turn while a retrying client streams over freezes and flushes.

After the restarts every acknowledged chunk is stored exactly once (live, sealed, or in one
archived batch, local or in the bucket), the counters equal the files, no temporary file is left
or listed, the bucket holds only whole batches, and ``GET /data`` returns every sample.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from reliability.harness import (
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

from glitchflow_archive import S3Archive

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(180)]

CHUNKS_PER_CHANNEL = 1000  # two channels: 2,000 chunks
SAMPLES = 32
SEED = 20261203
ORDER = ("api", "logic", "databuffer")


def kill_in_turn(chain: Chain, writer: Writer, rng: random.Random, rounds: int) -> list[tuple]:
    """Kill each service in turn, ``rounds`` times, at seeded moments of the stream (after a
    random number of acknowledged chunks, plus a random few milliseconds); restart it at once.
    Returns ``(service, chunks acknowledged when it was killed)``."""
    total = len(writer.chunks)
    order = [name for _ in range(rounds) for name in ORDER]
    marks = sorted(int(rng.uniform(0.05, 0.8) * total) for _ in order)
    done = []
    for name, mark in zip(order, marks, strict=True):
        wait_for(lambda m=mark: writer.acknowledged >= m or writer.done.is_set(), 60, "progress")
        assert not writer.done.is_set(), "the stream ended before every kill"
        time.sleep(rng.uniform(0, 0.05))
        done.append((name, writer.acknowledged))
        t = time.monotonic()
        chain.kill(name)
        chain.restart(name)
        print(name, f"restart {time.monotonic() - t:.2f}s")
    return done


def run_stream_with_kills(chain: Chain, seed: int, flusher: Flusher) -> tuple[Writer, list]:
    started = time.monotonic()
    chunks = plan(CHUNKS_PER_CHANNEL, SAMPLES, seed=seed)
    writer = Writer(chain.api_url, chunks)
    stream = writer.start(writers=4)
    flushing = flusher.start()
    try:
        kills = kill_in_turn(chain, writer, random.Random(seed), rounds=1)
        stream.join(timeout=120)
        assert not stream.is_alive(), "the stream did not finish"
    finally:
        flusher.stop.set()
        flushing.join(timeout=30)
    print(f"kills {kills}, flushed {flusher.flushed}, retried {dict(writer.retried)}, flusher failures {dict(flusher.failures)}, {time.monotonic() - started:.1f} s")
    return writer, kills


@pytest.fixture
def chain_factory(tmp_path: Path):
    started: list[Chain] = []

    def start(**kwargs) -> Chain:
        chain = Chain(tmp_path / f"buffer{len(started)}", **kwargs)
        started.append(chain)
        return chain.start()

    yield start
    for chain in started:
        chain.stop()


def test_rotate_kill_each_service_in_turn_with_archive_in_a_bucket(
    chain_factory, s3: SeaweedS3, bucket: str
) -> None:
    """Rotate mode (the default), sealed batches handed over by /train + /cleanbuf and uploaded
    to SeaweedFS while API, logic and buffer are each killed twice."""
    chunk_bytes = len(plan(1, SAMPLES)[0].body())
    chain = chain_factory(
        max_size=150 * chunk_bytes,  # about 13 batches in 2,000 chunks
        freeze_mode="rotate",
        max_sealed=4,
        env={
            **s3.env(bucket),
            "GLITCHFLOW_ARCHIVE_RETRY_MAX_DELAY": "0.5",
            "GLITCHFLOW_ARCHIVE_S3_TIMEOUT": "2",
        },
    )
    flusher = Flusher(chain.api_url, pause=0.1, partial_every=7)
    writer, kills = run_stream_with_kills(chain, SEED, flusher)

    assert [name for name, _ in kills] == list(ORDER)
    assert len(flusher.flushed) >= 5, f"too few flushes to mean anything: {flusher.flushed}"
    wait_uploaded(chain)
    store = S3Archive(s3.location(bucket))
    inventory = audit(chain, store)
    assert_stored_once(inventory, writer)
    assert inventory.in_bucket, "no batch reached the bucket"
    assert assert_read_back(chain, writer.chunks) == 2 * CHUNKS_PER_CHANNEL * SAMPLES

    # And once everything is handed over, the bucket holds every chunk exactly once.
    flush_everything(chain)
    wait_uploaded(chain)
    inventory = audit(chain, store)
    assert_stored_once(inventory, writer)
    assert {where for places in inventory.places.values() for _, where in places} == {"bucket"}
    assert_read_back(chain, writer.chunks)


def test_hold_kill_each_service_in_turn(chain_factory) -> None:
    """Hold mode (the original's): writers wait on a frozen batch until /cleanbuf, while API,
    logic and buffer are each killed twice; archives stay in the local folder."""
    chunk_bytes = len(plan(1, SAMPLES)[0].body())
    chain = chain_factory(max_size=250 * chunk_bytes, freeze_mode="hold")
    flusher = Flusher(chain.api_url, pause=0.1)
    writer, kills = run_stream_with_kills(chain, SEED + 1, flusher)

    assert [name for name, _ in kills] == list(ORDER)
    assert len(flusher.flushed) >= 4, f"too few flushes to mean anything: {flusher.flushed}"
    assert writer.retried["FROZEN"] > 0, "no write waited on a frozen batch"
    inventory = audit(chain)
    assert_stored_once(inventory, writer)
    assert assert_read_back(chain, writer.chunks) == 2 * CHUNKS_PER_CHANNEL * SAMPLES
