"""Who may call what: writer tokens write, admin tokens also freeze and flush."""

from __future__ import annotations

from dataclasses import dataclass

from glitchflow_core.auth import bearer_token, token_matches


class AuthError(Exception):
    """Raised when a caller has no valid token (401) or one of the wrong kind (403)."""

    def __init__(self, status: int, resp: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.resp = resp
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Tokens:
    """The configured tokens; with none at all the API runs open (local use)."""

    writer: tuple[str, ...]
    admin: tuple[str, ...]

    @property
    def open(self) -> bool:
        """True when no token is configured."""
        return not self.writer and not self.admin

    def require_writer(self, authorization: str | None) -> None:
        """Allow a writer or an admin token; raise `AuthError` otherwise."""
        if self.open:
            return
        if not token_matches(bearer_token(authorization), self.writer + self.admin):
            raise AuthError(401, "UNAUTHORIZED", "a writer token is required")

    def require_admin(self, authorization: str | None, body_token: str | None = None) -> None:
        """Allow an admin token from the header or (``/train``) the body, else raise `AuthError`."""
        if self.open:
            return
        header = bearer_token(authorization)
        # Both are checked whatever the first gives, so timing does not tell which one matched.
        by_header = token_matches(header, self.admin)
        by_body = token_matches(body_token, self.admin)
        if by_header or by_body:
            return
        if token_matches(header, self.writer) or token_matches(body_token, self.writer):
            raise AuthError(403, "FORBIDDEN", "an admin token is required")
        raise AuthError(401, "UNAUTHORIZED", "an admin token is required")
