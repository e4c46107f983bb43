"""``python -m databuffer --host 127.0.0.1 --port 8080``: run the buffer under uvicorn."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

import uvicorn
from pydantic import ValidationError

from databuffer.app import create_app
from databuffer.settings import Settings
from glitchflow_core.logs import configure_logging
from glitchflow_core.memory import keep_freed_memory


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``glitchflow-databuffer``; settings come from the environment."""
    parser = argparse.ArgumentParser(prog="glitchflow-databuffer", description=__doc__)
    parser.add_argument("--host", help="address to bind (default: from SERVURL, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: from SERVURL, else 8080)")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"glitchflow-databuffer: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging("databuffer", settings.log_level)
    keep_freed_memory()
    url = urlsplit(settings.servurl) if settings.servurl else None
    host = args.host or (url.hostname if url else None) or "127.0.0.1"
    port = args.port or (url.port if url else None) or 8080
    # One process only: the storage lock lives in this process's memory.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        workers=1,
        http="httptools",
        loop="uvloop",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
