"""`ManagedProcess.wait_ready`: its readiness polling over httpx, mocked at the transport by respx.

The process is real (a sleeping Python); what it would answer on ``/readyz`` is scripted.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest
import respx

from glitchflow_stack import ManagedProcess, ServiceFailed

URL = "http://service.test:8080"


@pytest.fixture
def sleeper() -> Iterator[ManagedProcess]:
    """A running process that never exits by itself."""
    proc = ManagedProcess(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], URL
    ).start()
    yield proc
    proc.kill()


def test_ready_once_readyz_answers_200_after_refusals_and_503(
    sleeper: ManagedProcess, respx_mock: respx.MockRouter
) -> None:
    ready = respx_mock.get(f"{URL}/readyz")
    ready.side_effect = [
        httpx.ConnectError("refused"),
        httpx.Response(503, json={"resp": "NOT_READY"}),
        httpx.Response(200, json={"resp": "READY"}),
    ]
    sleeper.wait_ready(timeout=10)
    assert ready.call_count == 3


def test_not_ready_names_the_last_answer(
    sleeper: ManagedProcess, respx_mock: respx.MockRouter
) -> None:
    respx_mock.get(f"{URL}/healthz").respond(503, text="warming up")
    with pytest.raises(ServiceFailed, match=r"sleeper not ready after 1 s \(503 warming up\)"):
        sleeper.wait_ready(timeout=1, path="/healthz")


def test_process_that_exits_is_reported_with_its_status_and_output(
    respx_mock: respx.MockRouter,
) -> None:
    respx_mock.get(f"{URL}/readyz").mock(side_effect=httpx.ConnectError("refused"))
    proc = ManagedProcess(
        "crasher", [sys.executable, "-c", "print('bad settings'); raise SystemExit(2)"], URL
    ).start()
    try:
        with pytest.raises(ServiceFailed, match=r"crasher exited with status 2") as failure:
            proc.wait_ready(timeout=10)
    finally:
        proc.stop()
    assert "bad settings" in str(failure.value)
