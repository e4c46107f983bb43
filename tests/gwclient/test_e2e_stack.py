"""gwclient against the real stack: three services as processes on 127.0.0.1 (tests/conftest.py)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest

from glitchflow_core.chunk import Chunk, parse_chunk
from gwclient import sources
from gwclient.chunks import plan_chunks
from gwclient.sender import RetryPolicy, stream

pytestmark = [
    pytest.mark.e2e,
    # gwpy 4.1 still reads astropy's COPY_IF_NEEDED, which astropy 8 deprecates; nothing of ours.
    pytest.mark.filterwarnings(
        "ignore:COPY_IF_NEEDED is no longer needed"
        ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
    ),
]

WRITER = "writer-token-0123456789"
ADMIN = "admin-token-0123456789"


def stored_chunks(data_dir: Path) -> list[Chunk]:
    """Every chunk file of the current batch and of every archived batch, parsed."""
    files = sorted((data_dir / "data").glob("*.json"))
    files += sorted(p for p in (data_dir / "archive").rglob("*.json") if p.name != "manifest.json")
    return [parse_chunk(p.read_bytes()) for p in files]


def by_channel(chunks: list[Chunk]) -> dict[str, np.ndarray]:
    """Each channel's samples, chunks joined in GPS order (checked contiguous)."""
    out: dict[str, np.ndarray] = {}
    for channel in sorted({c.channel for c in chunks}):
        mine = sorted((c for c in chunks if c.channel == channel), key=lambda c: c.t0)
        for before, after in itertools.pairwise(mine):
            assert after.t0 == before.t0 + before.n * before.dt, (channel, before.t0, after.t0)
        out[channel] = np.concatenate([c.h for c in mine])
    return out


def test_shipped_strain_is_stored_bit_for_bit_per_channel(stack_factory, tmp_path):
    data_dir = tmp_path / "store"
    _, layout = stack_factory(data_dir=data_dir)
    source = sources.read_file(sources.shipped_sample_path())
    summary = stream(source, layout.api_url, chunk_seconds=0.25, concurrency=4)
    assert summary.ok and summary.created == 12, summary.line()

    stored = stored_chunks(data_dir)
    assert len(stored) == 12
    rebuilt = by_channel(stored)
    assert list(rebuilt) == list(source)
    for name, series in source.items():
        assert rebuilt[name].tobytes() == np.asarray(series.value, dtype=np.float64).tobytes()
        assert min(c.t0 for c in stored if c.channel == name) == series.t0.value
        assert {c.dt for c in stored if c.channel == name} == {series.dt.value}
    stats = httpx.get(layout.api_url + "/stats").json()
    assert stats["n_itm"] == 12
    assert stats["buff_size"] == sum(p.stat().st_size for p in (data_dir / "data").glob("*.json"))


def test_streaming_again_is_all_duplicates_and_stores_nothing_new(stack_factory, tmp_path):
    data_dir = tmp_path / "store"
    _, layout = stack_factory(data_dir=data_dir)
    source = sources.read_file(sources.shipped_sample_path())
    first = stream(source, layout.api_url, chunk_seconds=0.5)
    before = httpx.get(layout.api_url + "/stats").json()
    again = stream(source, layout.api_url, chunk_seconds=0.5)
    assert (first.created, again.created, again.duplicates) == (6, 0, 6)
    assert again.ok
    assert httpx.get(layout.api_url + "/stats").json() == before


@pytest.mark.slow
def test_freeze_and_flush_mid_stream_store_every_chunk_exactly_once(stack_factory, tmp_path):
    data_dir = tmp_path / "store"
    # About 23 kB per chunk of 1024 samples: the buffer freezes every ten chunks or so.
    # Held frozen until each flush (FREEZE_MODE=hold): the sender waits through every freeze.
    _, layout = stack_factory(
        data_dir=data_dir, max_size=200_000, env={"GLITCHFLOW_FREEZE_MODE": "hold"}
    )
    source, _ = sources.synthetic(["H1", "L1"], duration=30, sample_rate=1024, seed=4, glitches=2)
    expected = plan_chunks(source, 1.0)

    done = threading.Event()
    flushes: list[dict] = []

    def airflow() -> None:
        """Flush each frozen batch a little later, as the DAG would, until the stream ends."""
        with httpx.Client(base_url=layout.api_url, timeout=10) as client:
            while not done.is_set():
                if client.get("/desc").json()["resp"] == "FROZEN":
                    time.sleep(0.3)  # let writers hit the frozen buffer and retry
                    answer = client.post("/cleanbuf", json={"msg": "test"})
                    assert answer.status_code == 200, answer.text
                    flushes.append(answer.json())
                time.sleep(0.05)

    flusher = threading.Thread(target=airflow, daemon=True)
    flusher.start()
    try:
        summary = stream(
            source,
            layout.api_url,
            chunk_seconds=1.0,
            concurrency=4,
            retry=RetryPolicy(max_attempts=8, max_elapsed=60, base_delay=0.05, max_delay=1.0),
        )
    finally:
        done.set()
        flusher.join(15)

    assert summary.ok, summary.line()
    assert len(flushes) >= 2, "the buffer should have frozen and been flushed mid-stream"
    assert summary.retries > 0, "some writes should have met the frozen buffer"
    assert summary.created + summary.duplicates == len(expected)
    assert len(summary.batches) >= 3

    stored = stored_chunks(data_dir)
    counts = Counter(c.identity for c in stored)
    assert counts == Counter((c.channel, c.t0, c.n, c.dt) for c in expected)  # each exactly once
    rebuilt = by_channel(stored)
    for name, series in source.items():
        assert rebuilt[name].tobytes() == series.value.tobytes()
    archived = sum(flush["body"]["n_f"] for flush in flushes)
    current = httpx.get(layout.api_url + "/stats").json()["n_itm"]
    assert archived + current == len(expected)


def test_tokens_are_required_and_a_bad_one_stops_the_stream(stack_factory, tmp_path):
    env = {"GLITCHFLOW_WRITER_TOKENS": WRITER, "GLITCHFLOW_ADMIN_TOKENS": ADMIN}
    _, layout = stack_factory(data_dir=tmp_path / "store", env=env)
    source = sources.read_file(sources.shipped_sample_path(), ["H1:LDAS-STRAIN"])
    refused = stream(
        source, layout.api_url, token="not-the-token", chunk_seconds=0.25, concurrency=1
    )
    assert (refused.refused, refused.skipped, refused.delivered) == (1, 3, 0), refused.line()
    assert "401" in refused.errors[0]
    accepted = stream(source, layout.api_url, token=WRITER, chunk_seconds=0.25)
    assert accepted.ok and accepted.created == 4


def test_command_streams_a_file_and_exits_zero(stack_factory, tmp_path):
    _, layout = stack_factory(data_dir=tmp_path / "store")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gwclient",
            "--url",
            layout.api_url,
            "--file",
            str(sources.shipped_sample_path()),
            "--chunk-seconds",
            "0.5",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("gwclient: 6/6 chunks delivered (6 created, 0 duplicates")
    assert httpx.get(layout.api_url + "/stats").json()["n_itm"] == 6


def test_command_exits_non_zero_when_chunks_are_refused(stack_factory, tmp_path):
    env = {"GLITCHFLOW_WRITER_TOKENS": WRITER, "GLITCHFLOW_ADMIN_TOKENS": ADMIN}
    _, layout = stack_factory(data_dir=tmp_path / "store", env=env)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gwclient",
            "--url",
            layout.api_url,
            "--synthetic",
            "--quiet",
            "--duration",
            "2",
            "--sample-rate",
            "256",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "GLITCHFLOW_TOKEN": "wrong-token-0123456789"},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "0/2 chunks delivered" in done.stdout


@pytest.mark.slow
def test_demo_streams_until_the_buffer_freezes(stack_factory, tmp_path):
    # FREEZE_MODE=hold; the rotate demo is tests/stack/test_up.py's.
    _, layout = stack_factory(
        data_dir=tmp_path / "store", max_size=3_000_000, env={"GLITCHFLOW_FREEZE_MODE": "hold"}
    )
    done = subprocess.run(
        [sys.executable, "-m", "gwclient.demo", "--url", layout.api_url, "--block-seconds", "8"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the buffer is FROZEN" in done.stdout
    assert httpx.get(layout.api_url + "/desc").json()["resp"] == "FROZEN"
