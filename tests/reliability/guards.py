"""Helpers of the bad-client, disk-full and token tests: a raw HTTP client that streams a body and
watches for an early answer, and the resident memory of a service's processes.

A raw socket, not httpx: the tests need to know how much of a body the server took before it
answered and closed, and to send one byte a second; an HTTP library hides both.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

MiB = 1024 * 1024


@dataclass
class RawAnswer:
    """What a raw request got: the answer (None when the server closed without one), the bytes
    of the body the kernel took before the server answered or closed, and how it ended."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    sent: int
    closed_by_server: bool

    def json(self) -> dict:
        return orjson.loads(self.body)


def chunked(pieces: Iterable[bytes]) -> Iterator[bytes]:
    """``pieces`` framed with chunked transfer encoding, then the last chunk."""
    for piece in pieces:
        yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    yield b"0\r\n\r\n"


def zeros(total: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes of a body in ``piece``-sized parts, made as they are sent."""
    block = b"0" * piece
    left = total
    while left > 0:
        yield block[: min(piece, left)]
        left -= piece


def _parse(raw: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """Status, headers and body of a complete answer in ``raw``, or None if it is not whole."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    if len(rest) < length:
        return None
    return status, headers, rest[:length]


def raw_request(
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterable[bytes] = (),
    *,
    timeout: float = 30.0,
    pause: float = 0.0,
    wait_close: float = 10.0,
) -> RawAnswer:
    """Send a request whose body comes from ``body`` (``pause`` seconds between parts) while
    watching for an answer; stop sending once it came, then see whether the server closes.

    The client's send buffer is kept small, so ``sent`` is close to what the server read.
    ``wait_close``: how long to wait for the server to close the connection after its answer.
    """
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    deadline = time.monotonic() + timeout
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    received = b""
    sent = 0
    closed = False
    parts = iter(body)
    pending = head.encode()
    sending = True
    parsed = None
    with sock:
        sock.setblocking(False)
        while time.monotonic() < deadline and parsed is None and not closed:
            if not pending and sending:
                if pause:
                    time.sleep(pause)
                pending = next(parts, b"")
                sending = bool(pending)
            readable, writable, _ = select.select(
                [sock], [sock] if pending else [], [], min(1.0, deadline - time.monotonic())
            )
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closed = True
                received += data
                parsed = _parse(received)
            elif writable and pending:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    continue
                sent += n
                pending = pending[n:]
        if parsed is not None and not closed:
            closed = _closes(sock, min(deadline, time.monotonic() + wait_close))
    if parsed is None:
        return RawAnswer(None, {}, received, sent - len(head), closed)
    status, answer_headers, answer_body = parsed
    return RawAnswer(status, answer_headers, answer_body, sent - len(head), closed)


def _closes(sock: socket.socket, deadline: float) -> bool:
    """True when the server closes the connection before ``deadline`` (EOF or a reset)."""
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], 0.2)
        if readable:
            try:
                if not sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True
    return False


def group_rss(pgid: int) -> int:
    """Resident bytes of every process in the process group ``pgid`` (a service and its workers)."""
    total = 0
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += int((entry / "statm").read_text().split()[1]) * page
    return total
