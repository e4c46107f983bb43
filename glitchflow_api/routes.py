"""The public endpoints of SPEC.md, relaying to datastore_logic."""

from __future__ import annotations

import functools
from typing import Any, Literal, NoReturn, TypeVar

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from glitchflow_api.context import Context, client, context, json_response
from glitchflow_api.models import (
    MAX_BATCH,
    AuthAnswer,
    BatchesAnswer,
    BatchResults,
    ChannelsAnswer,
    CleanAnswer,
    CleanRequest,
    DataAnswer,
    DescAnswer,
    DumpAnswer,
    ErrorAnswer,
    FlushRefusal,
    HealthAnswer,
    InvalidAnswer,
    MultiAnswer,
    ResultsAnswer,
    ResultsRefusal,
    StatsAnswer,
    StreamAnswer,
    StreamRefusal,
    TrainAnswer,
    TrainRequest,
    UpstreamAnswer,
    binary_parameters,
    stream_request_body,
)
from glitchflow_api.upstream import UPSTREAM
from glitchflow_core.access import Access
from glitchflow_core.chunk import (
    DEFAULT_MAX_CHUNKS,
    DEFAULT_MAX_DT,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MIN_DT,
    MAX_GPS,
    ChunkError,
    binary_params,
    chunk_bodies,
    is_chunk_list,
)
from glitchflow_core.edge import (
    ACCEPT_POST,
    ADMIN_BODY_LIMIT,
    BINARY_MEDIA,
    JSON_MEDIA,
    MAX_OFFSET,
    NDJSON_MEDIA,
    Refused,
    Relayed,
    bounded_int,
    chunk_media,
    first_validation_error,
    media_type,
    query_int_doc,
    read_body_async,
    request_object,
    require_media,
)
from glitchflow_core.upstream import Answer, UpstreamError, UpstreamFailure, json_object

router = APIRouter()
AdminBody = TypeVar("AdminBody", bound=BaseModel)

FROZEN_RETRY_AFTER = "30"
"""Seconds a writer should wait when the store is frozen and did not say how long itself."""
JSON = {"Content-Type": JSON_MEDIA}
BINARY = {"Content-Type": BINARY_MEDIA}
NDJSON = {"Content-Type": NDJSON_MEDIA}
PARSE_INLINE_MAX = 1024 * 1024
"""Bodies up to this size are validated on the event loop; larger ones in a worker thread.

A 375 kB chunk parses in well under the cost of a thread hop; a maximum-size one (1M samples,
about 20 MB) would stall every other request on the event loop (docs/PERFORMANCE.md).
"""
MAX_DUMP_LIMIT = 100_000
"""The buffer's largest ``/dumpF`` page."""
MAX_BATCHES_LIMIT = 1000
"""The buffer's largest ``/batches`` page."""
BEARER = [{"bearer": []}]
"""OpenAPI ``security`` of the calls that need a token (the scheme is added in `app.openapi`)."""
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
ACCEPT_POST_HEADER = {
    "Accept-Post": {
        "description": f"The media types /streamdata takes: {ACCEPT_POST}.",
        "schema": {"type": "string"},
    }
}
UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    502: {
        "model": UpstreamAnswer,
        "description": "UPSTREAM_UNREACHABLE or UPSTREAM_ERROR: a service behind the API failed;"
        " `upstream` names it.",
    },
    503: {
        "model": UpstreamAnswer,
        "description": "A service behind the API is not available (its own word relayed).",
        "headers": RETRY_AFTER,
    },
    504: {
        "model": UpstreamAnswer,
        "description": "UPSTREAM_TIMEOUT: a service behind the API did not answer in time.",
    },
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": InvalidAnswer, "description": "INVALID: `detail.field` names the field."},
}
WRITER_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": AuthAnswer, "description": "UNAUTHORIZED: no valid writer or admin token."},
}
ADMIN_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": AuthAnswer, "description": "UNAUTHORIZED: no valid admin token."},
    403: {
        "model": AuthAnswer,
        "description": "FORBIDDEN: a writer or reader token on an admin call.",
    },
}
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": InvalidAnswer, "description": "INVALID, field `body`: the body is too large."},
    415: {
        "model": InvalidAnswer,
        "description": "INVALID, field `content-type`: not application/json.",
    },
    **INVALID,
}
READER_AUTH: dict[int | str, dict[str, Any]] = {
    401: {"model": AuthAnswer, "description": "UNAUTHORIZED: no valid reader or admin token."},
    403: {"model": AuthAnswer, "description": "FORBIDDEN: a writer token on a read call."},
}
READ_ERRORS = UPSTREAM_ERRORS
QUERY_ERRORS = {**INVALID, **UPSTREAM_ERRORS}
LISTING_ERRORS = {**READ_ERRORS, **READER_AUTH}
"""A call that lists or dumps stored data: it needs a reader or admin token once tokens are set."""
READER = {"security": BEARER}


def _doc(upstream: Answer) -> dict[str, Any]:
    return json_object(UPSTREAM, upstream.status_code, upstream.content)


def _failure(upstream: Answer, doc: dict[str, Any]) -> NoReturn:
    """A failure further down, relayed with the ``resp`` of the layer that failed.

    A 4xx ``INVALID`` is the caller's input refused further down: relayed as it is (with its
    ``detail`` naming the field), not disguised as a failure of the service.
    """
    status = upstream.status_code
    resp = doc.get("resp")
    if (status >= 500 and isinstance(resp, str)) or (400 <= status < 500 and resp == "INVALID"):
        raise Relayed(status, doc, upstream.headers.get("retry-after"))
    if status == 401:
        raise UpstreamError(UPSTREAM, "datastore_logic refused the service token")
    raise UpstreamError(UPSTREAM, f"datastore_logic answered {status} {resp!r}")


async def _admin_body(request: Request, model: type[AdminBody]) -> AdminBody:
    """The JSON body of an admin call, capped at `ADMIN_BODY_LIMIT` before it is parsed."""
    require_media(request.headers.get("content-type"), empty_ok=True)
    timeout = context(request).settings.body_timeout
    body = await read_body_async(request.headers, request.stream(), ADMIN_BODY_LIMIT, timeout)
    try:
        return model.model_validate(request_object(body))
    except ValidationError as exc:
        raise first_validation_error(exc.errors()) from None


def _admin_request_body(model: type[BaseModel]) -> dict[str, Any]:
    """OpenAPI text of a body the route reads itself (so that it can cap it before parsing)."""
    return {
        "security": BEARER,
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inline_defs(model.model_json_schema())}},
        },
    }


def _inline_defs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with its nested models written in place: a ``#/$defs/...`` reference would be
    read from the root of the OpenAPI document, where there is no ``$defs``."""
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            rest = {key: value for key, value in node.items() if key != "$ref"}
            return inline({**defs[ref.removeprefix("#/$defs/")], **rest})
        return {key: inline(value) for key, value in node.items()}

    return inline(schema)


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    **BODY_ERRORS,
    413: {
        "model": InvalidAnswer,
        "description": f"INVALID, field `body`: over {ADMIN_BODY_LIMIT} bytes.",
    },
    **ADMIN_AUTH,
    **UPSTREAM_ERRORS,
}


@router.post(
    "/streamdata",
    status_code=201,
    summary="Store chunks of strain",
    response_model=StreamAnswer,
    responses={
        201: {
            "model": StreamAnswer,
            "description": "CREATED: the chunk is stored.",
            "headers": ACCEPT_POST_HEADER,
        },
        200: {
            "model": StreamAnswer,
            "description": "DUPLICATE: this chunk is already stored.",
            "headers": ACCEPT_POST_HEADER,
        },
        207: {
            "model": MultiAnswer,
            "description": "MULTI: several chunks (a JSON array or NDJSON), one result each, in "
            "order, each with the status and answer a request of its own would have had.",
            "headers": ACCEPT_POST_HEADER,
        },
        409: {
            "model": StreamRefusal,
            "description": "CONFLICT: overlaps stored data of its channel with other samples.",
        },
        **BODY_ERRORS,
        413: {
            "model": InvalidAnswer,
            "description": "INVALID, field `body`: over MAX_BODY, or more chunks than MAX_CHUNKS.",
        },
        415: {
            "model": InvalidAnswer,
            "description": "INVALID, field `content-type`: not application/json, "
            "application/octet-stream or application/x-ndjson.",
        },
        **WRITER_AUTH,
        **UPSTREAM_ERRORS,
        503: {
            "model": StreamRefusal,
            "description": "FROZEN (no room for the chunk) or BUSY: retry after `Retry-After` s.",
            "headers": RETRY_AFTER,
        },
    },
    openapi_extra={
        "security": BEARER,
        "parameters": binary_parameters(DEFAULT_MIN_DT, DEFAULT_MAX_DT),
        "requestBody": stream_request_body(
            DEFAULT_MAX_SAMPLES, DEFAULT_MIN_DT, DEFAULT_MAX_DT, DEFAULT_MAX_CHUNKS
        ),
    },
)
async def streamdata(request: Request) -> Response:
    """Store one chunk (JSON or binary), or several (a JSON array or NDJSON): 201 CREATED,
    200 DUPLICATE, 207 MULTI, 409 CONFLICT, 503 FROZEN with Retry-After."""
    ctx = context(request)
    media = chunk_media(request.headers.get("content-type"))
    settings = ctx.settings
    body = await read_body_async(
        request.headers, request.stream(), settings.max_body, settings.body_timeout
    )
    if media == BINARY_MEDIA:
        query = request.query_params
        parse = functools.partial(
            ctx.settings.parse_binary_chunk,
            body,
            query.get("channel"),
            query.get("t0"),
            query.get("dt"),
        )
        chunk = await run_in_threadpool(parse) if len(body) > PARSE_INLINE_MAX else parse()
        upstream = await client(request).request(
            "POST", "/stream", params=binary_params(chunk), content=body, headers=BINARY
        )
        return _stream_answer(ctx, upstream)
    if is_chunk_list(body, media):
        return await _stream_many(request, ctx, body, media)
    if len(body) > PARSE_INLINE_MAX:
        await run_in_threadpool(ctx.settings.parse_chunk, body)
    else:
        ctx.settings.parse_chunk(body)
    # The validated bytes go on unchanged: no second encoding of 16,384 floats.
    upstream = await client(request).request("POST", "/stream", content=body, headers=JSON)
    return _stream_answer(ctx, upstream)


def _validate_parts(ctx: Context, body: bytes, media: str) -> list[bytes | dict[str, Any]]:
    """Each chunk of a multi-chunk body: its bytes when valid, else its INVALID result."""
    parts: list[bytes | dict[str, Any]] = []
    for part in chunk_bodies(body, media, ctx.settings.max_chunks):
        try:
            if isinstance(part, ChunkError):
                raise part
            ctx.settings.parse_chunk(part)
            parts.append(part)
        except ChunkError as exc:
            parts.append({"status": exc.status, **exc.body()})
    return parts


async def _stream_many(request: Request, ctx: Context, body: bytes, media: str) -> Response:
    """Several chunks: each validated here, the valid ones sent on as one NDJSON request."""
    if len(body) > PARSE_INLINE_MAX:
        parts = await run_in_threadpool(_validate_parts, ctx, body, media)
    else:
        parts = _validate_parts(ctx, body, media)
    valid = [part for part in parts if isinstance(part, bytes)]
    stored: list[dict[str, Any]] = []
    if valid:
        upstream = await client(request).request(
            "POST", "/stream", content=b"\n".join(valid) + b"\n", headers=NDJSON
        )
        if upstream.status_code != 207:
            return _stream_answer(ctx, upstream)  # the request as a whole refused: relayed
        results = _doc(upstream).get("results")
        if not isinstance(results, list) or len(results) != len(valid):
            raise UpstreamError(UPSTREAM, "datastore_logic answered MULTI without a result each")
        stored = results
    answers = iter(stored)
    results = [part if isinstance(part, dict) else next(answers) for part in parts]
    return _offering(json_response(_multi_answer(ctx, results), 207))


def _offering(response: Response) -> Response:
    """A write's answer saying what else ``/streamdata`` takes (binary, NDJSON): gwclient
    switches to the binary form once it reads it."""
    response.headers["Accept-Post"] = ACCEPT_POST
    return response


def _multi_answer(ctx: Context, results: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"resp": "MULTI", ...}``: per chunk ``status``, ``resp`` and what a single write would
    have answered (``body`` the store's answer, ``detail``, ``retry_after``)."""
    answers, counts = [], {}
    for result in results:
        status = result.get("status")
        resp = str(result.get("resp") or "ERROR")
        answer: dict[str, Any] = {"status": status, "resp": resp}
        for key in ("detail", "retry_after"):
            if key in result:
                answer[key] = result[key]
        if resp != "INVALID":
            answer["body"] = {k: v for k, v in result.items() if k != "status"}
        if status == 201:
            ctx.metrics.ingested_chunks.inc()
            ctx.metrics.ingested_bytes.inc(int(result.get("bytes") or 0))
        elif status == 200:
            ctx.metrics.duplicates.inc()
        else:
            ctx.metrics.refusals.labels(resp.lower()).inc()
        counts[resp] = counts.get(resp, 0) + 1
        answers.append(answer)
    return {"resp": "MULTI", "chunks": len(answers), "counts": counts, "results": answers}


def _stream_answer(ctx: Context, upstream: Answer) -> Response:
    doc = _doc(upstream)
    status = upstream.status_code
    resp = doc.get("resp")
    if status == 201:
        ctx.metrics.ingested_chunks.inc()
        ctx.metrics.ingested_bytes.inc(int(doc.get("bytes") or 0))
        return _offering(json_response({"resp": "CREATED", "body": doc}, 201))
    if status == 200:
        ctx.metrics.duplicates.inc()
        return _offering(json_response({"resp": resp or "DUPLICATE", "body": doc}, 200))
    if status == 409:
        raise Refused(409, "CONFLICT", body=doc)
    if status == 503 and resp in ("FROZEN", "BUSY"):
        retry_after = upstream.headers.get(
            "retry-after", FROZEN_RETRY_AFTER if resp == "FROZEN" else "1"
        )
        raise Refused(503, resp, retry_after=retry_after, body=doc)
    if status in (413, 415, 422):
        raise Refused(status, str(resp or "INVALID"), doc.get("detail"), body=doc)
    _failure(upstream, doc)


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
    ctx = context(request)
    payload = await _admin_body(request, TrainRequest)
    ctx.gate.check(Access.ADMIN, authorization, payload.token)
    # The token authorised this call; it goes no further.
    upstream = await client(request).request("POST", "/freezeds", json={"user": payload.user})
    doc = _doc(upstream)
    if upstream.status_code != 200 or doc.get("resp") not in ("FROZEN", "WAITING"):
        _failure(upstream, doc)
    answer = {
        "resp": doc["resp"],
        "n_f": doc.get("n_f"),
        "bt_wrt": doc.get("bt_wrt"),
        "batch": doc.get("batch"),
        # Rotate mode names the sealed batch's archive folder, reserved when it was sealed.
        "archive": doc.get("archive"),
    }
    if "sealed" in doc:
        answer["sealed"] = doc["sealed"]
    if doc["resp"] == "WAITING":
        answer["max_size"] = doc.get("max_size")
    return json_response(answer)


@router.post(
    "/cleanbuf",
    summary="Archive the frozen batch and reopen the store",
    response_model=CleanAnswer,
    responses={
        404: {"model": FlushRefusal, "description": "UNKNOWN_BATCH: no such batch."},
        409: {
            "model": FlushRefusal,
            "description": "NOT_FROZEN: the named batch is not sealed yet; CONFLICT.",
        },
        **ADMIN_ERRORS,
    },
    openapi_extra=_admin_request_body(CleanRequest),
)
async def cleanbuf(request: Request) -> Response:
    """Flush: CLEANED with the batch id and its archive folder; 409 when the store is not frozen."""
    ctx = context(request)
    payload = await _admin_body(request, CleanRequest)
    # Without a batch id the original's flush: the current batch, archived even if partial.
    flush: dict[str, Any] = {"msg": payload.msg, "force": True}
    if payload.batch is not None:
        flush = {"msg": payload.msg, "batch": payload.batch, "force": payload.force}
    upstream = await client(request).request("POST", "/flushbuf", json=flush)
    doc = _doc(upstream)
    resp = doc.get("resp")
    if upstream.status_code in (404, 409) and isinstance(resp, str):
        raise Refused(upstream.status_code, resp, body=doc)
    if upstream.status_code != 200 or resp != "CLEANED":
        _failure(upstream, doc)
    ctx.metrics.flushes.inc()
    return json_response(
        {
            "resp": "CLEANED",
            "batch": doc.get("batch"),
            "archive": doc.get("archive"),
            "body": doc.get("body"),
        }
    )


@router.post(
    "/batches/{batch}/results",
    summary="Record what became of an archived batch",
    response_model=ResultsAnswer,
    responses={
        404: {
            "model": ResultsRefusal,
            "description": "UNKNOWN_BATCH: no such batch; NOT_ARCHIVED: sealed or being filled.",
        },
        **ADMIN_ERRORS,
    },
    openapi_extra=_admin_request_body(BatchResults),
)
async def batch_results(
    request: Request,
    batch: int = PathParam(ge=1, le=MAX_BATCH, description="The archived batch."),
) -> Response:
    """Record the batch's export and training results beside its manifest (a repeat replaces
    them): RECORDED; 404 when the batch is not archived."""
    payload = await _admin_body(request, BatchResults)
    body = payload.model_dump(mode="json", exclude_unset=True, exclude_none=True)
    upstream = await client(request).request("POST", f"/batches/{batch}/results", json=body)
    doc = _doc(upstream)
    if upstream.status_code == 404 and isinstance(doc.get("resp"), str):
        raise Relayed(404, doc)
    if upstream.status_code != 200 or doc.get("resp") != "RECORDED":
        _failure(upstream, doc)
    return json_response(doc)


async def _get(request: Request, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    upstream = await client(request).request("GET", path, params=params)
    doc = _doc(upstream)
    if upstream.status_code != 200:
        _failure(upstream, doc)
    return doc


@router.get("/stats", summary="Counters", response_model=StatsAnswer, responses=READ_ERRORS)
async def stats(request: Request) -> Response:
    """Files and bytes in the current batch."""
    return json_response(await _get(request, "/bufstat"))


@router.get(
    "/dumpbuf",
    summary="Stored file names",
    response_model=DumpAnswer,
    responses={**QUERY_ERRORS, **READER_AUTH},
    openapi_extra={
        **READER,
        "parameters": [
            query_int_doc("limit", 0, MAX_DUMP_LIMIT, "Names per page."),
            query_int_doc("offset", 0, MAX_OFFSET, "Names to skip."),
        ],
    },
)
async def dumpbuf(request: Request) -> Response:
    """Names of the stored files, paged with ``limit`` and ``offset``."""
    query = request.query_params
    limit = bounded_int(query.get("limit"), "limit", 0, MAX_DUMP_LIMIT)
    offset = bounded_int(query.get("offset"), "offset", 0, MAX_OFFSET)
    params = {k: v for k, v in (("limit", limit), ("offset", offset)) if v is not None}
    return json_response(await _get(request, "/dumpf", params))


@router.get(
    "/batches",
    summary="Archived batches and their results",
    response_model=BatchesAnswer,
    responses={**QUERY_ERRORS, **READER_AUTH},
    openapi_extra={
        **READER,
        "parameters": [
            query_int_doc("limit", 0, MAX_BATCHES_LIMIT, "Batches per page (default 10)."),
            query_int_doc("offset", 0, MAX_OFFSET, "Batches to skip."),
        ],
    },
)
async def batches(request: Request) -> Response:
    """Archived batches, newest first: manifest, upload state and recorded results; the sealed
    batches waiting."""
    query = request.query_params
    limit = bounded_int(query.get("limit"), "limit", 0, MAX_BATCHES_LIMIT)
    offset = bounded_int(query.get("offset"), "offset", 0, MAX_OFFSET)
    params = {k: v for k, v in (("limit", limit), ("offset", offset)) if v is not None}
    upstream = await _read(request, "/batches", params)
    return Response(upstream.content, media_type="application/json")


@router.get("/desc", summary="State", response_model=DescAnswer, responses=READ_ERRORS)
async def desc(request: Request) -> Response:
    """OPERATIONAL or FROZEN, with the batch id."""
    doc = await _get(request, "/dsdesc")
    if doc.get("dstatus") not in ("OPERATIONAL", "FROZEN"):
        raise UpstreamError(UPSTREAM, "datastore_logic answered /dsdesc without a dstatus")
    answer = {"resp": doc["dstatus"]}
    for key in ("batch", "batch_started", "frozen_at", "frozen_reason"):
        if key in doc:
            answer[key] = doc[key]
    if isinstance(doc.get("sealed"), list):
        answer["sealed"] = len(doc["sealed"])
    return json_response(answer)


HDF5 = "application/x-hdf5"
DATA_ERRORS: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {HDF5: {"schema": {"type": "string", "format": "binary"}}},
        "description": "JSON (`DataAnswer`), or with `format=hdf5` or `Accept: application/x-hdf5`"
        " an HDF5 file written by gwpy: one TimeSeries per segment at `/<channel>/<NNNN>`.",
    },
    404: {
        "model": ErrorAnswer,
        "description": "UNKNOWN_CHANNEL: no such channel; NO_DATA: no samples in the range.",
    },
    413: {"model": ErrorAnswer, "description": "The range is longer than MAX_READ_SECONDS."},
    **QUERY_ERRORS,
    **READER_AUTH,
}


def _wants_hdf5(fmt: str | None, accept: str | None) -> bool:
    if fmt is not None:
        return fmt == "hdf5"
    return any(media_type(part) == HDF5 for part in (accept or "").split(","))


async def _read(request: Request, path: str, params: dict[str, Any] | None = None) -> Answer:
    """A read relayed from datastore_logic; its 404, 413 and 422 refusals passed on as they are."""
    upstream = await client(request).request("GET", path, params=params)
    if upstream.status_code == 200:
        return upstream
    doc = _doc(upstream)
    if upstream.status_code in (404, 413, 422) and isinstance(doc.get("resp"), str):
        raise Relayed(upstream.status_code, doc)
    _failure(upstream, doc)


@router.get(
    "/data",
    summary="Samples of a channel between two GPS times",
    response_model=DataAnswer,
    responses=DATA_ERRORS,
    openapi_extra=READER,
)
async def data(
    request: Request,
    channel: str = Query(
        description="Channel, e.g. H1:GWOSC-16KHZ_R1_STRAIN.", min_length=1, max_length=200
    ),
    start: float = Query(description="GPS start, inclusive.", ge=0, lt=MAX_GPS),
    end: float = Query(
        description="GPS end, exclusive: after start, at most MAX_READ_SECONDS after it.",
        gt=0,
        le=MAX_GPS,
    ),
    format: Literal["json", "hdf5"] | None = Query(
        None, description="hdf5 for an HDF5 file (as `Accept: application/x-hdf5`)."
    ),
    accept: str | None = Header(None, include_in_schema=False),
) -> Response:
    """Samples of one channel in [start, end) from the live, sealed and archived batches."""
    # repr keeps every digit: the buffer reads exactly the range asked for.
    params = {"channel": channel, "start": repr(start), "end": repr(end)}
    upstream = await _read(request, "/data", params)
    if not _wants_hdf5(format, accept):
        # The buffer's bytes as they are: no second encoding of the samples.
        return Response(upstream.content, media_type="application/json")
    from glitchflow_api.hdf5 import data_file  # gwpy is loaded on the first HDF5 request only

    body = await run_in_threadpool(data_file, upstream.content)
    name = f"{channel.replace(':', '-')}-{start!r}-{end!r}.h5"
    return Response(
        body, media_type=HDF5, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.get(
    "/channels",
    summary="Stored channels and their GPS spans",
    response_model=ChannelsAnswer,
    responses=LISTING_ERRORS,
    openapi_extra=READER,
)
async def channels(request: Request) -> Response:
    """Every channel in the live, sealed and archived batches: span, segments, sample rate."""
    upstream = await _read(request, "/channels")
    return Response(upstream.content, media_type="application/json")


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
        upstream = await client(request).request("GET", "/healthz")
    except UpstreamFailure as exc:
        raise Refused(503, "NOT_READY", exc.body()) from exc
    if upstream.status_code != 200:
        raise Refused(503, "NOT_READY", f"datastore_logic answered {upstream.status_code}")
    return json_response({"resp": "READY"})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    text, content_type = context(request).metrics.render()
    return Response(text, media_type=content_type)
