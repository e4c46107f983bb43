"""/streamdata's binary form and multi-chunk requests at the API: validated here, passed on once.

datastore_logic is the real server of the `logic` fixture, scripted per test.
"""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from fake_upstream import FakeUpstream

BINARY = {"Content-Type": "application/octet-stream"}
NDJSON = {"Content-Type": "application/x-ndjson"}
JSON = {"Content-Type": "application/json"}
CREATED = {"resp": "CREATED", "file": "f.json", "bytes": 90, "n_itm": 1, "buff_size": 90}


def chunk(t0: float, **extra: object) -> bytes:
    return orjson.dumps({"h": [1.0, 2.0], "t": [t0, 0.5], **extra})


async def test_binary_chunk_goes_on_as_bytes_with_validated_params(
    api, logic: FakeUpstream
) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    raw = np.array([1e-21, -2e-21]).astype("<f8").tobytes()
    answer = await api.post(
        "/streamdata?channel=L1:X-Y&t0=1e9&dt=0.25&extra=1", content=raw, headers=BINARY
    )
    assert answer.status_code == 201
    assert answer.json() == {"resp": "CREATED", "body": CREATED}
    assert "application/octet-stream" in answer.headers["accept-post"]
    call = stream.calls.last
    assert call.content == raw
    assert call.headers["content-type"] == "application/octet-stream"
    assert call.query == {"channel": "L1:X-Y", "t0": "1000000000.0", "dt": "0.25"}


@pytest.mark.parametrize(
    ("raw", "query", "field"),
    [
        pytest.param(b"\0" * 9, "t0=1&dt=1", "body", id="length-not-multiple-of-8"),
        pytest.param(np.array([np.nan]).tobytes(), "t0=1&dt=1", "h", id="nan"),
        pytest.param(b"\0" * 8, "dt=1", "t0", id="no-t0"),
        pytest.param(b"\0" * 8, "t0=1&dt=inf", "dt", id="dt-inf"),
    ],
)
async def test_bad_binary_chunk_is_refused_and_not_forwarded(
    api, logic: FakeUpstream, raw: bytes, query: str, field: str
) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    answer = await api.post(f"/streamdata?{query}", content=raw, headers=BINARY)
    assert (answer.status_code, answer.json()["detail"]["field"]) == (422, field)
    assert not stream.called


async def test_wrong_content_type_is_415_listing_what_goes(api, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    answer = await api.post("/streamdata", content=b"1,2", headers={"Content-Type": "text/csv"})
    assert answer.status_code == 415
    assert answer.headers["accept-post"] == (
        "application/json, application/octet-stream, application/x-ndjson"
    )
    assert not stream.called


async def test_bad_chunks_are_answered_here_and_only_good_ones_go_on(
    api, logic: FakeUpstream
) -> None:
    results = [{"status": 201, **CREATED}, {"status": 200, **CREATED, "resp": "DUPLICATE"}]
    stream = logic.post("/stream").respond(207, json={"resp": "MULTI", "results": results})
    lines = [chunk(1.0), chunk(2.0, gps=1), b"[1]", chunk(3.0)]
    answer = await api.post("/streamdata", content=b"\n".join(lines), headers=NDJSON)
    assert answer.status_code == 207
    multi = answer.json()
    assert [(r["status"], r["resp"]) for r in multi["results"]] == [
        (201, "CREATED"),
        (422, "INVALID"),
        (422, "INVALID"),
        (200, "DUPLICATE"),
    ]
    assert multi["results"][1]["detail"]["field"] == "gps"
    assert multi["counts"] == {"CREATED": 1, "INVALID": 2, "DUPLICATE": 1}
    # One request on, NDJSON of the two valid chunks as sent.
    assert stream.call_count == 1
    assert stream.calls.last.content == chunk(1.0) + b"\n" + chunk(3.0) + b"\n"
    assert stream.calls.last.headers["content-type"] == "application/x-ndjson"


async def test_all_bad_chunks_send_nothing_on(api, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").respond(207, json={"resp": "MULTI", "results": []})
    answer = await api.post("/streamdata", content=b'[{"h": []}, 5]', headers=JSON)
    assert [r["resp"] for r in answer.json()["results"]] == ["INVALID", "INVALID"]
    assert not stream.called


async def test_too_many_chunks_is_413_and_not_forwarded(make_api, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").respond(207, json={"resp": "MULTI", "results": []})
    async with make_api(max_chunks=2) as api:
        body = orjson.dumps([orjson.loads(chunk(float(i))) for i in range(3)])
        answer = await api.post("/streamdata", content=body, headers=JSON)
    assert answer.status_code == 413
    assert answer.json()["detail"]["reason"] == "holds 3 chunks, more than the limit of 2"
    assert not stream.called


async def test_frozen_chunks_keep_their_retry_after(api, logic: FakeUpstream) -> None:
    results = [
        {"status": 201, **CREATED},
        {"status": 503, "resp": "FROZEN", "batch": 4, "retry_after": 1},
    ]
    logic.post("/stream").respond(207, json={"resp": "MULTI", "results": results})
    answer = await api.post("/streamdata", content=chunk(1.0) + b"\n" + chunk(2.0), headers=NDJSON)
    frozen = answer.json()["results"][1]
    assert frozen == {
        "status": 503,
        "resp": "FROZEN",
        "retry_after": 1,
        "body": {"resp": "FROZEN", "batch": 4, "retry_after": 1},
    }


async def test_multi_refused_as_a_whole_is_relayed(api, logic: FakeUpstream) -> None:
    logic.post("/stream").respond(503, json={"resp": "BUSY"}, headers={"Retry-After": "1"})
    answer = await api.post("/streamdata", content=chunk(1.0) + b"\n" + chunk(2.0), headers=NDJSON)
    assert (answer.status_code, answer.json()["resp"]) == (503, "BUSY")
    assert answer.headers["retry-after"] == "1"
