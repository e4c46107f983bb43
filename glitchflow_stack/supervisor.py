"""Child processes, each in its own process group: started, polled until ready, stopped.

`ManagedProcess` runs one service (``glitchflow up`` and the end-to-end tests use it to start, kill
and restart services); `Stack` starts several in order and stops them in reverse order.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

READY_TIMEOUT = 60.0


class ServiceFailed(RuntimeError):
    """Raised when a service exits or does not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True when something already accepts connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """One service run as a child process, in its own process group, with its output captured.

    Parameters
    ----------
    name : str
        Short name, used as the log prefix.
    argv : sequence of str
        The command.
    url : str
        Base URL the service answers on (``/readyz`` is polled there).
    env : mapping, optional
        Extra environment variables on top of this process's environment.
    echo : callable, optional
        Called with each output line prefixed by ``[name]``; lines are kept in memory either way.
    """

    name: str
    argv: Sequence[str]
    url: str
    env: Mapping[str, str] = field(default_factory=dict)
    echo: Callable[[str], None] | None = None
    keep_lines: int = 2000
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lines: collections.deque[str] = field(init=False, repr=False)
    _reader: threading.Thread | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self._lines = collections.deque(maxlen=self.keep_lines)

    def start(self) -> ManagedProcess:
        """Start the process (a new session, so signals reach its workers too)."""
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            list(self.argv),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._pump, name=f"log-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _pump(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self._lines.append(line)
            if self.echo is not None:
                self.echo(f"[{self.name}] {line}")

    @property
    def pid(self) -> int:
        """The process id (the process group id too)."""
        assert self.proc is not None, "not started"
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def returncode(self) -> int | None:
        """The exit status, None while running."""
        return None if self.proc is None else self.proc.poll()

    def output(self) -> str:
        """The output kept so far."""
        return "\n".join(self._lines)

    def wait_ready(self, timeout: float = READY_TIMEOUT, path: str = "/readyz") -> None:
        """Poll ``path`` until it answers 200; raise `ServiceFailed` if the process exits first."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.alive():
                    raise ServiceFailed(
                        f"{self.name} exited with status {self.returncode()} before it was ready:\n"
                        + self.output()[-4000:]
                    )
                try:
                    answer = client.get(self.url + path)
                    if answer.status_code == 200:
                        return
                    last = f"{answer.status_code} {answer.text[:200]}"
                except httpx.TransportError as exc:
                    last = type(exc).__name__
                time.sleep(0.1)
        raise ServiceFailed(
            f"{self.name} not ready after {timeout:.0f} s ({last}):\n{self.output()[-4000:]}"
        )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signum)

    def kill(self) -> None:
        """``kill -9`` the process group and reap it."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self._join_reader()

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout`` for a graceful exit, then SIGKILL. Returns the status."""
        if self.proc is None:
            return None
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(timeout=10)
        # Workers of a killed master may linger in the group; make sure none does.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._join_reader()
        return self.proc.returncode

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.proc is not None and self.proc.stdout is not None and not self._reader_alive():
            self.proc.stdout.close()

    def _reader_alive(self) -> bool:
        return self._reader is not None and self._reader.is_alive()


class Stack:
    """The three services started in order and stopped in reverse order."""

    def __init__(self, processes: list[ManagedProcess]) -> None:
        self.processes = processes

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        """Start each service and wait until it is ready before the next (it needs its upstream)."""
        try:
            for proc in self.processes:
                proc.start()
                proc.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def dead(self) -> ManagedProcess | None:
        """The first service that exited, if any."""
        return next((p for p in self.processes if p.proc is not None and not p.alive()), None)

    def stop(self) -> None:
        """Stop the API first, the buffer last, so in-flight writes can land."""
        for proc in reversed(self.processes):
            proc.stop()
