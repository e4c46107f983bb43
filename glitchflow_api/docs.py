"""``/docs`` and ``/redoc`` with every file served by the API itself: they work offline.

Swagger UI and ReDoc come from the files installed with ``fastapi-offline``. Its ReDoc bundle
shows a Redocly logo fetched from a CDN; the API serves that bundle with the logo pointed at its
own favicon instead, so that no request of the docs pages leaves the API.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline

DOCS_STATIC = "/docs-static"
"""Where the Swagger UI and ReDoc files are served."""
REDOC_JS = "/redoc.standalone.js"
REDOC_CDN_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


def offline_redoc_bundle() -> bytes:
    """fastapi-offline's ReDoc bundle with its CDN logo replaced by the API's favicon."""
    bundle = (files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_CDN_LOGO, f"{DOCS_STATIC}/favicon.png".encode())


def offline_docs_app(**kwargs: object) -> FastAPI:
    """A FastAPI app (``kwargs`` as for FastAPI) whose ``/docs`` and ``/redoc`` need no internet."""
    app = FastAPIOffline(
        static_url=DOCS_STATIC,
        redoc_url=None,
        # No badge from the public validator service.
        swagger_ui_parameters={"validatorUrl": None},
        **kwargs,
    )
    redoc_bundle = offline_redoc_bundle()

    @app.get(REDOC_JS, include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(
            redoc_bundle,
            media_type="text/javascript",
            headers={"Cache-Control": "public, max-age=86400"},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{REDOC_JS}",
            redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png",
            with_google_fonts=False,
        )

    return app
