"""Failures of the next service in the chain, as every service reports them.

Never disguised: a failure is answered 502 or 504 with a ``resp`` that says what happened and
``upstream`` naming the service that failed, never as ``FROZEN`` or ``WAITING``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import orjson

from glitchflow_core.edge import EdgeError


class Answer(NamedTuple):
    """What the next service answered, read whole: status, body and (case-insensitive) headers.

    The services' clients (urllib3 in datastore_logic, aiohttp in glitchflow_api) both return it,
    so that the routes read an answer the same way whichever client fetched it.
    """

    status_code: int
    content: bytes
    headers: Mapping[str, str]


class UpstreamFailure(EdgeError):
    """Raised when the next service gives no usable answer; `status` and `body` are the answer."""

    status = 502
    resp = "UPSTREAM_ERROR"

    def __init__(self, upstream: str, detail: str) -> None:
        super().__init__(detail)
        self.args = (f"{upstream}: {detail}",)
        self.upstream = upstream

    def body(self) -> dict[str, Any]:
        """The JSON answer of the failure."""
        return {"resp": self.resp, "upstream": self.upstream, "detail": self.detail}


class UpstreamUnreachable(UpstreamFailure):
    """Raised when no connection could be made, or it broke before an answer."""

    resp = "UPSTREAM_UNREACHABLE"


class UpstreamTimeout(UpstreamFailure):
    """Raised when the next service did not answer within ``UPSTREAM_TIMEOUT``."""

    status = 504
    resp = "UPSTREAM_TIMEOUT"


class UpstreamError(UpstreamFailure):
    """Raised when the next service answered something unusable (no JSON, no ``resp``, a 5xx)."""


def json_object(upstream: str, status: int, content: bytes) -> dict[str, Any]:
    """The JSON object the next service answered, or `UpstreamError` when it is not one."""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise UpstreamError(upstream, f"{upstream} answered {status} without JSON") from exc
    if not isinstance(doc, dict):
        raise UpstreamError(upstream, f"{upstream} answered {status} without a JSON object")
    return doc
