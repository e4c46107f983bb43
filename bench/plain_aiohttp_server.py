"""A plain aiohttp server: writes each request body to a file with fsync and answers 201.

The yardstick for `bench/reference_server.py`: the simplest server a user could write for the
same job, so a benchmark can show that the reference is no slower than it (a slow reference
would flatter every ratio measured against it).

    python bench/plain_aiohttp_server.py --port 18082 --dir /tmp/plain
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
from pathlib import Path

from aiohttp import web


def create_app(folder: Path) -> web.Application:
    """An app whose every POST path stores the body as the next numbered file, with fsync."""
    folder.mkdir(parents=True, exist_ok=True)
    counter = itertools.count()

    def store(body: bytes) -> None:
        with open(folder / f"{next(counter):09d}.json", "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.to_thread(store, body)
        answer = {"resp": "CREATED", "bytes": len(body)}
        return web.json_response(answer, status=201)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"resp": "OK"})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.add_routes(
        [
            web.get("/healthz", healthz),
            web.post("/{path:.*}", write),
        ]
    )
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18082)
    parser.add_argument("--dir", type=Path, required=True, help="folder for the written bodies")
    args = parser.parse_args()
    web.run_app(create_app(args.dir), host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
