"""Who may call what: writer tokens write, admin tokens also freeze and flush."""

from __future__ import annotations

from dataclasses import dataclass

from glitchflow_core.auth import bearer_token, token_matches
from glitchflow_core.edge import Forbidden, Unauthorized


@dataclass(frozen=True, slots=True)
class Tokens:
    """The configured tokens; with none at all the API runs open (local use).

    With admin tokens only, ``/streamdata`` stays open to every writer (inside a cluster the
    NetworkPolicy decides who reaches it) while ``/train`` and ``/cleanbuf`` need an admin token.
    """

    writer: tuple[str, ...]
    admin: tuple[str, ...]

    @property
    def open(self) -> bool:
        """True when no token is configured."""
        return not self.writer and not self.admin

    def require_writer(self, authorization: str | None) -> None:
        """Allow anyone when no writer token is set, else a writer or an admin token."""
        if not self.writer:
            return
        if not token_matches(bearer_token(authorization), self.writer + self.admin):
            raise Unauthorized("a writer token is required")

    def require_admin(self, authorization: str | None, body_token: str | None = None) -> None:
        """Allow an admin token from the header or (``/train``) the body, else raise."""
        if self.open:
            return
        header = bearer_token(authorization)
        # Both are checked whatever the first gives, so timing does not tell which one matched.
        by_header = token_matches(header, self.admin)
        by_body = token_matches(body_token, self.admin)
        if by_header or by_body:
            return
        if token_matches(header, self.writer) or token_matches(body_token, self.writer):
            raise Forbidden("an admin token is required")
        raise Unauthorized("an admin token is required")
