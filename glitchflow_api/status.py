"""The status page at ``/dspage``, its data at ``/status`` (both from datastore_logic), the icon."""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from glitchflow_api.context import client
from glitchflow_api.models import InvalidAnswer
from glitchflow_api.routes import UPSTREAM_ERRORS
from glitchflow_api.routes import _failure as relay_failure
from glitchflow_api.status_models import PageNotFound, StatusAnswer
from glitchflow_api.upstream import UPSTREAM
from glitchflow_core.edge import Relayed, bounded_int, query_int_doc
from glitchflow_core.favicon import CACHE_CONTROL, favicon
from glitchflow_core.upstream import Answer, json_object

router = APIRouter()

MAX_PAGE = 10**12
"""Status page number: the logic shows 50 chunks a page, so its offsets stay far below 2**62."""
PAGE_PARAMETER = query_int_doc("page", 1, MAX_PAGE, "Page of the stored chunks (50 a page).")
FAILURES: dict[int | str, dict[str, Any]] = {
    422: {"model": InvalidAnswer, "description": "`page` is not an integer in range."},
    **UPSTREAM_ERRORS,
}
PAST_THE_END: dict[int | str, dict[str, Any]] = {
    404: {"model": PageNotFound, "description": "`page` is past the last page (`pages`)."}
}
RELAYED_HEADERS = ("content-security-policy", "cache-control")


def _refuse(upstream: Answer) -> NoReturn:
    """Raise the logic's refusal: a page past the end as it is, else as every read does."""
    doc = json_object(UPSTREAM, upstream.status_code, upstream.content)
    if upstream.status_code == 404 and doc.get("resp") == "NOT_FOUND":
        raise Relayed(404, doc)
    relay_failure(upstream, doc)


@router.get(
    "/status",
    summary="Status",
    response_model=StatusAnswer,
    responses={**PAST_THE_END, **FAILURES},
    openapi_extra={"parameters": [PAGE_PARAMETER]},
)
async def status(request: Request) -> Response:
    """What the status page shows: state, fill, rate, channels, archives and a page of chunks."""
    page = bounded_int(request.query_params.get("page"), "page", 1, MAX_PAGE, 1)
    upstream = await client(request).request("GET", "/status", params={"page": page})
    if upstream.status_code != 200:
        _refuse(upstream)
    return Response(upstream.content, media_type="application/json")


@router.get(
    "/dspage",
    summary="Status page",
    response_class=HTMLResponse,
    responses={
        404: {"description": "`page` is past the last page: the page shows the last one."},
        **FAILURES,
    },
    openapi_extra={"parameters": [PAGE_PARAMETER]},
)
async def dspage(request: Request) -> Response:
    """The status page, fetched from datastore_logic and served here (never a redirect)."""
    page = bounded_int(request.query_params.get("page"), "page", 1, MAX_PAGE, 1)
    upstream = await client(request).request("GET", "/", params={"page": page})
    is_page = upstream.headers.get("content-type", "").startswith("text/html")
    if upstream.status_code not in (200, 404) or not is_page:
        _refuse(upstream)
    headers = {name: upstream.headers[name] for name in RELAYED_HEADERS if name in upstream.headers}
    return HTMLResponse(upstream.content, status_code=upstream.status_code, headers=headers)


@router.get("/favicon.ico", include_in_schema=False)
@router.get("/favicon.svg", include_in_schema=False)
async def favicon_file(request: Request) -> Response:
    """The icon of the status page and the docs."""
    body, media = favicon(request.url.path.lstrip("/"))
    return Response(body, media_type=media, headers={"Cache-Control": CACHE_CONTROL})
