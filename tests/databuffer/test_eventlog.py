"""The event log: JSON lines, rotation by size, paged reading oldest first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

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


def test_failed_append_is_dropped_counted_and_logging_goes_on(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    full_log_volume: Callable[..., None],
) -> None:
    log = EventLog(tmp_path / "LogStream.json")
    fill(log, 2)
    full_log_volume(log, keep=10)  # half a line reaches the disk, then ENOSPC
    with caplog.at_level(logging.WARNING, logger="databuffer.eventlog"):
        log.append("write", seq=99)  # must not raise
    monkeypatch.undo()  # space again
    assert log.dropped == 1
    assert "event dropped" in caplog.text
    fill(log, 2, start=2)
    events, total = log.read(limit=100)
    # The torn half line is one unreadable event; every later event reads back.
    assert [e["event"] for e in events] == ["write", "write", "unreadable", "write", "write"]
    assert [e.get("seq") for e in events] == [0, 1, None, 2, 3]
    assert total == 5
    log.close()


def test_torn_last_line_is_mended_at_open(tmp_path: Path) -> None:
    path = tmp_path / "LogStream.json"
    log = EventLog(path)
    fill(log, 2)
    log.close()
    with path.open("ab") as f:
        f.write(b'{"time": "2026-11-')  # a crash in the middle of an append
    reopened = EventLog(path)
    assert path.read_bytes().endswith(b"\n")
    fill(reopened, 1, start=2)
    events, total = reopened.read(limit=10)
    assert [e.get("seq") for e in events] == [0, 1, None, 2]
    assert events[2] == {"event": "unreadable"}
    assert total == 4
    reopened.close()


def test_undecodable_lines_are_read_as_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "LogStream.json"
    path.write_bytes(b'{"event": "start"}\n{"event": "wri\n[1, 2]\n{"event": "stop"}\n')
    log = EventLog(path)
    events, total = log.read(limit=10)
    assert events == [
        {"event": "start"},
        {"event": "unreadable"},
        {"event": "unreadable"},
        {"event": "stop"},
    ]
    assert total == 4
    assert log.read(limit=1, offset=3) == ([{"event": "stop"}], 4)
    log.close()
