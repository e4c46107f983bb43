"""``glitchflow-api [--host H] [--port P] [--workers N]``: uvicorn with the app factory."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

PROG = "glitchflow-api"


def main(argv: list[str] | None = None) -> None:
    """Run glitchflow_api under uvicorn (also the ``glitchflow-api`` console script)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--host", help="address to bind (default: GLITCHFLOW_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GLITCHFLOW_PORT, 8000)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    from glitchflow_api.settings import Settings
    from glitchflow_core.settings import check_port_free, load_settings, variable_name

    settings = load_settings(Settings, PROG)
    host = args.host or settings.host
    port = args.port or settings.port
    check_port_free(PROG, host, port, "--port" if args.port else variable_name(Settings, "port"))

    from glitchflow_core.memory import keep_freed_memory

    keep_freed_memory()
    own_metrics_dir = None
    if args.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker process counts in its own files; /metrics sums them.
        own_metrics_dir = tempfile.mkdtemp(prefix="glitchflow-api-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_metrics_dir

    import uvicorn

    try:
        uvicorn.run(
            "glitchflow_api:create_app",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level=settings.log_level.lower(),
            access_log=False,
            log_config=None,  # our JSON logs (configured by the app factory), not uvicorn's text
            timeout_graceful_shutdown=30,
        )
    finally:
        if own_metrics_dir:
            shutil.rmtree(own_metrics_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
