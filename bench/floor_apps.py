"""The framework floor of the ingest chain: the three hops with nothing but the relay and the write.

The same servers, settings and HTTP clients as the services (FastAPI under uvicorn with httptools
and uvloop, forwarding with one pooled aiohttp session; Flask under gunicorn gthread, 1 worker x
8 threads, keep-alive 75 s, forwarding with a urllib3 pool; Starlette under uvicorn writing in a
worker thread with the buffer's own durable write, ``databuffer.atomic``, and glibc keeping freed
memory in each process), but no validation, middleware, metrics, logs or auth. A binary body
(``application/octet-stream``) is turned into its stored JSON form in the buffer, as the real
buffer does; with ``FLOOR_PARSE=1`` the API and the buffer also parse each JSON chunk (simdjson),
as the real ones do. Run by `bench/bench_floor.py`:

    python bench/floor_apps.py api|logic|buffer --port P   # FLOOR_UPSTREAM, FLOOR_DIR, FLOOR_PARSE
"""

import argparse
import itertools
import os
import sys
from contextlib import asynccontextmanager
from pathlib import Path

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "")
PARSE = os.environ.get("FLOOR_PARSE") == "1"
BINARY = "application/octet-stream"
CREATED = b'{"resp":"CREATED"}'


def api_app():
    """FastAPI: read the body, forward it with its query and type, answer what the logic said."""
    import aiohttp
    from fastapi import FastAPI, Request, Response

    from glitchflow_core.chunk import parse_chunk

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=256),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )
        yield
        await app.state.session.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/readyz")
    async def readyz() -> Response:
        return Response(b"{}", media_type="application/json")

    @app.post("/{path:path}")
    async def ingest(path: str, request: Request) -> Response:
        body = await request.body()
        kind = request.headers.get("content-type", "application/json")
        if PARSE and kind != BINARY:
            parse_chunk(body)
        url = f"{UPSTREAM}/{path}?{request.url.query}"
        headers = {"Content-Type": kind}
        async with request.app.state.session.post(url, data=body, headers=headers) as answer:
            return Response(await answer.read(), answer.status, media_type="application/json")

    return app


def logic_app():
    """Flask under gunicorn: read the body in one call, relay it with urllib3."""
    import urllib3
    from flask import Flask, Response, request

    app = Flask("floor_logic")
    pool = urllib3.connection_from_url(UPSTREAM, maxsize=64, block=False, retries=False)

    @app.get("/readyz")
    def readyz() -> Response:
        return Response(b"{}", mimetype="application/json")

    @app.post("/<path:path>")
    def ingest(path: str) -> Response:
        body = request.environ["wsgi.input"].read(request.content_length)
        url = f"/{path}?{request.query_string.decode()}"
        headers = {"Content-Type": request.content_type or "application/json"}
        answer = pool.urlopen("POST", url, body=body, headers=headers)
        return Response(answer.data, answer.status, mimetype="application/json")

    return app


def buffer_app():
    """Starlette: the body (binary ones in their JSON form) to a file, durably, in a thread."""
    import anyio.to_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from databuffer.atomic import fsync_dir, write_temp
    from glitchflow_core.chunk import parse_binary_chunk, parse_chunk

    folder = Path(os.environ["FLOOR_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()

    def store(body: bytes, kind: str, query) -> None:
        if kind == BINARY:
            chunk = parse_binary_chunk(body, query.get("channel"), query.get("t0"), query.get("dt"))
            body = chunk.canonical_bytes()
        elif PARSE:
            parse_chunk(body)
        tmp = write_temp(folder, body, "chunk", drop_cache=True)
        os.replace(tmp, folder / f"{next(counter):09d}.json")
        fsync_dir(folder)

    async def ingest(request: Request) -> Response:
        body = await request.body()
        kind = request.headers.get("content-type", "")
        await anyio.to_thread.run_sync(store, body, kind, request.query_params)
        return Response(CREATED, 201, media_type="application/json")

    async def readyz(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    routes = [Route("/readyz", readyz), Route("/{path:path}", ingest, methods=["POST"])]
    return Starlette(routes=routes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hop", choices=["api", "logic", "buffer"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from glitchflow_core.memory import keep_freed_memory

    keep_freed_memory()
    if args.hop == "logic":
        from gunicorn.app.wsgiapp import WSGIApplication

        here = str(Path(__file__).resolve().parent)
        sys.argv = ["floor-logic", "--bind", f"{args.host}:{args.port}", "--workers", "1"]
        sys.argv += ["--worker-class", "gthread", "--threads", "8", "--keep-alive", "75"]
        sys.argv += ["--timeout", "60", "--log-level", "warning", "--pythonpath", here]
        sys.argv.append("floor_apps:logic_app()")
        WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()
        return
    import uvicorn

    app = api_app() if args.hop == "api" else buffer_app()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_config=None,
        access_log=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
