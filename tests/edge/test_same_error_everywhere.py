"""The same bad request gets the same status and the same JSON from each of the three services.

Each app is built by its factory and called in process: the buffer (Starlette) and the API
(FastAPI) through ``httpx.ASGITransport``, the logic (Flask) through its test client. None of
these requests reaches another service: each is refused at the edge of the one it is sent to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest
from ports import free_port

import databuffer.app
import databuffer.settings
import datastore_logic
import datastore_logic.settings
import glitchflow_api
import glitchflow_api.settings
from glitchflow_core.edge import ADMIN_BODY_LIMIT
from glitchflow_core.logs import configure_logging

TOKEN = "edge-table-token-0123456789"
JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}


CHUNK = orjson.dumps({"h": [1.0, 2.0, 3.0], "t": [1e9, 1 / 4096]})


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict
    headers: dict[str, str]


# The same kind of request on each service: ``admin`` freezes (a small JSON body),
# ``write`` sends a chunk, ``listing`` pages a list of names.
PATHS = {
    "databuffer": {"admin": "/upddsc", "write": "/sendF", "listing": "/dumpF"},
    "datastore_logic": {"admin": "/freezeds", "write": "/stream", "listing": "/dumpf"},
    "glitchflow_api": {"admin": "/train", "write": "/streamdata", "listing": "/dumpbuf"},
}


async def _asgi(app, method: str, path: str, **kwargs: object) -> Answer:
    # As a server does: an exception past the app's handlers is answered, not raised here.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://edge.test") as client,
    ):
        answer = await client.request(method, path, **kwargs)
    return Answer(answer.status_code, answer.json(), dict(answer.headers))


def _flask(app, method: str, path: str, **kwargs: object) -> Answer:
    kwargs["data"] = kwargs.pop("content", None)
    params = kwargs.pop("params", None)
    answer = app.test_client().open(path, method=method, query_string=params, **kwargs)
    headers = {name.lower(): value for name, value in answer.headers.items()}
    return Answer(answer.status_code, orjson.loads(answer.data), headers)


def build_app(name: str, tmp_path: Path) -> object:
    """A fresh app of service ``name`` from its factory, a token configured."""
    # Nothing listens here: a request that got past the edge would fail as UPSTREAM_*, not pass.
    nowhere = f"http://127.0.0.1:{free_port()}"
    if name == "databuffer":
        settings = databuffer.settings.Settings(data_dir=tmp_path, service_token=TOKEN)
        return databuffer.app.create_app(settings)
    if name == "datastore_logic":
        settings = datastore_logic.settings.Settings(db_burl=nowhere, service_token=TOKEN)
        return datastore_logic.create_app(settings)
    settings = glitchflow_api.settings.Settings(
        ds_burl=nowhere, writer_tokens=TOKEN, admin_tokens=TOKEN
    )
    return glitchflow_api.create_app(settings)


@pytest.fixture(params=list(PATHS))
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., object]:
    """``await service(method, kind, **httpx kwargs)`` on a fresh app with a token configured."""
    name = request.param
    app = build_app(name, tmp_path)

    async def send(method: str, kind: str, **kwargs: object) -> Answer:
        path = PATHS[name].get(kind, "/no/such/path")
        if name == "datastore_logic":
            answer = _flask(app, method, path, **kwargs)
            app.extensions["glitchflow"]["buffer"].close()
            return answer
        return await _asgi(app, method, path, **kwargs)

    return send


def invalid(field: str, reason: str) -> dict:
    return {"resp": "INVALID", "detail": {"field": field, "reason": reason}}


CASES = [
    pytest.param(
        "POST",
        "admin",
        {"content": b'{"user": "x"}', "headers": {"Content-Type": "text/plain", **AUTH}},
        415,
        invalid("content-type", "must be application/json"),
        id="admin-wrong-content-type",
    ),
    pytest.param(
        "POST",
        "admin",
        {"content": b" " * (ADMIN_BODY_LIMIT + 1), "headers": {**JSON, **AUTH}},
        413,
        invalid("body", f"is larger than {ADMIN_BODY_LIMIT} bytes"),
        id="admin-body-too-large",
    ),
    pytest.param(
        "POST",
        "admin",
        {"content": b"{not json", "headers": {**JSON, **AUTH}},
        422,
        invalid("body", "is not valid JSON"),
        id="admin-body-not-json",
    ),
    pytest.param(
        "POST",
        "admin",
        {"content": b"[1, 2]", "headers": {**JSON, **AUTH}},
        422,
        invalid("body", "must be a JSON object"),
        id="admin-body-not-an-object",
    ),
    pytest.param(
        "POST",
        "write",
        {"content": CHUNK, "headers": {"Content-Type": "text/csv", **AUTH}},
        415,
        invalid(
            "content-type",
            "must be application/json, application/octet-stream or application/x-ndjson",
        ),
        id="write-wrong-content-type",
    ),
    *(
        pytest.param(
            "GET",
            "listing",
            {"params": {name: raw}, "headers": AUTH},
            422,
            invalid(name, f"must be an integer from 0 to {maximum}"),
            id=f"{name}-{label}",
        )
        for name, raw, maximum, label in [
            ("limit", "ten", 100_000, "not-a-number"),
            ("limit", "-1", 100_000, "negative"),
            ("limit", "", 100_000, "empty"),
            ("limit", "1_0", 100_000, "underscore"),
            ("offset", str(2**62 + 1), 2**62, "too-large"),
        ]
    ),
]


@pytest.mark.parametrize(("method", "kind", "request_kwargs", "status", "body"), CASES)
async def test_bad_request_gets_the_same_answer_from_every_service(
    service: Callable[..., object],
    method: str,
    kind: str,
    request_kwargs: dict,
    status: int,
    body: dict,
) -> None:
    answer = await service(method, kind, **request_kwargs)
    assert (answer.status, answer.body) == (status, body)
    assert answer.headers["content-type"].startswith("application/json")


async def test_unknown_path_is_404_not_found_everywhere(service: Callable[..., object]) -> None:
    answer = await service("GET", "nowhere")
    assert (answer.status, answer.body) == (404, {"resp": "NOT_FOUND"})


async def test_wrong_method_is_405_everywhere(service: Callable[..., object]) -> None:
    answer = await service("GET", "admin")
    assert (answer.status, answer.body) == (405, {"resp": "METHOD_NOT_ALLOWED"})


@pytest.mark.parametrize("kind", ["admin", "write"])
async def test_missing_token_is_401_with_the_same_shape_everywhere(
    service: Callable[..., object], kind: str
) -> None:
    body = b'{"user": "x"}' if kind == "admin" else CHUNK
    answer = await service("POST", kind, content=body, headers=JSON)
    assert answer.status == 401
    assert answer.body["resp"] == "UNAUTHORIZED"
    assert set(answer.body) == {"resp", "detail"}
    assert "token is required" in answer.body["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


class Boom(RuntimeError):
    """Raised by the test route: an error no handler of the app knows."""


@pytest.mark.parametrize("name", list(PATHS))
async def test_unhandled_exception_is_a_json_500_with_the_request_id(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_app(name, tmp_path)
    configure_logging(name)  # JSON lines on this test's stderr, as the service writes them

    def boom() -> None:
        raise Boom("no handler for this")

    async def boom_api() -> None:
        boom()

    async def boom_route(request: object) -> None:
        boom()

    if name == "datastore_logic":
        app.add_url_rule("/boom", view_func=boom)
    elif name == "databuffer":
        app.add_route("/boom", boom_route)
    else:
        app.add_api_route("/boom", boom_api)
    given = {"X-Request-ID": "boom-request-1"}
    if name == "datastore_logic":
        answer = _flask(app, "GET", "/boom", headers=given)
        app.extensions["glitchflow"]["buffer"].close()
        fresh = _flask(app, "GET", "/boom")
    else:
        answer = await _asgi(app, "GET", "/boom", headers=given)
        fresh = await _asgi(app, "GET", "/boom")
    assert (answer.status, answer.body) == (500, {"resp": "INTERNAL_SERVER_ERROR"})
    assert answer.headers["x-request-id"] == "boom-request-1"
    # Made here when the caller sent none.
    assert fresh.status == 500 and len(fresh.headers["x-request-id"]) == 32
    assert fresh.headers["x-request-id"] != "boom-request-1"
    # The failure is logged with the id of its request, and its traceback.
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    failures = [line for line in lines if "Boom: no handler for this" in line.get("exc_info", "")]
    assert [line.get("request_id") for line in failures] == [
        "boom-request-1",
        fresh.headers["x-request-id"],
    ]
