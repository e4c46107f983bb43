"""Tokens on every route of every service: each route has an access decision (the table below,
checked against the routes the apps themselves have, so a new route without one fails), every
write, admin and read call is refused without a token, with a wrong one and with one of the wrong
kind, and no answer, page, log line or metric ever shows a token.

Decisions (`glitchflow_core.access`): ``open`` always; ``status`` (readiness, metrics, the status
page and its JSON, counters, state) open unless ``STATUS_NEEDS_TOKEN``; ``read`` (listings, logs,
samples, channels) a reader token or stronger; ``write``; ``admin``.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from glitchflow_api.app import all_routes
from glitchflow_stack import Layout, ManagedProcess, Stack, service_processes
from glitchflow_stack.cli import open_store_warning

TOKENS = {
    "writer": "writer-token-5f1c0e8a9b7d",
    "admin": "admin-token-3a9e77c2d1f4",
    "reader": "reader-token-c4b2a1908e6f",
    "service": "service-token-88d0e3b5a7c1",
}
WRONG = "wrong-token-000000000000"
TOKENS_ENV = {
    "GLITCHFLOW_WRITER_TOKENS": TOKENS["writer"],
    "GLITCHFLOW_ADMIN_TOKENS": TOKENS["admin"],
    "GLITCHFLOW_READER_TOKENS": TOKENS["reader"],
    "GLITCHFLOW_SERVICE_TOKEN": TOKENS["service"],
}

DECISIONS: dict[str, dict[str, str]] = {
    "databuffer": {
        "/sendF": "write",
        "/upddsc": "admin",
        "/cleanall": "admin",
        "/dumpF": "read",
        "/dumpLogF": "read",
        "/channels": "read",
        "/batches": "read",
        "/batches/{batch:int}/results": "admin",
        "/data": "read",
        "/spans": "read",
        "/stat": "status",
        "/dstat": "status",
        "/status": "status",
        "/readyz": "status",
        "/metrics": "status",
        "/healthz": "open",
    },
    "logic": {
        "/stream": "write",
        "/freezeds": "admin",
        "/flushbuf": "admin",
        "/dumpf": "read",
        "/dumpflog": "read",
        "/batches": "read",
        "/batches/<int:batch>/results": "admin",
        "/data": "read",
        "/channels": "read",
        "/dsdesc": "status",
        "/bufstat": "status",
        "/status": "status",
        "/": "status",
        "/readyz": "status",
        "/metrics": "status",
        "/healthz": "open",
        "/favicon.ico": "open",
        "/favicon.svg": "open",
        "/static/<path:filename>": "open",
    },
    "api": {
        "/streamdata": "write",
        "/train": "admin",
        "/cleanbuf": "admin",
        "/dumpbuf": "read",
        "/batches": "read",
        "/batches/{batch}/results": "admin",
        "/data": "read",
        "/channels": "read",
        "/stats": "status",
        "/desc": "status",
        "/status": "status",
        "/dspage": "status",
        "/readyz": "status",
        "/metrics": "status",
        "/healthz": "open",
        "/favicon.ico": "open",
        "/favicon.svg": "open",
        "/openapi.json": "open",
        "/docs": "open",
        "/docs/oauth2-redirect": "open",
        "/redoc": "open",
        "/redoc.standalone.js": "open",
        "/docs-static": "open",
    },
}
# Who passes a protected class (None: anyone; "pass", or the status refusing the token).
INNER = {  # the buffer and the logic: the service token, and reader tokens for reads
    "write": {"service": "pass", "reader": 403, "writer": 401, "admin": 401},
    "admin": {"service": "pass", "reader": 403, "writer": 401, "admin": 401},
    "read": {"service": "pass", "reader": "pass", "writer": 401, "admin": 401},
}
API = {
    "write": {"writer": "pass", "admin": "pass", "reader": 403, "service": 401},
    "admin": {"admin": "pass", "writer": 403, "reader": 403, "service": 401},
    "read": {"reader": "pass", "admin": "pass", "writer": 403, "service": 401},
}
CHUNK = orjson.dumps({"h": [1.0, 2.0, 3.0], "t": [1200000000.0, 1 / 4096]})
BODIES = {
    "/sendF": CHUNK,
    "/stream": CHUNK,
    "/streamdata": CHUNK,
    "/upddsc": b'{"dstatus": "FROZEN", "user": "tester", "if_size_at_least": 1000000000}',
    "/cleanall": b'{"msg": "tested"}',
    "/freezeds": b'{"user": "tester"}',
    "/flushbuf": b'{"msg": "tested"}',
    "/train": b'{"user": "tester"}',
    "/cleanbuf": b'{"msg": "tested"}',
    "/batches/{batch:int}/results": b'{"dag_run_id": "tested"}',
    "/batches/<int:batch>/results": b'{"dag_run_id": "tested"}',
    "/batches/{batch}/results": b'{"dag_run_id": "tested"}',
}
URLS = {
    "/static/<path:filename>": "/static/status.css",
    "/docs-static": "/docs-static/swagger-ui.css",
    "/data": "/data?channel=H1:TEST&start=1200000000&end=1200000001",
    "/batches/{batch:int}/results": "/batches/1/results",
    "/batches/<int:batch>/results": "/batches/1/results",
    "/batches/{batch}/results": "/batches/1/results",
}


def app_routes(tmp_path: Path) -> dict[str, dict[str, set[str]]]:
    """Each service's routes and their methods, read from the apps its factory builds."""
    ignored = {"HEAD", "OPTIONS"}
    buffer = databuffer.app.create_app(databuffer.settings.Settings(data_dir=tmp_path / "enum"))
    buffer.state.storage.close()
    logic = datastore_logic.create_app(datastore_logic.settings.Settings())
    api = glitchflow_api.create_app(glitchflow_api.settings.Settings())
    return {
        "databuffer": {r.path: set(r.methods or ()) - ignored for r in buffer.routes},
        "logic": {r.rule: set(r.methods or ()) - ignored for r in logic.url_map.iter_rules()},
        "api": {
            r.path: set(getattr(r, "methods", None) or {"GET"}) - ignored
            for r in all_routes(api.routes)
        },
    }


def test_every_route_of_every_service_has_an_access_decision(tmp_path: Path) -> None:
    routes = app_routes(tmp_path)
    for service, paths in routes.items():
        assert set(paths) == set(DECISIONS[service]), f"{service}: a route without a decision"


@pytest.fixture(scope="module")
def token_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ManagedProcess]]:
    """The three services with every kind of token, logging everything (DEBUG)."""
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    env = {**TOKENS_ENV, "GLITCHFLOW_LOG_LEVEL": "DEBUG"}
    data = Path(tmp_path_factory.mktemp("tokens")) / "data"
    processes = service_processes(layout, data, 10**9, logic_workers=1, env=env)
    stack = Stack(processes)
    stack.start()
    try:
        yield {proc.name: proc for proc in processes}
    finally:
        stack.stop()


def _call(
    client: httpx.Client, proc: ManagedProcess, method: str, path: str, token: str | None
) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    body = BODIES.get(path) if method == "POST" else None
    return client.request(method, proc.url + URLS.get(path, path), content=body, headers=headers)


@pytest.mark.e2e
def test_routes_answer_as_decided_and_never_show_a_token(
    token_stack: dict[str, ManagedProcess], tmp_path: Path
) -> None:
    routes = app_routes(tmp_path)
    wrong: list[str] = []
    seen: list[str] = []
    with httpx.Client(timeout=30) as client:

        def call(service: str, method: str, path: str, token: str | None) -> httpx.Response:
            answer = _call(client, token_stack[service], method, path, token)
            seen.append(f"{answer.headers}\n{answer.text}")
            return answer

        for service, decisions in DECISIONS.items():
            rules = API if service == "api" else INNER
            for path, decision in decisions.items():
                for method in sorted(routes[service][path]):
                    where = f"{service} {method} {path}"
                    if decision in ("open", "status"):
                        status = call(service, method, path, None).status_code
                        if status in (401, 403):
                            wrong.append(f"{where}: {status} without a token")
                        continue
                    for token, label in ((None, "no token"), (WRONG, "a wrong token")):
                        answer = call(service, method, path, token)
                        if answer.status_code != 401 or answer.json()["resp"] != "UNAUTHORIZED":
                            wrong.append(f"{where}: {answer.status_code} with {label}")
                        elif answer.headers.get("www-authenticate") != "Bearer":
                            wrong.append(f"{where}: 401 without WWW-Authenticate")
                    for kind, expected in rules[decision].items():
                        status = call(service, method, path, TOKENS[kind]).status_code
                        if expected == "pass" and status in (401, 403):
                            wrong.append(f"{where}: {status} with the {kind} token")
                        elif expected != "pass" and status != expected:
                            wrong.append(f"{where}: {status} with the {kind} token, not {expected}")
        # The original /train carries the token in its body: the same decision holds.
        for token, expected in ((WRONG, 401), (TOKENS["writer"], 403), (TOKENS["admin"], 200)):
            body = orjson.dumps({"user": "airflow", "token": token})
            answer = client.post(
                token_stack["api"].url + "/train",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            seen.append(answer.text)
            if answer.status_code != expected:
                wrong.append(f"api POST /train, body token: {answer.status_code}, not {expected}")
        # What people and scrapers see, read with every token there is.
        for service, path in (("api", "/dspage"), ("logic", "/"), ("databuffer", "/status")):
            seen.append(call(service, "GET", path, None).text)
        for service in token_stack:
            seen.append(call(service, "GET", "/metrics", None).text)
        seen.append(call("databuffer", "GET", "/dumpLogF", TOKENS["service"]).text)
        seen.append(call("api", "GET", "/dumpbuf", TOKENS["reader"]).text)
    assert not wrong, "\n".join(wrong)
    for proc in token_stack.values():
        proc.stop()  # its last lines (the shutdown) are logged too
    outputs = {proc.name: proc.output() for proc in token_stack.values()}
    assert all(outputs.values()), "a service printed nothing: its logs were not captured"
    assert any('"level": "DEBUG"' in text for text in outputs.values())
    disk = token_stack["databuffer"].env["GLITCHFLOW_DATA_DIR"]
    stored = [p.read_text(errors="replace") for p in Path(disk).rglob("*") if p.is_file()]
    for kind, token in TOKENS.items():
        for text in (*seen, *outputs.values(), *stored):
            assert token not in text, f"the {kind} token is shown: ...{text[:300]}"


# --------------------------------------------------------------------------- STATUS_NEEDS_TOKEN


async def _asgi_get(app, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://in.process") as client,
    ):
        return (await client.get(path, headers=headers)).status_code


@pytest.mark.parametrize("service", ["databuffer", "logic", "api"])
async def test_status_needs_a_reader_token_when_the_setting_closes_it(
    service: str, tmp_path: Path
) -> None:
    closed = {"status_needs_token": True, "reader_tokens": TOKENS["reader"]}
    nowhere = f"http://127.0.0.1:{free_port()}"
    if service == "databuffer":
        settings = databuffer.settings.Settings(
            data_dir=tmp_path, service_token=TOKENS["service"], **closed
        )
        app = databuffer.app.create_app(settings)
        try:
            statuses = [
                await _asgi_get(app, path, token)
                for path in ("/metrics", "/stat", "/healthz")
                for token in (None, TOKENS["reader"])
            ]
        finally:
            app.state.storage.close()
    elif service == "logic":
        settings = datastore_logic.settings.Settings(
            db_burl=nowhere, service_token=TOKENS["service"], **closed
        )
        client = datastore_logic.create_app(settings).test_client()
        statuses = [
            client.get(
                path, headers={"Authorization": f"Bearer {token}"} if token else {}
            ).status_code
            for path in ("/metrics", "/bufstat", "/healthz")
            for token in (None, TOKENS["reader"])
        ]
    else:
        settings = glitchflow_api.settings.Settings(
            ds_burl=nowhere, admin_tokens=TOKENS["admin"], **closed
        )
        app = glitchflow_api.create_app(settings)
        statuses = [
            await _asgi_get(app, path, token)
            for path in ("/metrics", "/stats", "/healthz")
            for token in (None, TOKENS["reader"])
        ]
    metrics_closed, metrics_open, state_closed, state_open, alive, alive_too = statuses
    assert (metrics_closed, metrics_open, state_closed) == (401, 200, 401)
    assert state_open not in (401, 403)  # the counters (their upstream may be away: 502)
    assert (alive, alive_too) == (200, 200)


# --------------------------------------------------------------------------- glitchflow up


def test_up_warning_names_what_runs_open() -> None:
    # `glitchflow up` prints it once after "ready": tests/stack/test_up.py sees it there.
    assert "store is OPEN" in (open_store_warning({}) or "")
    only_api = open_store_warning({"GLITCHFLOW_ADMIN_TOKENS": "x" * 20})
    assert only_api is not None and "GLITCHFLOW_SERVICE_TOKEN" in only_api
    only_service = open_store_warning({"GLITCHFLOW_SERVICE_TOKEN_FILE": "/run/secret"})
    assert only_service is not None and "the API is OPEN" in only_service
    assert open_store_warning({"GLITCHFLOW_SERVICE_TOKEN": " "}) is not None  # blank: unset
    assert open_store_warning(TOKENS_ENV) is None
