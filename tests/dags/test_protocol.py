"""The DAG against a scripted API on 127.0.0.1: many WAITINGs, an API down for a while, errors."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from airflow_harness import Airflow, Run, connection_uri, parse_run
from ports import free_port

pytestmark = [pytest.mark.slow]

TOKEN = "dag-admin-token-0123456789"
FROZEN = {"resp": "FROZEN", "n_f": 12, "bt_wrt": 34567, "batch": 4, "archive": None}


@dataclass
class ScriptedApi:
    """Answers ``/train`` and ``/cleanbuf`` from lists (the last answer repeats); records calls."""

    train: list[tuple[int, dict[str, Any]]]
    cleanbuf: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any], str | None]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/train", self._answer(self.train))
        app.router.add_post("/cleanbuf", self._answer(self.cleanbuf))
        return app

    def _answer(
        self, script: list[tuple[int, dict[str, Any]]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            self.calls.append(
                (request.path, await request.json(), request.headers.get("Authorization"))
            )
            status, doc = script[min(len(self.calls_to(request.path)) - 1, len(script) - 1)]
            return web.json_response(doc, status=status)

        return handler

    def calls_to(self, path: str) -> list[tuple[str, dict[str, Any], str | None]]:
        return [call for call in self.calls if call[0] == path]


async def serve(api: ScriptedApi, port: int | None = None) -> TestServer:
    server = TestServer(api.app(), host="127.0.0.1", port=port)
    await server.start_server()
    return server


async def run_sensor(airflow: Airflow, url: str) -> Run:
    """``dag.test()`` of the sensor alone against the API at ``url``."""
    airflow.env["AIRFLOW_CONN_GLITCHFLOW_API"] = connection_uri(url, TOKEN)
    proc = await airflow.start("run", "wait_for_frozen")
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    return parse_run(out.decode(), proc.returncode or 0)


async def test_sensor_reschedules_through_many_waiting_answers(airflow: Airflow) -> None:
    waiting = {"resp": "WAITING", "n_f": 3, "bt_wrt": 900, "batch": 4, "max_size": 4000}
    api = ScriptedApi(train=[(200, waiting)] * 6 + [(200, FROZEN)])
    server = await serve(api)
    try:
        run = await run_sensor(airflow, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()

    assert run.state("wait_for_frozen") == "success", run.output[-3000:]
    assert run.result["xcom"]["wait_for_frozen.return_value"] == {
        "batch": 4,
        "files": 12,
        "bytes": 34567,
    }
    assert len(api.calls_to("/train")) == 7
    assert run.output.count("new_state=up_for_reschedule") == 6
    assert all(auth == f"Bearer {TOKEN}" for _, _, auth in api.calls)
    assert all(body == {"user": "airflow", "token": TOKEN} for _, body, _ in api.calls)


async def test_sensor_waits_while_the_api_is_down_and_says_why(airflow: Airflow) -> None:
    port = free_port()
    airflow.env["AIRFLOW_CONN_GLITCHFLOW_API"] = connection_uri(f"http://127.0.0.1:{port}", TOKEN)
    proc = await airflow.start("run", "wait_for_frozen")
    assert proc.stdout is not None
    output: list[str] = []
    while sum("API unreachable: " in line for line in output) < 3:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line, "the driver ended while the API was down:\n" + "".join(output[-50:])
        output.append(line.decode())
    api = ScriptedApi(train=[(200, FROZEN)])
    server = await serve(api, port)
    try:
        rest, _ = await asyncio.wait_for(proc.communicate(), 240)
    finally:
        await server.close()
    run = parse_run("".join(output) + rest.decode(), proc.returncode or 0)

    assert run.state("wait_for_frozen") == "success", run.output[-3000:]
    assert run.result["xcom"]["wait_for_frozen.return_value"]["batch"] == 4
    assert len(api.calls_to("/train")) == 1
    unreachable = [line for line in output if "API unreachable: " in line]
    assert all("Connection refused" in line for line in unreachable)


@pytest.mark.parametrize(
    ("status", "doc", "words", "calls"),
    [
        (
            502,
            {"resp": "UPSTREAM_ERROR", "upstream": "datastore_logic", "detail": "disk full"},
            ["502", "UPSTREAM_ERROR", "datastore_logic", "disk full"],
            2,
        ),
        (401, {"resp": "UNAUTHORIZED", "detail": "an admin token is required"}, ["401"], 1),
    ],
    ids=["502-retried-then-failed", "401-failed-at-once"],
)
async def test_api_error_fails_the_sensor_with_the_upstreams_message(
    airflow: Airflow, status: int, doc: dict[str, Any], words: list[str], calls: int
) -> None:
    airflow.env.update({"GLITCHFLOW_RETRIES": "1", "GLITCHFLOW_RETRY_DELAY": "0"})
    api = ScriptedApi(train=[(status, doc)])
    server = await serve(api)
    try:
        run = await run_sensor(airflow, str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()

    assert run.state("wait_for_frozen") == "failed"
    assert "wait_for_frozen.return_value" not in run.result["xcom"]
    assert len(api.calls_to("/train")) == calls
    failures = [line for line in run.output.splitlines() if "/train answered" in line]
    assert failures
    assert all(word in failures[-1] for word in [*words, doc["resp"], str(doc["detail"])])
    assert "up_for_reschedule" not in run.output


async def test_flush_names_the_batch_and_a_retry_takes_the_same_archive(
    airflow: Airflow,
) -> None:
    airflow.env.update({"GLITCHFLOW_RETRIES": "1", "GLITCHFLOW_RETRY_DELAY": "0"})
    archive = "000004-20261202T190000Z"
    api = ScriptedApi(
        train=[(200, FROZEN)],
        cleanbuf=[
            (502, {"resp": "UPSTREAM_ERROR", "upstream": "databuffer", "detail": "timeout"}),
            (200, {"resp": "CLEANED", "batch": 4, "archive": archive, "already_flushed": True}),
        ],
    )
    server = await serve(api)
    try:
        airflow.env["AIRFLOW_CONN_GLITCHFLOW_API"] = connection_uri(
            str(server.make_url("")).rstrip("/"), TOKEN
        )
        proc = await airflow.start("run", "wait_for_frozen", "flush")
        out, _ = await asyncio.wait_for(proc.communicate(), 240)
    finally:
        await server.close()
    run = parse_run(out.decode(), proc.returncode or 0)

    assert run.result["tasks"]["flush"] == {"state": "success", "try": 2}, run.output[-3000:]
    assert run.result["xcom"]["flush.return_value"] == {
        "batch": 4,
        "files": 12,
        "bytes": 34567,
        "archive": archive,
        "already_flushed": True,
    }
    bodies = [body for _, body, _ in api.calls_to("/cleanbuf")]
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]
    assert bodies[0]["batch"] == 4
    assert "batch 4" in bodies[0]["msg"]
