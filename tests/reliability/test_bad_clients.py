"""Oversized and slow bodies against each service as a real process (the buffer under uvicorn, the
logic under gunicorn, the API under uvicorn): refused at the limit, not read to their end, and a
client that sends one byte a second is answered 408 and cannot hold a worker.

`MAX_BODY` is 1 MiB and `BODY_TIMEOUT` 2 s here, so each case is bounded in time; the bodies are
made by generators as they are sent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from ports import free_port
from reliability.guards import MiB, RawAnswer, chunked, group_rss, raw_request, zeros

from glitchflow_stack import Layout, ManagedProcess, Stack, service_processes

pytestmark = pytest.mark.e2e

LIMIT = 1 * MiB
BODY_TIMEOUT = 2
OFFERED = 200 * 10**6
"""Bytes each oversized client offers (200 MB), far more than it may send."""
SLACK = 16 * MiB
"""Bytes in flight at most between the client and the service once it stops reading: the
client's small send buffer, the service's receive buffer and what a server drains before it
closes (gunicorn: 64 KiB)."""
WRITE_PATH = {"databuffer": "/sendF", "logic": "/stream", "api": "/streamdata"}
CHUNK = orjson.dumps({"h": [1.0, 2.0, 3.0], "t": [1200000000.0, 1 / 4096]})


@pytest.fixture(scope="module")
def guarded_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ManagedProcess]]:
    """The three services with a 1 MiB body limit and a 2 s body timeout; one logic worker with
    four threads, so a held thread would show."""
    layout = Layout("127.0.0.1", free_port(), free_port(), free_port())
    env = {
        "GLITCHFLOW_MAX_BODY": str(LIMIT),
        "GLITCHFLOW_BODY_TIMEOUT": str(BODY_TIMEOUT),
        "GLITCHFLOW_LOG_LEVEL": "WARNING",
    }
    data = Path(tmp_path_factory.mktemp("guards")) / "data"
    processes = service_processes(layout, data, 64 * MiB, logic_workers=1, logic_threads=4, env=env)
    stack = Stack(processes)
    stack.start()
    try:
        yield {proc.name: proc for proc in processes}
    finally:
        stack.stop()


def _chunk_headers(length: int | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if length is None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(length)
    return headers


def _assert_too_large(answer: RawAnswer) -> None:
    assert answer.status == 413, answer
    assert answer.json() == {
        "resp": "INVALID",
        "detail": {"field": "body", "reason": f"is larger than {LIMIT} bytes"},
    }
    # The service stopped reading at the limit and closed: the client could not send it all.
    assert answer.closed_by_server
    assert answer.sent < LIMIT + SLACK


@pytest.mark.parametrize("service", ["databuffer", "logic", "api"])
def test_declared_oversized_body_is_refused_before_it_is_read(
    guarded_stack: dict[str, ManagedProcess], service: str
) -> None:
    proc = guarded_stack[service]
    answer = raw_request(
        proc.url, "POST", WRITE_PATH[service], _chunk_headers(OFFERED), zeros(OFFERED)
    )
    _assert_too_large(answer)


@pytest.mark.parametrize("service", ["databuffer", "logic", "api"])
def test_chunked_oversized_body_is_refused_at_the_limit(
    guarded_stack: dict[str, ManagedProcess], service: str
) -> None:
    proc = guarded_stack[service]
    answer = raw_request(
        proc.url, "POST", WRITE_PATH[service], _chunk_headers(None), chunked(zeros(OFFERED))
    )
    _assert_too_large(answer)
    # Still serving, and it still takes a chunk sent the same way.
    ok = raw_request(
        proc.url, "POST", WRITE_PATH[service], _chunk_headers(None), chunked([CHUNK]), wait_close=0
    )
    assert ok.status in (200, 201), ok


@pytest.mark.parametrize("service", ["databuffer", "logic", "api"])
def test_memory_stays_bounded_while_eight_clients_send_200_mb_each(
    guarded_stack: dict[str, ManagedProcess], service: str
) -> None:
    proc = guarded_stack[service]
    before = group_rss(proc.pid)
    peak = before
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, group_rss(proc.pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()

    def send(i: int) -> RawAnswer:
        headers = _chunk_headers(None if i % 2 else OFFERED)
        body = chunked(zeros(OFFERED)) if i % 2 else zeros(OFFERED)
        return raw_request(proc.url, "POST", WRITE_PATH[service], headers, body, timeout=60)

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(8)))
    finally:
        done.set()
        watcher.join()
    for answer in answers:
        _assert_too_large(answer)
    offered = 8 * OFFERED
    taken = sum(answer.sent for answer in answers)
    print(
        f"{service}: offered {offered / 1e9:.1f} GB, sent {taken / MiB:.1f} MiB, "
        f"RSS {before / MiB:.0f} -> peak {peak / MiB:.0f} MiB"
    )
    # At most each client's body up to the limit is held at once (plus what the runtime keeps).
    assert peak - before < 8 * LIMIT + 48 * MiB
    assert proc.alive()


@pytest.mark.parametrize("service", ["databuffer", "logic", "api"])
def test_slow_body_gets_408_and_frees_the_worker(
    guarded_stack: dict[str, ManagedProcess], service: str
) -> None:
    proc = guarded_stack[service]
    path = WRITE_PATH[service]
    slow_body = [CHUNK[i : i + 1] for i in range(len(CHUNK))]

    def slow(length: int | None) -> RawAnswer:
        body = slow_body if length is not None else chunked(slow_body)
        # A byte a second: the whole chunk would take a minute and a half.
        return raw_request(proc.url, "POST", path, _chunk_headers(length), body, pause=1.0)

    with ThreadPoolExecutor(2) as pool:
        by_length = pool.submit(slow, len(CHUNK))
        by_chunks = pool.submit(slow, None)
        # Meanwhile the service answers others (the logic: one worker of four threads).
        assert httpx.get(proc.url + "/healthz", timeout=10).status_code == 200
        answers = [by_length.result(), by_chunks.result()]
    for answer in answers:
        assert answer.status == 408, answer
        assert answer.json() == {
            "resp": "INVALID",
            "detail": {"field": "body", "reason": f"was not received within {BODY_TIMEOUT} s"},
        }
        assert answer.closed_by_server
        assert answer.sent < len(CHUNK)
    ok = httpx.post(
        proc.url + path, content=CHUNK, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert ok.status_code in (200, 201)
