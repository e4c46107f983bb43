"""``glitchflow up``: the three services as real processes on one machine, data in a local folder.

`ManagedProcess` is also what the end-to-end tests use to start, kill and restart a service.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from glitchflow_core.sizes import parse_size

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


@dataclass(frozen=True)
class Layout:
    """Where the three services listen."""

    host: str = "127.0.0.1"
    buffer_port: int = 8080
    logic_port: int = 5000
    api_port: int = 8000

    @property
    def buffer_url(self) -> str:
        return f"http://{self.host}:{self.buffer_port}"

    @property
    def logic_url(self) -> str:
        return f"http://{self.host}:{self.logic_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"


def service_processes(
    layout: Layout,
    data_dir: Path,
    max_size: int,
    *,
    logic_workers: int | None = None,
    logic_threads: int | None = None,
    api_workers: int = 1,
    env: Mapping[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[ManagedProcess]:
    """The buffer, logic and API processes (not started), in start order.

    ``logic_workers``/``logic_threads`` left as None keep the measured defaults of
    ``datastore_logic/gunicorn.conf.py``.
    """
    py = sys.executable
    common = dict(env or {})
    host = layout.host
    buffer = ManagedProcess(
        "databuffer",
        [py, "-m", "databuffer", "--host", host, "--port", str(layout.buffer_port)],
        layout.buffer_url,
        env={**common, "GLITCHFLOW_DATA_DIR": str(data_dir)},
        echo=echo,
    )
    logic = ManagedProcess(
        "logic",
        [py, "-m", "datastore_logic", "--host", host, "--port", str(layout.logic_port)]
        + (["--workers", str(logic_workers)] if logic_workers else [])
        + (["--threads", str(logic_threads)] if logic_threads else []),
        layout.logic_url,
        env={
            **common,
            "GLITCHFLOW_DB_BURL": layout.buffer_url,
            "GLITCHFLOW_MAX_SIZE": str(max_size),
        },
        echo=echo,
    )
    api = ManagedProcess(
        "api",
        [
            py,
            "-m",
            "glitchflow_api",
            "--host",
            host,
            "--port",
            str(layout.api_port),
            "--workers",
            str(api_workers),
        ],
        layout.api_url,
        env={**common, "GLITCHFLOW_DS_BURL": layout.logic_url},
        echo=echo,
    )
    return [buffer, logic, api]


def _print_line(line: str) -> None:
    print(line, flush=True)


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


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="glitchflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the three services locally until Ctrl-C")
    up.add_argument("--data-dir", type=Path, default=Path("glitchflow-data"))
    up.add_argument("--max-size", default="64MiB", help="freeze threshold: 2000, 64MiB, 1GB")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--api-port", type=int, default=8000)
    up.add_argument("--logic-port", type=int, default=5000)
    up.add_argument("--buffer-port", type=int, default=8080)
    up.add_argument(
        "--logic-workers", type=int, default=None, help="default: gunicorn.conf.py's choice"
    )
    up.add_argument("--api-workers", type=int, default=1)
    up.add_argument(
        "--demo",
        action="store_true",
        help="once ready, stream the real strain shipped with gwpy, then synthetic data, "
        "until the buffer freezes",
    )
    return parser.parse_args(argv)


def _run_demo(api_url: str, stop: threading.Event) -> int:
    """Stream demo data through the API; returns the demo process's status."""
    proc = ManagedProcess(
        "demo", [sys.executable, "-m", "gwclient.demo", "--url", api_url], api_url, echo=_print_line
    ).start()
    while proc.alive() and not stop.is_set():
        time.sleep(0.2)
    if proc.alive():
        proc.stop()
    return proc.returncode() or 0


def up(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C, SIGTERM, or one service dies; returns the exit status."""
    try:
        max_size = parse_size(args.max_size)
    except ValueError as exc:
        print(f"glitchflow up: --max-size: {exc}", file=sys.stderr)
        return 2
    layout = Layout(args.host, args.buffer_port, args.logic_port, args.api_port)
    busy = [
        p
        for p in (layout.buffer_port, layout.logic_port, layout.api_port)
        if port_in_use(args.host, p)
    ]
    if busy:
        print(f"glitchflow up: port(s) {busy} on {args.host} already in use", file=sys.stderr)
        return 2
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        service_processes(
            layout,
            data_dir,
            max_size,
            logic_workers=args.logic_workers,
            api_workers=args.api_workers,
            echo=_print_line,
        )
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except ServiceFailed as exc:
        print(f"glitchflow up: {exc}", file=sys.stderr)
        return 1
    print(
        "glitchflow up: ready\n"
        f"  API        {layout.api_url}  (docs {layout.api_url}/docs)\n"
        f"  status     {layout.api_url}/dspage\n"
        f"  logic      {layout.logic_url}  (status page {layout.logic_url}/)\n"
        f"  databuffer {layout.buffer_url}\n"
        f"  data       {data_dir}\n"
        f"  MAX_SIZE   {max_size} bytes\n"
        "Ctrl-C stops all three.",
        flush=True,
    )
    demo: threading.Thread | None = None
    if args.demo:
        demo = threading.Thread(target=_run_demo, args=(layout.api_url, stopping), daemon=True)
        demo.start()
    status = 0
    while not stopping.is_set():
        dead = stack.dead()
        if dead is not None:
            print(
                f"glitchflow up: {dead.name} exited with status {dead.returncode()};"
                " stopping the others",
                file=sys.stderr,
                flush=True,
            )
            status = 1
            break
        stopping.wait(0.5)
    print("glitchflow up: stopping", flush=True)
    stopping.set()
    if demo is not None:
        demo.join(timeout=20)
    stack.stop()
    print("glitchflow up: stopped", flush=True)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: ``glitchflow up ...``."""
    args = _parse_args(argv)
    if args.command == "up":
        return up(args)
    return 2  # pragma: no cover - argparse refuses other commands


if __name__ == "__main__":
    sys.exit(main())
