"""Bearer tokens: loaded from the environment or a file, compared in constant time, never shown."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from pathlib import Path

PLACEHOLDER_TOKENS = frozenset({"changeme", "change-me", "secret", "token", "placeholder"})


def load_tokens(inline: str | None, file: Path | None) -> tuple[str, ...]:
    """Tokens from a comma-separated string and/or a file (one per line, ``#`` comments).

    A Kubernetes Secret mounted as a file is the usual source; the string form suits local use.
    """
    raw: list[str] = []
    if inline:
        raw.extend(inline.replace("\n", ",").split(","))
    if file is not None:
        text = Path(file).read_text(encoding="utf-8")
        raw.extend(line.split("#", 1)[0] for line in text.splitlines())
    return tuple(token.strip() for token in raw if token.strip())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def token_matches(presented: str | None, accepted: Iterable[str]) -> bool:
    """True when ``presented`` equals one of ``accepted``; every comparison is constant-time."""
    if presented is None:
        return False
    given = presented.encode("utf-8")
    found = False
    for token in accepted:
        # No early exit: the time taken does not depend on which token matched.
        found |= hmac.compare_digest(given, token.encode("utf-8"))
    return found


def placeholder_tokens(tokens: Iterable[str]) -> list[str]:
    """The tokens that are obvious placeholders (refused outside development)."""
    return [t for t in tokens if t.lower() in PLACEHOLDER_TOKENS or len(t) < 12]
