"""Range reads in the buffer's engine, without a server: live and archived chunks, gaps, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from databuffer.readback import DataNotFound, ReadBack, sample_bounds, stitch
from databuffer.storage import Storage
from glitchflow_archive import ArchiveError, LocalArchive
from glitchflow_core.chunk import parse_chunk
from glitchflow_core.edge import InvalidInput

CHANNEL = "H1:TEST-STRAIN"
DT = 1 / 4096
T0 = 1_000_000_000.0


def chunk_bytes(t0: float, h: np.ndarray, channel: str = CHANNEL) -> bytes:
    return orjson.dumps(
        {"h": h, "t": [t0, DT], "channel": channel}, option=orjson.OPT_SERIALIZE_NUMPY
    )


def write(storage: Storage, t0: float, h: np.ndarray, channel: str = CHANNEL) -> None:
    body = chunk_bytes(t0, h, channel)
    storage.write(parse_chunk(body), body=body)


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    engine = Storage(tmp_path / "data", tmp_path / "adm", tmp_path / "log", tmp_path / "archive")
    yield engine
    engine.close()


def readback(storage: Storage, max_seconds: float = 100.0) -> ReadBack:
    return ReadBack(
        storage.spans_in_buffer,
        storage.channel_spans_in_buffer,
        LocalArchive(storage.archive_dir),
        max_seconds,
    )


@pytest.fixture
def samples() -> np.ndarray:
    """Eight chunks of 512 samples (1 s of 4096 Hz strain-like noise)."""
    return np.random.default_rng(7).normal(scale=1e-21, size=8 * 512)


def stream(storage: Storage, samples: np.ndarray, chunks: range) -> None:
    for i in chunks:
        write(storage, T0 + i * 512 * DT, samples[i * 512 : (i + 1) * 512])


def expected(samples: np.ndarray, start: float, end: float) -> np.ndarray:
    times = T0 + np.arange(samples.shape[0]) * DT
    return samples[(times >= start) & (times < end)]


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float64 and np.array_equal(a.view(np.uint64), b.view(np.uint64))


@pytest.mark.parametrize(
    ("first", "last"),
    [
        (0.5, 100.5),  # inside one chunk
        (500.5, 530.5),  # across one chunk boundary
        (0, 4096),  # everything, boundaries on samples
        (1000.5, 3000.5),  # across the archived/live boundary (chunk 4)
        (-20, 10.5),  # starts before the data
    ],
)
def test_live_and_archived_samples_come_back_bit_exact(storage, samples, first, last) -> None:
    stream(storage, samples, range(4))
    storage.flush("archive the first half", force=True)
    stream(storage, samples, range(4, 8))
    start, end = T0 + first * DT, T0 + last * DT
    result = readback(storage).read(CHANNEL, start, end)
    assert len(result.segments) == 1
    assert same_bits(result.segments[0].samples(), expected(samples, start, end))
    doc = orjson.loads(result.as_json())
    assert same_bits(np.asarray(doc["h"], dtype=np.float64), expected(samples, start, end))
    assert doc["t0"] == pytest.approx(T0 + max(np.ceil(first), 0) * DT, abs=1e-9)
    assert doc["channel"] == CHANNEL and doc["dt"] == DT


def test_gaps_are_listed_and_not_filled(storage, samples) -> None:
    stream(storage, samples, range(0, 2))
    stream(storage, samples, range(3, 8))
    start, end = T0 + 100.5 * DT, T0 + 2000.5 * DT
    doc = orjson.loads(readback(storage).read(CHANNEL, start, end).as_json())
    assert doc["h"] is None
    assert [s["n"] for s in doc["segments"]] == [1024 - 101, 2000 - 1536 + 1]
    assert doc["gaps"] == [[pytest.approx(T0 + 1024 * DT), pytest.approx(T0 + 1536 * DT)]]
    joined = np.concatenate([np.asarray(s["h"]) for s in doc["segments"]])
    held = np.concatenate([samples[:1024], np.full(512, np.nan), samples[1536:]])
    wanted = expected(held, start, end)
    assert same_bits(joined, wanted[~np.isnan(wanted)])


def test_head_and_tail_without_samples_are_gaps(storage, samples) -> None:
    stream(storage, samples, range(2, 3))
    doc = orjson.loads(readback(storage).read(CHANNEL, T0, T0 + 4096 * DT).as_json())
    assert doc["gaps"] == [
        [T0, pytest.approx(T0 + 1024 * DT)],
        [pytest.approx(T0 + 1536 * DT), T0 + 4096 * DT],
    ]


def test_a_read_touches_only_the_overlapping_files(storage, samples, monkeypatch) -> None:
    stream(storage, samples, range(4))
    storage.flush("archived", force=True)
    stream(storage, samples, range(4, 8))
    back = readback(storage)
    archived_reads: list[str] = []
    store = back.archived.store
    original = store.read_bytes

    def counting(name: str, file: str) -> bytes:
        archived_reads.append(file)
        return original(name, file)

    monkeypatch.setattr(store, "read_bytes", counting)
    back.read(CHANNEL, T0 + 600 * DT, T0 + 700 * DT)  # inside archived chunk 1
    assert len([f for f in archived_reads if f != "manifest.json"]) == 1
    archived_reads.clear()
    back.read(CHANNEL, T0 + 3000 * DT, T0 + 3100 * DT)  # live only
    assert archived_reads == []


def test_channels_list_spans_over_every_batch(storage, samples) -> None:
    stream(storage, samples, range(2))
    storage.flush("archived", force=True)
    stream(storage, samples, range(4, 5))
    write(storage, T0, samples[:512], channel="L1:TEST-STRAIN")
    listed = {c["channel"]: c for c in readback(storage).channels()}
    h1 = listed[CHANNEL]
    assert h1["start"] == T0 and h1["end"] == pytest.approx(T0 + 5 * 512 * DT)
    assert h1["segments"] == [
        [T0, pytest.approx(T0 + 1024 * DT)],
        [pytest.approx(T0 + 2048 * DT), pytest.approx(T0 + 2560 * DT)],
    ]
    assert h1["sample_rate"] == 4096.0
    assert h1["batches"] == [1, 2]
    assert listed["L1:TEST-STRAIN"]["batches"] == [2]


@pytest.mark.parametrize(
    ("channel", "start", "end", "error", "words"),
    [
        (CHANNEL, T0 + 1, T0 + 1, InvalidInput, "end: must be after start"),
        (CHANNEL, T0 + 2, T0 + 1, InvalidInput, "end: must be after start"),
        (CHANNEL, T0, T0 + 101, InvalidInput, "more than the limit of 100 s"),
        (CHANNEL, float("nan"), T0, InvalidInput, "start: must be a GPS time"),
        (CHANNEL, -1.0, T0, InvalidInput, "start: must be a GPS time"),
        ("X1:UNKNOWN", T0, T0 + 1, DataNotFound, "no channel 'X1:UNKNOWN' is stored"),
        (CHANNEL, T0 + 50, T0 + 60, DataNotFound, "has no samples from GPS"),
    ],
)
def test_bad_reads_are_refused_by_name(storage, samples, channel, start, end, error, words) -> None:
    stream(storage, samples, range(2))
    with pytest.raises(error) as caught:
        readback(storage).read(channel, start, end)
    assert words in str(caught.value) or words in str(getattr(caught.value, "detail", ""))


def test_sample_bounds_take_samples_at_or_after_start_and_before_end() -> None:
    assert sample_bounds(10.0, 0.5, 8, 11.0, 12.0) == (2, 4)
    assert sample_bounds(10.0, 0.5, 8, 11.1, 12.1) == (3, 5)
    assert sample_bounds(10.0, 0.5, 8, 0.0, 100.0) == (0, 8)


def test_stitch_joins_adjacent_pieces_and_trims_overlap() -> None:
    a, b, c = np.arange(4.0), np.arange(4.0, 8.0), np.arange(10.0, 12.0)
    segments = stitch([(0.0, 1.0, a), (2.0, 1.0, np.arange(2.0, 6.0)), (6.0, 1.0, b[2:])])
    assert len(segments) == 1 and segments[0].samples().tolist() == list(range(8))
    gapped = stitch([(0.0, 1.0, a), (10.0, 1.0, c)])
    assert [(s.t0, s.n) for s in gapped] == [(0.0, 4), (10.0, 2)]


def test_an_archived_file_that_differs_from_its_manifest_is_refused(storage, samples) -> None:
    stream(storage, samples, range(2))
    storage.flush("archived", force=True)
    chunk_file = sorted(p for p in storage.archive_dir.rglob("*.json") if "__" in p.name)[0]
    # Same length, one letter changed: only the sha256 can tell.
    chunk_file.write_bytes(chunk_file.read_bytes().replace(b"e-", b"E-", 1))
    with pytest.raises(ArchiveError, match="does not match its manifest sha256"):
        readback(storage).read(CHANNEL, T0, T0 + 1024 * DT)


def test_archived_sealed_and_live_batches_read_back_bit_exact(storage, samples) -> None:
    """Rotate mode, one chunk a batch: 1 archived, 2 to 8 sealed (waiting), 9 being filled."""
    for i in range(8):
        body = chunk_bytes(T0 + i * 512 * DT, samples[i * 512 : (i + 1) * 512])
        storage.write(parse_chunk(body), body=body, freeze_at=1, max_sealed=8)
    storage.flush("the first batch")
    assert [sealed.batch for sealed in storage.sealed_batches()] == list(range(2, 9))
    storage.write(parse_chunk(body := chunk_bytes(T0 + 8 * 512 * DT, samples[:512])), body=body)
    result = readback(storage).read(CHANNEL, T0, T0 + 8 * 512 * DT)
    assert len(result.segments) == 1
    assert same_bits(result.segments[0].samples(), samples)
