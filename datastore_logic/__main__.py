"""``glitchflow-logic [--host H] [--port P] [--workers N] [--threads T]``: gunicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CONFIG = Path(__file__).with_name("gunicorn.conf.py")
PROG = "glitchflow-logic"


def main(argv: list[str] | None = None) -> None:
    """Run datastore_logic under gunicorn (also the ``glitchflow-logic`` console script)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("--host", help="address to bind (default: GLITCHFLOW_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GLITCHFLOW_PORT, 5000)")
    parser.add_argument("--workers", type=int, help="worker processes (GLITCHFLOW_LOGIC_WORKERS)")
    parser.add_argument("--threads", type=int, help="threads per worker (GLITCHFLOW_LOGIC_THREADS)")
    args = parser.parse_args(argv)

    from datastore_logic.settings import Settings
    from glitchflow_core.settings import check_port_free, load_settings, variable_name

    # Fail here, in one line, rather than in every worker.
    settings = load_settings(Settings, PROG)
    host = args.host or settings.host
    port = args.port or settings.port
    check_port_free(PROG, host, port, "--port" if args.port else variable_name(Settings, "port"))

    from gunicorn.app.wsgiapp import WSGIApplication

    gunicorn_argv = [PROG, "-c", str(CONFIG), "--bind", f"{host}:{port}"]
    if args.workers is not None:
        gunicorn_argv += ["--workers", str(args.workers)]
    if args.threads is not None:
        gunicorn_argv += ["--threads", str(args.threads)]
    gunicorn_argv.append("datastore_logic:create_app()")
    sys.argv = gunicorn_argv
    WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").run()


if __name__ == "__main__":
    main()
