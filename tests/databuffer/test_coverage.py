"""Coverage kept as chunks arrive equals the coverage computed from all chunks at once, and the
index start-up builds at once equals the one built file by file."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from databuffer.coverage import Coverage
from databuffer.index import BatchIndex
from databuffer.naming import chunk_filename, parse_filename
from databuffer.rate import IngestRate

DT = 1 / 4096


def merged(spans: list[tuple[float, float]]) -> list[list[float]]:
    """Segments of disjoint spans joined within half a sample, computed from scratch."""
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + 0.5 * DT:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=40, unique=True), st.data())
def test_segments_and_gaps_equal_a_full_recount(slots: list[int], data: st.DataObject) -> None:
    # One-second chunks in slots; any order of arrival gives the same coverage.
    spans = data.draw(st.permutations([(float(s), s + 4096 * DT) for s in slots]))
    coverage = Coverage()
    for start, end in spans:
        coverage.add(start, end, DT)
    expected = merged(spans)
    gaps = [[a[1], b[0]] for a, b in itertools.pairwise(expected)]
    assert coverage.segments() == expected
    assert coverage.gap_count == len(gaps)
    assert abs(coverage.gap_seconds - sum(b - a for a, b in gaps)) < 1e-9
    assert coverage.start == expected[0][0]
    assert coverage.end == expected[-1][1]
    assert coverage.largest_gaps(len(gaps) + 5) == gaps


def test_largest_gaps_are_the_longest_sorted_by_time() -> None:
    coverage = Coverage()
    for start in (0, 2, 10, 11, 30):  # gaps: [1,2] 1 s, [3,10] 7 s, [12,30] 18 s
        coverage.add(float(start), start + 1.0, DT)
    assert coverage.largest_gaps(2) == [[3.0, 10.0], [12.0, 30.0]]
    assert coverage.gap_count == 3
    assert coverage.largest_gaps(0) == []


def test_a_chunk_filling_a_gap_closes_it() -> None:
    coverage = Coverage()
    coverage.add(0.0, 1.0, DT)
    coverage.add(2.0, 3.0, DT)
    assert coverage.gap_count == 1
    coverage.add(1.0, 2.0, DT)
    assert coverage.segments() == [[0.0, 3.0]]
    assert coverage.gap_count == 0
    assert coverage.gap_seconds == 0


def test_refused_overlaps_are_counted_and_the_latest_kept() -> None:
    coverage = Coverage()
    for i in range(60):
        coverage.refuse(float(i), i + 0.5)
    assert coverage.refused == 60
    assert len(coverage.recent_refused) == 50
    assert coverage.recent_refused[-1] == (59.0, 59.5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_ingest_rate_counts_the_last_minute_only() -> None:
    clock = Clock()
    rate = IngestRate(clock)
    for _ in range(30):
        rate.record(1000, 0.5)
    clock.now += 30
    for _ in range(30):
        rate.record(1000, 0.5)
    doc = rate.as_json()
    assert doc["chunks"] == 60
    assert doc["bytes"] == 60_000
    assert doc["chunks_per_s"] == 1.0
    assert doc["realtime"] == 0.5
    clock.now += 45  # the first 30 are now older than a minute
    doc = rate.as_json()
    assert doc["chunks"] == 30
    assert doc["bytes_per_s"] == 500.0
    clock.now += 60
    assert rate.as_json()["chunks"] == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=1, max_size=40, unique=True), st.data())
def test_index_built_at_once_equals_index_built_file_by_file(
    slots: list[int], data: st.DataObject
) -> None:
    # Start-up builds the index of a folder at once; writes add to it one file at a time.
    channels = ("H1:GDS-CALIB_STRAIN", "L1:GDS-CALIB_STRAIN")
    files = []
    for slot in slots:
        channel = channels[slot % 2]
        t0 = 1_400_000_000 + slot
        name = chunk_filename(channel, t0, 4096, DT)
        identity = parse_filename(name)
        assert identity is not None
        files.append((name, identity, 1000 + slot))
    files = data.draw(st.permutations(files))
    one_by_one = BatchIndex()
    for name, identity, size in files:
        one_by_one.add(name, identity, size)
    at_once = BatchIndex.of_files(files)
    assert at_once.names() == one_by_one.names()
    assert at_once.entries(100) == one_by_one.entries(100)
    assert at_once.stored_bytes == one_by_one.stored_bytes == sum(f[2] for f in files)
    assert at_once.spans() == one_by_one.spans()
    assert at_once.channels() == one_by_one.channels()
    for channel, index in at_once.channel_indexes():
        other = one_by_one.channel(channel)
        assert other is not None
        assert index.coverage.largest_gaps(50) == other.coverage.largest_gaps(50)
        assert index.coverage.gap_count == other.coverage.gap_count
        assert abs(index.coverage.gap_seconds - other.coverage.gap_seconds) < 1e-6
        assert abs(index.coverage.covered_seconds - other.coverage.covered_seconds) < 1e-6
