"""A plain reference server: writes each request body to a file with fsync and answers 201.

It uses the same framework and server as the services (Starlette under uvicorn, the write in a
worker thread), so a benchmark can compare a service against what this machine can do at best.

    python bench/reference_server.py --port 18081 --dir /tmp/reference
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path

import anyio.to_thread
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(folder: Path, atomic: bool = False) -> Starlette:
    """An app whose every POST path stores the body as the next numbered file, durably.

    With ``atomic`` the file is written as the buffer writes its chunks: a temporary file,
    fsync, rename, fsync of the folder (two journal commits in sequence instead of one), so the
    comparison isolates what the buffer adds beyond that durability protocol.
    """
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()

    def store(body: bytes) -> int:
        path = folder / f"{next(counter):09d}.json"
        target = path.with_name(f".{path.name}.tmp") if atomic else path
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        if atomic:
            os.replace(target, path)
            dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return len(body)

    async def write(request: Request) -> Response:
        size = await anyio.to_thread.run_sync(store, await request.body())
        return Response(b'{"resp":"CREATED","bytes":%d}' % size, 201, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b'{"resp":"OK"}', media_type="application/json")

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{path:path}", write, methods=["POST"]),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--dir", type=Path, required=True, help="folder for the written bodies")
    parser.add_argument(
        "--atomic", action="store_true", help="temp file, fsync, rename, fsync of the folder"
    )
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.dir, args.atomic),
        host=args.host,
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
