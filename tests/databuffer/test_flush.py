"""Flush by batch, idempotent repeats, empty flushes, archived duplicates and the one freeze rule.

The engine without HTTP first, then the same cases through the Starlette app's ``/cleanall``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from databuffer import batch as batch_module
from databuffer.errors import NotFrozen, UnknownBatch
from databuffer.state import FROZEN, OPERATIONAL, freeze_reason
from databuffer.storage import Storage
from glitchflow_core.chunk import DEFAULT_CHANNEL, Chunk

DT = 1.0 / 4096
T0 = 1_126_259_462.0
JSON = {"content-type": "application/json"}


def chunk_of(t0: float = T0, n: int = 64, seed: int = 0) -> Chunk:
    h = np.random.default_rng(seed).standard_normal(n) * 1e-21
    return Chunk(channel=DEFAULT_CHANNEL, t0=t0, dt=DT, h=h)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> content)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def events(storage: Storage) -> list[str]:
    return [e["event"] for e in storage.log.read(10_000, 0)[0]]


# --------------------------------------------------------------------------- engine: flush


def test_flush_naming_the_current_frozen_batch_archives_it(storage: Storage) -> None:
    written = [storage.write(chunk_of(t0=T0 + i)) for i in range(3)]
    storage.freeze_if("airflow")
    result = storage.flush("train", batch=1)
    assert (result.batch, result.stored_files, result.already_flushed) == (1, 3, False)
    assert result.stored_bytes == sum(w.size for w in written)
    assert result.archive is not None and result.archive.startswith("000001-")
    assert (storage.archive_dir / result.archive / "manifest.json").is_file()
    assert (storage.state.batch, storage.state.dstatus, storage.stored_files) == (2, OPERATIONAL, 0)


def test_repeated_flush_of_an_archived_batch_answers_again_and_changes_nothing(
    storage: Storage,
) -> None:
    storage.write(chunk_of())
    storage.freeze_if("airflow")
    first = storage.flush("train", batch=1)
    storage.write(chunk_of(t0=T0 + 1))  # batch 2 fills meanwhile
    storage.freeze_if("airflow")
    before = (tree(storage.data_dir), tree(storage.archive_dir), tree(storage.adm_dir))
    state, log = storage.state, events(storage)

    again = storage.flush("train", batch=1)

    assert again.already_flushed is True
    assert (again.batch, again.archive) == (1, first.archive)
    assert (again.stored_files, again.stored_bytes) == (first.stored_files, first.stored_bytes)
    assert again.manifest == first.manifest
    assert (tree(storage.data_dir), tree(storage.archive_dir), tree(storage.adm_dir)) == before
    assert (storage.state, events(storage)) == (state, log)
    assert storage.stored_files == 1, "batch 2 is untouched, frozen as it was"


def test_repeated_flush_is_answered_after_a_restart(open_storage: Callable[..., Storage]) -> None:
    first = open_storage()
    first.write(chunk_of())
    flushed = first.flush(batch=1, force=True)
    first.close()
    again = open_storage().flush(batch=1)
    assert (again.archive, again.stored_files, again.already_flushed) == (flushed.archive, 1, True)


def test_flush_naming_the_current_batch_while_operational_is_not_frozen(storage: Storage) -> None:
    storage.write(chunk_of())
    with pytest.raises(NotFrozen):
        storage.flush(batch=1)
    assert (storage.stored_files, storage.state.dstatus) == (1, OPERATIONAL)
    assert list(storage.archive_dir.iterdir()) == []


@pytest.mark.parametrize("batch", [2, 99])
def test_flush_naming_a_batch_that_never_existed_is_unknown(storage: Storage, batch: int) -> None:
    storage.write(chunk_of())
    storage.freeze_if("airflow")
    with pytest.raises(UnknownBatch) as info:
        storage.flush(batch=batch)
    assert info.value.batch == batch
    assert f"batch {batch} " in info.value.detail
    assert (storage.stored_files, storage.state.dstatus) == (1, FROZEN)


def test_flush_naming_a_past_batch_whose_archive_is_gone_is_unknown(storage: Storage) -> None:
    storage.write(chunk_of())
    archived = storage.flush(force=True)
    assert archived.archive is not None
    shutil.rmtree(storage.archive_dir / archived.archive)
    with pytest.raises(UnknownBatch) as info:
        storage.flush(batch=1)
    assert info.value.batch == 1


def test_forced_flush_without_a_batch_archives_the_partial_batch(storage: Storage) -> None:
    storage.write(chunk_of())
    result = storage.flush(force=True)
    assert (result.batch, result.stored_files) == (1, 1)
    assert result.manifest is not None and result.manifest["forced"] is True
    assert (storage.state.batch, storage.stored_files) == (2, 0)


@pytest.mark.parametrize("frozen", [False, True], ids=["operational", "frozen"])
def test_flush_of_an_empty_buffer_archives_nothing(
    open_storage: Callable[..., Storage], frozen: bool
) -> None:
    storage = open_storage()
    if frozen:
        storage.freeze_if("airflow")  # an unconditional freeze of nothing
    result = storage.flush("see you space cowboy", force=not frozen)
    assert (result.batch, result.archive, result.manifest) == (1, None, None)
    assert (result.stored_files, result.stored_bytes, result.already_flushed) == (0, 0, False)
    assert list(storage.archive_dir.iterdir()) == []
    assert (storage.state.dstatus, storage.state.batch) == (OPERATIONAL, 1)
    assert storage.write(chunk_of()).batch == 1
    storage.close()
    assert open_storage().state.dstatus == OPERATIONAL, "the unfreeze is saved"


def test_flush_without_batch_or_force_while_operational_is_not_frozen(storage: Storage) -> None:
    with pytest.raises(NotFrozen):
        storage.flush()


# --------------------------------------------------------------------------- engine: duplicates


def test_duplicate_of_an_archived_chunk_names_the_batch_holding_it(storage: Storage) -> None:
    storage.write(chunk_of(t0=T0))
    batch_1 = storage.flush(force=True)
    storage.write(chunk_of(t0=T0 + 1))
    storage.flush(force=True)
    storage.write(chunk_of(t0=T0 + 2))  # in the current batch, 3

    old = storage.write(chunk_of(t0=T0))
    assert (old.resp, old.batch, old.archive) == ("DUPLICATE", 1, batch_1.archive)
    assert old.as_json() | {"archived": True, "archive": batch_1.archive} == old.as_json()
    live = storage.write(chunk_of(t0=T0 + 2))
    assert (live.resp, live.batch, live.archive) == ("DUPLICATE", 3, None)
    assert live.as_json()["archived"] is False and "archive" not in live.as_json()
    assert storage.stored_files == 1


# --------------------------------------------------------------------------- the freeze rule


@pytest.mark.parametrize(
    ("stored", "limit", "age", "max_age", "due"),
    [
        (99, 100, 1.0, None, False),
        (100, 100, 1.0, None, True),
        (101, 100, 1.0, None, True),
        (0, None, 59.0, 60.0, False),
        (0, None, 60.0, 60.0, True),
        (0, None, -1.0, 0.5, False),  # an empty batch never ages
        (5, None, 1.0, None, False),
    ],
)
def test_freeze_reason_table(
    stored: int, limit: int | None, age: float, max_age: float | None, due: bool
) -> None:
    assert (freeze_reason(stored, limit, age, max_age) is not None) is due


def _fill_to(storage: Storage, limit_from_size: Callable[[int], int], path: str) -> bool:
    """Write one chunk, then apply the size rule by the given path; True when frozen."""
    size = len(chunk_of().canonical_bytes())
    limit = limit_from_size(size)
    if path == "write":
        return storage.write(chunk_of(), freeze_at=limit).frozen
    storage.write(chunk_of())
    return storage.freeze_if("airflow", min_size=limit).frozen


@pytest.mark.parametrize("path", ["write", "train check"])
def test_write_and_train_check_freeze_at_the_same_fill(storage: Storage, path: str) -> None:
    assert _fill_to(storage, lambda size: size, path) is True
    assert storage.state.dstatus == FROZEN
    assert (
        storage.state.frozen_reason == f"buff_size {storage.stored_bytes} >= {storage.stored_bytes}"
    )


@pytest.mark.parametrize("path", ["write", "train check"])
def test_write_and_train_check_wait_just_below_the_fill(storage: Storage, path: str) -> None:
    assert _fill_to(storage, lambda size: size + 1, path) is False
    assert storage.state.dstatus == OPERATIONAL


@pytest.mark.parametrize("path", ["write", "train check"])
def test_write_and_train_check_both_ask_the_one_rule(
    storage: Storage, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    asked: list[tuple[Any, ...]] = []

    def never(*args: Any) -> None:
        asked.append(args)

    monkeypatch.setattr(batch_module, "freeze_reason", never)
    assert _fill_to(storage, lambda size: size, path) is False
    assert storage.state.dstatus == OPERATIONAL
    # The last question was the size rule at the fill (a plain write asks it too, with no limit).
    assert asked[-1][:2] == (storage.stored_bytes, storage.stored_bytes)


# --------------------------------------------------------------------------- HTTP


async def send(client: httpx.AsyncClient, t0: float = T0) -> dict[str, Any]:
    response = await client.post("/sendF", content=chunk_of(t0=t0).canonical_bytes(), headers=JSON)
    assert response.status_code in (200, 201)
    return response.json()


async def freeze(client: httpx.AsyncClient) -> None:
    await client.post("/upddsc", json={"dstatus": "FROZEN", "user": "airflow"})


def archive_root(client: httpx.AsyncClient) -> Path:
    return Path(client.app.state.settings.archive_root)  # type: ignore[attr-defined]


async def test_http_cleanall_naming_the_frozen_batch_then_again(client: httpx.AsyncClient) -> None:
    written = await send(client)
    await freeze(client)
    first = await client.post("/cleanall", json={"msg": "dag", "batch": 1})
    assert first.status_code == 200
    doc = first.json()
    assert (doc["resp"], doc["batch"], doc["n_f"], doc["bt_wrt"]) == (
        "CLEANED",
        1,
        1,
        written["bytes"],
    )
    assert doc["already_flushed"] is False and doc["archive"].startswith("000001-")
    listing = sorted(p.name for p in archive_root(client).iterdir())

    again = await client.post("/cleanall", json={"msg": "dag", "batch": 1})
    assert again.status_code == 200
    assert again.json() == {**doc, "already_flushed": True}
    assert sorted(p.name for p in archive_root(client).iterdir()) == listing
    stat = (await client.get("/stat")).json()
    assert stat == {"n_itm": 0, "buff_size": 0, "batch": 2, "dstatus": "OPERATIONAL"}
    assert "glitchflow_flushes_total 1.0" in (await client.get("/metrics")).text


async def test_http_cleanall_naming_the_operational_batch_is_409(client: httpx.AsyncClient) -> None:
    await send(client)
    response = await client.post("/cleanall", json={"msg": "dag", "batch": 1})
    assert (response.status_code, response.json()) == (409, {"resp": "NOT_FROZEN"})
    assert (await client.get("/stat")).json()["n_itm"] == 1


async def test_http_cleanall_naming_an_unknown_batch_is_404(client: httpx.AsyncClient) -> None:
    await send(client)
    await freeze(client)
    response = await client.post("/cleanall", json={"msg": "dag", "batch": 7})
    assert response.status_code == 404
    doc = response.json()
    assert (doc["resp"], doc["batch"]) == ("UNKNOWN_BATCH", 7)
    assert "batch 7" in doc["detail"]
    assert (await client.get("/stat")).json()["dstatus"] == "FROZEN"


@pytest.mark.parametrize("batch", ["1", True, 0, -1, 1.5, [1]])
async def test_http_cleanall_refuses_a_batch_that_is_not_a_number(
    client: httpx.AsyncClient, batch: object
) -> None:
    await send(client)
    await freeze(client)
    response = await client.post("/cleanall", json={"batch": batch})
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == "batch"
    assert (await client.get("/stat")).json()["n_itm"] == 1


async def test_http_forced_cleanall_of_an_empty_buffer(client: httpx.AsyncClient) -> None:
    response = await client.post("/cleanall", json={"msg": "see you space cowboy", "force": True})
    assert response.status_code == 200
    doc = response.json()
    assert (doc["resp"], doc["archive"], doc["n_f"], doc["bt_wrt"]) == ("CLEANED", None, 0, 0)
    assert doc["manifest"] is None
    assert list(archive_root(client).iterdir()) == []
    assert (await client.get("/dstat")).json()["dstatus"] == "OPERATIONAL"


async def test_http_forced_cleanall_without_batch_archives_a_partial_batch(
    client: httpx.AsyncClient,
) -> None:
    await send(client)
    doc = (await client.post("/cleanall", json={"msg": "x", "force": True, "batch": None})).json()
    assert (doc["resp"], doc["batch"], doc["n_f"]) == ("CLEANED", 1, 1)
    assert doc["manifest"]["forced"] is True
    assert (archive_root(client) / doc["archive"] / "manifest.json").is_file()


async def test_http_duplicate_of_an_archived_chunk_names_its_batch(
    client: httpx.AsyncClient,
) -> None:
    await send(client)
    flushed = (await client.post("/cleanall", json={"force": True})).json()
    response = await client.post("/sendF", content=chunk_of().canonical_bytes(), headers=JSON)
    assert response.status_code == 200
    doc = response.json()
    assert (doc["resp"], doc["batch"], doc["archived"]) == ("DUPLICATE", 1, True)
    assert doc["archive"] == flushed["archive"]
    assert (await client.get("/stat")).json()["n_itm"] == 0
