"""datastore_logic endpoints against a databuffer that is a real, scripted HTTP server."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest
from fake_upstream import Delay, FakeUpstream, Hangup, Reply
from flask.testing import FlaskClient

from glitchflow_core.retry import CONNECT_ATTEMPTS

CHUNK = b'{"h":[1.0e-21,2.0e-21],"t":[1000000000.0,0.25]}'
CREATED = {
    "resp": "CREATED",
    "file": "default-1000000000.000000000-2-0.25.json",
    "bytes": 48,
    "n_itm": 1,
    "buff_size": 48,
    "batch": 1,
    "frozen": False,
}
TOKEN = "service-token-0123456789"
TIMEOUT = 0.5
"""The app's ``upstream_timeout`` in the timeout tests; the buffer answers well after it."""


def post_chunk(client: FlaskClient, body: bytes = CHUNK, **headers: str):
    return client.post(
        "/stream", data=body, headers={"Content-Type": "application/json", **headers}
    )


def test_stream_forwards_raw_bytes_with_freeze_threshold(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json=CREATED)
    answer = post_chunk(client)
    assert answer.status_code == 201
    assert answer.json == CREATED
    call = send.calls.last
    assert call.content == CHUNK
    assert call.query["freeze_at"] == "1000"
    assert "max_age" not in call.query
    assert call.headers.get("content-type") == "application/json"


def test_stream_forwards_a_large_body_byte_for_byte(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    # Larger than werkzeug's 64 KiB reads and gunicorn's read-ahead pieces.
    big = orjson.dumps({"h": [i * 1e-21 for i in range(40_000)], "t": [1e9, 1 / 16384]})
    assert len(big) > 512 * 1024
    send = buffer.post("/sendF").respond(201, json=CREATED)
    assert post_chunk(client, big).status_code == 201
    assert send.calls.last.content == big


def test_stream_sends_max_age_when_configured(
    make_client: Callable[..., FlaskClient], buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json=CREATED)
    post_chunk(make_client(max_batch_age=60))
    assert send.calls.last.query["max_age"] == "60"


def test_stream_relays_frozen_with_retry_after(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/sendF").respond(
        503, json={"resp": "FROZEN", "batch": 4}, headers={"Retry-After": "30"}
    )
    answer = post_chunk(client)
    assert answer.status_code == 503
    assert answer.json == {"resp": "FROZEN", "batch": 4}
    assert answer.headers["Retry-After"] == "30"


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"resp": "DUPLICATE", "file": "f.json", "batch": 1}),
        (409, {"resp": "CONFLICT", "detail": "overlaps stored data"}),
        (422, {"resp": "INVALID", "detail": {"field": "h", "reason": "must hold at least one"}}),
        (507, {"resp": "DISK_FULL"}),
    ],
)
def test_stream_relays_buffer_answers_unchanged(
    client: FlaskClient, buffer: FakeUpstream, status: int, body: dict
) -> None:
    buffer.post("/sendF").respond(status, json=body)
    answer = post_chunk(client)
    assert (answer.status_code, answer.json) == (status, body)


def test_stream_wrong_content_type_is_415_and_not_forwarded(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json=CREATED)
    answer = client.post("/stream", data=CHUNK, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert answer.json["detail"]["field"] == "content-type"
    assert not send.called


def test_stream_body_over_limit_is_413_and_not_forwarded(
    make_client: Callable[..., FlaskClient], buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json=CREATED)
    answer = post_chunk(make_client(max_body=16))
    assert answer.status_code == 413
    assert answer.json == {
        "resp": "INVALID",
        "detail": {"field": "body", "reason": answer.json["detail"]["reason"]},
    }
    assert not send.called


def test_stream_buffer_down_is_502(
    make_client: Callable[..., FlaskClient], closed_url: str, pauses: list[float]
) -> None:
    answer = post_chunk(make_client(db_burl=closed_url))
    assert answer.status_code == 502
    assert answer.json["resp"] == "UPSTREAM_UNREACHABLE"
    assert answer.json["upstream"] == "databuffer"
    assert answer.json["detail"] == "connection refused"
    assert len(pauses) == CONNECT_ATTEMPTS - 1  # refused every time, retried


def test_stream_refused_connection_is_retried(
    make_client: Callable[..., FlaskClient], late_buffer: FakeUpstream, pauses: list[float]
) -> None:
    send = late_buffer.post("/sendF").respond(201, json=CREATED)
    answer = post_chunk(make_client(db_burl=late_buffer.url))
    assert (answer.status_code, answer.json) == (201, CREATED)
    assert len(pauses) == 1
    assert send.call_count == 1
    assert send.calls.last.content == CHUNK


def test_stream_buffer_timeout_is_504(
    make_client: Callable[..., FlaskClient], buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").reply(Delay(4 * TIMEOUT, Reply(201, json=CREATED)))
    answer = post_chunk(make_client(upstream_timeout=TIMEOUT))
    assert answer.status_code == 504
    assert answer.json["resp"] == "UPSTREAM_TIMEOUT"
    assert answer.json["upstream"] == "databuffer"
    assert send.call_count == 1  # sent once: a request that may have arrived is not repeated


def test_stream_connection_broken_by_buffer_is_502(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").reply(Hangup())
    answer = post_chunk(client)
    assert answer.status_code == 502
    assert answer.json["resp"] == "UPSTREAM_UNREACHABLE"
    assert answer.json["upstream"] == "databuffer"
    assert send.call_count == 1  # not repeated: the buffer may have stored it


def test_stream_buffer_5xx_without_resp_is_502(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/sendF").respond(500, text="Internal Server Error")
    answer = post_chunk(client)
    assert answer.status_code == 502
    assert answer.json["resp"] == "UPSTREAM_ERROR"


def test_post_needs_service_token_when_configured(
    make_client: Callable[..., FlaskClient], buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json=CREATED)
    client = make_client(service_token=TOKEN)
    assert post_chunk(client).status_code == 401
    assert post_chunk(client, Authorization="Bearer wrong-token-0123456").status_code == 401
    assert not send.called
    answer = post_chunk(client, Authorization=f"Bearer {TOKEN}")
    assert answer.status_code == 201
    assert send.calls.last.headers.get("authorization") == f"Bearer {TOKEN}"


def test_unauthorized_answer_does_not_echo_token(make_client: Callable[..., FlaskClient]) -> None:
    answer = post_chunk(make_client(service_token=TOKEN), Authorization="Bearer guessed-token-xyz")
    assert b"guessed-token-xyz" not in answer.data
    assert TOKEN.encode() not in answer.data


def test_freezeds_frozen_with_counts(client: FlaskClient, buffer: FakeUpstream) -> None:
    upd = buffer.post("/upddsc").respond(
        200, json={"resp": "FROZEN", "n_itm": 21, "buff_size": 1008, "batch": 3}
    )
    answer = client.post("/freezeds", json={"user": "airflow", "token": "x"})
    assert answer.status_code == 200
    assert answer.json == {"resp": "FROZEN", "n_f": 21, "bt_wrt": 1008, "batch": 3}
    sent = upd.calls.last.json()
    assert sent == {
        "dstatus": "FROZEN",
        "user": "airflow",
        "if_size_at_least": 1000,
        "mode": "rotate",
        "max_sealed": 4,
    }


def test_freezeds_waiting_when_not_full(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/upddsc").respond(
        200, json={"resp": "WAITING", "n_itm": 2, "buff_size": 96, "batch": 3}
    )
    answer = client.post("/freezeds", json={"user": "airflow"})
    assert answer.json == {"resp": "WAITING", "n_f": 2, "bt_wrt": 96, "max_size": 1000, "batch": 3}


@pytest.mark.parametrize(
    ("failure", "status", "resp"),
    [
        (None, 502, "UPSTREAM_UNREACHABLE"),  # refused: the buffer is down
        (
            Delay(4 * TIMEOUT, Reply(200, json={"resp": "WAITING", "n_itm": 0})),
            504,
            "UPSTREAM_TIMEOUT",
        ),
        (Hangup(), 502, "UPSTREAM_UNREACHABLE"),
        (Reply(500, text="boom"), 502, "UPSTREAM_ERROR"),
    ],
    ids=["refused", "timeout", "hangup", "500"],
)
def test_freezeds_failure_is_never_waiting(
    make_client: Callable[..., FlaskClient],
    buffer: FakeUpstream,
    closed_url: str,
    failure: Delay | Hangup | Reply | None,
    status: int,
    resp: str,
) -> None:
    if failure is None:
        client = make_client(db_burl=closed_url)
    else:
        buffer.post("/upddsc").reply(failure)
        client = make_client(upstream_timeout=TIMEOUT)
    answer = client.post("/freezeds", json={"user": "airflow"})
    assert answer.status_code in (502, 504)
    assert answer.json["resp"] not in ("FROZEN", "WAITING")
    assert answer.json["resp"].startswith("UPSTREAM_")
    assert (answer.status_code, answer.json["resp"]) == (status, resp)


def test_freezeds_nonsense_answer_is_502(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/upddsc").respond(200, json={"resp": "WAITING"})
    answer = client.post("/freezeds", json={"user": "airflow"})
    assert answer.status_code == 502
    assert answer.json["resp"] == "UPSTREAM_ERROR"


def test_freezeds_user_must_be_string(client: FlaskClient, buffer: FakeUpstream) -> None:
    upd = buffer.post("/upddsc").respond(200, json={})
    answer = client.post("/freezeds", json={"user": 5})
    assert answer.status_code == 422
    assert answer.json["detail"]["field"] == "user"
    assert not upd.called


def test_flushbuf_cleaned_names_batch_and_archive(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    body = {
        "resp": "CLEANED",
        "batch": 3,
        "archive": "000003-20261122T101500Z",
        "n_f": 21,
        "bt_wrt": 1008,
        "manifest": {},
    }
    clean = buffer.post("/cleanall").respond(200, json=body)
    answer = client.post("/flushbuf", json={"msg": "trained"})
    assert answer.json == {
        "resp": "CLEANED",
        "batch": 3,
        "archive": "000003-20261122T101500Z",
        "body": body,
    }
    assert clean.calls.last.json() == {"msg": "trained", "batch": None, "force": True}


def test_flushbuf_not_frozen_is_409(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/cleanall").respond(409, json={"resp": "NOT_FROZEN"})
    answer = client.post("/flushbuf", json={"msg": "x"})
    assert (answer.status_code, answer.json) == (409, {"resp": "NOT_FROZEN"})


def test_flushbuf_archive_failure_relayed(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/cleanall").respond(507, json={"resp": "ARCHIVE_FAILED", "detail": "disk full"})
    answer = client.post("/flushbuf", json={"msg": "x", "force": True})
    assert (answer.status_code, answer.json["resp"]) == (507, "ARCHIVE_FAILED")


def test_flushbuf_force_must_be_bool(client: FlaskClient, buffer: FakeUpstream) -> None:
    clean = buffer.post("/cleanall").respond(200, json={})
    answer = client.post("/flushbuf", json={"msg": "x", "force": "yes"})
    assert (answer.status_code, answer.json["detail"]["field"]) == (422, "force")
    assert not clean.called


@pytest.mark.parametrize(
    ("path", "upstream", "body"),
    [
        ("/dsdesc", "/dstat", {"dstatus": "OPERATIONAL", "user": "", "batch": 1}),
        ("/bufstat", "/stat", {"n_itm": 2, "buff_size": 96, "batch": 1, "dstatus": "OPERATIONAL"}),
        ("/dumpflog", "/dumpLogF", {"log": [], "total": 0, "offset": 0, "limit": 100}),
    ],
)
def test_reads_are_relayed(
    client: FlaskClient, buffer: FakeUpstream, path: str, upstream: str, body: dict
) -> None:
    buffer.get(upstream).respond(200, json=body)
    answer = client.get(path)
    assert (answer.status_code, answer.json) == (200, body)


def test_dumpf_passes_paging(client: FlaskClient, buffer: FakeUpstream) -> None:
    dump = buffer.get("/dumpF").respond(
        200, json={"nmlist": ["a.json"], "total": 11, "offset": 10, "limit": 5}
    )
    answer = client.get("/dumpf?limit=5&offset=10")
    assert answer.json["nmlist"] == ["a.json"]
    assert dump.calls.last.query == {"limit": "5", "offset": "10"}


def test_dumpf_refuses_bad_paging(client: FlaskClient, buffer: FakeUpstream) -> None:
    dump = buffer.get("/dumpF").respond(200, json={})
    answer = client.get("/dumpf?limit=-3")
    assert (answer.status_code, answer.json["detail"]["field"]) == (422, "limit")
    assert not dump.called


def buffer_status(n_itm: int, buff_size: int, state: str) -> dict[str, object]:
    """A databuffer ``/status`` answer with ``n_itm`` chunks of the default channel."""
    items = [
        {"channel": "default", "t0": 1e9 + i, "n": 4, "dt": 0.25, "bytes": buff_size // n_itm}
        for i in range(min(n_itm, 50))
    ]
    frozen = state == "FROZEN"
    return {
        "now": 1_700_000_100.0,
        "stat": {"n_itm": n_itm, "buff_size": buff_size, "batch": 5, "dstatus": state},
        "state": {
            "dstatus": state,
            "user": "airflow" if frozen else None,
            "batch": 5,
            "batch_started": "2026-11-22T10:00:00+00:00",
            "frozen_at": "2026-11-22T10:01:00+00:00" if frozen else None,
            "frozen_reason": "buff_size 750 >= 700" if frozen else None,
        },
        "frozen_for_s": 40.0 if frozen else None,
        "rate": {
            "window_s": 60,
            "chunks": n_itm,
            "bytes": buff_size,
            "chunks_per_s": n_itm / 60,
            "bytes_per_s": buff_size / 60,
            "realtime": n_itm / 60,
        },
        "channels": [],
        "chunks": {"items": items, "total": n_itm, "offset": 0, "limit": 50},
        "archives": {"items": [], "total": 0},
    }


def test_status_adds_the_policy_to_the_buffers_numbers(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    status = buffer.get("/status").respond(200, json=buffer_status(2, 750, "FROZEN"))
    doc = client.get("/status").json
    assert (doc["state"], doc["n_itm"], doc["buff_size"], doc["batch"]) == ("FROZEN", 2, 750, 5)
    assert (doc["max_size"], doc["fill"]) == (1000, 0.75)
    assert doc["frozen"]["for_s"] == 40.0
    assert "/cleanbuf" in doc["frozen"]["hint"]
    assert doc["chunks"]["pages"] == 1
    assert status.calls.last.query == {"limit": "50", "offset": "0"}


def test_status_pages_the_chunks_fifty_a_page(client: FlaskClient, buffer: FakeUpstream) -> None:
    status = buffer.get("/status").respond(200, json=buffer_status(120, 12_000, "OPERATIONAL"))
    doc = client.get("/status?page=3").json
    assert (doc["chunks"]["page"], doc["chunks"]["pages"]) == (3, 3)
    assert status.calls.last.query == {"limit": "50", "offset": "100"}
    past = client.get("/status?page=4")
    assert past.status_code == 404
    assert past.json == {
        "resp": "NOT_FOUND",
        "detail": {"field": "page", "reason": "is past the last page (3)"},
        "pages": 3,
    }


def test_status_page_works_with_empty_buffer(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.get("/status").respond(200, json=buffer_status(0, 0, "OPERATIONAL"))
    answer = client.get("/")
    assert answer.status_code == 200
    assert answer.mimetype == "text/html"
    html = answer.get_data(as_text=True)
    assert "<title>Glitchflow datastore: OPERATIONAL</title>" in html
    assert '"n_itm":0' in html.replace(" ", "")
    assert 'http-equiv="refresh"' not in html  # it updates itself, without reloading


def test_status_page_past_the_end_is_404_showing_the_last(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    buffer.get("/status").respond(200, json=buffer_status(2, 750, "FROZEN"))
    answer = client.get("/?page=99")
    assert answer.status_code == 404
    html = answer.get_data(as_text=True)
    assert "There is no page 99: the list has 1 page; this is the last." in html
    assert "page 99 of" not in html


def test_status_page_allows_only_its_own_script_and_style(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    buffer.get("/status").respond(200, json=buffer_status(0, 0, "OPERATIONAL"))
    answer = client.get("/")
    csp = answer.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'sha256-" in csp and "unsafe" not in csp


def test_status_page_buffer_down_is_502(
    make_client: Callable[..., FlaskClient], closed_url: str
) -> None:
    answer = make_client(db_burl=closed_url).get("/")
    assert answer.status_code == 502
    assert answer.json == {
        "resp": "UPSTREAM_UNREACHABLE",
        "upstream": "databuffer",
        "detail": "connection refused",
    }


def test_healthz_is_ok(client: FlaskClient) -> None:
    assert client.get("/healthz").json == {"resp": "OK"}


def test_readyz_follows_buffer(make_client: Callable[..., FlaskClient]) -> None:
    upstream = FakeUpstream().start()  # not the ``buffer`` fixture: this one goes down
    try:
        ready = upstream.get("/readyz").respond(200, json={"resp": "READY"})
        client = make_client(db_burl=upstream.url)
        answer = client.get("/readyz")
        assert (answer.status_code, answer.json) == (200, {"resp": "READY"})
        assert ready.call_count == 1
    finally:
        upstream.stop()  # the buffer goes down: its port now refuses connections
    assert not upstream.unmatched
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json["resp"]) == (503, "NOT_READY")
    assert answer.json["detail"]["resp"] == "UPSTREAM_UNREACHABLE"


def test_readyz_not_ready_while_buffer_answers_503(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    buffer.get("/readyz").respond(503, json={"resp": "NOT_READY"})
    answer = client.get("/readyz")
    assert (answer.status_code, answer.json["resp"]) == (503, "NOT_READY")
    assert answer.json["detail"] == "databuffer answered 503"


def test_metrics_count_ingest_and_refusals(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/sendF").reply(
        Reply(201, json={**CREATED, "frozen": True, "buff_size": 1200}),
        Reply(503, json={"resp": "FROZEN", "batch": 1}, headers={"Retry-After": "5"}),
    )
    post_chunk(client)
    post_chunk(client)
    text = client.get("/metrics").get_data(as_text=True)
    assert "glitchflow_ingested_chunks_total 1.0" in text
    assert "glitchflow_ingested_bytes_total 48.0" in text
    assert "glitchflow_freezes_total 1.0" in text
    assert 'glitchflow_refusals_total{reason="frozen"} 1.0' in text
    assert "glitchflow_fill_ratio 1.0" in text
    assert 'route="/stream"' in text


def test_flushbuf_with_a_batch_flushes_only_that_batch(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    body = {"resp": "CLEANED", "batch": 4, "archive": "000004-x", "already_flushed": True}
    clean = buffer.post("/cleanall").respond(200, json=body)
    answer = client.post("/flushbuf", json={"msg": "dag", "batch": 4})
    assert (answer.status_code, answer.json["batch"]) == (200, 4)
    assert answer.json["body"]["already_flushed"] is True
    assert clean.calls.last.json() == {"msg": "dag", "batch": 4, "force": False}


def test_flushbuf_unknown_batch_is_relayed(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/cleanall").respond(404, json={"resp": "UNKNOWN_BATCH", "batch": 9})
    answer = client.post("/flushbuf", json={"batch": 9})
    assert (answer.status_code, answer.json) == (404, {"resp": "UNKNOWN_BATCH", "batch": 9})


@pytest.mark.parametrize("batch", [0, -1, "3", 1.5, True])
def test_flushbuf_batch_must_be_a_batch_number(
    client: FlaskClient, buffer: FakeUpstream, batch: object
) -> None:
    clean = buffer.post("/cleanall").respond(200, json={})
    answer = client.post("/flushbuf", json={"msg": "x", "batch": batch})
    assert (answer.status_code, answer.json["detail"]["field"]) == (422, "batch")
    assert not clean.called


# --------------------------------------------------------------------------- batch results

RESULTS = {"dag_run_id": "manual__1", "report": {"windows": 3, "flagged": 1}}


def test_batch_results_go_to_the_buffer_as_sent(client: FlaskClient, buffer: FakeUpstream) -> None:
    recorded = {"resp": "RECORDED", "batch": 3, "archive": "000003-20261122T101500Z"}
    route = buffer.post("/batches/3/results").respond(200, json=recorded)
    body = orjson.dumps(RESULTS)
    answer = client.post(
        "/batches/3/results", data=body, headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json) == (200, recorded)
    assert route.calls.last.content == body


def test_batch_results_of_an_unknown_batch_relay_the_buffers_404(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    refusal = {"resp": "NOT_ARCHIVED", "batch": 4, "detail": "batch 4 is not archived yet"}
    buffer.post("/batches/4/results").respond(404, json=refusal)
    answer = client.post("/batches/4/results", json=RESULTS)
    assert (answer.status_code, answer.json) == (404, refusal)


@pytest.mark.parametrize("body", [b"[]", b"{", b""], ids=["array", "not-json", "empty"])
def test_batch_results_must_be_a_json_object(
    client: FlaskClient, buffer: FakeUpstream, body: bytes
) -> None:
    route = buffer.post("/batches/3/results").respond(200, json={})
    answer = client.post(
        "/batches/3/results", data=body, headers={"Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json["detail"]["field"]) == (422, "body")
    assert not route.called


def test_batches_are_relayed_with_paging(client: FlaskClient, buffer: FakeUpstream) -> None:
    listed = {"batches": [{"batch": 2, "results": RESULTS}], "total": 2, "sealed": []}
    route = buffer.get("/batches").respond(200, json=listed)
    answer = client.get("/batches?limit=1&offset=1")
    assert (answer.status_code, answer.json) == (200, listed)
    assert route.calls.last.query == {"limit": "1", "offset": "1"}


def test_stream_passes_a_binary_chunk_on_with_its_query(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json=CREATED)
    raw = b"\0" * 16
    answer = client.post(
        "/stream?channel=H1:X&t0=1.5&dt=0.25&freeze_at=1",
        data=raw,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 201
    call = send.calls.last
    assert call.content == raw
    assert call.headers["content-type"] == "application/octet-stream"
    assert (call.query["channel"], call.query["t0"], call.query["dt"]) == ("H1:X", "1.5", "0.25")
    assert call.query["freeze_at"] != "1"  # the policy's, never the caller's


def test_stream_relays_a_multi_answer_and_counts_each_chunk(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    results = [
        {"status": 201, **CREATED},
        {"status": 503, "resp": "FROZEN", "batch": 1, "retry_after": 1},
    ]
    multi = {"resp": "MULTI", "results": results}
    send = buffer.post("/sendF").respond(207, json=multi)
    lines = CHUNK + b"\n" + CHUNK
    answer = client.post("/stream", data=lines, headers={"Content-Type": "application/x-ndjson"})
    assert (answer.status_code, answer.json) == (207, multi)
    assert send.calls.last.content == lines
    metrics = client.get("/metrics").text
    assert 'glitchflow_refusals_total{reason="frozen"} 1.0' in metrics
