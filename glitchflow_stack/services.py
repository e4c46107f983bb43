"""The three services of the datastore as processes: where each listens and how each is started.

Each service is started as ``python -m <package>``; this package never imports them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from glitchflow_stack.supervisor import ManagedProcess


@dataclass(frozen=True)
class Layout:
    """Where the three services listen."""

    host: str = "127.0.0.1"
    buffer_port: int = 8080
    logic_port: int = 5000
    api_port: int = 8000

    @property
    def buffer_url(self) -> str:
        return f"http://{self.host}:{self.buffer_port}"

    @property
    def logic_url(self) -> str:
        return f"http://{self.host}:{self.logic_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"


def service_processes(
    layout: Layout,
    data_dir: Path,
    max_size: int,
    *,
    logic_workers: int | None = None,
    logic_threads: int | None = None,
    api_workers: int = 1,
    freeze_mode: str | None = None,
    max_sealed: int | None = None,
    env: Mapping[str, str] | None = None,
    echo: Callable[[str], None] | None = None,
) -> list[ManagedProcess]:
    """The buffer, logic and API processes (not started), in start order.

    ``logic_workers``/``logic_threads`` left as None keep the measured defaults of
    ``datastore_logic/gunicorn.conf.py``; ``freeze_mode``/``max_sealed`` left as None keep the
    logic's settings (``GLITCHFLOW_FREEZE_MODE`` in ``env``, else its default, rotate).
    """
    py = sys.executable
    common = dict(env or {})
    host = layout.host
    buffer = ManagedProcess(
        "databuffer",
        [py, "-m", "databuffer", "--host", host, "--port", str(layout.buffer_port)],
        layout.buffer_url,
        env={**common, "GLITCHFLOW_DATA_DIR": str(data_dir)},
        echo=echo,
    )
    logic = ManagedProcess(
        "logic",
        [py, "-m", "datastore_logic", "--host", host, "--port", str(layout.logic_port)]
        + (["--workers", str(logic_workers)] if logic_workers else [])
        + (["--threads", str(logic_threads)] if logic_threads else []),
        layout.logic_url,
        env={
            **common,
            "GLITCHFLOW_DB_BURL": layout.buffer_url,
            "GLITCHFLOW_MAX_SIZE": str(max_size),
            **({"GLITCHFLOW_FREEZE_MODE": freeze_mode} if freeze_mode else {}),
            **({"GLITCHFLOW_MAX_SEALED": str(max_sealed)} if max_sealed else {}),
        },
        echo=echo,
    )
    api = ManagedProcess(
        "api",
        [
            py,
            "-m",
            "glitchflow_api",
            "--host",
            host,
            "--port",
            str(layout.api_port),
            "--workers",
            str(api_workers),
        ],
        layout.api_url,
        env={**common, "GLITCHFLOW_DS_BURL": layout.logic_url},
        echo=echo,
    )
    return [buffer, logic, api]
