"""HTTP layer of datastore_logic: the original endpoints, relaying to the databuffer."""

from __future__ import annotations

import time
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, g, render_template, request

from datastore_logic.policy import Policy, flush_answer, flush_request
from datastore_logic.status import PAGE_SIZE, PageAssets, status_document
from datastore_logic.upstream import UPSTREAM, BufferClient
from glitchflow_core.access import Access, Gate
from glitchflow_core.edge import (
    ADMIN_BODY_LIMIT,
    BINARY_MEDIA,
    MAX_OFFSET,
    InvalidInput,
    Refused,
    Relayed,
    bounded_int,
    chunk_media,
    read_body_sync,
    request_object,
    require_media,
)
from glitchflow_core.favicon import CACHE_CONTROL, favicon
from glitchflow_core.metrics import ServiceMetrics
from glitchflow_core.upstream import UpstreamError, UpstreamFailure, json_object

bp = Blueprint("logic", __name__)

DUMP_MAX_LIMIT = 100_000
"""The buffer's largest ``/dumpF`` page."""
LOG_MAX_LIMIT = 10_000
"""The buffer's largest ``/dumpLogF`` page."""
BATCHES_MAX_LIMIT = 1000
"""The buffer's largest ``/batches`` page."""
MAX_PAGE = MAX_OFFSET // PAGE_SIZE
"""The last status page whose offset the buffer accepts."""
ACCESS: dict[str, Access] = {
    "/stream": Access.WRITE,
    "/freezeds": Access.ADMIN,
    "/flushbuf": Access.ADMIN,
    "/dumpf": Access.READ,
    "/dumpflog": Access.READ,
    "/batches": Access.READ,
    "/batches/<int:batch>/results": Access.ADMIN,
    "/data": Access.READ,
    "/channels": Access.READ,
    "/dsdesc": Access.STATUS,
    "/bufstat": Access.STATUS,
    "/status": Access.STATUS,
    "/": Access.STATUS,
    "/readyz": Access.STATUS,
    "/metrics": Access.STATUS,
    "/healthz": Access.OPEN,
    "/favicon.ico": Access.OPEN,
    "/favicon.svg": Access.OPEN,
    "/static/<path:filename>": Access.OPEN,
}
"""Who may call each route (`glitchflow_core.access`): with a service token set, writes and
admin calls need it; listings, logs and samples need it or a reader token."""


def _ctx() -> dict[str, Any]:
    return current_app.extensions["glitchflow"]


def _buffer() -> BufferClient:
    return _ctx()["buffer"]


def _policy() -> Policy:
    return _ctx()["policy"]


def _metrics() -> ServiceMetrics:
    return _ctx()["metrics"]


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON answer, serialised with orjson."""
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _relay(upstream: Any) -> Response:
    """The buffer's success answer unchanged; its refusals raised as `Relayed`.

    A 5xx that does not say what went wrong is an `UpstreamError`, not a refusal.
    """
    status = upstream.status_code
    if status < 400:
        return Response(upstream.content, status=status, mimetype="application/json")
    try:
        doc = orjson.loads(upstream.content)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or "resp" not in doc:
        raise UpstreamError(UPSTREAM, f"buffer answered {status} without a resp")
    raise Relayed(status, doc, upstream.headers.get("retry-after"))


def _buffer_json(upstream: Any) -> dict[str, Any]:
    """The buffer's JSON object, or `UpstreamError` when it is not one."""
    return json_object(UPSTREAM, upstream.status_code, upstream.content)


@bp.before_request
def _start_clock_and_check_token() -> None:
    g.started = time.perf_counter()
    if request.url_rule is not None:  # else werkzeug answers 404 or 405
        gate: Gate = _ctx()["gate"]
        gate.check(ACCESS[request.url_rule.rule], request.headers.get("Authorization"))


@bp.after_request
def _observe(response: Response) -> Response:
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    started = g.get("started")
    if started is not None:
        _metrics().observe(
            rule, request.method, response.status_code, time.perf_counter() - started
        )
    return response


def _read_body(limit: int) -> bytes:
    """The request body, up to ``limit`` bytes (werkzeug's stream also enforces the length),
    within the body timeout (408 past it; gunicorn's socket lets the read be ended)."""
    timeout = _ctx()["settings"].body_timeout
    sock = request.environ.get("gunicorn.socket")
    return read_body_sync(request.headers, request.stream.read, limit, timeout, sock)


@bp.post("/stream")
def stream() -> Response:
    """Store chunks: the raw body goes to the buffer with the freeze threshold attached.

    One JSON chunk, a binary one (its ``channel``, ``t0``, ``dt`` passed on), or several (a
    JSON array or NDJSON: the buffer answers 207 ``MULTI``, one result per chunk).
    """
    media = chunk_media(request.content_type)
    params = _policy().write_params()
    if media == BINARY_MEDIA:
        params.update(
            {name: request.args[name] for name in ("channel", "t0", "dt") if name in request.args}
        )
    body = _read_body(_ctx()["settings"].max_body)
    upstream = _buffer().request(
        "POST", "/sendF", params=params, content=body, headers={"Content-Type": media}
    )
    response = _relay(upstream)
    if upstream.status_code == 207:
        results = _buffer_json(upstream).get("results")
        for result in results if isinstance(results, list) else ():
            if isinstance(result, dict):
                _count_write(result.get("status"), result)
    else:
        _count_write(upstream.status_code, _write_doc(upstream))
    return response


def _write_doc(upstream: Any) -> dict[str, Any]:
    if upstream.status_code in (200, 201):
        return _buffer_json(upstream)
    try:
        doc = orjson.loads(upstream.content)
    except orjson.JSONDecodeError:
        doc = None
    return doc if isinstance(doc, dict) else {}


def _count_write(status: object, doc: dict[str, Any]) -> None:
    """Count one chunk's outcome from the buffer's answer for it."""
    metrics = _metrics()
    if status not in (200, 201):
        metrics.refusals.labels(str(doc.get("resp", "unknown")).lower()).inc()
        return
    if status == 201:
        metrics.ingested_chunks.inc()
        metrics.ingested_bytes.inc(int(doc.get("bytes") or 0))
        if doc.get("frozen"):
            metrics.freezes.inc()
    else:
        metrics.duplicates.inc()
    if isinstance(doc.get("buff_size"), int):
        metrics.fill_ratio.set(_policy().fill_ratio(doc["buff_size"]))


def _json_body() -> dict[str, Any]:
    require_media(request.content_type)
    return request_object(_read_body(ADMIN_BODY_LIMIT), empty_ok=True)


@bp.post("/freezeds")
def freezeds() -> Response:
    """Freeze the buffer if the batch is full: FROZEN with counts, else WAITING."""
    doc = _json_body()
    user = doc.get("user", "")
    if not isinstance(user, str):
        raise InvalidInput("user", "must be a string")
    # The body's token authorised the caller at the API; it is neither stored nor sent on.
    upstream = _buffer().request("POST", "/upddsc", json=_policy().freeze_request(user))
    if upstream.status_code != 200:
        _relay(upstream)
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
    """Archive a batch: the named one (``batch``, idempotent), else the current one even partial."""
    doc = _json_body()
    msg = doc.get("msg", "")
    batch = doc.get("batch")
    force = doc.get("force", False)
    if not isinstance(msg, str):
        raise InvalidInput("msg", "must be a string")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise InvalidInput("batch", "must be a batch number (an integer from 1) or null")
    if not isinstance(force, bool):
        raise InvalidInput("force", "must be true or false")
    upstream = _buffer().request("POST", "/cleanall", json=flush_request(msg, batch, force))
    if upstream.status_code != 200:
        _relay(upstream)
    answer = flush_answer(_buffer_json(upstream))
    if answer is None:
        raise UpstreamError(UPSTREAM, "buffer answered /cleanall 200 without CLEANED")
    _metrics().flushes.inc()
    _metrics().fill_ratio.set(0.0)
    return json_response(answer)


@bp.post("/batches/<int:batch>/results")
def batch_results(batch: int) -> Response:
    """Record what became of an archived batch (export, training): the JSON object goes to the
    buffer as it is; RECORDED, or its refusals (404 not archived) relayed."""
    require_media(request.content_type)
    body = _read_body(ADMIN_BODY_LIMIT)
    request_object(body)  # a JSON object, else 422 naming the body
    upstream = _buffer().request(
        "POST",
        f"/batches/{batch}/results",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    return _relay(upstream)


@bp.get("/batches")
def batches() -> Response:
    """Archived batches (manifests and recorded results), newest first, and the sealed ones."""
    params = _paging(BATCHES_MAX_LIMIT)
    return _relay(_buffer().request("GET", "/batches", params=params))


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
    return bounded_int(request.args.get(name), name, minimum, maximum)


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


def _status(page: int) -> dict[str, Any]:
    """The ``/status`` answer for ``page`` of the stored chunks; `Refused` 404 past the last."""
    params = {"limit": PAGE_SIZE, "offset": (page - 1) * PAGE_SIZE}
    buffer_doc = _buffer_json(_ok(_buffer().request("GET", "/status", params=params)))
    doc = status_document(buffer_doc, _policy(), page)
    pages = doc["chunks"]["pages"]
    if page > pages:
        reason = f"is past the last page ({pages})"
        raise Refused(404, "NOT_FOUND", {"field": "page", "reason": reason}, pages=pages)
    return doc


@bp.get("/status")
def status() -> Response:
    """What the status page shows, as JSON: state, fill, rate, channels, archives, chunks."""
    page = _query_int("page", 1, MAX_PAGE) or 1
    return json_response(_status(page))


@bp.get("/data")
def data() -> Response:
    """Samples of a channel in a GPS range, from the buffer; its refusals relayed as they are."""
    params = {
        name: request.args[name] for name in ("channel", "start", "end") if name in request.args
    }
    return _relay(_buffer().request("GET", "/data", params=params))


@bp.get("/channels")
def channels() -> Response:
    """Every stored channel (live and archived batches) with its GPS span and sample rate."""
    return _relay(_buffer().request("GET", "/spans"))


@bp.get("/")
def status_page() -> Response:
    """The status page; it keeps itself up to date from ``/status`` without reloading.

    Once loaded it says by itself when the buffer stops answering; a first load that cannot
    reach the buffer is answered like every other call (502/504 naming it).
    """
    page = _query_int("page", 1, MAX_PAGE) or 1
    code, notice = 200, None
    try:
        initial = _status(page)
    except Refused as exc:
        if exc.status != 404:
            raise
        last = exc.fields["pages"]
        pages = f"{last} page" + ("s" if last != 1 else "")
        code, notice = 404, f"There is no page {page}: the list has {pages}; this is the last."
        initial = _status(last)
    assets: PageAssets = _ctx()["page_assets"]
    html = render_template(
        "status.html",
        state=initial["state"],
        initial=initial,
        notice=notice,
        style=assets.style,
        script=assets.script,
    )
    return Response(
        html,
        status=code,
        mimetype="text/html",
        headers={"Content-Security-Policy": assets.csp, "Cache-Control": "no-store"},
    )


@bp.get("/favicon.ico")
@bp.get("/favicon.svg")
def favicon_file() -> Response:
    """The icon of the status page."""
    body, media = favicon(request.path.lstrip("/"))
    return Response(body, mimetype=media, headers={"Cache-Control": CACHE_CONTROL})


def _ok(upstream: Any) -> Any:
    if 400 <= upstream.status_code < 500 and _resp(upstream) == "INVALID":
        _relay(upstream)
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
        raise Refused(503, "NOT_READY", exc.body()) from exc
    if upstream.status_code != 200:
        raise Refused(503, "NOT_READY", f"databuffer answered {upstream.status_code}")
    return json_response({"resp": "READY"})


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus metrics."""
    text, content_type = _metrics().render()
    return Response(text, content_type=content_type)
