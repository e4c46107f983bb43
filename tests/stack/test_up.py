"""`glitchflow up` as a user runs it: a real process that starts and stops the three services."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from ports import free_port

from glitchflow_stack import port_in_use
from glitchflow_stack.cli import open_store_warning

pytestmark = pytest.mark.e2e


class Up:
    """A running ``glitchflow up`` whose output is read line by line."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "glitchflow_stack", "up", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{text!r} not printed; output:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = 30) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.finish(timeout=10)


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            found.append(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture
def ports() -> dict[str, int]:
    return {"api": free_port(), "logic": free_port(), "buffer": free_port()}


@pytest.fixture
def up_args(tmp_path: Path, ports: dict[str, int]) -> list[str]:
    return [
        "--data-dir", str(tmp_path / "data"),
        "--max-size", "1MiB",
        "--api-port", str(ports["api"]),
        "--logic-port", str(ports["logic"]),
        "--buffer-port", str(ports["buffer"]),
    ]  # fmt: skip


@pytest.fixture
def running(up_args: list[str]) -> Iterator[Up]:
    up = Up(up_args)
    try:
        yield up
    finally:
        up.kill()


def test_up_starts_three_services_and_stops_them_on_sigterm(
    running: Up, ports: dict[str, int], tmp_path: Path
) -> None:
    running.wait_for("glitchflow up: ready")
    for port in ports.values():
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    stats = httpx.get(f"http://127.0.0.1:{ports['api']}/stats", timeout=5).json()
    assert stats["n_itm"] == 0
    assert stats["buff_size"] == 0
    assert (tmp_path / "data").is_dir()
    assert any("[databuffer]" in line for line in running.lines), "logs are prefixed by service"
    running.proc.send_signal(signal.SIGTERM)
    assert running.finish() == 0
    assert "glitchflow up: stopped" in running.lines
    # No token in this environment: one line says loudly that the store is open.
    warnings = [line for line in running.lines if line.startswith("glitchflow up: WARNING")]
    assert warnings == [open_store_warning({})]
    for port in ports.values():
        assert not port_in_use("127.0.0.1", port)


def _access_lines(lines: list[str]) -> set[str]:
    """The services (``[name]`` prefix) that printed an access-log line."""
    # Searched anywhere in the line: a service's line may follow the launcher's unended one.
    return {
        match.group(1)
        for line in lines
        for match in re.finditer(r"\[(\w+)\] \{[^{}]*\"logger\": \"glitchflow\.request\"", line)
    }


@pytest.mark.parametrize("access_log", [False, True])
def test_up_prints_access_lines_only_with_access_log(
    up_args: list[str], ports: dict[str, int], access_log: bool
) -> None:
    up = Up(up_args + (["--access-log"] if access_log else []))
    try:
        up.wait_for("glitchflow up: ready")
        # /stats goes through the API, the logic and the buffer: one access line each, if on.
        assert httpx.get(f"http://127.0.0.1:{ports['api']}/stats", timeout=5).status_code == 200
        if access_log:
            up.wait_for('"path": "/stats"', timeout=10)
            up.wait_for('"logger": "glitchflow.request"', timeout=10)
        up.proc.send_signal(signal.SIGTERM)
        assert up.finish() == 0
    finally:
        up.kill()
    assert any("[databuffer]" in line for line in up.lines), "the other lines still show"
    expected = {"databuffer", "logic", "api"} if access_log else set()
    assert _access_lines(up.lines) == expected


def test_up_says_which_service_died_and_stops_the_others(
    running: Up, ports: dict[str, int]
) -> None:
    running.wait_for("glitchflow up: ready")
    buffer = [pid for pid in children_of(running.proc.pid) if "-m databuffer" in cmdline(pid)]
    assert len(buffer) == 1
    os.kill(buffer[0], signal.SIGKILL)
    assert running.finish() == 1
    assert any("databuffer exited" in line for line in running.lines)
    for port in ports.values():
        assert not port_in_use("127.0.0.1", port)


def test_up_refuses_a_port_in_use(up_args: list[str], ports: dict[str, int]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports["logic"]))
        sock.listen()
        up = Up(up_args)
        assert up.finish() == 2
    assert any("already in use" in line and str(ports["logic"]) in line for line in up.lines)


def test_up_refuses_a_bad_max_size(tmp_path: Path) -> None:
    up = Up(["--data-dir", str(tmp_path), "--max-size", "lots"])
    assert up.finish() == 2
    assert any("--max-size" in line for line in up.lines)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["rotate", "hold"])
def test_up_demo_streams_until_the_buffer_freezes(
    up_args: list[str], ports: dict[str, int], mode: str
) -> None:
    # --max-size 1MiB: the first synthetic block fills it
    up = Up([*up_args, "--demo", "--freeze-mode", mode])
    try:
        api = f"http://127.0.0.1:{ports['api']}"
        if mode == "hold":
            up.wait_for("the buffer is FROZEN", timeout=180)
            assert httpx.get(f"{api}/desc", timeout=5).json()["resp"] == "FROZEN"
            assert httpx.get(f"{api}/stats", timeout=5).json()["buff_size"] >= 1024**2
        else:
            # Rotate: the full batch is sealed and the buffer stays OPERATIONAL.
            up.wait_for("a full batch is sealed", timeout=180)
            desc = httpx.get(f"{api}/desc", timeout=5).json()
            assert (desc["resp"], desc["sealed"] >= 1) == ("OPERATIONAL", True)
            train = httpx.post(f"{api}/train", json={"user": "t"}, timeout=5).json()
            assert (train["resp"], train["batch"], train["bt_wrt"] >= 1024**2) == (
                "FROZEN",
                1,
                True,
            )
        up.proc.send_signal(signal.SIGTERM)
        assert up.finish() == 0
    finally:
        up.kill()
