"""One request followed through the three services by its ``X-Request-ID`` (real processes)."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from ports import free_port

from glitchflow_stack import Layout, Stack, service_processes

TOKENS_ENV = {
    "GLITCHFLOW_WRITER_TOKENS": "rid-writer-token-0123456789",
    "GLITCHFLOW_ADMIN_TOKENS": "rid-admin-token-0123456789",
    "GLITCHFLOW_SERVICE_TOKEN": "rid-service-token-0123456789",
}
WRITER = {
    "Authorization": f"Bearer {TOKENS_ENV['GLITCHFLOW_WRITER_TOKENS']}",
    "Content-Type": "application/json",
}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def json_lines(output: str) -> list[dict]:
    """The JSON log lines of a process's output (other lines skipped)."""
    lines = []
    for line in output.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def lines_with(stack, rid: str) -> dict[str, list[dict]]:
    """Per service, its log lines carrying ``rid`` (waits briefly for the output to be read)."""
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = {
            proc.name: [doc for doc in json_lines(proc.output()) if doc.get("request_id") == rid]
            for proc in stack.processes
        }
        if all(found.values()):
            break
        time.sleep(0.05)
    return found


@pytest.fixture(scope="module")
def info_stack(tmp_path_factory):
    """One stack for the module, logging at INFO (every request a line)."""
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    env = {**TOKENS_ENV, "GLITCHFLOW_LOG_LEVEL": "INFO"}
    stack = Stack(
        service_processes(layout, tmp_path_factory.mktemp("rid"), 64 * 1024 * 1024, env=env)
    )
    stack.start()
    yield stack, layout
    stack.stop()


def test_given_request_id_is_echoed_and_logged_by_every_service(info_stack, chunk) -> None:
    stack, layout = info_stack
    rid = "client-7f3a.chunk:0001"
    answer = httpx.post(
        f"{layout.api_url}/streamdata",
        content=chunk(1_300_000_000.0),
        headers={**WRITER, "X-Request-ID": rid},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["X-Request-ID"] == rid
    found = lines_with(stack, rid)
    assert set(found) == {"databuffer", "logic", "api"}
    for name, lines in found.items():
        assert lines, f"{name} logged no line with the request id"
        assert all(doc["request_id"] == rid for doc in lines)
    # Each hop logged the call it answered: API /streamdata, logic /stream, buffer /sendF.
    paths = {name: {doc.get("path") for doc in lines} for name, lines in found.items()}
    assert "/streamdata" in paths["api"]
    assert "/stream" in paths["logic"]
    assert "/sendF" in paths["databuffer"]
    assert {doc["service"] for doc in found["databuffer"]} == {"databuffer"}


def test_request_id_made_at_the_api_when_absent(info_stack, chunk) -> None:
    stack, layout = info_stack
    answer = httpx.post(
        f"{layout.api_url}/streamdata", content=chunk(1_300_000_100.0), headers=WRITER
    )
    assert answer.status_code == 201, answer.text
    rid = answer.headers["X-Request-ID"]
    assert len(rid) == 32 and int(rid, 16) >= 0
    found = lines_with(stack, rid)
    assert all(found.values()), {name: len(lines) for name, lines in found.items()}


@pytest.mark.parametrize("bad", ["has space", "x" * 129, "", "-leading-dash", "semi;colon"])
def test_malformed_request_id_is_replaced(info_stack, bad: str) -> None:
    _stack, layout = info_stack
    answer = httpx.get(f"{layout.api_url}/stats", headers={"X-Request-ID": bad})
    assert answer.status_code == 200
    rid = answer.headers["X-Request-ID"]
    assert rid != bad
    assert len(rid) == 32


def test_error_answers_carry_the_request_id(info_stack) -> None:
    stack, layout = info_stack
    rid = "bad-chunk-1"
    answer = httpx.post(
        f"{layout.api_url}/streamdata",
        content=b'{"h": [], "t": [0, 1]}',
        headers={**WRITER, "X-Request-ID": rid},
    )
    assert answer.status_code == 422
    assert answer.headers["X-Request-ID"] == rid
    api_lines = lines_with(stack, rid)["api"]
    assert any(doc.get("status") == 422 for doc in api_lines)
