"""A bad setting ends each service's console script with one line naming it, exit status 2.

Every case runs the real console script as a subprocess, as a user or Kubernetes would.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ports import free_port

pytestmark = pytest.mark.e2e

BIN = Path(sys.executable).parent
SCRIPTS = ("glitchflow-databuffer", "glitchflow-logic", "glitchflow-api")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def run(script: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GLITCHFLOW_")}
    full = {**clean, "GLITCHFLOW_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run(
        [str(BIN / script)], env=full, capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


BAD_FOR_EVERY_SERVICE = [
    pytest.param(
        "GLITCHFLOW_SERVICE_TOKEN_FILE",
        "/nonexistent/token",
        "cannot be read",
        id="missing-token-file",
    ),
    pytest.param("GLITCHFLOW_MAX_BODY", "12parsecs", "byte unit", id="unparsable-size"),
    pytest.param("GLITCHFLOW_MAX_BODY", "0", "greater than or equal to 1", id="zero-size"),
    pytest.param("GLITCHFLOW_LOG_LEVEL", "LOUD", "DEBUG", id="unknown-log-level"),
    pytest.param("GLITCHFLOW_PORT", "70000", "65535", id="port-out-of-range"),
]


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(("variable", "value", "reason"), BAD_FOR_EVERY_SERVICE)
def test_bad_setting_is_one_line_naming_it(
    script: str, variable: str, value: str, reason: str, tmp_path: Path
) -> None:
    result = run(script, {variable: value}, tmp_path)
    assert_one_line(result, f"{script}: bad setting {variable}={value}: ", reason)


@pytest.mark.parametrize(
    ("script", "variable", "value"),
    [
        ("glitchflow-databuffer", "SERVURL", "no-port-here"),
        ("glitchflow-databuffer", "GLITCHFLOW_MAX_DT", "-1"),
        ("glitchflow-logic", "MAX_SIZE", "lots"),
        ("glitchflow-logic", "DB_BURL", "buffer:8080"),
        ("glitchflow-logic", "GLITCHFLOW_LOGIC_WORKERS", "0"),
        ("glitchflow-api", "DS_BURL", "ftp://logic"),
        ("glitchflow-api", "GLITCHFLOW_ADMIN_TOKENS_FILE", "/nonexistent/admin"),
        ("glitchflow-api", "GLITCHFLOW_MIN_DT", "1e-320x"),
    ],
)
def test_bad_service_setting_is_one_line_naming_it(
    script: str, variable: str, value: str, tmp_path: Path
) -> None:
    result = run(script, {variable: value}, tmp_path)
    assert_one_line(result, f"{script}: bad setting {variable}={value}: ")


@pytest.mark.parametrize("script", SCRIPTS)
def test_port_in_use_is_one_line_naming_it(script: str, taken_port: int, tmp_path: Path) -> None:
    result = run(script, {"GLITCHFLOW_PORT": str(taken_port)}, tmp_path)
    assert_one_line(result, f"bad setting GLITCHFLOW_PORT=127.0.0.1:{taken_port}: ", "in use")


def test_buffer_port_in_use_names_servurl(taken_port: int, tmp_path: Path) -> None:
    result = run("glitchflow-databuffer", {"SERVURL": f"127.0.0.1:{taken_port}"}, tmp_path)
    assert_one_line(result, f"bad setting SERVURL=127.0.0.1:{taken_port}: ", "in use")


@pytest.mark.parametrize("form", ["127.0.0.1:{port}", "http://127.0.0.1:{port}"])
def test_buffer_listens_on_servurl_host_port(form: str, tmp_path: Path) -> None:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GLITCHFLOW_")}
    env = {**clean, "SERVURL": form.format(port=port), "GLITCHFLOW_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [str(BIN / "glitchflow-databuffer")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the buffer exited"
                assert time.monotonic() < deadline, "the buffer never listened on SERVURL"
                time.sleep(0.1)
        assert answer.json() == {"resp": "OK"}
    finally:
        proc.terminate()
        proc.wait(30)
