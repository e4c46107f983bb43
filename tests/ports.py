"""Free TCP ports for the servers the tests start, never the same in two pytest-xdist workers.

`glitchflow_stack.free_port` asks the OS for any free port and lets it go; the server binds it a
few seconds later. With several workers, another worker's ``free_port`` can get that same port in
between (the OS sees it free), and a ``/readyz`` poll could then reach the other worker's server.
Here each worker draws from its own block of ports, below Linux's ephemeral range (32768-60999)
so that no client connection's local port can take one either, and goes round its block in order,
so a port comes back to the same worker only after all the others of its block.
"""

from __future__ import annotations

import itertools
import os
import random
import socket

BASE, END = 20000, 32000
"""The ports shared out: worker ``gw<n>`` of ``N`` has the ``n``-th of ``N`` equal blocks."""

_turn = itertools.count(random.randrange(END - BASE))


def _block() -> tuple[int, int]:
    """This worker's first port and how many it has."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    span = (END - BASE) // workers
    return BASE + worker * span, span


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody uses right now, from this worker's block."""
    start, span = _block()
    for _ in range(span):
        port = start + next(_turn) % span
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {start}-{start + span - 1}")
