"""The storage engine without HTTP: idempotence, overlaps, freeze, flush, recovery, concurrency."""

from __future__ import annotations

import errno
import hashlib
import os
import random
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest

from databuffer import archive as archive_module
from databuffer import storage as storage_module
from databuffer.errors import ArchiveFailed, Conflict, DiskFull, Frozen, NotFrozen
from databuffer.naming import chunk_filename, parse_filename
from databuffer.state import FROZEN, OPERATIONAL
from databuffer.storage import Storage
from glitchflow_core.chunk import DEFAULT_CHANNEL, Chunk, ChunkError, parse_chunk

CHANNEL = "L1:GWOSC-4KHZ_R1_STRAIN"
DT = 1.0 / 4096
T0 = 1_126_259_462.0


def chunk_of(
    t0: float = T0, n: int = 64, dt: float = DT, channel: str = DEFAULT_CHANNEL, seed: int = 0
) -> Chunk:
    """A chunk with reproducible samples (same seed, same samples)."""
    h = np.random.default_rng(seed).standard_normal(n) * 1e-21
    return Chunk(channel=channel, t0=t0, dt=dt, h=h)


def chunk_files(folder: Path) -> dict[str, int]:
    """Visible chunk files of a folder and their sizes."""
    return {
        p.name: p.stat().st_size
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json"
    }


def disk_counters(storage: Storage) -> tuple[int, int]:
    files = chunk_files(storage.data_dir)
    return len(files), sum(files.values())


# --------------------------------------------------------------------------- naming


def test_filename_is_deterministic_safe_and_parses_back() -> None:
    name = chunk_filename(CHANNEL, 1_126_259_462.25, 4096, DT)
    assert name == "L1%3AGWOSC-4KHZ_R1_STRAIN__01126259462250000000__4096__0.000244140625.json"
    parsed = parse_filename(name)
    assert parsed is not None
    assert (parsed.channel, parsed.t0_ns, parsed.n, parsed.dt) == (
        CHANNEL,
        1_126_259_462_250_000_000,
        4096,
        DT,
    )
    assert "/" not in name and ":" not in name and " " not in name


@pytest.mark.parametrize(
    "name",
    [
        ".chunk.abc.tmp",
        "notes.txt",
        "default__1126259462__64__0.1.json",  # t0 not 20 digits
        "..%2F..%2Fetc__01126259462000000000__64__0.1.json",  # not a channel name
        "default__01126259462000000000__064__0.1.json",  # non-canonical n
    ],
)
def test_parse_filename_refuses_foreign_names(name: str) -> None:
    assert parse_filename(name) is None


def test_t0_beyond_name_range_is_refused(storage: Storage) -> None:
    with pytest.raises(ChunkError) as info:
        storage.write(chunk_of(t0=2e11))
    assert info.value.field == "t"
    assert disk_counters(storage) == (0, 0)


def test_listing_sorted_by_channel_then_gps_time(storage: Storage) -> None:
    for t0 in (T0 + 30, T0, T0 + 10):
        storage.write(chunk_of(t0=t0, channel=CHANNEL))
        storage.write(chunk_of(t0=t0, channel="H1:GWOSC-4KHZ_R1_STRAIN"))
    names, total = storage.names(limit=100)
    assert total == 6
    parsed = [parse_filename(n) for n in names]
    keys = [(p.channel, p.t0_ns) for p in parsed if p is not None]
    assert keys == sorted(keys)
    assert names == sorted(names)
    page, _ = storage.names(limit=2, offset=3)
    assert page == names[3:5]


# --------------------------------------------------------------------------- writes


def test_write_stores_canonical_bytes_and_counts(storage: Storage) -> None:
    chunk = chunk_of(channel=CHANNEL)
    result = storage.write(chunk)
    path = storage.data_dir / result.file
    assert result.resp == "CREATED"
    assert path.read_bytes() == chunk.canonical_bytes()
    doc = orjson.loads(path.read_bytes())
    assert doc["t"] == [T0, DT] and doc["channel"] == CHANNEL and len(doc["h"]) == 64
    assert (result.stat.stored_files, result.stat.stored_bytes) == (1, path.stat().st_size)
    assert disk_counters(storage) == (storage.stored_files, storage.stored_bytes)


def test_default_channel_is_not_written_in_the_file(storage: Storage) -> None:
    result = storage.write(chunk_of())
    assert "channel" not in orjson.loads((storage.data_dir / result.file).read_bytes())


def test_same_chunk_twice_is_a_duplicate_not_counted_twice(storage: Storage) -> None:
    first = storage.write(chunk_of())
    again = storage.write(chunk_of())
    assert (first.resp, again.resp) == ("CREATED", "DUPLICATE")
    assert again.file == first.file
    assert (storage.stored_files, storage.stored_bytes) == (1, first.size)
    assert disk_counters(storage) == (1, first.size)


def test_validated_body_is_stored_as_sent(storage: Storage) -> None:
    body = b'{"t": [1126259462.0, 0.000244140625], "h": [1.5, -2.0, 3e-21]}'
    chunk = parse_chunk(body)
    result = storage.write(chunk, body=body)
    assert (storage.data_dir / result.file).read_bytes() == body
    assert result.size == len(body) == storage.stored_bytes


@pytest.mark.parametrize(
    "spelling",
    [
        b'{"h":[1.5,-2.0,3e-21],"t":[1126259462.0,0.000244140625]}',
        b'{"h": [1.5, -2, 3e-21], "t": [1126259462, 0.000244140625], "channel": "default"}',
    ],
)
def test_same_chunk_spelt_differently_is_a_duplicate(storage: Storage, spelling: bytes) -> None:
    body = b'{"t": [1126259462.0, 0.000244140625], "h": [1.5, -2.0, 3e-21]}'
    first = storage.write(parse_chunk(body), body=body)
    again = storage.write(parse_chunk(spelling), body=spelling)
    assert (first.resp, again.resp) == ("CREATED", "DUPLICATE")
    assert (storage.data_dir / first.file).read_bytes() == body
    assert again.size == first.size == len(body), "the size of the stored file"
    assert storage.stored_files == 1


def test_same_identity_spelt_differently_with_other_samples_is_a_conflict(
    storage: Storage,
) -> None:
    body = b'{"h": [1.5, -2.0, 3e-21], "t": [1126259462.0, 0.000244140625]}'
    storage.write(parse_chunk(body), body=body)
    other = b'{"h":[1.5,-2.0,4e-21],"t":[1126259462.0,0.000244140625]}'
    with pytest.raises(Conflict):
        storage.write(parse_chunk(other), body=other)
    assert storage.stored_files == 1


def test_same_identity_with_other_samples_is_a_conflict(storage: Storage) -> None:
    storage.write(chunk_of(seed=1))
    with pytest.raises(Conflict):
        storage.write(chunk_of(seed=2))
    assert storage.stored_files == 1
    assert disk_counters(storage) == (1, storage.stored_bytes)


@pytest.mark.parametrize(
    ("t0_offset", "n"),
    [
        (-32 * DT, 64),  # overlaps the start
        (32 * DT, 64),  # overlaps the end
        (16 * DT, 16),  # inside
        (-16 * DT, 128),  # covers it
        (0.0, 32),  # same start, shorter
    ],
)
def test_partial_overlap_is_a_conflict(storage: Storage, t0_offset: float, n: int) -> None:
    storage.write(chunk_of(t0=T0, n=64))
    with pytest.raises(Conflict):
        storage.write(chunk_of(t0=T0 + t0_offset, n=n, seed=5))
    assert (storage.stored_files, len(chunk_files(storage.data_dir))) == (1, 1)


def test_overlap_with_other_channel_is_accepted(storage: Storage) -> None:
    storage.write(chunk_of(channel=CHANNEL))
    assert storage.write(chunk_of(channel="H1:GWOSC-4KHZ_R1_STRAIN")).resp == "CREATED"


def test_adjacent_chunks_with_float_rounding_are_accepted(storage: Storage) -> None:
    dt = 1.0 / 3000  # not a binary fraction: t0 + n * dt rounds
    t0 = T0 + 0.1
    for _ in range(50):
        chunk = chunk_of(t0=t0, n=7, dt=dt)
        assert storage.write(chunk).resp == "CREATED"
        t0 = chunk.end
    assert storage.stored_files == 50
    coverage = storage.channels()["default"]
    assert len(coverage["segments"]) == 1
    assert coverage["gaps"] == []


def test_channels_report_segments_and_gaps(storage: Storage) -> None:
    for start in (0, 1, 2, 5, 6):  # one-second chunks; a hole from 3 to 5
        storage.write(chunk_of(t0=T0 + start, n=4096, channel=CHANNEL))
    coverage = storage.channels()[CHANNEL]
    assert coverage["n_itm"] == 5
    assert coverage["segments"] == [[T0, T0 + 3], [T0 + 5, T0 + 7]]
    assert coverage["gaps"] == [[T0 + 3, T0 + 5]]
    assert (coverage["start"], coverage["end"]) == (T0, T0 + 7)


def test_disk_full_raises_and_stores_nothing(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module, "write_temp", full)
    with pytest.raises(DiskFull):
        storage.write(chunk_of())
    assert (storage.stored_files, storage.stored_bytes) == (0, 0)
    assert list(storage.data_dir.iterdir()) == []


# --------------------------------------------------------------------------- freeze


def test_write_reaching_freeze_at_freezes_in_the_same_call(storage: Storage) -> None:
    first = storage.write(chunk_of(t0=T0), freeze_at=10_000)
    assert first.frozen is False
    second = storage.write(chunk_of(t0=T0 + 1), freeze_at=first.size * 2)
    assert second.frozen is True
    assert storage.state.dstatus == FROZEN
    assert storage.state.frozen_reason is not None


def test_write_refused_while_frozen_and_nothing_written(storage: Storage) -> None:
    storage.write(chunk_of(t0=T0), freeze_at=1)
    with pytest.raises(Frozen) as info:
        storage.write(chunk_of(t0=T0 + 1))
    assert info.value.batch == 1
    assert storage.stored_files == 1
    assert len(chunk_files(storage.data_dir)) == 1


def test_duplicate_of_frozen_batch_still_acknowledged(storage: Storage) -> None:
    storage.write(chunk_of(), freeze_at=1)
    assert storage.write(chunk_of()).resp == "DUPLICATE"


def test_batch_older_than_max_age_freezes(open_storage) -> None:  # type: ignore[no-untyped-def]
    now = [1000.0]
    storage = open_storage(clock=lambda: now[0])
    assert storage.write(chunk_of(t0=T0), max_age=60).frozen is False
    now[0] += 61
    assert storage.write(chunk_of(t0=T0 + 1), max_age=60).frozen is True


def test_freeze_if_waits_below_size_and_freezes_at_it(storage: Storage) -> None:
    written = storage.write(chunk_of())
    waiting = storage.freeze_if("airflow", min_size=written.size + 1)
    assert (waiting.frozen, waiting.froze_now) == (False, False)
    assert storage.state.dstatus == OPERATIONAL
    frozen = storage.freeze_if("airflow", min_size=written.size)
    assert (frozen.frozen, frozen.froze_now) == (True, True)
    assert storage.state.user == "airflow"
    again = storage.freeze_if("other", min_size=written.size)
    assert (again.frozen, again.froze_now) == (True, False)
    assert storage.state.user == "airflow"


def test_frozen_state_survives_restart(open_storage) -> None:  # type: ignore[no-untyped-def]
    first = open_storage()
    first.write(chunk_of())
    first.freeze_if("airflow")
    first.close()
    reopened = open_storage()
    assert reopened.state.dstatus == FROZEN
    assert reopened.state.user == "airflow"
    with pytest.raises(Frozen):
        reopened.write(chunk_of(t0=T0 + 1))
    state = orjson.loads((reopened.adm_dir / "Dsstat.json").read_bytes())
    assert state["dstatus"] == FROZEN
    assert set(state) == {
        "dstatus",
        "user",
        "batch",
        "batch_started",
        "frozen_at",
        "frozen_reason",
    }


# --------------------------------------------------------------------------- flush


def test_flush_refused_when_operational_unless_forced(storage: Storage) -> None:
    storage.write(chunk_of())
    with pytest.raises(NotFrozen):
        storage.flush()
    assert storage.stored_files == 1
    result = storage.flush(force=True)
    assert (result.batch, result.stored_files) == (1, 1)
    assert result.manifest["forced"] is True


def test_flush_moves_exactly_the_batch_with_manifest(storage: Storage) -> None:
    written = [storage.write(chunk_of(t0=T0 + i, n=4096, channel=CHANNEL)) for i in (0, 1, 3)]
    storage.freeze_if("airflow")
    result = storage.flush(msg="train run 7")
    archive = storage.archive_dir / result.archive
    assert result.archive.startswith("000001-") and result.archive.endswith("Z")
    assert ":" not in result.archive and " " not in result.archive
    assert sorted(chunk_files(archive)) == sorted(w.file for w in written)
    assert chunk_files(storage.data_dir) == {}
    manifest = orjson.loads((archive / "manifest.json").read_bytes())
    assert manifest == result.manifest
    assert (manifest["batch"], manifest["n_f"]) == (1, 3)
    assert manifest["bt_wrt"] == sum(w.size for w in written)
    for entry in manifest["files"]:
        data = (archive / entry["name"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
        assert entry["bytes"] == len(data)
    assert manifest["channels"][CHANNEL]["gaps"] == [[T0 + 2, T0 + 3]]
    # Counters reset, next batch open for writing.
    assert (storage.stored_files, storage.stored_bytes) == (0, 0)
    assert (storage.state.batch, storage.state.dstatus) == (2, OPERATIONAL)
    assert storage.write(chunk_of(t0=T0)).batch == 2
    assert storage.batches(limit=10)[0][0]["batch"] == 1


def test_two_flushes_in_the_same_second_get_distinct_archives(open_storage) -> None:  # type: ignore[no-untyped-def]
    storage = open_storage(clock=lambda: 1_700_000_000.0)
    archives = []
    for i in range(3):
        storage.write(chunk_of(t0=T0 + i))
        archives.append(storage.flush(force=True).archive)
    assert len(set(archives)) == 3
    assert archives == sorted(archives)
    assert storage.batches(limit=10)[1] == 3


def test_retry_of_a_flushed_chunk_is_a_duplicate_also_after_restart(open_storage) -> None:  # type: ignore[no-untyped-def]
    storage = open_storage()
    storage.write(chunk_of())
    flushed = storage.flush(force=True)
    again = storage.write(chunk_of())
    assert (again.resp, again.batch, again.archive) == ("DUPLICATE", 1, flushed.archive)
    assert storage.stored_files == 0
    with pytest.raises(Conflict):
        storage.write(chunk_of(seed=9))
    reopened = open_storage()
    assert reopened.write(chunk_of()).resp == "DUPLICATE"
    assert chunk_files(reopened.data_dir) == {}


@pytest.mark.parametrize("failing_step", ["file", "manifest", "final"])
def test_flush_failure_changes_nothing(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, failing_step: str
) -> None:
    for i in range(4):
        storage.write(chunk_of(t0=T0 + i))
    storage.freeze_if("airflow")
    before_files = chunk_files(storage.data_dir)
    before_state = storage.state
    real_replace = os.replace

    def failing_replace(src: object, dst: object) -> None:
        src_path, dst_path = Path(str(src)), Path(str(dst))
        hit = {
            "file": dst_path.parent.name.endswith(".partial")
            and len(list(dst_path.parent.iterdir())) >= 2,
            "manifest": dst_path.name == "manifest.json",
            "final": dst_path.parent == storage.archive_dir and src_path.name.endswith(".partial"),
        }[failing_step]
        if hit:
            raise OSError(errno.EIO, "injected failure")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(ArchiveFailed):
        storage.flush()
    monkeypatch.undo()
    assert chunk_files(storage.data_dir) == before_files
    assert list(storage.archive_dir.iterdir()) == []
    assert storage.state == before_state
    assert (storage.stored_files, storage.stored_bytes) == (4, sum(before_files.values()))
    # Still frozen, and a later flush succeeds.
    assert storage.flush().stored_files == 4


def test_flush_failure_on_full_disk_reports_disk_full(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.write(chunk_of())
    storage.freeze_if("airflow")

    def full(path: Path, data: bytes, *, durable: bool = True) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_module, "atomic_write", full)
    with pytest.raises(ArchiveFailed) as info:
        storage.flush()
    assert info.value.disk_full is True
    assert storage.stored_files == 1 and storage.state.dstatus == FROZEN


# --------------------------------------------------------------------------- restart


def test_restart_removes_temp_files_and_rebuilds_counters(open_storage) -> None:  # type: ignore[no-untyped-def]
    first = open_storage()
    for i in range(5):
        first.write(chunk_of(t0=T0 + i, channel=CHANNEL))
    expected = (first.stored_files, first.stored_bytes)
    (first.data_dir / ".chunk.leftover.tmp").write_bytes(b"half a chunk")
    (first.adm_dir / ".Dsstat.json.x.tmp").write_bytes(b"{")
    # A stale cache must not matter: the files are the truth.
    (first.adm_dir / "StatDesc.json").write_bytes(b'{"n_itm": 99, "buff_size": 1}')
    reopened = open_storage()
    assert (reopened.stored_files, reopened.stored_bytes) == expected
    assert disk_counters(reopened) == expected
    assert not [p for p in reopened.data_dir.iterdir() if p.name.startswith(".")]
    assert not [p for p in reopened.adm_dir.iterdir() if p.name.endswith(".tmp")]
    stat = orjson.loads((reopened.adm_dir / "StatDesc.json").read_bytes())
    assert (stat["n_itm"], stat["buff_size"]) == expected
    # The index is rebuilt too: overlaps and duplicates are still recognised.
    assert reopened.write(chunk_of(t0=T0, channel=CHANNEL)).resp == "DUPLICATE"
    with pytest.raises(Conflict):
        reopened.write(chunk_of(t0=T0 + 10 * DT, channel=CHANNEL, seed=3))


def test_restart_removes_temp_files_left_in_an_archived_batch(open_storage) -> None:  # type: ignore[no-untyped-def]
    first = open_storage()
    first.write(chunk_of(t0=T0))
    first.freeze_if("test")
    folder = first.archive_dir / first.flush("test").archive
    # A kill while the upload marker or the results were being replaced.
    (folder / ".uploaded.json.k1x2.tmp").write_bytes(b'{"loc')
    (folder / ".results.json.k3y4.tmp").write_bytes(b"{")
    open_storage()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]
    assert (folder / "manifest.json").is_file()


def test_restart_puts_back_files_of_an_interrupted_flush(open_storage) -> None:  # type: ignore[no-untyped-def]
    first = open_storage()
    for i in range(3):
        first.write(chunk_of(t0=T0 + i))
    names = sorted(chunk_files(first.data_dir))
    staging = first.archive_dir / ".000001-20260101T000000Z.partial"
    staging.mkdir()
    os.replace(first.data_dir / names[0], staging / names[0])
    reopened = open_storage()
    assert sorted(chunk_files(reopened.data_dir)) == names
    assert list(reopened.archive_dir.iterdir()) == []
    assert reopened.stored_files == 3


def test_restart_after_archive_renamed_but_state_unsaved(open_storage) -> None:  # type: ignore[no-untyped-def]
    first = open_storage()
    first.write(chunk_of())
    first.freeze_if("airflow")
    state_before = (first.adm_dir / "Dsstat.json").read_bytes()
    first.flush()
    # Simulate a crash between the archive rename and the state save.
    (first.adm_dir / "Dsstat.json").write_bytes(state_before)
    reopened = open_storage()
    assert (reopened.state.batch, reopened.state.dstatus) == (2, OPERATIONAL)
    assert reopened.stored_files == 0


# --------------------------------------------------------------------------- concurrency


def test_concurrent_writers_freezes_and_flushes_keep_every_chunk_once(
    open_storage,  # type: ignore[no-untyped-def]
) -> None:
    storage: Storage = open_storage()
    writers, per_writer = 32, 40
    freeze_at = 30 * len(chunk_of(n=32).canonical_bytes())
    acknowledged: dict[str, int] = {}  # file -> batch it was acknowledged in
    created: Counter[str] = Counter()
    ack_lock = threading.Lock()
    done = threading.Event()
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            rng = random.Random(w)
            for i in range(per_writer):
                chunk = chunk_of(t0=T0 + (w * per_writer + i) * 0.01, n=32, seed=w * 1000 + i)
                while True:
                    try:
                        result = storage.write(chunk, freeze_at=freeze_at)
                    except Frozen:
                        continue  # the flusher will open the next batch
                    with ack_lock:
                        acknowledged.setdefault(result.file, result.batch)
                        if result.resp == "CREATED":
                            created[result.file] += 1
                    if rng.random() < 0.1:  # a retry after a lost answer
                        again = storage.write(chunk, freeze_at=freeze_at)
                        assert again.resp == "DUPLICATE"
                    break
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def flusher() -> None:
        try:
            while not done.is_set():
                if storage.state.dstatus == FROZEN:
                    storage.flush(msg="test")
                elif random.random() < 0.01:
                    storage.freeze_if("airflow", min_size=freeze_at // 2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    flush_thread = threading.Thread(target=flusher)
    flush_thread.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    done.set()
    flush_thread.join(timeout=60)
    assert errors == []
    assert len(acknowledged) == writers * per_writer
    assert set(created.values()) == {1}

    # Where is every file now? Each in exactly one place, and in the batch it was acknowledged in.
    locations: dict[str, list[int]] = {}
    manifests, total = storage.batches(limit=1000)
    assert total >= 2  # the run froze and flushed several times
    for manifest in manifests:
        folder = storage.archive_dir / manifest["archive"]
        on_disk = chunk_files(folder)
        assert sorted(on_disk) == sorted(f["name"] for f in manifest["files"])
        assert manifest["n_f"] == len(on_disk)
        assert manifest["bt_wrt"] == sum(on_disk.values())
        for name in on_disk:
            locations.setdefault(name, []).append(manifest["batch"])
    for name in chunk_files(storage.data_dir):
        locations.setdefault(name, []).append(storage.state.batch)
    assert set(locations) == set(acknowledged)
    assert {name: batches for name, batches in locations.items() if len(batches) != 1} == {}
    assert {n: b[0] for n, b in locations.items()} == acknowledged
    assert disk_counters(storage) == (storage.stored_files, storage.stored_bytes)


# --------------------------------------------------------------------------- reviewed defects


def test_duplicate_is_acknowledged_only_once_the_original_rename_is_durable(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate, held = threading.Event(), threading.Event()
    real_sync = storage._sync_data_dir
    results = []

    def original_write() -> None:
        results.append(storage.write(chunk_of()))

    original = threading.Thread(target=original_write)

    def sync_held_for_the_original(rename: int) -> None:
        if threading.current_thread() is original:
            held.set()
            gate.wait(5)  # renamed, counted, not yet fsynced
        real_sync(rename)

    monkeypatch.setattr(storage, "_sync_data_dir", sync_held_for_the_original)
    original.start()
    try:
        assert held.wait(5)
        retry = storage.write(chunk_of())
        durable_at_ack = storage._synced >= 1
    finally:
        gate.set()
        original.join(10)
    assert retry.resp == "DUPLICATE"
    assert durable_at_ack
    assert results[0].resp == "CREATED"


def test_write_succeeds_and_freezes_when_the_event_log_cannot_be_written(
    storage: Storage, full_log_volume: Callable[..., None]
) -> None:
    full_log_volume(storage.log)
    first = storage.write(chunk_of(t0=T0))
    second = storage.write(chunk_of(t0=T0 + 1), freeze_at=first.size * 2)
    assert (first.resp, second.resp) == ("CREATED", "CREATED")
    assert (first.frozen, second.frozen) == (False, True)
    assert storage.state.dstatus == FROZEN
    assert storage._synced >= 2  # both renames made durable
    assert storage.write(chunk_of(t0=T0)).resp == "DUPLICATE"
    assert storage.log.dropped >= 4  # two writes, the freeze, the duplicate
    assert disk_counters(storage) == (2, storage.stored_bytes)


def test_flush_succeeds_when_the_event_log_cannot_be_written(
    storage: Storage, full_log_volume: Callable[..., None]
) -> None:
    storage.write(chunk_of())
    storage.freeze_if("airflow")
    full_log_volume(storage.log)
    result = storage.flush(msg="train")
    assert (result.batch, result.stored_files) == (1, 1)
    assert (storage.state.batch, storage.state.dstatus) == (2, OPERATIONAL)
    assert storage.log.dropped == 1


def test_disk_full_is_reported_when_the_log_volume_is_full_too(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, full_log_volume: Callable[..., None]
) -> None:
    def full(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module, "write_temp", full)
    full_log_volume(storage.log)
    with pytest.raises(DiskFull):
        storage.write(chunk_of())
    assert storage.log.dropped == 1


def _hold_first_hash(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Make the first `hash_file` of a flush wait on ``gate``; ``held`` is set when it does."""
    gate, held = threading.Event(), threading.Event()
    real_hash = archive_module.hash_file

    def held_hash(path: Path) -> tuple[str, int]:
        if not held.is_set():
            held.set()
            gate.wait(5)
        return real_hash(path)

    monkeypatch.setattr(archive_module, "hash_file", held_hash)
    return gate, held


def test_reads_are_not_blocked_while_a_flush_hashes_the_batch(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        storage.write(chunk_of(t0=T0 + i))
    storage.freeze_if("airflow")
    gate, held = _hold_first_hash(monkeypatch)
    results = []
    flusher = threading.Thread(target=lambda: results.append(storage.flush()))
    answered = threading.Event()
    reader = threading.Thread(target=lambda: (storage.stat(), answered.set()))
    flusher.start()
    try:
        assert held.wait(5)
        reader.start()
        stat_answered_while_hashing = answered.wait(2)
    finally:
        gate.set()
        flusher.join(10)
        reader.join(10)
    assert stat_answered_while_hashing
    archive = storage.archive_dir / results[0].archive
    assert results[0].stored_files == 3
    for entry in results[0].manifest["files"]:
        assert entry["sha256"] == hashlib.sha256((archive / entry["name"]).read_bytes()).hexdigest()


def test_forced_flush_hashes_files_written_while_it_was_hashing(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage.write(chunk_of(t0=T0))
    gate, held = _hold_first_hash(monkeypatch)
    results = []
    flusher = threading.Thread(target=lambda: results.append(storage.flush(force=True)))
    flusher.start()
    try:
        assert held.wait(5)
        late = storage.write(chunk_of(t0=T0 + 1, seed=1))  # OPERATIONAL: still accepted
    finally:
        gate.set()
        flusher.join(10)
    assert late.batch == 1
    manifest = results[0].manifest
    archive = storage.archive_dir / results[0].archive
    assert late.file in {entry["name"] for entry in manifest["files"]}
    assert manifest["n_f"] == 2
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256((archive / entry["name"]).read_bytes()).hexdigest()
    assert chunk_files(storage.data_dir) == {}


def test_restart_removes_readyz_leftovers_from_every_folder(open_storage) -> None:  # type: ignore[no-untyped-def]
    first = open_storage()
    first.write(chunk_of())
    first.flush(force=True)
    folders = (first.data_dir, first.adm_dir, first.archive_dir)
    for folder in folders:
        (folder / ".readyz.k2j4h5g1.tmp").write_bytes(b"ready")  # check_writable killed midway
    (first.archive_dir / "keep.tmp").write_bytes(b"not ours")
    reopened = open_storage()
    assert [p.name for f in folders for p in f.iterdir() if p.name.startswith(".readyz.")] == []
    assert (reopened.archive_dir / "keep.tmp").exists()
    assert reopened.batches(limit=10)[1] == 1


@pytest.mark.parametrize(
    "manifest",
    [
        b"{}",
        b"[1, 2]",
        b'{"batch": 2, "archive": "000002-20260101T000000Z"}',
        b'{"batch": 2, "archive": "000002-20260101T000000Z", "files": [{"bytes": 3}]}',
        b'{"batch": 2, "archive": "000002-20260101T000000Z", "files": 7}',
    ],
    ids=["empty", "not an object", "no files", "file without name", "files not a list"],
)
def test_restart_skips_manifests_without_a_file_list(
    open_storage,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
    manifest: bytes,
) -> None:
    first = open_storage()
    first.write(chunk_of())
    first.flush(force=True)
    odd = first.archive_dir / "000002-20260101T000000Z"
    odd.mkdir()
    (odd / "manifest.json").write_bytes(manifest)
    reopened = open_storage()
    assert "manifest" in caplog.text
    assert reopened.state.batch == 3
    assert reopened.write(chunk_of()).resp == "DUPLICATE"  # the good manifest still counts
