"""32 concurrent writers while freezes and flushes repeat, in both freeze modes.

Hold: every full batch freezes and the writers get 503 FROZEN with ``Retry-After`` until the
flush. Rotate: batches are small and the flusher slow, so the sealed queue (``MAX_SEALED`` 1) fills
and the writers get the same 503 as back-pressure. Either way every CREATED chunk ends up in
exactly one batch, the one that acknowledged it; no chunk is counted twice; nothing acknowledged
goes missing; ``GET /data`` returns every sample.
"""

from __future__ import annotations

import time

import pytest
from reliability.harness import (
    Flusher,
    Writer,
    assert_read_back,
    assert_stored_once,
    audit,
    plan,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

WRITERS = 32
CHUNKS_PER_WRITER = 60
SAMPLES = 16
CHANNELS = tuple(f"T{w % 10}:TORTURE-{w:02d}" for w in range(WRITERS))


@pytest.mark.parametrize(
    ("mode", "batch_chunks", "max_sealed", "flush_pause"),
    [("hold", 150, None, 0.2), ("rotate", 40, 1, 0.5)],
)
def test_32_writers_against_repeated_freezes_and_flushes(
    chain_factory, mode: str, batch_chunks: int, max_sealed: int | None, flush_pause: float
) -> None:
    chunks = plan(CHUNKS_PER_WRITER, SAMPLES, channels=CHANNELS, seed=32)
    chain = chain_factory(
        max_size=batch_chunks * len(chunks[0].body()),
        freeze_mode=mode,
        max_sealed=max_sealed,
        logic_workers=2,
    )
    writer = Writer(chain.api_url, chunks)
    flusher = Flusher(chain.api_url, pause=flush_pause, partial_every=4)
    started = time.monotonic()
    stream = writer.start(writers=None)  # one writer per channel
    flushing = flusher.start()
    try:
        stream.join(timeout=240)
        assert not stream.is_alive(), "the writers did not finish"
    finally:
        flusher.stop.set()
        flushing.join(timeout=30)
    print(  # shown with -s
        f"{mode}: {time.monotonic() - started:.1f} s; flushed {flusher.flushed}; "
        f"retried {dict(writer.retried)}; flusher failures {dict(flusher.failures)}"
    )

    assert len(flusher.flushed) >= 5, f"too few flushes to mean anything: {flusher.flushed}"
    assert writer.retried["FROZEN"] > 0, "no writer was ever refused by a freeze"
    assert writer.retried["FROZEN without Retry-After"] == 0
    inventory = audit(chain)
    assert_stored_once(inventory, writer)
    # No chunk counted twice: the counters of every batch (checked equal to its files) add up
    # to the chunks sent, each acknowledged CREATED once or, after a lost answer, DUPLICATE.
    assert inventory.files == len(chunks)
    duplicates = sum(ack.resp == "DUPLICATE" for ack in writer.acks.values())
    lost_answers = sum(n for what, n in writer.retried.items() if what.endswith("Error"))
    assert duplicates <= lost_answers, "a chunk answered DUPLICATE that was never stored before"
    assert assert_read_back(chain, chunks) == len(chunks) * SAMPLES
