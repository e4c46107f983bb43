"""The public endpoints of SPEC.md, relaying to datastore_logic."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from glitchflow_api.app import Context, first_error, json_response
from glitchflow_api.models import (
    ChunkIn,
    CleanAnswer,
    CleanRequest,
    DescAnswer,
    DumpAnswer,
    ErrorAnswer,
    HealthAnswer,
    StatsAnswer,
    StreamAnswer,
    TrainAnswer,
    TrainRequest,
)
from glitchflow_api.upstream import UPSTREAM, LogicClient
from glitchflow_core.chunk import ChunkError, parse_chunk
from glitchflow_core.upstream import Answer, UpstreamError, UpstreamFailure, json_object

router = APIRouter()
AdminBody = TypeVar("AdminBody", bound=BaseModel)

FROZEN_RETRY_AFTER = "30"
"""Seconds a writer should wait when the store is frozen and did not say how long itself."""
JSON = {"Content-Type": "application/json"}
ADMIN_MAX_BODY = 64 * 1024
"""Largest ``/train`` or ``/cleanbuf`` body: a user, a token and a message fit many times over."""
PARSE_INLINE_MAX = 1024 * 1024
"""Bodies up to this size are validated on the event loop; larger ones in a worker thread.

A 375 kB chunk parses in well under the cost of a thread hop; a maximum-size one (1M samples,
about 20 MB) takes ~140 ms, which on the event loop would stall every other request.
"""
MAX_OFFSET = 2**62
"""The buffer's largest ``offset``; a larger one is refused here, naming the field."""
MAX_DUMP_LIMIT = 100_000
"""The buffer's largest ``/dumpF`` page."""
MAX_PAGE = 10**12
"""Status page number: the logic shows 50 files a page, so its offsets stay far below 2**62."""
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorAnswer, "description": "Missing or invalid token."},
    403: {
        "model": ErrorAnswer,
        "description": "Token of the wrong kind (writer token on an admin call).",
    },
    422: {"model": ErrorAnswer, "description": "Invalid body; `detail.field` names the field."},
    502: {
        "model": ErrorAnswer,
        "description": "A service behind the API failed; `upstream` names it.",
    },
    504: {"model": ErrorAnswer, "description": "A service behind the API did not answer in time."},
}


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


def _client(request: Request) -> LogicClient:
    client = _ctx(request).client
    if client is None:
        raise UpstreamError(UPSTREAM, "the API is not started (no client)")
    return client


def _invalid(ctx: Context, field: str, reason: str, status: int = 422) -> Response:
    ctx.metrics.refusals.labels("invalid").inc()
    return json_response({"resp": "INVALID", "detail": {"field": field, "reason": reason}}, status)


def _doc(upstream: Answer) -> dict[str, Any]:
    return json_object(UPSTREAM, upstream.status_code, upstream.content)


def _failure(upstream: Answer, doc: dict[str, Any]) -> Response:
    """A failure further down, relayed with the ``resp`` of the layer that failed.

    A 4xx ``INVALID`` is the caller's input refused further down: relayed as it is (with its
    ``detail`` naming the field), not disguised as a failure of the service.
    """
    status = upstream.status_code
    if status >= 500 and isinstance(doc.get("resp"), str):
        return json_response(doc, status)
    if 400 <= status < 500 and doc.get("resp") == "INVALID":
        return json_response(doc, status)
    if status == 401:
        raise UpstreamError(UPSTREAM, "datastore_logic refused the service token")
    raise UpstreamError(UPSTREAM, f"datastore_logic answered {status} {doc.get('resp')!r}")


async def _read_capped(request: Request, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to be longer than ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            return None
        parts.append(part)
    return b"".join(parts)


async def _admin_body(request: Request, model: type[AdminBody]) -> AdminBody | Response:
    """The JSON body of an admin call, capped at `ADMIN_MAX_BODY` before it is parsed."""
    ctx = _ctx(request)
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in ("", "application/json"):
        return _invalid(ctx, "content-type", "must be application/json", 415)
    body = await _read_capped(request, ADMIN_MAX_BODY)
    if body is None:
        return _invalid(ctx, "body", f"larger than {ADMIN_MAX_BODY} bytes", 413)
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        field, reason = first_error(exc.errors())
        return _invalid(ctx, field, reason)


def _admin_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI text of a body the route reads itself (so that it can cap it before parsing)."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorAnswer, "description": f"Body over {ADMIN_MAX_BODY} bytes."},
    415: {"model": ErrorAnswer, "description": "Content-Type is not application/json."},
    **ERRORS,
}


@router.post(
    "/streamdata",
    status_code=201,
    summary="Store one chunk of strain",
    response_model=StreamAnswer,
    responses={
        200: {"model": StreamAnswer, "description": "DUPLICATE: this chunk is already stored."},
        409: {
            "model": StreamAnswer,
            "description": "CONFLICT: overlaps stored data with other samples.",
        },
        413: {"model": ErrorAnswer, "description": "Body over MAX_BODY."},
        415: {"model": ErrorAnswer, "description": "Content-Type is not application/json."},
        503: {
            "model": StreamAnswer,
            "description": "FROZEN (or BUSY): retry after `Retry-After` s.",
        },
        **ERRORS,
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": ChunkIn.model_json_schema()}},
        }
    },
)
async def streamdata(request: Request) -> Response:
    """Store one chunk: 201 CREATED, 200 DUPLICATE, 409 CONFLICT, 503 FROZEN with Retry-After."""
    ctx = _ctx(request)
    ctx.tokens.require_writer(request.headers.get("authorization"))
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        return _invalid(ctx, "content-type", "must be application/json", 415)
    body = await _read_capped(request, ctx.settings.max_body)
    if body is None:
        return _invalid(ctx, "body", f"larger than {ctx.settings.max_body} bytes", 413)
    try:
        if len(body) > PARSE_INLINE_MAX:
            await run_in_threadpool(parse_chunk, body, ctx.settings.max_samples)
        else:
            parse_chunk(body, ctx.settings.max_samples)
    except ChunkError as exc:
        return _invalid(ctx, exc.field, exc.reason)
    # The validated bytes go on unchanged: no second encoding of 16,384 floats.
    upstream = await _client(request).request("POST", "/stream", content=body, headers=JSON)
    return _stream_answer(ctx, upstream)


def _stream_answer(ctx: Context, upstream: Answer) -> Response:
    doc = _doc(upstream)
    status = upstream.status_code
    resp = doc.get("resp")
    if status == 201:
        ctx.metrics.ingested_chunks.inc()
        ctx.metrics.ingested_bytes.inc(int(doc.get("bytes") or 0))
        return json_response({"resp": "CREATED", "body": doc}, 201)
    if status == 200:
        ctx.metrics.duplicates.inc()
        return json_response({"resp": resp or "DUPLICATE", "body": doc}, 200)
    if status == 409:
        ctx.metrics.refusals.labels("conflict").inc()
        return json_response({"resp": "CONFLICT", "body": doc}, 409)
    if status == 503 and resp in ("FROZEN", "BUSY"):
        ctx.metrics.refusals.labels(resp.lower()).inc()
        retry_after = upstream.headers.get(
            "retry-after", FROZEN_RETRY_AFTER if resp == "FROZEN" else "1"
        )
        return json_response({"resp": resp, "body": doc}, 503, {"Retry-After": retry_after})
    if status in (413, 415, 422):
        ctx.metrics.refusals.labels("invalid").inc()
        return json_response(
            {"resp": resp or "INVALID", "detail": doc.get("detail"), "body": doc}, status
        )
    return _failure(upstream, doc)


@router.post(
    "/train",
    summary="Freeze the batch if it is full",
    response_model=TrainAnswer,
    responses=ADMIN_ERRORS,
    openapi_extra=_admin_request_body(TrainRequest),
)
async def train(
    request: Request,
    authorization: str | None = Header(None, include_in_schema=False),
) -> Response:
    """Freeze signal: FROZEN with n_f, bt_wrt and batch, or WAITING while the batch is not full."""
    ctx = _ctx(request)
    payload = await _admin_body(request, TrainRequest)
    if isinstance(payload, Response):
        return payload
    ctx.tokens.require_admin(authorization, payload.token)
    # The token authorised this call; it goes no further.
    upstream = await _client(request).request("POST", "/freezeds", json={"user": payload.user})
    doc = _doc(upstream)
    if upstream.status_code != 200 or doc.get("resp") not in ("FROZEN", "WAITING"):
        return _failure(upstream, doc)
    answer = {
        "resp": doc["resp"],
        "n_f": doc.get("n_f"),
        "bt_wrt": doc.get("bt_wrt"),
        "batch": doc.get("batch"),
        "archive": None,
    }
    if doc["resp"] == "WAITING":
        answer["max_size"] = doc.get("max_size")
    return json_response(answer)


@router.post(
    "/cleanbuf",
    summary="Archive the frozen batch and reopen the store",
    response_model=CleanAnswer,
    responses={
        409: {"model": StreamAnswer, "description": "NOT_FROZEN (send force to flush anyway)."},
        **ADMIN_ERRORS,
    },
    openapi_extra=_admin_request_body(CleanRequest),
)
async def cleanbuf(
    request: Request,
    authorization: str | None = Header(None, include_in_schema=False),
) -> Response:
    """Flush: CLEANED with the batch id and its archive folder; 409 when the store is not frozen."""
    ctx = _ctx(request)
    ctx.tokens.require_admin(authorization)
    payload = await _admin_body(request, CleanRequest)
    if isinstance(payload, Response):
        return payload
    upstream = await _client(request).request(
        "POST", "/flushbuf", json={"msg": payload.msg, "force": payload.force}
    )
    doc = _doc(upstream)
    if upstream.status_code == 409:
        return json_response({"resp": doc.get("resp", "NOT_FROZEN"), "body": doc}, 409)
    if upstream.status_code != 200 or doc.get("resp") != "CLEANED":
        return _failure(upstream, doc)
    ctx.metrics.flushes.inc()
    return json_response(
        {
            "resp": "CLEANED",
            "batch": doc.get("batch"),
            "archive": doc.get("archive"),
            "body": doc.get("body"),
        }
    )


async def _get(
    request: Request, path: str, params: dict[str, Any] | None = None
) -> dict[str, Any] | Response:
    upstream = await _client(request).request("GET", path, params=params)
    doc = _doc(upstream)
    if upstream.status_code != 200:
        return _failure(upstream, doc)
    return doc


@router.get("/stats", summary="Counters", response_model=StatsAnswer, responses=ERRORS)
async def stats(request: Request) -> Response:
    """Files and bytes in the current batch."""
    doc = await _get(request, "/bufstat")
    return doc if isinstance(doc, Response) else json_response(doc)


@router.get("/dumpbuf", summary="Stored file names", response_model=DumpAnswer, responses=ERRORS)
async def dumpbuf(
    request: Request,
    limit: int | None = Query(None, ge=0, le=MAX_DUMP_LIMIT),
    offset: int | None = Query(None, ge=0, le=MAX_OFFSET),
) -> Response:
    """Names of the stored files, paged with ``limit`` and ``offset``."""
    params = {k: v for k, v in (("limit", limit), ("offset", offset)) if v is not None}
    doc = await _get(request, "/dumpf", params)
    return doc if isinstance(doc, Response) else json_response(doc)


@router.get("/desc", summary="State", response_model=DescAnswer, responses=ERRORS)
async def desc(request: Request) -> Response:
    """OPERATIONAL or FROZEN, with the batch id."""
    doc = await _get(request, "/dsdesc")
    if isinstance(doc, Response):
        return doc
    if doc.get("dstatus") not in ("OPERATIONAL", "FROZEN"):
        raise UpstreamError(UPSTREAM, "datastore_logic answered /dsdesc without a dstatus")
    answer = {"resp": doc["dstatus"]}
    for key in ("batch", "batch_started", "frozen_at", "frozen_reason"):
        if key in doc:
            answer[key] = doc[key]
    return json_response(answer)


@router.get(
    "/dspage",
    summary="Status page",
    response_class=HTMLResponse,
    responses={502: {"model": ErrorAnswer}, 504: {"model": ErrorAnswer}},
)
async def dspage(request: Request, page: int = Query(1, ge=1, le=MAX_PAGE)) -> Response:
    """The status page, fetched from datastore_logic and served here (never a redirect)."""
    upstream = await _client(request).request("GET", "/", params={"page": page})
    if upstream.status_code == 200:
        return HTMLResponse(upstream.content)
    return _failure(upstream, _doc(upstream))


@router.get("/healthz", summary="Alive", response_model=HealthAnswer)
async def healthz() -> Response:
    """Alive."""
    return json_response({"resp": "OK"})


@router.get(
    "/readyz",
    summary="Ready",
    response_model=HealthAnswer,
    responses={503: {"model": HealthAnswer}},
)
async def readyz(request: Request) -> Response:
    """Ready when datastore_logic answers."""
    try:
        upstream = await _client(request).request("GET", "/healthz")
    except UpstreamFailure as exc:
        return json_response({"resp": "NOT_READY", "detail": exc.body()}, 503)
    if upstream.status_code != 200:
        return json_response(
            {"resp": "NOT_READY", "detail": f"datastore_logic answered {upstream.status_code}"}, 503
        )
    return json_response({"resp": "READY"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    text, content_type = _ctx(request).metrics.render()
    return Response(text, media_type=content_type)
