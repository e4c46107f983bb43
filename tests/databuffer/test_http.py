"""The HTTP service built by the app factory, every endpoint, through httpx's ASGI transport."""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from databuffer import storage as storage_module
from databuffer.naming import chunk_filename
from databuffer.settings import Settings

JSON = {"content-type": "application/json"}
DT = 1.0 / 4096
T0 = 1_126_259_462.0
CHANNEL = "L1:GWOSC-4KHZ_R1_STRAIN"
TOKEN = "a-long-service-token-for-tests"

ClientFactory = Callable[..., httpx.AsyncClient]


def body(t0: float = T0, n: int = 64, seed: int = 0, **extra: object) -> bytes:
    h = (np.random.default_rng(seed).standard_normal(n) * 1e-21).tolist()
    return orjson.dumps({"h": h, "t": [t0, DT], **extra})


def data_files(client: httpx.AsyncClient) -> list[str]:
    folder = client.app.state.settings.data_root  # type: ignore[attr-defined]
    return sorted(p.name for p in Path(folder).iterdir())


async def send(
    client: httpx.AsyncClient, content: bytes, query: str = "", **headers: str
) -> httpx.Response:
    return await client.post(f"/sendF{query}", content=content, headers={**JSON, **headers})


# --------------------------------------------------------------------------- /sendF


async def test_send_creates_and_answers_counters(client: httpx.AsyncClient) -> None:
    response = await send(client, body(channel=CHANNEL))
    assert response.status_code == 201
    doc = response.json()
    assert doc["resp"] == "CREATED"
    assert doc["file"].startswith("L1%3AGWOSC-4KHZ_R1_STRAIN__01126259462000000000__64__")
    assert (doc["n_itm"], doc["batch"], doc["frozen"]) == (1, 1, False)
    assert doc["buff_size"] == doc["bytes"] > 0
    assert data_files(client) == [doc["file"]]


async def test_send_same_chunk_again_is_duplicate(client: httpx.AsyncClient) -> None:
    first = (await send(client, body())).json()
    again = await send(client, body())
    assert again.status_code == 200
    assert again.json()["resp"] == "DUPLICATE"
    assert again.json()["file"] == first["file"]
    stat = (await client.get("/stat")).json()
    assert (stat["n_itm"], stat["buff_size"]) == (1, first["bytes"])


async def test_send_overlapping_other_samples_is_conflict(client: httpx.AsyncClient) -> None:
    await send(client, body())
    response = await send(client, body(t0=T0 + 10 * DT, seed=1))
    assert response.status_code == 409
    assert response.json()["resp"] == "CONFLICT"
    assert "overlaps" in response.json()["detail"]
    assert len(data_files(client)) == 1


async def test_send_reaching_freeze_at_freezes_and_next_is_refused(
    client: httpx.AsyncClient,
) -> None:
    created = await send(client, body(), "?freeze_at=1kB")
    assert created.json()["frozen"] is True
    refused = await send(client, body(t0=T0 + 1))
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json() == {"resp": "FROZEN", "batch": 1}
    assert len(data_files(client)) == 1
    dstat = (await client.get("/dstat")).json()
    assert dstat["dstatus"] == "FROZEN" and "1000" in dstat["frozen_reason"]


async def test_send_beyond_inflight_limit_is_busy(make_client: ClientFactory) -> None:
    client = make_client(max_inflight=2)
    client.app.state.service.inflight = 2  # type: ignore[attr-defined]
    response = await send(client, body())
    assert response.status_code == 503
    assert response.json() == {"resp": "BUSY"}
    assert "retry-after" in response.headers
    assert data_files(client) == []


async def test_send_on_full_disk_is_507(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module, "write_temp", full)
    response = await send(client, body())
    assert response.status_code == 507
    assert response.json() == {"resp": "DISK_FULL"}


def _huge() -> bytes:
    return body(n=40)  # with max_body=500 below


BAD_INPUT = [
    # (name, content, headers, query, status, field)
    ("not json", b"{h: 1}", JSON, "", 422, "body"),
    ("not an object", b'"x"', JSON, "", 422, "body"),
    ("missing h", b'{"t": [1, 0.1]}', JSON, "", 422, "h"),
    ("missing t", b'{"h": [1.0]}', JSON, "", 422, "t"),
    ("empty h", b'{"h": [], "t": [1, 0.1]}', JSON, "", 422, "h"),
    ("string samples", b'{"h": ["1.0"], "t": [1, 0.1]}', JSON, "", 422, "h"),
    ("nested samples", b'{"h": [[1.0]], "t": [1, 0.1]}', JSON, "", 422, "h"),
    ("overflowing sample", b'{"h": [1e999], "t": [1, 0.1]}', JSON, "", 422, "body"),
    ("t of three", b'{"h": [1.0], "t": [1, 0.1, 2]}', JSON, "", 422, "t"),
    ("dt zero", b'{"h": [1.0], "t": [1, 0]}', JSON, "", 422, "t"),
    ("negative t0", b'{"h": [1.0], "t": [-1, 0.1]}', JSON, "", 422, "t"),
    ("t0 too large", b'{"h": [1.0], "t": [1e12, 0.1]}', JSON, "", 422, "t"),
    ("boolean t0", b'{"h": [1.0], "t": [true, 0.1]}', JSON, "", 422, "t"),
    ("bad channel", b'{"h": [1.0], "t": [1, 0.1], "channel": "../etc"}', JSON, "", 422, "channel"),
    ("unknown field", b'{"h": [1.0], "t": [1, 0.1], "x": 1}', JSON, "", 422, "x"),
    ("too many samples", b'{"h": [1,2,3,4,5,6,7,8,9,10,11], "t": [1, 0.1]}', JSON, "", 422, "h"),
    ("body too large", _huge(), JSON, "", 413, "body"),
    (
        "text content",
        b'{"h": [1.0], "t": [1, 0.1]}',
        {"content-type": "text/plain"},
        "",
        415,
        "content-type",
    ),
    (
        "no content type",
        b'{"h": [1.0], "t": [1, 0.1]}',
        {"content-type": ""},
        "",
        415,
        "content-type",
    ),
    ("bad freeze_at", b'{"h": [1.0], "t": [1, 0.1]}', JSON, "?freeze_at=lots", 422, "freeze_at"),
    ("negative max_age", b'{"h": [1.0], "t": [1, 0.1]}', JSON, "?max_age=-5", 422, "max_age"),
]


@pytest.mark.parametrize(
    ("content", "headers", "query", "status", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    make_client: ClientFactory,
    content: bytes,
    headers: dict[str, str],
    query: str,
    status: int,
    field: str,
) -> None:
    client = make_client(max_samples=10, max_body=500)
    response = await client.post(f"/sendF{query}", content=content, headers=headers)
    assert response.status_code == status
    assert response.json()["resp"] == "INVALID"
    assert response.json()["detail"]["field"] == field
    assert response.json()["detail"]["reason"]
    assert data_files(client) == []
    stat = (await client.get("/stat")).json()
    assert (stat["n_itm"], stat["buff_size"]) == (0, 0)
    metrics = (await client.get("/metrics")).text
    assert "glitchflow_ingested_chunks_total 0.0" in metrics


async def test_streamed_body_over_the_limit_is_413_without_content_length(
    make_client: ClientFactory,
) -> None:
    client = make_client(max_body=1000)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 200

    response = await client.post("/sendF", content=chunks(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["detail"]["field"] == "body"
    assert data_files(client) == []


# --------------------------------------------------------------------------- tokens


async def test_posts_need_the_service_token_when_configured(make_client: ClientFactory) -> None:
    client = make_client(service_token=TOKEN)
    assert (await send(client, body())).status_code == 401
    assert (await send(client, body(), authorization="Bearer wrong-token-0000")).status_code == 401
    ok = await send(client, body(), authorization=f"Bearer {TOKEN}")
    assert ok.status_code == 201
    freeze = await client.post("/upddsc", json={"dstatus": "FROZEN", "user": "airflow"})
    assert freeze.status_code == 401
    assert (await client.post("/cleanall", json={"force": True})).status_code == 401
    # Counters, state and metrics stay open; listings and logs need the token; none shows it.
    for path in ("/stat", "/dstat", "/metrics"):
        response = await client.get(path)
        assert response.status_code == 200
        assert TOKEN not in response.text
    for path in ("/dumpF", "/dumpLogF", "/channels", "/batches"):
        assert (await client.get(path)).status_code == 401
        response = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        assert TOKEN not in response.text
    assert TOKEN not in "".join(
        p.read_text()
        for p in Path(client.app.state.settings.adm_root).iterdir()  # type: ignore[attr-defined]
    )


# --------------------------------------------------------------------------- admin


async def test_upddsc_waits_below_size_then_freezes(client: httpx.AsyncClient) -> None:
    written = (await send(client, body())).json()
    waiting = await client.post(
        "/upddsc", json={"dstatus": "FROZEN", "user": "airflow", "if_size_at_least": 10**9}
    )
    assert waiting.json() == {
        "resp": "WAITING",
        "n_itm": 1,
        "buff_size": written["bytes"],
        "batch": 1,
    }
    frozen = await client.post(
        "/upddsc", json={"dstatus": "FROZEN", "user": "airflow", "if_size_at_least": 10}
    )
    assert frozen.json()["resp"] == "FROZEN"
    dstat = (await client.get("/dstat")).json()
    assert (dstat["dstatus"], dstat["user"], dstat["batch"]) == ("FROZEN", "airflow", 1)
    state_keys = {"dstatus", "user", "batch", "batch_started", "frozen_at", "frozen_reason"}
    # Plus the sealed queue and the ingest pause (rotate mode), nothing else (no token).
    assert set(dstat) == state_keys | {"sealed", "ingest_pause"}
    assert (dstat["sealed"], dstat["ingest_pause"]["paused"]) == ([], True)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"dstatus": "OPERATIONAL", "user": "airflow"}, "dstatus"),
        ({"user": "airflow"}, "dstatus"),
        ({"dstatus": "FROZEN"}, "user"),
        ({"dstatus": "FROZEN", "user": 7}, "user"),
        ({"dstatus": "FROZEN", "user": "a", "if_size_at_least": -1}, "if_size_at_least"),
        ({"dstatus": "FROZEN", "user": "a", "max_age": "soon"}, "max_age"),
    ],
)
async def test_upddsc_bad_input_is_422_and_changes_nothing(
    client: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    response = await client.post("/upddsc", json=payload)
    assert response.status_code == 422
    assert response.json()["detail"]["field"] == field
    assert (await client.get("/dstat")).json()["dstatus"] == "OPERATIONAL"


async def test_cleanall_refused_when_operational_unless_forced(client: httpx.AsyncClient) -> None:
    await send(client, body())
    refused = await client.post("/cleanall", json={"msg": "go"})
    assert (refused.status_code, refused.json()) == (409, {"resp": "NOT_FROZEN"})
    assert len(data_files(client)) == 1
    forced = await client.post("/cleanall", json={"msg": "go", "force": True})
    assert forced.status_code == 200
    assert forced.json()["n_f"] == 1


async def test_cleanall_archives_the_frozen_batch(client: httpx.AsyncClient) -> None:
    files = [(await send(client, body(t0=T0 + i))).json()["file"] for i in range(3)]
    await client.post("/upddsc", json={"dstatus": "FROZEN", "user": "airflow"})
    cleaned = await client.post("/cleanall", json={"msg": "retrain"})
    assert cleaned.status_code == 200
    doc = cleaned.json()
    assert (doc["resp"], doc["batch"], doc["n_f"]) == ("CLEANED", 1, 3)
    assert doc["archive"].startswith("000001-")
    assert "files" not in doc["manifest"], "the file list stays in the archive"
    assert doc["manifest"]["n_f"] == 3
    archive = Path(client.app.state.settings.archive_root) / doc["archive"]  # type: ignore[attr-defined]
    on_disk = orjson.loads((archive / "manifest.json").read_bytes())
    assert sorted(f["name"] for f in on_disk["files"]) == sorted(files)
    assert sorted(p.name for p in archive.iterdir()) == sorted([*files, "manifest.json"])
    stat = (await client.get("/stat")).json()
    assert stat == {"n_itm": 0, "buff_size": 0, "batch": 2, "dstatus": "OPERATIONAL"}
    listed = (await client.get("/batches")).json()
    assert listed["total"] == 1
    assert listed["batches"][0]["archive"] == doc["archive"]
    metrics = (await client.get("/metrics")).text
    assert "glitchflow_flushes_total 1.0" in metrics
    assert "glitchflow_freezes_total 1.0" in metrics


async def test_cleanall_failure_is_reported_and_changes_nothing(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await send(client, body())
    await client.post("/upddsc", json={"dstatus": "FROZEN", "user": "airflow"})
    before = data_files(client)
    real_replace = os.replace

    def failing(src: object, dst: object) -> None:
        if str(src).endswith(".partial"):
            raise OSError(errno.EIO, "injected")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    response = await client.post("/cleanall", json={})
    monkeypatch.undo()
    assert response.status_code == 500
    assert response.json()["resp"] == "ARCHIVE_FAILED"
    assert data_files(client) == before
    assert (await client.get("/stat")).json()["dstatus"] == "FROZEN"
    assert (await client.get("/batches")).json()["total"] == 0


# --------------------------------------------------------------------------- reads


async def test_dumpf_pages_names_in_order(client: httpx.AsyncClient) -> None:
    for i in (4, 0, 2, 1, 3):
        await send(client, body(t0=T0 + i))
    everything = (await client.get("/dumpF")).json()
    assert everything["total"] == 5
    assert everything["nmlist"] == sorted(everything["nmlist"])
    page = (await client.get("/dumpF", params={"limit": 2, "offset": 1})).json()
    assert page == {"nmlist": everything["nmlist"][1:3], "total": 5, "offset": 1, "limit": 2}
    bad = await client.get("/dumpF", params={"limit": "many"})
    assert (bad.status_code, bad.json()["detail"]["field"]) == (422, "limit")


async def test_dumplogf_pages_events_oldest_first(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await send(client, body(t0=T0 + i))
    await send(client, body(t0=T0))
    log = (await client.get("/dumpLogF", params={"limit": 100})).json()
    kinds = [e["event"] for e in log["log"]]
    assert kinds == ["start", "write", "write", "write", "duplicate"]
    page = (await client.get("/dumpLogF", params={"limit": 2, "offset": 3})).json()
    assert [e["event"] for e in page["log"]] == ["write", "duplicate"]
    assert page["total"] == 5


async def test_channels_report_coverage(client: httpx.AsyncClient) -> None:
    for i in (0, 2):
        await send(client, body(t0=T0 + i, n=4096, channel=CHANNEL))
    channels = (await client.get("/channels")).json()["channels"]
    assert channels[CHANNEL]["segments"] == [[T0, T0 + 1], [T0 + 2, T0 + 3]]
    assert channels[CHANNEL]["gaps"] == [[T0 + 1, T0 + 2]]
    assert channels[CHANNEL]["n_itm"] == 2


async def test_health_ready_and_metrics(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (await client.get("/healthz")).json() == {"resp": "OK"}
    assert (await client.get("/readyz")).json() == {"resp": "READY"}
    await send(client, body())
    await send(client, body())
    metrics = await client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "glitchflow_ingested_chunks_total 1.0" in metrics.text
    assert "glitchflow_duplicate_chunks_total 1.0" in metrics.text
    assert (
        'glitchflow_requests_total{method="POST",route="/sendF",status="201"} 1.0' in metrics.text
    )

    def unwritable() -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(client.app.state.storage, "check_writable", unwritable)  # type: ignore[attr-defined]
    not_ready = await client.get("/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["resp"] == "NOT_READY"


# --------------------------------------------------------------------------- settings


def test_settings_accept_the_original_variable_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DATAROOT", str(tmp_path / "d"))
    monkeypatch.setenv("ADMROOT", str(tmp_path / "a"))
    monkeypatch.setenv("LOGROOT", str(tmp_path / "l"))
    monkeypatch.setenv("WCHSZ", "7")
    monkeypatch.setenv("SERVURL", "http://127.0.0.1:8099")
    monkeypatch.setenv("GLITCHFLOW_MAX_BODY", "1MiB")
    settings = Settings(data_dir=tmp_path)
    assert settings.data_root == tmp_path / "d"
    assert settings.adm_root == tmp_path / "a"
    assert settings.log_root == tmp_path / "l"
    assert settings.archive_root == tmp_path / "archive"
    assert (settings.max_inflight, settings.max_body) == (7, 1024 * 1024)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WCHSZ", "0"),
        ("GLITCHFLOW_MAX_BODY", "-3"),
        ("SERVURL", "ftp://x"),
        ("GLITCHFLOW_MAX_BODY", "lots"),
    ],
)
def test_settings_refuse_nonsense(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=r"validation error"):
        Settings()


def test_settings_refuse_placeholder_token_in_production() -> None:
    with pytest.raises(ValueError, match="placeholder"):
        Settings(environment="production", service_token="changeme")


# --------------------------------------------------------------------------- reviewed defects


async def test_send_succeeds_and_log_errors_are_counted_when_the_log_is_full(
    client: httpx.AsyncClient, full_log_volume: Callable[..., None]
) -> None:
    full_log_volume(client.app.state.storage.log)  # type: ignore[attr-defined]
    created = await send(client, body(), "?freeze_at=1kB")
    assert created.status_code == 201
    assert created.json()["frozen"] is True
    metrics = (await client.get("/metrics")).text
    assert "glitchflow_log_write_errors_total 2.0" in metrics  # the write and the freeze


async def test_send_on_full_disk_is_507_when_the_log_is_full_too(
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
    full_log_volume: Callable[..., None],
) -> None:
    def full(*args: object, **kwargs: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage_module, "write_temp", full)
    full_log_volume(client.app.state.storage.log)  # type: ignore[attr-defined]
    response = await send(client, body())
    assert response.status_code == 507
    assert response.json() == {"resp": "DISK_FULL"}


async def test_cleanall_succeeds_when_the_log_is_full(
    client: httpx.AsyncClient, full_log_volume: Callable[..., None]
) -> None:
    await send(client, body())
    await client.post("/upddsc", json={"dstatus": "FROZEN", "user": "airflow"})
    full_log_volume(client.app.state.storage.log)  # type: ignore[attr-defined]
    cleaned = await client.post("/cleanall", json={"msg": "retrain"})
    assert cleaned.status_code == 200
    assert (cleaned.json()["resp"], cleaned.json()["n_f"]) == ("CLEANED", 1)


async def test_dumplogf_answers_with_a_torn_line_in_the_log(client: httpx.AsyncClient) -> None:
    await send(client, body())
    log_path = client.app.state.storage.log.path  # type: ignore[attr-defined]
    with log_path.open("ab") as f:
        f.write(b'{"time": "2026-')  # an append cut short (crash, ENOSPC)
    await send(client, body(t0=T0 + 1))
    response = await client.get("/dumpLogF")
    assert response.status_code == 200
    kinds = [e["event"] for e in response.json()["log"]]
    assert kinds == ["start", "write", "unreadable"]


async def test_healthz_answers_while_a_flush_holds_the_storage_lock(
    make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "buffer" / "data"
    data.mkdir(parents=True)
    files = 3000
    for i in range(files):
        name = chunk_filename("default", T0 + i, 1, DT)
        (data / name).write_bytes(body(t0=T0 + i, n=1))
    client = make_client()
    await client.post("/upddsc", json={"dstatus": "FROZEN", "user": "airflow"})

    gate, held, released = threading.Event(), threading.Event(), threading.Event()
    real_replace = os.replace

    def held_replace(src: object, dst: object) -> None:
        if ".partial" in str(dst) and not held.is_set():  # first move into the archive
            held.set()
            gate.wait(5)
            released.set()
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", held_replace)
    flush = asyncio.create_task(client.post("/cleanall", json={}))
    try:
        assert await asyncio.to_thread(held.wait, 5)
        # Readers that need the lock queue behind the flush; they must not stall the loop.
        readers = [asyncio.create_task(client.get(p)) for p in ("/stat", "/dumpF", "/channels")]
        await asyncio.sleep(0.05)
        health = await client.get("/healthz")
        answered_during_flush = not released.is_set()
    finally:
        gate.set()
    cleaned = await flush
    stat, dump, channels = [(await r).json() for r in readers]
    assert answered_during_flush
    assert health.json() == {"resp": "OK"}
    assert cleaned.json()["n_f"] == files
    assert (stat["n_itm"], stat["batch"], dump["total"], channels["channels"]) == (0, 2, 0, {})


async def test_send_stores_the_validated_bytes_unchanged(client: httpx.AsyncClient) -> None:
    sent = b'{ "t": [1126259462.0, 0.000244140625],\n  "h": [1.0, 2.5e-21, -3] }'
    doc = (await send(client, sent)).json()
    folder = Path(client.app.state.settings.data_root)  # type: ignore[attr-defined]
    assert (folder / doc["file"]).read_bytes() == sent
    assert doc["bytes"] == len(sent)
