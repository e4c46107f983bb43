"""The access gate of `glitchflow_core.access` and the body deadline of `read_body_sync`."""

from __future__ import annotations

import socket

import pytest

from glitchflow_core.access import Access, Gate, Rule, require_decisions, service_gate
from glitchflow_core.edge import BodyTimeout, Forbidden, Unauthorized, read_body_sync

SERVICE = "service-token-0123456789"
READER = "reader-token-0123456789"


def bearer(token: str | None) -> str | None:
    return None if token is None else f"Bearer {token}"


@pytest.mark.parametrize(
    ("access", "token", "outcome"),
    [
        (Access.WRITE, None, Unauthorized),
        (Access.WRITE, "wrong-token-00000", Unauthorized),
        (Access.WRITE, READER, Forbidden),
        (Access.WRITE, SERVICE, None),
        (Access.ADMIN, READER, Forbidden),
        (Access.READ, None, Unauthorized),
        (Access.READ, READER, None),
        (Access.READ, SERVICE, None),
        (Access.STATUS, None, None),
        (Access.OPEN, None, None),
    ],
)
def test_service_gate_decides_by_class_and_token(
    access: Access, token: str | None, outcome: type[Exception] | None
) -> None:
    gate = service_gate((SERVICE,), (READER,), status_needs_token=False)
    if outcome is None:
        gate.check(access, bearer(token))
    else:
        with pytest.raises(outcome):
            gate.check(access, bearer(token))


def test_service_gate_without_a_service_token_is_open_and_status_can_be_closed() -> None:
    # Reader tokens alone close nothing: the service in front sends no token then.
    open_gate = service_gate((), (READER,), status_needs_token=True)
    for access in Access:
        open_gate.check(access, None)
    closed = service_gate((SERVICE,), (READER,), status_needs_token=True)
    with pytest.raises(Unauthorized):
        closed.check(Access.STATUS, None)
    closed.check(Access.STATUS, bearer(READER))
    closed.check(Access.OPEN, None)


def test_body_token_counts_like_the_header() -> None:
    gate = Gate({Access.ADMIN: Rule("admin", ("admin-token-000000",), ("writer-token-0000",))})
    gate.check(Access.ADMIN, None, "admin-token-000000")
    with pytest.raises(Forbidden, match="an admin token is required"):
        gate.check(Access.ADMIN, None, "writer-token-0000")


def test_a_route_without_a_decision_stops_the_app() -> None:
    with pytest.raises(RuntimeError, match="no access decision for /new"):
        require_decisions("svc", ["/old", "/new"], {"/old": Access.OPEN})


def test_blocking_body_read_is_ended_at_its_deadline() -> None:
    server, client = socket.socketpair()
    with server, client:
        client.sendall(b"12345")  # 5 of the 100 bytes declared, then nothing

        def read(size: int) -> bytes:
            chunks = b""
            while len(chunks) < size:  # as gunicorn's body reader: blocks until it has them
                data = server.recv(size - len(chunks))
                if not data:
                    raise OSError("no more data")
                chunks += data
            return chunks

        with pytest.raises(BodyTimeout) as refused:
            read_body_sync({"content-length": "100"}, read, 1000, 0.3, server)
    assert refused.value.status == 408
    assert refused.value.headers()["Connection"] == "close"
