"""Bad input to datastore_logic is a 4xx naming the field: never a 500, never a 502."""

from __future__ import annotations

import io

import pytest
from fake_upstream import FakeUpstream
from flask.testing import FlaskClient

from datastore_logic.routes import LOG_MAX_LIMIT, MAX_PAGE
from glitchflow_core.edge import ADMIN_BODY_LIMIT as ADMIN_MAX_BODY

JSON = {"Content-Type": "application/json"}
DUMP = {"nmlist": [], "total": 0, "offset": 0, "limit": 100}
LOG = {"log": [], "total": 0, "offset": 0, "limit": 100}

BAD_VALUES = [
    ("negative", "-3"),
    ("word", "abc"),
    ("superscript-two", "%C2%B2"),
    ("arabic-indic-five", "%D9%A5"),
    ("plus", "%2B1"),
    ("space", "%201"),
    ("underscore", "1_0"),
    ("fraction", "1.5"),
    ("empty", ""),
    ("huge", "99999999999999999999"),
]
BAD_QUERIES = [
    pytest.param(path, name, value, id=f"{path}-{name}-{label}")
    for path, name in (
        ("/dumpf", "limit"),
        ("/dumpf", "offset"),
        ("/dumpflog", "limit"),
        ("/dumpflog", "offset"),
        ("/", "page"),
    )
    for label, value in BAD_VALUES
] + [
    pytest.param("/dumpf", "limit", "100001", id="/dumpf-limit-over-max"),
    pytest.param("/dumpf", "offset", str(2**62 + 1), id="/dumpf-offset-over-max"),
    pytest.param("/dumpflog", "limit", str(LOG_MAX_LIMIT + 1), id="/dumpflog-limit-over-max"),
    pytest.param("/", "page", "0", id="/-page-zero"),
    pytest.param("/", "page", str(MAX_PAGE + 1), id="/-page-over-max"),
]


@pytest.mark.parametrize(("path", "name", "value"), BAD_QUERIES)
def test_bad_query_value_is_422_naming_it_and_not_forwarded(
    client: FlaskClient, buffer: FakeUpstream, path: str, name: str, value: str
) -> None:
    reads = [
        buffer.get("/dumpF").respond(200, json=DUMP),
        buffer.get("/dumpLogF").respond(200, json=LOG),
        buffer.get("/stat").respond(200, json={"n_itm": 0, "buff_size": 0, "batch": 1}),
        buffer.get("/dstat").respond(200, json={"dstatus": "OPERATIONAL", "batch": 1}),
    ]
    answer = client.get(f"{path}?{name}={value}")
    assert answer.status_code == 422, answer.get_data(as_text=True)
    assert answer.json["resp"] == "INVALID"
    assert answer.json["detail"]["field"] == name
    assert answer.json["detail"]["reason"]
    assert not any(route.called for route in reads)


@pytest.mark.parametrize(
    ("path", "query", "upstream", "expected"),
    [
        ("/dumpf", "limit=100000&offset=4611686018427387904", "/dumpF", None),
        ("/dumpflog", "limit=0&offset=7", "/dumpLogF", {"limit": "0", "offset": "7"}),
    ],
)
def test_paging_at_the_bounds_is_passed_on(
    client: FlaskClient,
    buffer: FakeUpstream,
    path: str,
    query: str,
    upstream: str,
    expected: dict | None,
) -> None:
    route = buffer.get(upstream).respond(200, json=DUMP)
    assert client.get(f"{path}?{query}").status_code == 200
    sent = route.calls.last.query
    assert sent == (expected or {"limit": "100000", "offset": str(2**62)})


def test_status_page_relays_buffer_refusal_as_its_4xx(
    client: FlaskClient, buffer: FakeUpstream
) -> None:
    refusal = {"resp": "INVALID", "detail": {"field": "offset", "reason": "too large"}}
    buffer.get("/stat").respond(422, json=refusal)
    answer = client.get("/")
    assert (answer.status_code, answer.json) == (422, refusal)


@pytest.mark.parametrize("path", ["/freezeds", "/flushbuf"])
def test_admin_body_over_cap_is_413_and_not_forwarded(
    client: FlaskClient, buffer: FakeUpstream, path: str
) -> None:
    upd = buffer.post("/upddsc").respond(200, json={})
    clean = buffer.post("/cleanall").respond(200, json={})
    body = b'{"user": "a", "msg": "' + b"m" * ADMIN_MAX_BODY + b'"}'
    answer = client.post(path, data=body, headers=JSON)
    assert answer.status_code == 413
    assert answer.json["detail"]["field"] == "body"
    assert not upd.called
    assert not clean.called


class Endless(io.RawIOBase):
    """A request body with no declared length (chunked) that never ends, counting reads."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        self.reads += 1
        if self.reads > 10_000:  # 80 MiB and more: the test would fail, not hang
            return 0
        buffer[:] = b"m" * len(buffer)
        return len(buffer)


@pytest.mark.parametrize("path", ["/freezeds", "/flushbuf"])
def test_chunked_admin_body_is_read_only_to_the_cap(
    client: FlaskClient, buffer: FakeUpstream, path: str
) -> None:
    upd = buffer.post("/upddsc").respond(200, json={})
    clean = buffer.post("/cleanall").respond(200, json={})
    body = Endless()
    # As gunicorn presents a chunked upload: no CONTENT_LENGTH, the input marked terminated.
    environ = {"wsgi.input": body, "wsgi.input_terminated": True, "CONTENT_LENGTH": ""}
    answer = client.post(path, headers=JSON, environ_overrides=environ)
    assert answer.status_code == 413
    assert answer.json["detail"]["field"] == "body"
    assert body.reads < 100
    assert not upd.called
    assert not clean.called


def test_admin_body_under_cap_still_works(client: FlaskClient, buffer: FakeUpstream) -> None:
    buffer.post("/cleanall").respond(
        200, json={"resp": "CLEANED", "batch": 1, "archive": "000001-20261122T101500Z"}
    )
    answer = client.post("/flushbuf", json={"msg": "m" * 4096})
    assert (answer.status_code, answer.json["resp"]) == (200, "CLEANED")
