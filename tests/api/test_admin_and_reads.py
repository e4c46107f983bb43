"""/train, /cleanbuf, the reads, /dspage, health and the OpenAPI document.

datastore_logic is the real server of the `logic` fixture, scripted per test.
"""

from __future__ import annotations

import httpx
import orjson
import pytest
from fake_upstream import Action, Delay, FakeUpstream, Hangup, Reply
from ports import free_port

FROZEN = {"resp": "FROZEN", "n_f": 21, "bt_wrt": 1008, "batch": 3}
CLEANED = {
    "resp": "CLEANED",
    "batch": 3,
    "archive": "000003-20261122T101500Z",
    "body": {"resp": "CLEANED", "batch": 3, "archive": "000003-20261122T101500Z", "n_f": 21},
}


async def test_train_frozen_names_counts_and_batch(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await api.post("/train", json={"user": "airflow", "token": "t"})
    assert answer.status_code == 200
    assert answer.json() == {
        "resp": "FROZEN",
        "n_f": 21,
        "bt_wrt": 1008,
        "batch": 3,
        "archive": None,
    }
    assert orjson.loads(freeze.calls.last.content) == {"user": "airflow"}


async def test_train_waiting_when_not_full(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    logic.post("/freezeds").respond(
        200, json={"resp": "WAITING", "n_f": 1, "bt_wrt": 48, "max_size": 1000, "batch": 3}
    )
    answer = await api.post("/train", json={"user": "airflow", "token": "t"})
    assert answer.json()["resp"] == "WAITING"
    assert answer.json()["max_size"] == 1000


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        pytest.param(None, 502, id="refused"),  # nothing listens where the logic should be
        pytest.param(Hangup(), 502, id="hangup"),
        pytest.param(Delay(2, Reply(200, json=FROZEN)), 504, id="slow"),
        pytest.param(
            Reply(502, json={"resp": "UPSTREAM_UNREACHABLE", "upstream": "databuffer"}),
            502,
            id="buffer-unreachable",
        ),
        pytest.param(
            Reply(504, json={"resp": "UPSTREAM_TIMEOUT", "upstream": "databuffer"}),
            504,
            id="buffer-timeout",
        ),
        pytest.param(Reply(500, text="boom"), 502, id="500-text"),
        pytest.param(Reply(200, json={"resp": "SOMETHING"}), 502, id="200-unknown-resp"),
    ],
)
async def test_train_failure_is_an_error_never_waiting(
    make_api, logic: FakeUpstream, failure: Action | None, status: int
) -> None:
    overrides: dict[str, object] = {"upstream_timeout": 0.5}
    if failure is None:
        overrides["ds_burl"] = f"http://127.0.0.1:{free_port()}"
    else:
        logic.post("/freezeds").reply(failure)
    async with make_api(**overrides) as api:
        answer = await api.post("/train", json={"user": "airflow", "token": "t"})
    assert answer.status_code == status
    assert answer.json()["resp"] not in ("FROZEN", "WAITING")


@pytest.mark.parametrize(
    ("headers", "body_token"),
    [({"Authorization": "Bearer {}"}, None), ({}, "{}")],
    ids=["header", "body"],
)
async def test_train_accepts_admin_token_in_header_or_body(
    secured_api: httpx.AsyncClient, logic: FakeUpstream, tokens, headers: dict, body_token
) -> None:
    headers = {k: v.format(tokens.admin) for k, v in headers.items()}
    body_token = body_token.format(tokens.admin) if body_token else None
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await secured_api.post(
        "/train", json={"user": "airflow", "token": body_token}, headers=headers
    )
    assert answer.status_code == 200
    assert tokens.admin.encode() not in freeze.calls.last.content


async def test_train_with_writer_token_is_403(
    secured_api: httpx.AsyncClient, logic: FakeUpstream, tokens
) -> None:
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await secured_api.post(
        "/train", json={"user": "a"}, headers={"Authorization": f"Bearer {tokens.writer}"}
    )
    assert (answer.status_code, answer.json()["resp"]) == (403, "FORBIDDEN")
    assert not freeze.called


async def test_train_with_bad_token_is_401_without_echo(
    secured_api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await secured_api.post("/train", json={"user": "a", "token": "guess-guess-guess"})
    assert (answer.status_code, answer.json()["resp"]) == (401, "UNAUTHORIZED")
    assert "guess-guess-guess" not in answer.text
    assert not freeze.called


async def test_train_body_must_name_user(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    freeze = logic.post("/freezeds").respond(200, json=FROZEN)
    answer = await api.post("/train", json={"token": "t"})
    assert answer.status_code == 422
    assert answer.json()["detail"]["field"] == "user"
    assert not freeze.called


async def test_cleanbuf_cleaned_names_batch_and_archive(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    answer = await api.post("/cleanbuf", json={"msg": "trained"})
    assert answer.json() == {
        "resp": "CLEANED",
        "batch": 3,
        "archive": "000003-20261122T101500Z",
        "body": CLEANED["body"],
    }
    assert orjson.loads(flush.calls.last.content) == {"msg": "trained", "force": True}


async def test_cleanbuf_not_frozen_is_409(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    logic.post("/flushbuf").respond(409, json={"resp": "NOT_FROZEN"})
    answer = await api.post("/cleanbuf", json={"msg": "x"})
    assert (answer.status_code, answer.json()["resp"]) == (409, "NOT_FROZEN")


async def test_cleanbuf_force_is_passed(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    await api.post("/cleanbuf", json={"msg": "x", "force": True})
    assert orjson.loads(flush.calls.last.content)["force"] is True


async def test_cleanbuf_archive_failure_relayed(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/flushbuf").respond(507, json={"resp": "ARCHIVE_FAILED", "detail": "disk full"})
    answer = await api.post("/cleanbuf", json={"msg": "x"})
    assert (answer.status_code, answer.json()["resp"]) == (507, "ARCHIVE_FAILED")


async def test_cleanbuf_needs_admin_header(
    secured_api: httpx.AsyncClient, logic: FakeUpstream, tokens
) -> None:
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    writer = await secured_api.post(
        "/cleanbuf", json={"msg": "x"}, headers={"Authorization": f"Bearer {tokens.writer}"}
    )
    nobody = await secured_api.post("/cleanbuf", json={"msg": "x"})
    admin = await secured_api.post(
        "/cleanbuf", json={"msg": "x"}, headers={"Authorization": f"Bearer {tokens.admin}"}
    )
    assert (writer.status_code, nobody.status_code, admin.status_code) == (403, 401, 200)
    assert flush.call_count == 1


async def test_stats_relayed(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    body = {"n_itm": 2, "buff_size": 96, "batch": 1, "dstatus": "OPERATIONAL"}
    logic.get("/bufstat").respond(200, json=body)
    answer = await api.get("/stats")
    assert answer.json() == body


async def test_dumpbuf_passes_paging(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    dump = logic.get("/dumpf").respond(
        200, json={"nmlist": ["a.json"], "total": 3, "offset": 2, "limit": 1}
    )
    answer = await api.get("/dumpbuf?limit=1&offset=2")
    assert answer.json()["nmlist"] == ["a.json"]
    assert dump.calls.last.query == {"limit": "1", "offset": "2"}


async def test_desc_answers_state(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    logic.get("/dsdesc").respond(
        200, json={"dstatus": "FROZEN", "user": "airflow", "batch": 3, "frozen_at": "t"}
    )
    answer = await api.get("/desc")
    assert answer.json() == {"resp": "FROZEN", "batch": 3, "frozen_at": "t"}


async def test_desc_without_state_is_502(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    logic.get("/dsdesc").respond(200, json={"user": "x"})
    answer = await api.get("/desc")
    assert (answer.status_code, answer.json()["resp"]) == (502, "UPSTREAM_ERROR")


async def test_stats_logic_down_is_502(make_api) -> None:
    async with make_api(ds_burl=f"http://127.0.0.1:{free_port()}") as api:  # nothing listens
        answer = await api.get("/stats")
    assert (answer.status_code, answer.json()["resp"]) == (502, "UPSTREAM_UNREACHABLE")


async def test_dspage_serves_html_itself(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    page = logic.get("/").respond(200, html="<html><h1>Glitchflow datastore</h1></html>")
    answer = await api.get("/dspage?page=2")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "Glitchflow datastore" in answer.text
    assert "location" not in answer.headers
    assert page.calls.last.query == {"page": "2"}


async def test_dspage_logic_down_is_502(make_api) -> None:
    async with make_api(ds_burl=f"http://127.0.0.1:{free_port()}") as api:  # nothing listens
        answer = await api.get("/dspage")
    assert answer.status_code == 502
    assert answer.json()["resp"] == "UPSTREAM_UNREACHABLE"
    assert answer.json()["upstream"] == "datastore_logic"


async def test_dspage_buffer_down_is_relayed(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    body = {"resp": "UPSTREAM_TIMEOUT", "upstream": "databuffer", "detail": "no answer"}
    logic.get("/").respond(504, json=body)
    answer = await api.get("/dspage")
    assert (answer.status_code, answer.json()) == (504, body)


async def test_healthz_and_readyz(api: httpx.AsyncClient, logic: FakeUpstream) -> None:
    # Answers once, then hangs up on every call: the logic went down after the first check.
    logic.get("/healthz").reply(Reply(200, json={"resp": "OK"}), Hangup())
    assert (await api.get("/healthz")).json() == {"resp": "OK"}
    assert (await api.get("/readyz")).status_code == 200
    not_ready = await api.get("/readyz")
    assert (not_ready.status_code, not_ready.json()["resp"]) == (503, "NOT_READY")


async def test_openapi_documents_bodies_with_original_fields(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    stream = spec["paths"]["/streamdata"]["post"]["requestBody"]["content"]
    one, several = stream["application/json"]["schema"]["anyOf"]
    assert set(one["properties"]) == {"h", "t", "channel"}
    assert several["items"] == one
    assert stream["application/octet-stream"]["schema"]["format"] == "binary"
    assert "application/x-ndjson" in stream
    params = spec["paths"]["/streamdata"]["post"]["parameters"]
    assert {param["name"] for param in params} == {"channel", "t0", "dt"}
    paths = spec["paths"]
    for path, fields in (("/train", {"user", "token"}), ("/cleanbuf", {"msg", "batch", "force"})):
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["properties"]) == fields
        assert {"413", "415", "422"} <= set(paths[path]["post"]["responses"])
    schemas = spec["components"]["schemas"]
    assert {"resp", "n_f", "bt_wrt"} <= set(schemas["TrainAnswer"]["properties"])
    assert set(schemas["StatsAnswer"]["properties"]) >= {"n_itm", "buff_size"}
    assert "nmlist" in schemas["DumpAnswer"]["properties"]
    assert (await api.get("/docs")).status_code == 200


async def test_cleanbuf_names_a_batch_for_the_logic(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    answer = await api.post("/cleanbuf", json={"msg": "dag", "batch": 3})
    assert answer.json()["resp"] == "CLEANED"
    assert orjson.loads(flush.calls.last.content) == {"msg": "dag", "batch": 3, "force": False}


async def test_cleanbuf_repeated_for_a_batch_is_cleaned_again(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    again = {**CLEANED, "body": {**CLEANED["body"], "already_flushed": True}}
    logic.post("/flushbuf").respond(200, json=again)
    answer = await api.post("/cleanbuf", json={"msg": "dag", "batch": 3})
    assert answer.status_code == 200
    assert (answer.json()["resp"], answer.json()["body"]["already_flushed"]) == ("CLEANED", True)


async def test_cleanbuf_unknown_batch_is_404_relayed(
    api: httpx.AsyncClient, logic: FakeUpstream
) -> None:
    logic.post("/flushbuf").respond(404, json={"resp": "UNKNOWN_BATCH", "batch": 99})
    answer = await api.post("/cleanbuf", json={"msg": "dag", "batch": 99})
    assert answer.status_code == 404
    assert answer.json() == {
        "resp": "UNKNOWN_BATCH",
        "body": {"resp": "UNKNOWN_BATCH", "batch": 99},
    }


@pytest.mark.parametrize("batch", [0, -1, "3", 1.5, True])
async def test_cleanbuf_batch_must_be_a_batch_number(
    api: httpx.AsyncClient, logic: FakeUpstream, batch: object
) -> None:
    flush = logic.post("/flushbuf").respond(200, json=CLEANED)
    answer = await api.post("/cleanbuf", json={"msg": "dag", "batch": batch})
    assert (answer.status_code, answer.json()["detail"]["field"]) == (422, "batch")
    assert not flush.called


async def test_writers_are_open_when_only_admin_tokens_are_set(
    make_api, logic: FakeUpstream
) -> None:
    stream = logic.post("/stream").respond(201, json={"resp": "CREATED"})
    logic.post("/flushbuf").respond(200, json=CLEANED)
    async with make_api(admin_tokens="admin-only-token-0123456789") as api:
        chunk = orjson.dumps({"h": [1.0, 2.0], "t": [1e9, 0.25]})
        created = await api.post(
            "/streamdata", content=chunk, headers={"Content-Type": "application/json"}
        )
        assert created.status_code == 201
        assert stream.called
        refused = await api.post("/cleanbuf", json={"msg": "x"})
        assert (refused.status_code, refused.json()["resp"]) == (401, "UNAUTHORIZED")
        allowed = await api.post(
            "/cleanbuf",
            json={"msg": "x"},
            headers={"Authorization": "Bearer admin-only-token-0123456789"},
        )
        assert allowed.status_code == 200
