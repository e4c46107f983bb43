"""``python -m glitchflow_api --host H --port P [--workers N]``: uvicorn with the app factory."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile


def main(argv: list[str] | None = None) -> None:
    """Run glitchflow_api under uvicorn (also the ``glitchflow-api`` console script)."""
    parser = argparse.ArgumentParser(prog="glitchflow-api", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    from pydantic import ValidationError

    from glitchflow_api.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        sys.exit(f"glitchflow-api: bad settings:\n{exc}")

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
            host=args.host,
            port=args.port,
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
