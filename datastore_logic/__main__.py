"""``python -m datastore_logic --host H --port P [--workers N] [--threads T]``: gunicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("gunicorn.conf.py")


def main(argv: list[str] | None = None) -> None:
    """Run datastore_logic under gunicorn (also the ``glitchflow-logic`` console script)."""
    parser = argparse.ArgumentParser(prog="glitchflow-logic", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument(
        "--workers", type=int, help="worker processes (default from gunicorn.conf.py)"
    )
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default from gunicorn.conf.py)"
    )
    args = parser.parse_args(argv)

    # Fail here, with a readable message, rather than in every worker.
    from pydantic import ValidationError

    from datastore_logic.settings import Settings

    try:
        Settings()
    except ValidationError as exc:
        sys.exit(f"glitchflow-logic: bad settings:\n{exc}")

    from gunicorn.app.wsgiapp import WSGIApplication

    gunicorn_argv = ["glitchflow-logic", "-c", str(CONFIG), "--bind", f"{args.host}:{args.port}"]
    if args.workers is not None:
        gunicorn_argv += ["--workers", str(args.workers)]
    if args.threads is not None:
        gunicorn_argv += ["--threads", str(args.threads)]
    gunicorn_argv.append("datastore_logic:create_app()")
    sys.argv = gunicorn_argv
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()


if __name__ == "__main__":
    main()
