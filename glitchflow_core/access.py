"""Who may call what: each route of each service is in one access class, decided in one table per
service, and one `Gate` per service tells from the bearer token whether a call may go on.

The classes, from the most open:

- ``OPEN``: alive (``/healthz``), the icon, the API's docs: always open.
- ``STATUS``: ``/readyz``, ``/metrics``, the status page, its JSON, the counters and the state:
  open (a NetworkPolicy guards them) unless ``STATUS_NEEDS_TOKEN`` is set, then as ``READ``.
- ``READ``: what lists or dumps stored data (file names, the event log, batches, samples,
  channels): a reader token, or a stronger one, once the service has tokens.
- ``WRITE``: storing chunks. ``ADMIN``: freezing and flushing.

A table that misses a route stops the app at start (`require_decisions`): a new route is never
open by accident. Tokens are compared in constant time and never written anywhere.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from glitchflow_core.auth import bearer_token, token_matches
from glitchflow_core.edge import JSON_MEDIA, EdgeError, Forbidden, Unauthorized, answer

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

    from glitchflow_core.metrics import ServiceMetrics


class Access(enum.Enum):
    """The access class of a route."""

    OPEN = "open"
    STATUS = "status"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@dataclass(frozen=True)
class Rule:
    """Who passes one access class.

    ``accepted`` tokens pass; a token of ``other`` (known, of the wrong kind) gets 403, any other
    caller 401 naming ``kind``. Not ``protected``: everyone passes.
    """

    kind: str
    accepted: tuple[str, ...]
    other: tuple[str, ...] = ()
    protected: bool = True


class Gate:
    """The rules of one service by access class; a class without a rule is open."""

    def __init__(self, rules: Mapping[Access, Rule]) -> None:
        self.rules = dict(rules)

    def is_open(self, access: Access) -> bool:
        """True when anyone may make calls of ``access``."""
        rule = self.rules.get(access)
        return rule is None or not rule.protected

    def check(
        self, access: Access, authorization: str | None, body_token: str | None = None
    ) -> None:
        """Raise `Unauthorized` (no or an unknown token) or `Forbidden` (a token of another
        kind) unless the call may go on. ``body_token``: the original ``/train`` body's token."""
        rule = self.rules.get(access)
        if rule is None or not rule.protected:
            return
        header = bearer_token(authorization)
        # Both are compared whatever the first gives: the time taken does not tell which matched.
        by_header = token_matches(header, rule.accepted)
        by_body = token_matches(body_token, rule.accepted)
        if by_header or by_body:
            return
        article = "an" if rule.kind[0] in "aeiou" else "a"
        detail = f"{article} {rule.kind} token is required"
        if token_matches(header, rule.other) or token_matches(body_token, rule.other):
            raise Forbidden(detail)
        raise Unauthorized(detail)


def service_gate(
    service: tuple[str, ...], readers: tuple[str, ...], status_needs_token: bool
) -> Gate:
    """The gate of the buffer and the logic: once a service token is set, writes and admin calls
    need it, reads need it or a reader token. Without one every call is open: the service
    before it (the API, the logic) sends no token then, so reader tokens alone close nothing."""
    read = Rule("reader", service + readers, protected=bool(service))
    write = Rule("service", service, readers, protected=bool(service))
    rules = {Access.WRITE: write, Access.ADMIN: write, Access.READ: read}
    if status_needs_token:
        rules[Access.STATUS] = read
    return Gate(rules)


def require_decisions(service: str, routes: Iterable[str], table: Mapping[str, Access]) -> None:
    """Raise `RuntimeError` naming every route of ``service`` that has no access class."""
    missing = sorted(set(routes) - set(table))
    if missing:
        raise RuntimeError(f"{service}: no access decision for {', '.join(missing)}")


class AccessMiddleware:
    """ASGI middleware: refuses a call its gate does not let through, before the app reads it.

    ``table`` maps route paths to their class (a path not in it is not a route: the app answers
    404), ``methods`` the methods each route takes (another method: the app answers 405); the
    paths in ``checked_by_handler`` are left to their handler (the API's ``/train`` also takes
    the token from its body).
    """

    def __init__(
        self,
        app: ASGIApp,
        gate: Gate,
        table: Mapping[str, Access],
        methods: Mapping[str, Collection[str]],
        metrics: ServiceMetrics | None = None,
        checked_by_handler: Collection[str] = (),
    ) -> None:
        self.app = app
        self.gate = gate
        self.table = table
        self.methods = methods
        self.metrics = metrics
        self.checked_by_handler = frozenset(checked_by_handler)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        access = self.table.get(path) if scope["type"] == "http" else None
        taken = self.methods.get(path)
        if (
            access is None
            or path in self.checked_by_handler
            or (taken is not None and scope["method"] not in taken)
        ):
            await self.app(scope, receive, send)
            return
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            self.gate.check(access, authorization)
        except EdgeError as exc:
            if self.metrics is not None:
                self.metrics.refusals.labels(exc.refusal).inc()
            status, body, headers = answer(exc)
            raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
            raw += [
                (b"content-type", JSON_MEDIA.encode()),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)
