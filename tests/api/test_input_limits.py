"""Bad input is the caller's error (4xx naming the field), never a 502 from further down.

datastore_logic is the real server of the `logic` fixture, scripted per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from fake_upstream import FakeUpstream

from glitchflow_core.edge import ADMIN_BODY_LIMIT as ADMIN_MAX_BODY
from glitchflow_core.edge import LINGER_BYTES

FROZEN = {"resp": "FROZEN", "n_f": 21, "bt_wrt": 1008, "batch": 3}
CLEANED = {"resp": "CLEANED", "batch": 3, "archive": "000003-20261122T101500Z", "body": {}}
JSON = {"Content-Type": "application/json"}


BAD_ADMIN_BODIES = [
    pytest.param("/train", orjson.dumps({"user": ""}), JSON, 422, "user", id="user-empty"),
    pytest.param("/train", orjson.dumps({"user": "  "}), JSON, 422, "user", id="user-blank"),
    pytest.param("/train", orjson.dumps({"user": "u" * 201}), JSON, 422, "user", id="user-long"),
    pytest.param("/train", orjson.dumps({"user": 5}), JSON, 422, "user", id="user-number"),
    pytest.param("/train", orjson.dumps({"token": "t"}), JSON, 422, "user", id="user-missing"),
    pytest.param("/train", b'{"user": "a"', JSON, 422, "body", id="train-not-json"),
    pytest.param("/train", b"[]", JSON, 422, "body", id="train-not-object"),
    pytest.param(
        "/train", orjson.dumps({"user": "a", "x": 1}), JSON, 422, "x", id="train-unknown-field"
    ),
    pytest.param(
        "/train",
        orjson.dumps({"user": "a"}),
        {"Content-Type": "text/plain"},
        415,
        "content-type",
        id="train-text-plain",
    ),
    pytest.param("/cleanbuf", orjson.dumps({"msg": "m" * 5000}), JSON, 422, "msg", id="msg-long"),
    pytest.param("/cleanbuf", orjson.dumps({"msg": 7}), JSON, 422, "msg", id="msg-number"),
    pytest.param("/cleanbuf", b"{", JSON, 422, "body", id="cleanbuf-not-json"),
    pytest.param(
        "/train",
        orjson.dumps({"user": "a", "token": "t" * ADMIN_MAX_BODY}),
        JSON,
        413,
        "body",
        id="train-over-cap",
    ),
    pytest.param(
        "/cleanbuf",
        orjson.dumps({"msg": "m" * ADMIN_MAX_BODY}),
        JSON,
        413,
        "body",
        id="cleanbuf-over-cap",
    ),
]


@pytest.mark.parametrize(("path", "body", "headers", "status", "field"), BAD_ADMIN_BODIES)
async def test_bad_admin_body_is_refused_naming_field_and_not_forwarded(
    api: httpx.AsyncClient,
    logic: FakeUpstream,
    path: str,
    body: bytes,
    headers: dict,
    status: int,
    field: str,
) -> None:
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    answer = await api.post(path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert answer.json()["resp"] == "INVALID"
    assert answer.json()["detail"]["field"] == field
    assert answer.json()["detail"]["reason"]
    assert not freeze.called
    assert not flush.called


@pytest.mark.parametrize("path", ["/train", "/cleanbuf"])
async def test_chunked_admin_body_over_cap_is_413(make_api, logic: FakeUpstream, path: str) -> None:
    # The logic has no route here: a request reaching it would fail the test at teardown.
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        yield b'{"msg": "'
        for _ in range(1000):  # 64 MiB if it were all read
            sent += 1
            yield b"m" * 65536

    async with make_api() as api:
        answer = await api.post(path, content=endless(), headers=JSON)
    assert answer.status_code == 413
    assert answer.json()["detail"]["field"] == "body"
    # Past the cap at most LINGER_BYTES more are read and dropped (the client may see the 413).
    lingered = LINGER_BYTES // 65536
    assert sent < 10 + lingered, f"the body was read on after it passed the cap ({sent} parts)"
    assert not logic.unmatched, "nothing may reach the logic"


async def test_train_user_is_stripped(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await api.post("/train", json={"user": "  airflow "})
    assert answer.status_code == 200
    assert orjson.loads(freeze.calls.last.content) == {"user": "airflow"}


async def test_train_without_content_type_is_read_as_json(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await api.post("/train", content=b'{"user": "airflow"}')
    assert (answer.status_code, answer.json()["resp"]) == (200, "FROZEN")


async def test_bad_admin_body_without_token_is_still_401_for_cleanbuf(
    secured_api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    answer = await secured_api.post("/cleanbuf", content=b"{", headers=JSON)
    assert (answer.status_code, answer.json()["resp"]) == (401, "UNAUTHORIZED")
    assert not flush.called


BAD_QUERIES = [
    pytest.param(path, name, value, id=f"{path}-{name}-{label}")
    for path, name, maximum in (
        ("/dumpbuf", "limit", 100_000),
        ("/dumpbuf", "offset", 2**62),
        ("/dspage", "page", 10**12),
    )
    for label, value in (
        ("negative", "-1"),
        ("word", "abc"),
        ("superscript", "%C2%B2"),
        ("fraction", "1.5"),
        ("huge", "99999999999999999999"),
        ("over-max", str(maximum + 1)),
    )
] + [pytest.param("/dspage", "page", "0", id="/dspage-page-zero")]


@pytest.mark.parametrize(("path", "name", "value"), BAD_QUERIES)
async def test_bad_query_value_is_422_naming_it_and_not_forwarded(
    api: httpx.AsyncClient, logic: FakeUpstream, path: str, name: str, value: str
) -> None:
    dump = logic.get("/dumpf").respond(200, json={"nmlist": []})
    page = logic.get("/").respond(200, html="<html></html>")
    answer = await api.get(f"{path}?{name}={value}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["resp"] == "INVALID"
    assert answer.json()["detail"]["field"] == name
    assert not dump.called
    assert not page.called


@pytest.mark.parametrize(
    ("method", "path", "upstream", "payload"),
    [
        ("POST", "/train", "/freezeds", {"user": "airflow"}),
        ("POST", "/cleanbuf", "/flushbuf", {"msg": "x"}),
        ("GET", "/stats", "/bufstat", None),
        ("GET", "/dumpbuf", "/dumpf", None),
        ("GET", "/desc", "/dsdesc", None),
        ("GET", "/dspage", "/", None),
    ],
)
@pytest.mark.parametrize("status", [413, 422])
async def test_upstream_invalid_is_relayed_as_its_4xx(
    api: httpx.AsyncClient,
    logic: FakeUpstream,
    method: str,
    path: str,
    upstream: str,
    payload: dict | None,
    status: int,
) -> None:
    refusal = {"resp": "INVALID", "detail": {"field": "user", "reason": "must not be blank"}}
    logic.route(method, upstream).respond(status, json=refusal)
    answer = await api.request(method, path, json=payload)
    assert (answer.status_code, answer.json()) == (status, refusal)


async def test_upstream_4xx_other_than_invalid_is_still_an_error(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/freezeds").respond(401, json={"resp": "UNAUTHORIZED"})
    answer = await api.post("/train", json={"user": "airflow"})
    assert (answer.status_code, answer.json()["resp"]) == (502, "UPSTREAM_ERROR")
