"""``POST /batches/{batch}/results``: what became of an archived batch, beside its manifest."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

JSON = {"content-type": "application/json"}
T0 = 1_126_259_462.0
DT = 1.0 / 4096
RESULTS = {
    "dag_run_id": "manual__2026-12-03T03:00:00+00:00",
    "dataset": "/datasets/000001/dataset.h5",
    "report": {"windows": 12, "flagged": 2, "top": [{"channel": "H1", "gps": 1126259462.5}]},
}


def chunk(i: int) -> bytes:
    h = (np.random.default_rng(i).standard_normal(64) * 1e-21).tolist()
    return orjson.dumps({"h": h, "t": [T0 + i * 64 * DT, DT]})


async def archived_batch(client: httpx.AsyncClient, chunks: int = 2) -> dict[str, object]:
    """Store ``chunks`` chunks and flush them: the flush answer (batch, archive)."""
    for i in range(chunks):
        assert (await client.post("/sendF", content=chunk(i), headers=JSON)).status_code == 201
    flushed = await client.post("/cleanall", json={"force": True})
    assert flushed.status_code == 200, flushed.text
    return flushed.json()


def archive_root(client: httpx.AsyncClient) -> Path:
    return Path(client.app.state.settings.archive_root)  # type: ignore[attr-defined]


async def test_results_are_stored_beside_the_manifest_and_listed(
    client: httpx.AsyncClient,
) -> None:
    flushed = await archived_batch(client)
    answer = await client.post(f"/batches/{flushed['batch']}/results", json=RESULTS)
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert (doc["resp"], doc["batch"], doc["archive"]) == ("RECORDED", 1, flushed["archive"])
    assert doc["replaced"] is False
    assert doc["bucket"] is None
    stored = orjson.loads((archive_root(client) / flushed["archive"] / "results.json").read_bytes())
    assert stored == doc["results"]
    assert {k: stored[k] for k in RESULTS} == RESULTS
    assert stored["batch"] == 1 and stored["archive"] == flushed["archive"]

    listed = (await client.get("/batches")).json()["batches"]
    assert listed[0]["results"] == stored
    summary = (await client.get("/status")).json()["archives"]["items"][0]
    assert summary["results"]["report"]["flagged"] == 2


async def test_a_repeat_replaces_the_record(client: httpx.AsyncClient) -> None:
    flushed = await archived_batch(client)
    path = f"/batches/{flushed['batch']}/results"
    await client.post(path, json=RESULTS)
    again = await client.post(path, json={**RESULTS, "dataset": "/elsewhere.h5"})
    assert again.status_code == 200
    assert again.json()["replaced"] is True
    listed = (await client.get("/batches")).json()["batches"]
    assert listed[0]["results"]["dataset"] == "/elsewhere.h5"
    folder = archive_root(client) / str(flushed["archive"])
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) == []


async def test_a_batch_without_results_lists_null(client: httpx.AsyncClient) -> None:
    await archived_batch(client)
    assert (await client.get("/batches")).json()["batches"][0]["results"] is None


@pytest.mark.parametrize(
    ("batch", "resp", "words"),
    [(7, "UNKNOWN_BATCH", "no such batch"), (2, "NOT_ARCHIVED", "being filled")],
)
async def test_results_of_a_batch_not_archived_are_refused_404(
    client: httpx.AsyncClient, batch: int, resp: str, words: str
) -> None:
    await archived_batch(client)  # batch 1 archived, 2 being filled
    answer = await client.post(f"/batches/{batch}/results", json=RESULTS)
    assert answer.status_code == 404
    assert answer.json()["resp"] == resp
    assert answer.json()["batch"] == batch
    assert words in answer.json()["detail"]


async def test_results_of_a_sealed_batch_are_not_archived_yet(client: httpx.AsyncClient) -> None:
    sealed = await client.post("/sendF?freeze_at=1&mode=rotate", content=chunk(0), headers=JSON)
    assert sealed.json()["sealed"] is True
    answer = await client.post("/batches/1/results", json=RESULTS)
    assert answer.status_code == 404
    assert answer.json()["resp"] == "NOT_ARCHIVED"
    assert "sealed" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"),
    [
        (b"[1, 2]", JSON, 422, "body"),
        (b"{not json", JSON, 422, "body"),
        (b"", JSON, 422, "body"),
        (b'{"a": 1}', {"content-type": "text/plain"}, 415, "content-type"),
        (b'{"a": "' + b"x" * 70_000 + b'"}', JSON, 413, "body"),
    ],
    ids=["array", "not-json", "empty", "media", "too-large"],
)
async def test_bad_results_bodies_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    flushed = await archived_batch(client)
    answer = await client.post(
        f"/batches/{flushed['batch']}/results", content=content, headers=headers
    )
    assert answer.status_code == status
    assert answer.json()["detail"]["field"] == field
    assert not (archive_root(client) / str(flushed["archive"]) / "results.json").exists()


async def test_results_need_the_service_token_when_one_is_configured(
    make_client: object,
) -> None:
    client = make_client(service_token="a-long-service-token-for-tests")  # type: ignore[operator]
    answer = await client.post("/batches/1/results", json=RESULTS)
    assert answer.status_code == 401
    assert answer.json()["resp"] == "UNAUTHORIZED"
