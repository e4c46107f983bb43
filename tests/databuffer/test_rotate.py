"""Rotate mode in the engine: the filling write seals the batch, ingest goes on in the next one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from databuffer.errors import Conflict, Frozen
from databuffer.storage import Storage
from glitchflow_core.chunk import Chunk, parse_chunk

CHANNEL = "H1:GWOSC-4KHZ_R1_STRAIN"


def chunk(i: int, n: int = 8, value: float = 1.0) -> Chunk:
    body = {"h": [value + i] * n, "t": [1_000_000_000.0 + i, 1.0 / n], "channel": CHANNEL}
    return parse_chunk(orjson.dumps(body), 10_000)


SIZE = len(chunk(0).canonical_bytes())
FULL = 3 * SIZE  # a batch is full with its third chunk


def fill(storage: Storage, first: int, count: int, max_sealed: int = 4) -> list[int]:
    """Write ``count`` chunks from ``first`` in rotate mode; the batch each went into."""
    return [
        storage.write(chunk(i), freeze_at=FULL, max_sealed=max_sealed).batch
        for i in range(first, first + count)
    ]


def sealed_files(storage: Storage) -> dict[int, list[str]]:
    return {sealed.batch: sealed.index.names() for sealed in storage.sealed_batches()}


def test_filling_write_seals_the_batch_and_the_next_chunk_opens_a_new_one(
    storage: Storage,
) -> None:
    results = [storage.write(chunk(i), freeze_at=FULL, max_sealed=4) for i in range(4)]
    assert [(r.batch, r.frozen, r.sealed) for r in results] == [
        (1, False, False),
        (1, False, False),
        (1, True, True),
        (2, False, False),
    ]
    stat = storage.stat()
    assert (stat.batch, stat.dstatus, stat.stored_files, stat.stored_bytes) == (
        2,
        "OPERATIONAL",
        1,
        SIZE,
    )
    assert sealed_files(storage) == {1: [r.file for r in results[:3]]}
    assert storage.names(10) == ([results[3].file], 1)


def test_train_answers_for_the_oldest_sealed_batch_with_its_archive(storage: Storage) -> None:
    fill(storage, 0, 7)
    answer = storage.freeze_if("airflow", FULL, None, 4)
    assert (answer.frozen, answer.froze_now, answer.sealed) == (True, False, 2)
    assert (answer.stat.batch, answer.stat.stored_files, answer.stat.stored_bytes) == (
        1,
        3,
        FULL,
    )
    flushed = storage.flush("train")
    assert (flushed.batch, flushed.archive, flushed.stored_files) == (1, answer.archive, 3)
    assert (storage.archive_dir / answer.archive / "manifest.json").is_file()
    assert storage.freeze_if("airflow", FULL, None, 4).stat.batch == 2
    assert storage.stat().batch == 3  # the batch being filled did not move


def test_train_seals_a_full_batch_and_waits_on_a_partial_one(storage: Storage) -> None:
    storage.write(chunk(0), max_sealed=4)
    waiting = storage.freeze_if("airflow", FULL, None, 4)
    assert (waiting.frozen, waiting.stat.batch, waiting.stat.dstatus) == (
        False,
        1,
        "OPERATIONAL",
    )
    storage.write(chunk(1))
    storage.write(chunk(2))  # full, but these writes carried no policy
    sealed = storage.freeze_if("airflow", FULL, None, 4)
    assert (sealed.frozen, sealed.froze_now, sealed.stat.batch) == (True, True, 1)
    assert storage.stat().dstatus == "OPERATIONAL"


def test_flush_named_sealed_batch_takes_only_it_and_is_idempotent(storage: Storage) -> None:
    fill(storage, 0, 7)
    second = storage.flush("b2", batch=2)
    assert (second.batch, second.already_flushed) == (2, False)
    assert list(sealed_files(storage)) == [1]
    again = storage.flush("b2", batch=2)
    assert (again.batch, again.archive, again.already_flushed) == (2, second.archive, True)
    assert storage.flush("next").batch == 1
    assert sealed_files(storage) == {}


def test_full_queue_refuses_writes_until_a_flush_makes_room(storage: Storage) -> None:
    assert fill(storage, 0, 6, max_sealed=1) == [1, 1, 1, 2, 2, 2]
    assert storage.state.dstatus == "FROZEN" and storage.state.awaiting_seal
    with pytest.raises(Frozen) as refused:
        storage.write(chunk(6), freeze_at=FULL, max_sealed=1)
    assert refused.value.batch == 2
    storage.flush("room")
    # The batch that waited is sealed by the flush; writes go into batch 3 at once.
    assert list(sealed_files(storage)) == [2]
    assert storage.write(chunk(6), freeze_at=FULL, max_sealed=1).batch == 3
    pauses = storage.describe()["ingest_pause"]["batches"]
    assert [p["batch"] for p in pauses] == [2, 1]
    assert pauses[0]["seconds"] > 0 and pauses[1]["seconds"] == 0


def test_retry_of_a_sealed_chunk_is_a_duplicate_naming_its_batch(storage: Storage) -> None:
    fill(storage, 0, 4)
    again = storage.write(chunk(1), freeze_at=FULL, max_sealed=4)
    assert (again.resp, again.batch, again.sealed, again.archive) == ("DUPLICATE", 1, True, None)
    assert storage.stat().stored_files == 1


def test_overlap_with_a_sealed_chunk_is_a_conflict(storage: Storage) -> None:
    fill(storage, 0, 4)
    with pytest.raises(Conflict):
        storage.write(chunk(1, value=-5.0), freeze_at=FULL, max_sealed=4)
    shifted = parse_chunk(
        orjson.dumps({"h": [0.0] * 8, "t": [1_000_000_000.5, 1.0 / 8], "channel": CHANNEL}), 100
    )
    with pytest.raises(Conflict):
        storage.write(shifted, freeze_at=FULL, max_sealed=4)


def test_restart_rebuilds_the_queue_and_the_batch_being_filled(
    open_storage: Callable[..., Storage],
) -> None:
    first = open_storage()
    fill(first, 0, 8)
    before = (sealed_files(first), first.names(100), first.stat())
    first.close()
    again = open_storage()
    assert (sealed_files(again), again.names(100), again.stat()) == before
    # The data folder holds exactly the batch being filled.
    on_disk = sorted(p.name for p in again.data_dir.iterdir())
    assert (on_disk, len(on_disk)) == (again.names(100)[0], again.stat().stored_files)
    assert again.write(chunk(8), freeze_at=FULL, max_sealed=4).sealed


def test_crash_between_seal_record_and_state_keeps_the_batch_sealed(
    open_storage: Callable[..., Storage], tmp_path: Path
) -> None:
    first = open_storage()
    fill(first, 0, 3)
    first.close()
    # As if the process died after writing the record, before saving the next batch's state.
    (tmp_path / "adm" / "Dsstat.json").write_bytes(orjson.dumps({"batch": 1}))
    again = open_storage()
    assert list(sealed_files(again)) == [1]
    assert (again.stat().batch, again.stat().stored_files) == (2, 0)


def test_crash_after_archiving_a_sealed_batch_drops_its_record(
    open_storage: Callable[..., Storage], tmp_path: Path
) -> None:
    first = open_storage()
    fill(first, 0, 3)
    folder = tmp_path / "archive" / "sealed" / "000001"
    record = (folder / "sealed.json").read_bytes()
    first.flush("x")
    first.close()
    # As if the process died after the archive's rename, before removing the sealed folder.
    folder.mkdir()
    (folder / "sealed.json").write_bytes(record)
    again = open_storage()
    assert sealed_files(again) == {}
    assert not folder.exists()
    assert again.stat().batch == 2


def test_crash_in_the_middle_of_a_sealed_flush_puts_the_files_back(
    open_storage: Callable[..., Storage], tmp_path: Path
) -> None:
    first = open_storage()
    fill(first, 0, 3)
    names = sealed_files(first)[1]
    first.close()
    staging = tmp_path / "archive" / ".000001-20260101T000000Z.partial"
    staging.mkdir()
    sealed = tmp_path / "archive" / "sealed" / "000001"
    for name in names[:2]:
        (sealed / name).rename(staging / name)
    again = open_storage()
    assert sealed_files(again) == {1: names}
    assert sorted(p.name for p in sealed.iterdir() if p.name != "sealed.json") == names
    assert again.flush("x").stored_files == 3


def test_concurrent_writers_each_chunk_in_exactly_one_batch(storage: Storage) -> None:
    created: dict[str, int] = {}
    lock = threading.Lock()

    def writer(start: int) -> None:
        for i in range(start, 160, 16):
            result = storage.write(chunk(i), freeze_at=FULL, max_sealed=1000)
            with lock:
                created[result.file] = result.batch

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    where: dict[str, list[int]] = {}
    for batch, names in sealed_files(storage).items():
        for name in names:
            where.setdefault(name, []).append(batch)
    for name in storage.names(1000)[0]:
        where.setdefault(name, []).append(storage.stat().batch)
    assert {name: batches[0] for name, batches in where.items()} == created
    assert all(len(batches) == 1 for batches in where.values())
    # Each sealed batch is full, and over it by less than its last chunk.
    largest = max(len(chunk(i).canonical_bytes()) for i in range(160))
    sizes = [sealed.stored_bytes for sealed in storage.sealed_batches()]
    assert len(sizes) > 40
    assert all(FULL <= size < FULL + largest for size in sizes), sizes


def test_hold_mode_still_freezes_in_place(storage: Storage) -> None:
    results = [storage.write(chunk(i), freeze_at=FULL) for i in range(3)]
    assert (results[-1].frozen, results[-1].sealed) == (True, False)
    assert storage.sealed_batches() == []
    with pytest.raises(Frozen):
        storage.write(chunk(3), freeze_at=FULL)


# --------------------------------------------------------------------------- over HTTP

JSON = {"content-type": "application/json"}


def body(i: int) -> bytes:
    return chunk(i).canonical_bytes()


async def test_http_rotate_seals_answers_train_and_refuses_past_max_sealed(client) -> None:
    params = {"freeze_at": str(FULL), "mode": "rotate", "max_sealed": "1"}
    answers = [
        (await client.post("/sendF", params=params, content=body(i), headers=JSON)).json()
        for i in range(6)
    ]
    assert [(a["batch"], a["sealed"]) for a in answers] == [
        (1, False),
        (1, False),
        (1, True),
        (2, False),
        (2, False),
        (2, False),
    ]
    refused = await client.post("/sendF", params=params, content=body(6), headers=JSON)
    assert (refused.status_code, refused.json()["resp"]) == (503, "FROZEN")
    assert refused.headers["retry-after"] == "1"
    desc = (await client.get("/dstat")).json()
    assert (desc["dstatus"], [s["batch"] for s in desc["sealed"]]) == ("FROZEN", [1])
    assert desc["ingest_pause"]["paused"] is True
    train = await client.post(
        "/upddsc",
        json={"dstatus": "FROZEN", "user": "airflow", "if_size_at_least": FULL, "mode": "rotate"},
    )
    assert train.json() == {
        "resp": "FROZEN",
        "n_itm": 3,
        "buff_size": FULL,
        "batch": 1,
        "archive": desc["sealed"][0]["archive"],
        "sealed": 1,
    }
    clean = (await client.post("/cleanall", json={"msg": "dag"})).json()
    assert (clean["batch"], clean["archive"]) == (1, desc["sealed"][0]["archive"])
    again = await client.post("/sendF", params=params, content=body(6), headers=JSON)
    assert (again.status_code, again.json()["batch"]) == (201, 3)
    listing = (await client.get("/batches")).json()
    assert [s["batch"] for s in listing["sealed"]] == [2]
    assert [m["batch"] for m in listing["batches"]] == [1]
    metrics = (await client.get("/metrics")).text
    assert "glitchflow_sealed_batches 1.0" in metrics
    assert "glitchflow_ingest_paused 0.0" in metrics
    assert "glitchflow_ingest_pause_per_batch_seconds_count 2.0" in metrics


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"mode": "sideways"}, "mode"),
        ({"mode": "rotate", "max_sealed": "0"}, "max_sealed"),
        ({"mode": "rotate", "max_sealed": "x"}, "max_sealed"),
    ],
)
async def test_http_bad_freeze_mode_is_refused_naming_the_field(client, params, field) -> None:
    answer = await client.post("/sendF", params=params, content=body(0), headers=JSON)
    assert (answer.status_code, answer.json()["detail"]["field"]) == (422, field)
    assert (await client.get("/stat")).json()["n_itm"] == 0
