"""Who may call what on the API: writer tokens write, reader tokens read, admin tokens do all.

The routes' access classes are in `glitchflow_api.routes.ACCESS`; the gate built here decides.
"""

from __future__ import annotations

from glitchflow_core.access import Access, Gate, Rule

ACCESS: dict[str, Access] = {
    "/streamdata": Access.WRITE,
    "/train": Access.ADMIN,
    "/cleanbuf": Access.ADMIN,
    "/dumpbuf": Access.READ,
    "/data": Access.READ,
    "/channels": Access.READ,
    "/stats": Access.STATUS,
    "/desc": Access.STATUS,
    "/status": Access.STATUS,
    "/dspage": Access.STATUS,
    "/readyz": Access.STATUS,
    "/metrics": Access.STATUS,
    "/healthz": Access.OPEN,
    "/favicon.ico": Access.OPEN,
    "/favicon.svg": Access.OPEN,
    "/openapi.json": Access.OPEN,
    "/docs": Access.OPEN,
    "/docs/oauth2-redirect": Access.OPEN,
    "/redoc": Access.OPEN,
    "/redoc.standalone.js": Access.OPEN,
    "/docs-static": Access.OPEN,
}
"""Who may call each route of the API (`glitchflow_core.access`)."""
CHECKED_BY_HANDLER = ("/train",)
"""Routes whose handler checks the token itself: ``/train`` also takes it from its body."""


def api_gate(
    writer: tuple[str, ...],
    admin: tuple[str, ...],
    reader: tuple[str, ...],
    status_needs_token: bool = False,
) -> Gate:
    """The API's gate; with no token at all it is open (local use).

    Writes need a writer or admin token when writer tokens are set: with admin tokens only,
    ``/streamdata`` stays open to every writer (inside a cluster the NetworkPolicy decides who
    reaches it). Once any token is set, ``/train`` and ``/cleanbuf`` need an admin token and the
    calls that list or dump stored data a reader or admin token; a token of the wrong kind gets
    403.
    """
    configured = bool(writer or admin or reader)
    read = Rule("reader", reader + admin, writer, protected=configured)
    rules = {
        Access.WRITE: Rule("writer", writer + admin, reader, protected=bool(writer)),
        Access.ADMIN: Rule("admin", admin, writer + reader, protected=configured),
        Access.READ: read,
    }
    if status_needs_token:
        rules[Access.STATUS] = read
    return Gate(rules)
