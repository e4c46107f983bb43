"""``glitchflow-databuffer [--host H] [--port P]``: run the buffer under uvicorn."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

PROG = "glitchflow-databuffer"


def build_long_lived(build: Callable[[], T]) -> T:
    """``build()`` with the garbage collector off, then everything alive frozen (`gc.freeze`).

    Opening the storage makes an index entry for every stored file, all alive as long as the
    process. A full collection walks every tracked object, so with many chunks stored each one
    stalled every request for a long moment (docs/PERFORMANCE.md, "Scale"), and several ran during
    the start-up itself. Frozen, they are never walked again; an entry still goes away, by
    reference counting, when its file leaves the buffer.
    """
    gc.disable()
    try:
        built = build()
    finally:
        gc.enable()
    gc.freeze()
    return built


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``glitchflow-databuffer``; settings come from the environment."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--host", help="address to bind (default: GLITCHFLOW_HOST or SERVURL)")
    parser.add_argument("--port", type=int, help="port (default: GLITCHFLOW_PORT or SERVURL)")
    args = parser.parse_args(argv)

    import uvicorn

    from databuffer.app import create_app
    from databuffer.settings import Settings
    from glitchflow_core.logs import configure_logging
    from glitchflow_core.memory import keep_freed_memory
    from glitchflow_core.settings import bind_socket, load_settings, variable_name

    settings = load_settings(Settings, PROG)
    host = args.host or settings.host
    port = args.port or settings.port
    if args.port:
        source = "--port"
    elif settings.servurl is not None and "port" not in settings.model_fields_set:
        source = variable_name(Settings, "servurl")
    else:
        source = variable_name(Settings, "port")
    sock = bind_socket(PROG, host, port, source)
    configure_logging("databuffer", settings.log_level, settings.access_log)
    keep_freed_memory()
    app = build_long_lived(lambda: create_app(settings))
    # One process only: the storage lock lives in this process's memory.
    config = uvicorn.Config(
        app,
        workers=1,
        http="httptools",
        loop="uvloop",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
