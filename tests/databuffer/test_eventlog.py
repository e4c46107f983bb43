"""The event log: JSON lines, rotation by size, paged reading oldest first."""

from __future__ import annotations

from pathlib import Path

from databuffer.eventlog import EventLog


def fill(log: EventLog, count: int, start: int = 0) -> None:
    for seq in range(start, start + count):
        log.append("write", seq=seq, file=f"chunk-{seq:05d}.json")


def test_events_are_json_lines_read_oldest_first(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "LogStream.json")
    fill(log, 5)
    events, total = log.read(limit=10)
    assert total == 5
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4]
    assert {e["event"] for e in events} == {"write"}
    assert events[0]["time"].endswith("Z")
    lines = (tmp_path / "LogStream.json").read_bytes().splitlines()
    assert len(lines) == 5
    log.close()


def test_rotation_keeps_backups_bounded_and_paging_continuous(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "LogStream.json", max_bytes=2_000, backups=2)
    fill(log, 200)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["LogStream.json", "LogStream.json.1", "LogStream.json.2"]
    assert all(p.stat().st_size <= 2_000 for p in tmp_path.iterdir())
    everything, total = log.read(limit=10_000)
    assert total == len(everything) < 200
    seqs = [e["seq"] for e in everything]
    assert seqs == list(range(200 - total, 200))  # the newest events, contiguous, oldest first
    # Pages put together give the same sequence, across file boundaries.
    paged = []
    for offset in range(0, total, 7):
        page, page_total = log.read(limit=7, offset=offset)
        assert page_total == total
        paged.extend(e["seq"] for e in page)
    assert paged == seqs
    assert log.read(limit=5, offset=total) == ([], total)
    log.close()


def test_reopened_log_counts_existing_lines(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "LogStream.json", max_bytes=2_000, backups=3)
    fill(log, 60)
    before = log.read(limit=1000)
    log.close()
    reopened = EventLog(tmp_path / "LogStream.json", max_bytes=2_000, backups=3)
    assert reopened.read(limit=1000) == before
    fill(reopened, 1, start=60)
    events, total = reopened.read(limit=1, offset=before[1])
    assert (total, events[0]["seq"]) == (before[1] + 1, 60)
    reopened.close()


def test_no_backups_truncates(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "LogStream.json", max_bytes=500, backups=0)
    fill(log, 50)
    events, total = log.read(limit=100)
    assert total == len(events) and 0 < total < 50
    assert events[-1]["seq"] == 49
    assert [p.name for p in tmp_path.iterdir()] == ["LogStream.json"]
    log.close()
