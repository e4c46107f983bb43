"""/streamdata: fast validation, the original bytes forwarded, every answer mapped.

datastore_logic is the real server of the `logic` fixture, scripted per test.
"""

from __future__ import annotations

import threading

import httpx
import orjson
import pytest
from fake_upstream import Delay, FakeUpstream, Hangup, Reply
from ports import free_port

from glitchflow_api import routes
from glitchflow_api.settings import Settings

CHUNK = (
    b'{"h":[1.0e-21,-2.5e-21,3.0e-22],"t":[1000000000.0,0.25],"channel":"L1:GWOSC-4KHZ_R1_STRAIN"}'
)
CREATED = {
    "resp": "CREATED",
    "file": "f.json",
    "bytes": 90,
    "n_itm": 1,
    "buff_size": 90,
    "batch": 1,
}
JSON = {"Content-Type": "application/json"}


def doc(**fields: object) -> bytes:
    return orjson.dumps({"h": [1.0, 2.0], "t": [1.0, 0.5], **fields})


BAD_INPUT = [
    pytest.param(b'{"h": [1.0', JSON, 422, "body", id="not-json"),
    pytest.param(b'"x"', JSON, 422, "body", id="not-an-object"),
    pytest.param(CHUNK, {"Content-Type": "text/plain"}, 415, "content-type", id="text-plain"),
    pytest.param(
        CHUNK, {"Content-Type": "application/x-www-form-urlencoded"}, 415, "content-type", id="form"
    ),
    pytest.param(doc(t=[1.0]), JSON, 422, "t", id="t-one-number"),
    pytest.param(doc(t=[1.0, 0.5, 3.0]), JSON, 422, "t", id="t-three-numbers"),
    pytest.param(doc(t=["1", 0.5]), JSON, 422, "t", id="t-string"),
    pytest.param(doc(t=1.0), JSON, 422, "t", id="t-scalar"),
    pytest.param(b'{"h":[1.0],"t":[1.0,1e999]}', JSON, 422, "body", id="t-inf"),
    pytest.param(doc(t=[1.0, 0.0]), JSON, 422, "t", id="dt-zero"),
    pytest.param(doc(t=[1.0, -0.5]), JSON, 422, "t", id="dt-negative"),
    pytest.param(doc(h=[]), JSON, 422, "h", id="h-empty"),
    pytest.param(doc(h=["a", "b"]), JSON, 422, "h", id="h-strings"),
    pytest.param(doc(h=[1.0, None]), JSON, 422, "h", id="h-null"),
    pytest.param(doc(h=[[1.0], [2.0]]), JSON, 422, "h", id="h-nested"),
    pytest.param(doc(h=[True, False]), JSON, 422, "h", id="h-bool"),
    pytest.param(b'{"h":[1.0,NaN],"t":[1.0,0.5]}', JSON, 422, "body", id="h-nan"),
    pytest.param(b'{"h":[1.0,Infinity],"t":[1.0,0.5]}', JSON, 422, "body", id="h-inf"),
    pytest.param(doc(h=[0.0] * 9), JSON, 422, "h", id="too-many-samples"),
    pytest.param(doc(h=[0.0] * 8, pad="x" * 400), JSON, 413, "body", id="body-over-limit"),
    pytest.param(doc(channel="L1 strain"), JSON, 422, "channel", id="channel-space"),
    pytest.param(doc(channel="../etc/passwd"), JSON, 422, "channel", id="channel-path"),
    pytest.param(doc(channel=7), JSON, 422, "channel", id="channel-number"),
    pytest.param(doc(gps=3), JSON, 422, "gps", id="unknown-field"),
    pytest.param(orjson.dumps({"t": [1.0, 0.5]}), JSON, 422, "h", id="h-missing"),
    pytest.param(orjson.dumps({"h": [1.0]}), JSON, 422, "t", id="t-missing"),
]


@pytest.mark.parametrize(("body", "headers", "status", "field"), BAD_INPUT)
async def test_bad_chunk_is_refused_naming_field_and_not_forwarded(
    make_api, logic: FakeUpstream, body: bytes, headers: dict, status: int, field: str
) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    async with make_api(max_samples=8, max_body=300) as api:
        answer = await api.post("/streamdata", content=body, headers=headers)
    assert answer.status_code == status
    assert answer.json()["resp"] == "INVALID"
    assert answer.json()["detail"]["field"] == field
    assert answer.json()["detail"]["reason"]
    assert not stream.called


async def test_body_over_declared_length_refused_before_reading(
    make_api, logic: FakeUpstream
) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)

    async def huge() -> object:
        yield b'{"h":['
        for _ in range(1000):
            yield b"0.0," * 1000

    async with make_api(max_body=10_000) as api:
        answer = await api.post("/streamdata", content=huge(), headers=JSON)
    assert answer.status_code == 413
    assert answer.json()["detail"]["field"] == "body"
    assert not stream.called


async def test_created_forwards_original_bytes(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert answer.status_code == 201
    assert answer.json() == {"resp": "CREATED", "body": CREATED}
    assert stream.calls.last.content == CHUNK
    assert stream.calls.last.headers["content-type"] == "application/json"


async def test_charset_in_content_type_is_accepted(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/stream").respond(201, json=CREATED)
    answer = await api.post(
        "/streamdata", content=CHUNK, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert answer.status_code == 201


async def test_duplicate_is_200(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    body = {"resp": "DUPLICATE", "file": "f.json", "batch": 1}
    logic.post("/stream").respond(200, json=body)
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert (answer.status_code, answer.json()) == (200, {"resp": "DUPLICATE", "body": body})


async def test_conflict_is_409(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    body = {"resp": "CONFLICT", "detail": "overlaps stored data"}
    logic.post("/stream").respond(409, json=body)
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert (answer.status_code, answer.json()) == (409, {"resp": "CONFLICT", "body": body})


async def test_frozen_is_503_with_retry_after(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    body = {"resp": "FROZEN", "batch": 4}
    logic.post("/stream").respond(503, json=body, headers={"Retry-After": "12"})
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert answer.status_code == 503
    assert answer.json() == {"resp": "FROZEN", "body": body}
    assert answer.headers["Retry-After"] == "12"


async def test_frozen_without_retry_after_gets_one(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/stream").respond(503, json={"resp": "FROZEN", "batch": 4})
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert int(answer.headers["Retry-After"]) > 0


async def test_logic_down_is_502(make_api) -> None:
    async with make_api(ds_burl=f"http://127.0.0.1:{free_port()}") as api:  # nothing listens
        answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert answer.status_code == 502
    assert answer.json()["resp"] == "UPSTREAM_UNREACHABLE"
    assert answer.json()["upstream"] == "datastore_logic"


async def test_logic_timeout_is_504(make_api, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").reply(Delay(2, Reply(201, json=CREATED)))
    async with make_api(upstream_timeout=0.5) as api:
        answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert (answer.status_code, answer.json()["resp"]) == (504, "UPSTREAM_TIMEOUT")
    assert stream.call_count == 1, "a request that was sent is never repeated"


async def test_logic_hangup_is_502(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    stream = logic.post("/stream").reply(Hangup())
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert answer.status_code == 502
    assert answer.json()["resp"] == "UPSTREAM_UNREACHABLE"
    assert answer.json()["upstream"] == "datastore_logic"
    assert stream.call_count == 1, "a request that was sent is never repeated"


async def test_buffer_failure_relayed_with_its_resp(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    body = {
        "resp": "UPSTREAM_UNREACHABLE",
        "upstream": "databuffer",
        "detail": "connection refused",
    }
    logic.post("/stream").respond(502, json=body)
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert (answer.status_code, answer.json()) == (502, body)


async def test_logic_500_without_json_is_502(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    logic.post("/stream").respond(500, text="<html>oops</html>")
    answer = await api.post("/streamdata", content=CHUNK, headers=JSON)
    assert (answer.status_code, answer.json()["resp"]) == (502, "UPSTREAM_ERROR")


@pytest.mark.parametrize("authorization", [None, "Bearer nope-nope-nope-nope", "Basic {}", "{}"])
async def test_write_without_valid_token_is_401(
    secured_api: httpx.AsyncClient, logic: FakeUpstream, tokens, authorization: str | None
) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    headers = dict(JSON)
    if authorization is not None:
        headers["Authorization"] = authorization.format(tokens.writer)
    answer = await secured_api.post("/streamdata", content=CHUNK, headers=headers)
    assert answer.status_code == 401
    assert answer.json()["resp"] == "UNAUTHORIZED"
    assert tokens.writer not in answer.text
    assert not stream.called


@pytest.mark.parametrize("kind", ["writer", "admin"])
async def test_writer_and_admin_tokens_may_write(
    secured_api: httpx.AsyncClient, logic: FakeUpstream, tokens, kind: str
) -> None:
    token = getattr(tokens, kind)
    stream = logic.post("/stream").respond(201, json=CREATED)
    answer = await secured_api.post(
        "/streamdata", content=CHUNK, headers={**JSON, "Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 201
    assert stream.calls.last.headers["authorization"] == f"Bearer {tokens.service}"


async def test_metrics_count_created_and_refused(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/stream").respond(201, json=CREATED)
    await api.post("/streamdata", content=CHUNK, headers=JSON)
    await api.post("/streamdata", content=b"nope", headers=JSON)
    text = (await api.get("/metrics")).text
    assert "glitchflow_ingested_chunks_total 1.0" in text
    assert "glitchflow_ingested_bytes_total 90.0" in text
    assert 'glitchflow_refusals_total{reason="invalid"} 1.0' in text
    assert 'route="/streamdata",status="201"' in text


BIG_H = [1.0e-21] * 200_000  # about 1.2 MB of JSON: over the inline-parsing threshold


def test_big_h_is_over_the_inline_threshold() -> None:
    assert len(orjson.dumps({"h": BIG_H, "t": [1e9, 0.25]})) > routes.PARSE_INLINE_MAX


async def test_large_body_is_parsed_off_the_event_loop(
    api: httpx.AsyncClient, logic: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real_parse = Settings.parse_chunk

    def spy(self: Settings, body: bytes) -> object:
        threads.append(threading.current_thread())
        return real_parse(self, body)

    monkeypatch.setattr(Settings, "parse_chunk", spy)
    stream = logic.post("/stream").respond(201, json=CREATED)
    big = orjson.dumps({"h": BIG_H, "t": [1e9, 0.25]})
    assert (await api.post("/streamdata", content=big, headers=JSON)).status_code == 201
    assert (await api.post("/streamdata", content=CHUNK, headers=JSON)).status_code == 201
    loop_thread = threading.current_thread()
    assert threads[0] is not loop_thread, "a large body was parsed on the event loop"
    assert threads[1] is loop_thread, "a small body should not pay for a thread hop"
    assert stream.calls[0].content == big


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param(orjson.dumps({"h": BIG_H}), "t", id="t-missing"),
        pytest.param(orjson.dumps({"h": [*BIG_H, "x"], "t": [1e9, 0.25]}), "h", id="h-string"),
        pytest.param(orjson.dumps({"h": BIG_H, "t": [1e9, -1.0]}), "t", id="dt-negative"),
        pytest.param(orjson.dumps({"h": BIG_H, "t": [1e9, 0.25], "x": 1}), "x", id="unknown"),
    ],
)
async def test_large_bad_body_is_refused_naming_field(
    api: httpx.AsyncClient, logic: FakeUpstream, body: bytes, field: str
) -> None:
    stream = logic.post("/stream").respond(201, json=CREATED)
    answer = await api.post("/streamdata", content=body, headers=JSON)
    assert (answer.status_code, answer.json()["detail"]["field"]) == (422, field)
    assert not stream.called
