"""The reference single hop: writes each request body to a file with fsync and answers 201.

What this machine can do at best for one durable write per request, so that a benchmark can
compare a service against it: an aiohttp server on uvloop writing with ``os.write`` on a raw
file descriptor in a worker thread. It used to run on the services' own stack (Starlette under
uvicorn), which was slower than a plain aiohttp server (`bench/plain_aiohttp_server.py`), and a
slow reference flatters every ratio measured against it; `bench/bench_e2e.py` runs both and
prints both (docs/PERFORMANCE.md).

    python bench/reference_server.py --port 18081 --dir /tmp/reference [--atomic]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
from pathlib import Path

from aiohttp import web


def create_app(folder: Path, atomic: bool = False) -> web.Application:
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
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
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

    async def write(request: web.Request) -> web.Response:
        size = await asyncio.to_thread(store, await request.read())
        return web.Response(
            body=b'{"resp":"CREATED","bytes":%d}' % size,
            status=201,
            content_type="application/json",
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(body=b'{"resp":"OK"}', content_type="application/json")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/{path:.*}", write)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18081)
    parser.add_argument("--dir", type=Path, required=True, help="folder for the written bodies")
    parser.add_argument(
        "--atomic", action="store_true", help="temp file, fsync, rename, fsync of the folder"
    )
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:  # the event loop of the services; asyncio's own works too
        uvloop = None
    web.run_app(
        create_app(args.dir, args.atomic),
        host=args.host,
        port=args.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop() if uvloop is not None else None,
    )


if __name__ == "__main__":
    main()
