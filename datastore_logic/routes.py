"""HTTP layer of datastore_logic: the original endpoints, relaying to the databuffer."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from datastore_logic.policy import Policy, flush_answer, flush_request
from datastore_logic.upstream import UPSTREAM, BufferClient
from glitchflow_core.auth import bearer_token, token_matches
from glitchflow_core.metrics import ServiceMetrics
from glitchflow_core.sizes import format_size
from glitchflow_core.upstream import UpstreamError, UpstreamFailure, json_object

bp = Blueprint("logic", __name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
JSON_TYPES = ("application/json",)
ADMIN_MAX_BODY = 64 * 1024
"""Largest ``/freezeds`` or ``/flushbuf`` body: a user and a message fit many times over."""
MAX_OFFSET = 2**62
"""The buffer's largest ``offset``."""
DUMP_MAX_LIMIT = 100_000
"""The buffer's largest ``/dumpF`` page."""
LOG_MAX_LIMIT = 10_000
"""The buffer's largest ``/dumpLogF`` page."""
MAX_PAGE = MAX_OFFSET // PAGE_SIZE
"""The last status page whose offset the buffer accepts."""


class InvalidInput(Exception):
    """Raised when the caller's input is refused; answered ``status`` naming ``field``."""

    def __init__(self, field: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason
        self.status = status


class BufferRefused(Exception):
    """Raised when the buffer refused our request as invalid input (a 4xx ``INVALID``)."""

    def __init__(self, upstream: Any) -> None:
        super().__init__(f"buffer answered {upstream.status_code} INVALID")
        self.upstream = upstream


def _ctx() -> dict[str, Any]:
    return current_app.extensions["glitchflow"]


def _buffer() -> BufferClient:
    return _ctx()["buffer"]


def _policy() -> Policy:
    return _ctx()["policy"]


def _metrics() -> ServiceMetrics:
    return _ctx()["metrics"]


def json_response(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON answer, serialised with orjson."""
    return Response(orjson.dumps(body), status=status, headers=headers, mimetype="application/json")


def _relay(upstream: Any) -> Response:
    """The buffer's answer unchanged, unless it is a 5xx that does not say what went wrong."""
    status = upstream.status_code
    if status >= 500:
        try:
            doc = orjson.loads(upstream.content)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict) or "resp" not in doc:
            raise UpstreamError(UPSTREAM, f"buffer answered {status} without a resp")
    headers = {}
    if "retry-after" in upstream.headers:
        headers["Retry-After"] = upstream.headers["retry-after"]
    return Response(upstream.content, status=status, headers=headers, mimetype="application/json")


def _buffer_json(upstream: Any) -> dict[str, Any]:
    """The buffer's JSON object, or `UpstreamError` when it is not one."""
    return json_object(UPSTREAM, upstream.status_code, upstream.content)


def _invalid(field: str, reason: str, status: int = 422) -> Response:
    _metrics().refusals.labels("invalid").inc()
    return json_response({"resp": "INVALID", "detail": {"field": field, "reason": reason}}, status)


@bp.before_request
def _start_clock_and_check_token() -> Response | None:
    g.started = time.perf_counter()
    tokens = _ctx()["tokens"]
    presented = bearer_token(request.headers.get("Authorization"))
    if request.method == "POST" and tokens and not token_matches(presented, tokens):
        _metrics().refusals.labels("unauthorized").inc()
        return json_response({"resp": "UNAUTHORIZED", "detail": "service token required"}, 401)
    return None


@bp.after_request
def _observe(response: Response) -> Response:
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    started = g.get("started")
    if started is not None:
        _metrics().observe(
            rule, request.method, response.status_code, time.perf_counter() - started
        )
    return response


@bp.app_errorhandler(UpstreamFailure)
def _upstream_failure(exc: UpstreamFailure) -> Response:
    _metrics().refusals.labels(exc.resp.lower()).inc()
    _ctx()["log"].warning("databuffer failed: %s", exc.detail, extra={"resp": exc.resp})
    return json_response(exc.body(), exc.status)


@bp.app_errorhandler(InvalidInput)
def _invalid_input(exc: InvalidInput) -> Response:
    return _invalid(exc.field, exc.reason, exc.status)


@bp.app_errorhandler(BufferRefused)
def _buffer_refused(exc: BufferRefused) -> Response:
    # The caller's input, refused by the buffer: relayed as it is, not as a failure (502).
    _metrics().refusals.labels("invalid").inc()
    return _relay(exc.upstream)


@bp.app_errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    if exc.code == 413:
        return _invalid("body", f"larger than {_ctx()['settings'].max_body} bytes", 413)
    return json_response(
        {"resp": exc.name.upper().replace(" ", "_"), "detail": exc.description}, exc.code or 500
    )


def _read_body() -> bytes:
    """The request body, read in one call when its length is known.

    ``request.get_data()`` reads 64 KiB at a time, and gunicorn copies what it has read ahead on
    every call: for a 375 kB chunk that was the largest single cost of this hop (measured with
    py-spy). werkzeug's stream still enforces MAX_CONTENT_LENGTH and the declared length.
    """
    length = request.content_length
    if length is None:
        return request.get_data(cache=False)
    parts: list[bytes] = []
    while length > 0:
        part = request.stream.read(length)
        if not part:
            break
        parts.append(part)
        length -= len(part)
    return b"".join(parts)


@bp.post("/stream")
def stream() -> Response:
    """Store one chunk: the raw body goes to the buffer with the freeze threshold attached."""
    if request.mimetype not in JSON_TYPES:
        return _invalid("content-type", "must be application/json", 415)
    body = _read_body()
    upstream = _buffer().request(
        "POST",
        "/sendF",
        params=_policy().write_params(),
        content=body,
        headers={"Content-Type": "application/json"},
    )
    response = _relay(upstream)
    _count_write(upstream)
    return response


def _count_write(upstream: Any) -> None:
    metrics = _metrics()
    status = upstream.status_code
    if status not in (200, 201):
        try:
            resp = orjson.loads(upstream.content).get("resp", "unknown")
        except (orjson.JSONDecodeError, AttributeError):
            resp = "unknown"
        metrics.refusals.labels(str(resp).lower()).inc()
        return
    doc = _buffer_json(upstream)
    if status == 201:
        metrics.ingested_chunks.inc()
        metrics.ingested_bytes.inc(int(doc.get("bytes") or 0))
        if doc.get("frozen"):
            metrics.freezes.inc()
    else:
        metrics.duplicates.inc()
    if isinstance(doc.get("buff_size"), int):
        metrics.fill_ratio.set(_policy().fill_ratio(doc["buff_size"]))


def _read_capped(limit: int) -> bytes:
    """The whole body, or `InvalidInput` (413) as soon as it is known to exceed ``limit``."""
    too_large = InvalidInput("body", f"larger than {limit} bytes", 413)
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    while True:
        # A chunked upload has no declared length: read no more than one byte past the cap.
        part = request.stream.read(min(64 * 1024, limit + 1 - size))
        if not part:
            return b"".join(parts)
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)


def _json_body() -> dict[str, Any] | Response:
    if request.mimetype not in JSON_TYPES:
        return _invalid("content-type", "must be application/json", 415)
    try:
        doc = orjson.loads(_read_capped(ADMIN_MAX_BODY) or b"{}")
    except orjson.JSONDecodeError:
        return _invalid("body", "is not valid JSON")
    if not isinstance(doc, dict):
        return _invalid("body", "must be a JSON object")
    return doc


@bp.post("/freezeds")
def freezeds() -> Response:
    """Freeze the buffer if the batch is full: FROZEN with counts, else WAITING."""
    doc = _json_body()
    if isinstance(doc, Response):
        return doc
    user = doc.get("user", "")
    if not isinstance(user, str):
        return _invalid("user", "must be a string")
    # The body's token authorised the caller at the API; it is neither stored nor sent on.
    upstream = _buffer().request("POST", "/upddsc", json=_policy().freeze_request(user))
    if upstream.status_code != 200:
        return _relay(upstream)
    answer = _policy().freeze_answer(_buffer_json(upstream))
    if answer is None:
        raise UpstreamError(
            UPSTREAM, "buffer answered /upddsc with neither FROZEN nor WAITING and counts"
        )
    # FROZEN also answers a buffer that was already frozen (by the filling write, counted there).
    _metrics().fill_ratio.set(_policy().fill_ratio(answer["bt_wrt"]))
    return json_response(answer)


@bp.post("/flushbuf")
def flushbuf() -> Response:
    """Archive the frozen batch and reopen the buffer; 409 when it is not frozen (unless forced)."""
    doc = _json_body()
    if isinstance(doc, Response):
        return doc
    msg = doc.get("msg", "")
    force = doc.get("force", False)
    if not isinstance(msg, str):
        return _invalid("msg", "must be a string")
    if not isinstance(force, bool):
        return _invalid("force", "must be true or false")
    upstream = _buffer().request("POST", "/cleanall", json=flush_request(msg, force))
    if upstream.status_code != 200:
        return _relay(upstream)
    answer = flush_answer(_buffer_json(upstream))
    if answer is None:
        raise UpstreamError(UPSTREAM, "buffer answered /cleanall 200 without CLEANED")
    _metrics().flushes.inc()
    _metrics().fill_ratio.set(0.0)
    return json_response(answer)


@bp.get("/dsdesc")
def dsdesc() -> Response:
    """The buffer's state (``Dsstat.json``, never a token)."""
    return _relay(_buffer().request("GET", "/dstat"))


@bp.get("/bufstat")
def bufstat() -> Response:
    """The buffer's counters (``StatDesc.json``)."""
    return _relay(_buffer().request("GET", "/stat"))


def _query_int(name: str, minimum: int, maximum: int) -> int | None:
    """The integer query parameter ``name`` (None when absent), or `InvalidInput` naming it."""
    raw = request.args.get(name)
    if raw is None:
        return None
    reason = f"must be an integer from {minimum} to {maximum}"
    # ASCII digits only: str.isdigit alone accepts "²", which int() refuses (a 500 once), and
    # int() alone accepts "+1", " 1", "1_0" and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()):
        raise InvalidInput(name, reason)
    value = int(raw)
    if not minimum <= value <= maximum:
        raise InvalidInput(name, reason)
    return value


def _paging(max_limit: int) -> dict[str, int]:
    limit = _query_int("limit", 0, max_limit)
    offset = _query_int("offset", 0, MAX_OFFSET)
    params = {"limit": limit, "offset": offset}
    return {name: value for name, value in params.items() if value is not None}


@bp.get("/dumpf")
def dumpf() -> Response:
    """The stored file names, paged with ``limit`` and ``offset``."""
    params = _paging(DUMP_MAX_LIMIT)
    return _relay(_buffer().request("GET", "/dumpF", params=params))


@bp.get("/dumpflog")
def dumpflog() -> Response:
    """The buffer's event log, paged with ``limit`` and ``offset``."""
    params = _paging(LOG_MAX_LIMIT)
    return _relay(_buffer().request("GET", "/dumpLogF", params=params))


@bp.get("/")
def status_page() -> Response:
    """The status page: state, fill towards MAX_SIZE, batch, counts and a paged file list."""
    page = _query_int("page", 1, MAX_PAGE)
    page_number = 1 if page is None else page
    buffer = _buffer()
    stat = _buffer_json(_ok(buffer.request("GET", "/stat")))
    desc = _buffer_json(_ok(buffer.request("GET", "/dstat")))
    files = _buffer_json(
        _ok(
            buffer.request(
                "GET",
                "/dumpF",
                params={"limit": PAGE_SIZE, "offset": (page_number - 1) * PAGE_SIZE},
            )
        )
    )
    max_size = _policy().max_size
    buff_size = int(stat.get("buff_size") or 0)
    total = int(files.get("total") or stat.get("n_itm") or 0)
    html = render_template(
        "status.html",
        state=desc.get("dstatus", "UNKNOWN"),
        user=desc.get("user"),
        batch=stat.get("batch", desc.get("batch")),
        batch_started=desc.get("batch_started"),
        frozen_at=desc.get("frozen_at"),
        frozen_reason=desc.get("frozen_reason"),
        n_itm=int(stat.get("n_itm") or 0),
        buff_size=buff_size,
        buff_size_h=format_size(buff_size),
        max_size=max_size,
        max_size_h=format_size(max_size),
        percent=round(100 * _policy().fill_ratio(buff_size), 1),
        files=files.get("nmlist") or [],
        page=page_number,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        total=total,
        refresh_seconds=5,
    )
    return Response(html, mimetype="text/html")


def _ok(upstream: Any) -> Any:
    if 400 <= upstream.status_code < 500 and _resp(upstream) == "INVALID":
        raise BufferRefused(upstream)
    if upstream.status_code != 200:
        raise UpstreamError(UPSTREAM, f"buffer answered {upstream.status_code}")
    return upstream


def _resp(upstream: Any) -> object:
    try:
        doc = orjson.loads(upstream.content)
    except orjson.JSONDecodeError:
        return None
    return doc.get("resp") if isinstance(doc, dict) else None


@bp.get("/healthz")
def healthz() -> Response:
    """Alive."""
    return json_response({"resp": "OK"})


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when the buffer says it is ready."""
    try:
        upstream = _buffer().request("GET", "/readyz")
    except UpstreamFailure as exc:
        return json_response({"resp": "NOT_READY", "detail": exc.body()}, 503)
    if upstream.status_code != 200:
        return json_response(
            {"resp": "NOT_READY", "detail": f"databuffer answered {upstream.status_code}"}, 503
        )
    return json_response({"resp": "READY"})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics."""
    text, content_type = _metrics().render()
    return Response(text, content_type=content_type)
