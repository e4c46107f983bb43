"""`datastore_logic.upstream.BufferClient` against a real HTTP server: what goes on the wire."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import orjson
import pytest
from fake_upstream import Delay, FakeUpstream, Hangup, Reply

from datastore_logic.upstream import BufferClient
from glitchflow_core.retry import BACKOFF_BASE, CONNECT_ATTEMPTS
from glitchflow_core.upstream import UpstreamTimeout, UpstreamUnreachable

TOKEN = "service-token-0123456789"
TIMEOUT = 0.5


@pytest.fixture
def make_buffer_client(buffer: FakeUpstream) -> Iterator[Callable[..., BufferClient]]:
    """``make_buffer_client(base_url=..., timeout=..., token=...)``; pools closed at teardown."""
    made: list[BufferClient] = []

    def make(
        base_url: str | None = None, timeout: float = 2.0, token: str | None = None
    ) -> BufferClient:
        client = BufferClient(base_url or buffer.url, timeout, token)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_token_is_sent_as_bearer_authorization(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream
) -> None:
    stat = buffer.get("/stat").respond(200, json={})
    client = make_buffer_client(token=TOKEN)
    client.request("GET", "/stat")
    client.request("GET", "/stat")  # on a reused connection too
    assert [call.headers.get("authorization") for call in stat.calls] == [f"Bearer {TOKEN}"] * 2


def test_no_token_sends_no_authorization(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream
) -> None:
    stat = buffer.get("/stat").respond(200, json={})
    make_buffer_client().request("GET", "/stat")
    assert stat.call_count == 1
    assert stat.calls.last.headers.get("authorization") is None


def test_params_are_encoded_in_the_query(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream
) -> None:
    dump = buffer.get("/dumpF").respond(200, json={})
    client = make_buffer_client()
    params = {"limit": 5, "offset": 2**62, "name": "a b&c=d/é?#"}
    client.request("GET", "/dumpF", params=params)
    assert dump.calls.last.query == {"limit": "5", "offset": str(2**62), "name": "a b&c=d/é?#"}
    client.request("GET", "/dumpF", params={})
    assert dump.calls.last.query == {}


def test_json_body_is_serialised_with_content_type(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream
) -> None:
    upd = buffer.post("/upddsc").respond(200, json={})
    body = {"dstatus": "FROZEN", "user": "airflow", "if_size_at_least": 1000, "x": [1.5, None]}
    make_buffer_client(token=TOKEN).request("POST", "/upddsc", json=body)
    call = upd.calls.last
    assert call.json() == body
    assert call.content == orjson.dumps(body)
    assert call.headers.get("content-type") == "application/json"
    assert call.headers.get("authorization") == f"Bearer {TOKEN}"


def test_raw_content_is_sent_byte_for_byte_with_given_headers(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream
) -> None:
    send = buffer.post("/sendF").respond(201, json={})
    content = bytes(range(256)) * 4096  # 1 MiB, every byte value
    make_buffer_client().request(
        "POST",
        "/sendF",
        params={"freeze_at": 1000},
        content=content,
        headers={"Content-Type": "application/json"},
    )
    call = send.calls.last
    assert call.content == content
    assert call.query == {"freeze_at": "1000"}
    assert call.headers.get("content-type") == "application/json"


@pytest.mark.parametrize("prefix", ["/buffer", "/buffer/", "/a/b"])
def test_path_prefix_in_base_url_is_kept(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream, prefix: str
) -> None:
    stat = buffer.get(prefix.rstrip("/") + "/stat").respond(200, json={"n_itm": 1})
    answer = make_buffer_client(buffer.url + prefix).request("GET", "/stat", params={"a": 1})
    assert answer.status_code == 200
    assert orjson.loads(answer.content) == {"n_itm": 1}
    assert stat.calls.last.query == {"a": "1"}


def test_answer_has_status_body_and_case_insensitive_headers(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream
) -> None:
    frozen = {"resp": "FROZEN", "batch": 4}
    send = buffer.post("/sendF").respond(503, json=frozen, headers={"Retry-After": "30"})
    answer = make_buffer_client().request("POST", "/sendF", content=b"{}")
    assert answer.status_code == 503
    assert send.call_count == 1  # passed back at once: the client, not the service, waits
    assert orjson.loads(answer.content) == frozen
    assert "retry-after" in answer.headers
    assert "RETRY-AFTER" in answer.headers
    assert answer.headers["retry-after"] == answer.headers["Retry-After"] == "30"
    assert answer.headers["content-type"] == "application/json"


def test_refused_connection_is_retried_then_unreachable(
    make_buffer_client: Callable[..., BufferClient], closed_url: str, pauses: list[float]
) -> None:
    with pytest.raises(UpstreamUnreachable) as failure:
        make_buffer_client(closed_url).request("GET", "/stat")
    assert (failure.value.upstream, failure.value.detail) == ("databuffer", "connection refused")
    assert failure.value.status == 502
    assert len(pauses) == CONNECT_ATTEMPTS - 1
    for attempt, pause in enumerate(pauses):  # exponential, half of it jittered
        assert 0.5 <= pause / (BACKOFF_BASE * 2**attempt) <= 1.0


def test_refused_connection_is_not_retried_past_the_timeout(
    make_buffer_client: Callable[..., BufferClient], closed_url: str, pauses: list[float]
) -> None:
    # The first pause (at least half of BACKOFF_BASE) is cut to what is left of the timeout.
    timeout = BACKOFF_BASE / 4
    with pytest.raises(UpstreamUnreachable, match="connection refused"):
        make_buffer_client(closed_url, timeout=timeout).request("GET", "/stat")
    assert sum(pauses) <= timeout


def test_refused_connection_then_answer_is_the_answer(
    make_buffer_client: Callable[..., BufferClient],
    late_buffer: FakeUpstream,
    pauses: list[float],
) -> None:
    stat = late_buffer.get("/stat").respond(200, json={"n_itm": 3})
    answer = make_buffer_client(late_buffer.url).request("GET", "/stat")
    assert (answer.status_code, orjson.loads(answer.content)) == (200, {"n_itm": 3})
    assert len(pauses) == 1
    assert stat.call_count == 1


def test_no_answer_in_time_is_timeout_and_not_repeated(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream, pauses: list[float]
) -> None:
    send = buffer.post("/sendF").reply(Delay(4 * TIMEOUT, Reply(201, json={})))
    client = make_buffer_client(timeout=TIMEOUT)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout) as failure:
        client.request("POST", "/sendF", content=b"{}")
    assert time.monotonic() - started < 3 * TIMEOUT
    assert (failure.value.status, failure.value.resp) == (504, "UPSTREAM_TIMEOUT")
    assert failure.value.detail == f"no answer within {TIMEOUT:g} s"
    assert send.call_count == 1
    assert pauses == []


def test_frozen_answer_is_passed_back_not_waited_on(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream, pauses: list[float]
) -> None:
    stat = buffer.get("/stat").reply(
        Reply(503, json={"resp": "BUSY"}, headers={"Retry-After": "1"}),
        Reply(200, json={"n_itm": 1}),
    )
    answer = make_buffer_client().request("GET", "/stat")  # idempotent, yet not repeated here
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert stat.call_count == 1
    assert pauses == []


def test_connection_broken_before_an_answer_is_unreachable(
    make_buffer_client: Callable[..., BufferClient], buffer: FakeUpstream, pauses: list[float]
) -> None:
    send = buffer.post("/sendF").reply(Hangup(), Reply(201, json={"resp": "CREATED"}))
    client = make_buffer_client()
    with pytest.raises(UpstreamUnreachable) as failure:
        client.request("POST", "/sendF", content=b"{}")
    assert failure.value.upstream == "databuffer"
    assert failure.value.detail != "connection refused"
    assert send.call_count == 1  # not repeated: the buffer may have acted on it
    assert pauses == []
    # The pool recovers: the next request gets a new connection and the answer.
    assert client.request("POST", "/sendF", content=b"{}").status_code == 201
    assert send.call_count == 2


def test_unknown_host_is_reported_as_such() -> None:
    client = BufferClient("http://no-such-host.invalid:8080", 0.2, None)
    with pytest.raises(UpstreamUnreachable) as failure:
        client.request("GET", "/stat")
    assert failure.value.detail == "cannot resolve the host name"
