"""The buffer's binary chunks and multi-chunk writes (``/sendF``), through the app factory."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import orjson
import pytest

from databuffer.storage import Storage
from glitchflow_core.chunk import parse_chunk

DT = 1.0 / 4096
T0 = 1_126_259_462.0
CHANNEL = "L1:GWOSC-4KHZ_R1_STRAIN"
BINARY = {"content-type": "application/octet-stream"}
NDJSON = {"content-type": "application/x-ndjson"}
JSON = {"content-type": "application/json"}


def samples(n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n) * 1e-21


def doc(t0: float = T0, n: int = 16, seed: int = 0) -> dict[str, object]:
    return {"h": samples(n, seed).tolist(), "t": [t0, DT], "channel": CHANNEL}


def ndjson(*docs: dict[str, object]) -> bytes:
    return b"\n".join(orjson.dumps(d) for d in docs) + b"\n"


async def send_binary(
    client: httpx.AsyncClient, h: np.ndarray, query: dict[str, str], extra: str = ""
) -> httpx.Response:
    url = f"/sendF?{urlencode(query)}{extra}"
    return await client.post(url, content=h.astype("<f8").tobytes(), headers=BINARY)


def stored_names(client: httpx.AsyncClient) -> list[str]:
    folder = client.app.state.settings.data_root  # type: ignore[attr-defined]
    return sorted(p.name for p in Path(folder).iterdir())


# --------------------------------------------------------------------------- binary


async def test_binary_chunk_is_stored_in_the_json_form(client: httpx.AsyncClient) -> None:
    h = samples()
    answer = await send_binary(client, h, {"channel": CHANNEL, "t0": repr(T0), "dt": repr(DT)})
    assert answer.status_code == 201
    stored = client.app.state.settings.data_root / answer.json()["file"]  # type: ignore[attr-defined]
    chunk = parse_chunk(stored.read_bytes())
    assert chunk.identity == (CHANNEL, T0, 64, DT)
    assert chunk.h.tobytes() == h.tobytes()


async def test_binary_then_json_of_the_same_chunk_is_duplicate(client: httpx.AsyncClient) -> None:
    h = samples()
    first = await send_binary(client, h, {"channel": CHANNEL, "t0": repr(T0), "dt": repr(DT)})
    body = orjson.dumps({"h": h, "t": [T0, DT], "channel": CHANNEL}, option=1 << 4)
    again = await client.post("/sendF", content=body, headers=JSON)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["resp"] == "DUPLICATE"
    assert again.json()["file"] == first.json()["file"]
    assert (await client.get("/stat")).json()["n_itm"] == 1


@pytest.mark.parametrize(
    ("content", "query", "field"),
    [
        pytest.param(b"\0" * 12, {"t0": "1", "dt": "1"}, "body", id="length-not-multiple-of-8"),
        pytest.param(b"", {"t0": "1", "dt": "1"}, "h", id="empty"),
        pytest.param(np.array([1.0, np.nan]).tobytes(), {"t0": "1", "dt": "1"}, "h", id="nan"),
        pytest.param(np.array([np.inf]).tobytes(), {"t0": "1", "dt": "1"}, "h", id="inf"),
        pytest.param(b"\0" * 8, {"dt": "1"}, "t0", id="no-t0"),
        pytest.param(b"\0" * 8, {"t0": "1"}, "dt", id="no-dt"),
        pytest.param(b"\0" * 8, {"t0": "nan", "dt": "1"}, "t0", id="t0-nan"),
        pytest.param(b"\0" * 8, {"t0": "1_0", "dt": "1"}, "t0", id="t0-underscore"),
        pytest.param(b"\0" * 8, {"t0": "-1", "dt": "1"}, "t0", id="t0-negative"),
        pytest.param(b"\0" * 8, {"t0": "1e11", "dt": "1"}, "t0", id="t0-past-gps"),
        pytest.param(b"\0" * 8, {"t0": "1", "dt": "0"}, "dt", id="dt-zero"),
        pytest.param(b"\0" * 8, {"t0": "1", "dt": "1e-320"}, "dt", id="dt-subnormal"),
        pytest.param(b"\0" * 8, {"t0": "1", "dt": "1e9"}, "dt", id="dt-a-gps-time"),
        pytest.param(b"\0" * 8, {"t0": "1", "dt": "1", "channel": "../x"}, "channel", id="chan"),
    ],
)
async def test_bad_binary_chunk_is_refused_naming_the_field(
    client: httpx.AsyncClient, content: bytes, query: dict[str, str], field: str
) -> None:
    answer = await client.post(f"/sendF?{urlencode(query)}", content=content, headers=BINARY)
    assert answer.status_code == 422
    assert answer.json()["detail"]["field"] == field
    assert stored_names(client) == []


async def test_binary_chunk_over_max_samples_is_refused(make_client: object) -> None:
    client = make_client(max_samples=4)  # type: ignore[operator]
    answer = await send_binary(client, samples(5), {"t0": "1", "dt": "1"})
    assert answer.status_code == 422
    assert answer.json()["detail"]["field"] == "h"


# --------------------------------------------------------------------------- several chunks


async def test_ndjson_chunks_are_each_stored_and_answered_in_order(
    client: httpx.AsyncClient,
) -> None:
    docs = [doc(T0 + i) for i in range(5)]
    answer = await client.post("/sendF", content=ndjson(*docs), headers=NDJSON)
    assert answer.status_code == 207
    result = answer.json()
    assert result["resp"] == "MULTI"
    assert [r["status"] for r in result["results"]] == [201] * 5
    assert [r["n_itm"] for r in result["results"]] == [1, 2, 3, 4, 5]
    assert result["counts"] == {"CREATED": 5}
    assert stored_names(client) == sorted(r["file"] for r in result["results"])


async def test_json_array_with_one_bad_chunk_stores_the_good_ones(
    client: httpx.AsyncClient,
) -> None:
    bad = {"h": [1.0], "t": [T0 + 1, DT], "extra": 1}
    body = orjson.dumps([doc(T0), bad, 7, doc(T0 + 2)])
    answer = await client.post("/sendF", content=body, headers=JSON)
    results = answer.json()["results"]
    assert [(r["status"], r["resp"]) for r in results] == [
        (201, "CREATED"),
        (422, "INVALID"),
        (422, "INVALID"),
        (201, "CREATED"),
    ]
    assert results[1]["detail"]["field"] == "extra"
    assert len(stored_names(client)) == 2


async def test_repeated_key_inside_an_array_element_is_refused(client: httpx.AsyncClient) -> None:
    body = b'[{"h":[1.0,2.0],"t":[1200000003.0,0.1],"h":[9.0]}]'
    answer = await client.post("/sendF", content=body, headers=JSON)
    assert answer.json()["results"][0]["detail"]["field"] == "h"
    assert stored_names(client) == []


async def test_multi_duplicates_and_conflicts_are_answered_per_chunk(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/sendF", content=orjson.dumps(doc(T0)), headers=JSON)
    body = ndjson(doc(T0), doc(T0, seed=1), doc(T0 + 5), doc(T0 + 5))
    results = (await client.post("/sendF", content=body, headers=NDJSON)).json()["results"]
    assert [r["resp"] for r in results] == ["DUPLICATE", "CONFLICT", "CREATED", "DUPLICATE"]
    assert [r["status"] for r in results] == [200, 409, 201, 200]
    assert (await client.get("/stat")).json()["n_itm"] == 2


async def test_hold_freeze_in_the_middle_refuses_the_chunks_after_it(
    client: httpx.AsyncClient,
) -> None:
    size = len(orjson.dumps(doc(T0)))
    body = ndjson(*(doc(T0 + i) for i in range(5)))
    answer = await client.post(
        f"/sendF?freeze_at={2 * size}&mode=hold", content=body, headers=NDJSON
    )
    results = answer.json()["results"]
    assert [r["resp"] for r in results] == ["CREATED", "CREATED", "FROZEN", "FROZEN", "FROZEN"]
    assert results[1]["frozen"] is True
    assert results[2]["status"] == 503
    assert results[2]["retry_after"] >= 1
    assert len(stored_names(client)) == 2


async def test_rotate_seal_in_the_middle_goes_on_in_the_next_batch(
    client: httpx.AsyncClient,
) -> None:
    size = len(orjson.dumps(doc(T0)))
    body = ndjson(*(doc(T0 + i) for i in range(5)))
    query = f"?freeze_at={2 * size}&mode=rotate&max_sealed=4"
    results = (await client.post(f"/sendF{query}", content=body, headers=NDJSON)).json()["results"]
    assert [r["resp"] for r in results] == ["CREATED"] * 5
    assert [r["batch"] for r in results] == [1, 1, 2, 2, 3]
    assert [r["sealed"] for r in results] == [False, True, False, True, False]


@pytest.mark.parametrize(
    ("content", "headers", "status", "field"),
    [
        pytest.param(b"[", JSON, 422, "body", id="array-not-json"),
        pytest.param(b"[]", JSON, 422, "body", id="empty-array"),
        pytest.param(b"\n\n", NDJSON, 422, "body", id="empty-ndjson"),
        pytest.param(b"[NaN]", JSON, 422, "body", id="array-nan"),
    ],
)
async def test_bad_multi_body_is_refused_as_a_whole(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    answer = await client.post("/sendF", content=content, headers=headers)
    assert answer.status_code == status
    assert answer.json()["detail"]["field"] == field


async def test_more_chunks_than_max_chunks_is_413_and_stores_nothing(make_client: object) -> None:
    client = make_client(max_chunks=3)  # type: ignore[operator]
    body = ndjson(*(doc(T0 + i) for i in range(4)))
    answer = await client.post("/sendF", content=body, headers=NDJSON)
    assert answer.status_code == 413
    assert answer.json()["detail"] == {
        "field": "body",
        "reason": "holds 4 chunks, more than the limit of 3",
    }
    assert stored_names(client) == []


async def test_ndjson_line_with_nan_is_refused_alone(client: httpx.AsyncClient) -> None:
    body = ndjson(doc(T0)) + b'{"h":[NaN],"t":[1,1]}\n' + ndjson(doc(T0 + 1))
    results = (await client.post("/sendF", content=body, headers=NDJSON)).json()["results"]
    assert [r["status"] for r in results] == [201, 422, 201]
    assert "NaN" in results[1]["detail"]["reason"]


# --------------------------------------------------------------------------- the engine


def test_write_many_counts_what_is_on_disk_after_a_restart(
    storage: Storage, open_storage: object
) -> None:
    chunks = [parse_chunk(orjson.dumps(doc(T0 + i))) for i in range(20)]
    outcomes = storage.write_many([(chunk, None) for chunk in chunks])
    assert [o.resp for o in outcomes] == ["CREATED"] * 20  # type: ignore[union-attr]
    stat = storage.stat()
    storage.close()
    again = open_storage()  # type: ignore[operator]
    assert again.stat() == stat
    assert not [p for p in again.data_dir.iterdir() if p.name.startswith(".")]
