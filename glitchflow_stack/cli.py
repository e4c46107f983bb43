"""The ``glitchflow`` command: ``up`` runs the datastore locally; ``export`` and ``train-ref`` are
the dataset tools of ``glitchflow_dataset``, loaded only when asked for.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ByteSize, TypeAdapter, ValidationError

from glitchflow_stack.airflow import airflow_lines, run_airflow
from glitchflow_stack.services import Layout, service_processes
from glitchflow_stack.supervisor import ManagedProcess, ServiceFailed, Stack, port_in_use

SERVICE_TOKEN_VARIABLES = ("GLITCHFLOW_SERVICE_TOKEN", "GLITCHFLOW_SERVICE_TOKEN_FILE")
API_TOKEN_VARIABLES = tuple(
    f"GLITCHFLOW_{kind}_TOKENS{suffix}"
    for kind in ("WRITER", "ADMIN", "READER")
    for suffix in ("", "_FILE")
)
DATASET_COMMANDS = {
    "export": "write archived batches out as a training data set",
    "train-ref": "train the reference glitch model on an exported data set",
}
_BYTE_SIZE = TypeAdapter(ByteSize)


def byte_size(text: str) -> int:
    """A size in bytes from ``2000``, ``1e9``, ``8MiB`` or ``1.5GB`` (pydantic's `ByteSize`)."""
    with contextlib.suppress(ValueError):
        number = float(text)
        if number >= 0 and number.is_integer():
            return int(number)
    try:
        return int(_BYTE_SIZE.validate_python(text))
    except ValidationError:
        raise argparse.ArgumentTypeError(
            f"not a size: {text!r} (examples: 2000, 1e9, 8MiB, 1GB)"
        ) from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="glitchflow",
        description="The Glitchflow datastore: run it locally, export what it archived.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = sub.add_parser(
        "up",
        help="run the three services on this machine until Ctrl-C",
        description="Start databuffer, datastore_logic and glitchflow_api as processes on this "
        "machine, wait until each is ready, print their URLs, and run until Ctrl-C (or until one "
        "of them stops, which stops the others).",
    )
    add_up_options(up)
    for name, text in DATASET_COMMANDS.items():
        sub.add_parser(name, help=f"{text} (glitchflow {name} --help)", add_help=False)
    return parser


def add_up_options(up: argparse.ArgumentParser) -> None:
    """The options of ``glitchflow up``."""
    up.add_argument(
        "--data-dir",
        type=Path,
        default=Path("glitchflow-data"),
        metavar="DIR",
        help="folder for the stored chunks, state, logs and archived batches; created if "
        "missing (default: ./glitchflow-data)",
    )
    up.add_argument(
        "--max-size",
        type=byte_size,
        default=byte_size("64MiB"),
        metavar="SIZE",
        help="the buffer freezes once it holds this many bytes: 2000, 1e9, 8MiB, 1GB "
        "(default: 64MiB; scripts/up.sh uses 8MiB)",
    )
    up.add_argument(
        "--freeze-mode",
        choices=("rotate", "hold"),
        default="rotate",
        help="what a full batch does: rotate seals it and ingest goes on in the next batch "
        "(at most --max-sealed wait for training, then writes are refused); hold freezes "
        "the buffer until the batch is flushed, as the original did (default: rotate)",
    )
    up.add_argument(
        "--max-sealed",
        type=int,
        default=4,
        metavar="N",
        help="rotate mode: sealed batches that may wait for training before writes are "
        "refused (default: 4)",
    )
    up.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the three services listen on (default: 127.0.0.1, this machine only)",
    )
    for name, port, what in (
        ("api", 8000, "the public API"),
        ("logic", 5000, "datastore_logic"),
        ("buffer", 8080, "the databuffer"),
    ):
        up.add_argument(
            f"--{name}-port",
            type=int,
            default=port,
            metavar="PORT",
            help=f"port of {what} (default: {port})",
        )
    up.add_argument(
        "--logic-workers",
        type=int,
        default=None,
        metavar="N",
        help="processes serving datastore_logic (default: one per two CPU cores)",
    )
    up.add_argument(
        "--api-workers",
        type=int,
        default=1,
        metavar="N",
        help="processes serving the API (default: 1)",
    )
    up.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="--demo: once the services are ready, stream the real H1/L1/V1 strain that ships "
        "with gwpy, then synthetic detector noise with glitches, until the buffer freezes; "
        "--no-demo: start the services only (the default; scripts/up.sh passes --demo, and "
        "`scripts/up.sh --no-demo` turns it off)",
    )
    up.add_argument(
        "--airflow",
        action="store_true",
        help="also run Airflow standalone with the batch DAG (dags/), which flushes, exports and "
        "trains on each frozen batch; Airflow has its own venv, .venv-airflow, made on first use "
        "by scripts/airflow-venv.sh (a minute or two); its home is DATA_DIR/airflow",
    )
    up.add_argument(
        "--airflow-port",
        type=int,
        default=8090,
        metavar="PORT",
        help="port of Airflow's UI and API with --airflow (default: 8090)",
    )


def open_store_warning(env: Mapping[str, str]) -> str | None:
    """The one line ``glitchflow up`` prints when the services it starts run without tokens."""
    service = any(env.get(name, "").strip() for name in SERVICE_TOKEN_VARIABLES)
    api = any(env.get(name, "").strip() for name in API_TOKEN_VARIABLES)
    if not service and not api:
        return (
            "glitchflow up: WARNING: no token configured, the store is OPEN: anyone who reaches"
            " these ports can write, freeze, flush and read it (set GLITCHFLOW_ADMIN_TOKENS,"
            " GLITCHFLOW_READER_TOKENS and GLITCHFLOW_SERVICE_TOKEN; docs/CONFIGURATION.md)"
        )
    if not service:
        return (
            "glitchflow up: WARNING: no GLITCHFLOW_SERVICE_TOKEN, datastore_logic and the"
            " databuffer are OPEN to anyone who reaches their ports"
        )
    if not api:
        return (
            "glitchflow up: WARNING: no GLITCHFLOW_ADMIN_TOKENS, WRITER_TOKENS or READER_TOKENS,"
            " the API is OPEN: anyone who reaches it can write, freeze, flush and read"
        )
    return None


def _print_line(line: str) -> None:
    print(line, flush=True)


def _run_demo(api_url: str, stop: threading.Event) -> int:
    """Stream demo data through the API; returns the demo process's status."""
    proc = ManagedProcess(
        "demo", [sys.executable, "-m", "gwclient.demo", "--url", api_url], api_url, echo=_print_line
    ).start()
    while proc.alive() and not stop.is_set():
        time.sleep(0.2)
    if proc.alive():
        proc.stop()
    return proc.returncode() or 0


def up(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C, SIGTERM, or one service dies; returns the exit status."""
    max_size: int = args.max_size
    layout = Layout(args.host, args.buffer_port, args.logic_port, args.api_port)
    busy = [
        p
        for p in (layout.buffer_port, layout.logic_port, layout.api_port)
        + ((args.airflow_port,) if args.airflow else ())
        if port_in_use(args.host, p)
    ]
    if busy:
        print(f"glitchflow up: port(s) {busy} on {args.host} already in use", file=sys.stderr)
        return 2
    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        service_processes(
            layout,
            data_dir,
            max_size,
            logic_workers=args.logic_workers,
            api_workers=args.api_workers,
            freeze_mode=args.freeze_mode,
            max_sealed=args.max_sealed,
            echo=_print_line,
        )
    )
    stopping = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except ServiceFailed as exc:
        print(f"glitchflow up: {exc}", file=sys.stderr)
        return 1
    if args.airflow:
        print("glitchflow up: starting Airflow (about 30 s)", flush=True)
        try:
            # Last in the stack: watched with the services, stopped first.
            stack.processes.append(
                run_airflow(data_dir, layout.api_url, args.host, args.airflow_port)
            )
        except ServiceFailed as exc:
            print(f"glitchflow up: {exc}", file=sys.stderr)
            stack.stop()
            return 1
    print(
        "glitchflow up: ready\n"
        f"  API        {layout.api_url}  (docs {layout.api_url}/docs)\n"
        f"  status     {layout.api_url}/dspage\n"
        f"  logic      {layout.logic_url}  (status page {layout.logic_url}/)\n"
        f"  databuffer {layout.buffer_url}\n"
        f"  data       {data_dir}\n"
        f"  MAX_SIZE   {max_size} bytes, freeze mode {args.freeze_mode}\n"
        + (airflow_lines(data_dir, args.host, args.airflow_port) if args.airflow else "")
        + "Ctrl-C stops them all.",
        flush=True,
    )
    warning = open_store_warning(os.environ)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    demo: threading.Thread | None = None
    if args.demo:
        demo = threading.Thread(target=_run_demo, args=(layout.api_url, stopping), daemon=True)
        demo.start()
    status = 0
    while not stopping.is_set():
        dead = stack.dead()
        if dead is not None:
            print(
                f"glitchflow up: {dead.name} exited with status {dead.returncode()};"
                " stopping the others",
                file=sys.stderr,
                flush=True,
            )
            status = 1
            break
        stopping.wait(0.5)
    print("glitchflow up: stopping", flush=True)
    stopping.set()
    if demo is not None:
        demo.join(timeout=20)
    stack.stop()
    print("glitchflow up: stopped", flush=True)
    return status


def run_dataset_command(command: str, argv: Sequence[str]) -> int:
    """``glitchflow export|train-ref ...``: hand over to ``glitchflow_dataset.cli.main``."""
    try:
        tools = importlib.import_module("glitchflow_dataset.cli")
    except ModuleNotFoundError as exc:
        missing = (exc.name or "glitchflow_dataset").split(".")[0]
        print(
            f"glitchflow {command}: needs the Python package {missing!r}, which is not installed",
            file=sys.stderr,
        )
        return 2
    return int(tools.main([command, *argv]))


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: ``glitchflow up|export|train-ref ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DATASET_COMMANDS:
        return run_dataset_command(argv[0], argv[1:])
    args = _parser().parse_args(argv)
    return up(args)
