"""Free TCP ports for the servers the tests start, never the same in two pytest-xdist workers.

`glitchflow_stack.free_port` asks the OS for any free port and lets it go; the server binds it a
few seconds later. With several workers, another worker's ``free_port`` can get that same port in
between (the OS sees it free), and a ``/readyz`` poll could then reach the other worker's server.
Here each worker draws from its own block of ports, below Linux's ephemeral range (32768-60999)
so that no client connection's local port can take one either, and goes round its block in order,
so a port comes back to the same worker only after ``SPAN`` others.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

BASE = 20000
SPAN = 1500
"""Ports ``BASE + n * SPAN`` up to the next block belong to worker ``gw<n>`` (8 workers fit)."""

_turn = itertools.count(random.randrange(SPAN))


def _block() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return BASE + int(worker.removeprefix("gw")) * SPAN


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody uses right now, from this worker's block."""
    start = _block()
    for _ in range(SPAN):
        port = start + next(_turn) % SPAN
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + SPAN - 1}")
