"""Drive the Airflow venv's python (``tests/dags/driver.py``) from the project's tests.

Airflow lives in its own venv (``scripts/airflow-venv.sh``, which ``scripts/test.sh`` runs first);
the DAG tests run its python as a subprocess. Without that venv they fail, unless
``GLITCHFLOW_SKIP_AIRFLOW_TESTS=1`` says to skip them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "dags"
DRIVER = Path(__file__).with_name("dags") / "driver.py"
SKIP_VARIABLE = "GLITCHFLOW_SKIP_AIRFLOW_TESTS"


def airflow_venv() -> Path:
    """The Airflow venv: ``$GLITCHFLOW_AIRFLOW_VENV`` or ``.venv-airflow`` in the repository."""
    venv = Path(os.environ.get("GLITCHFLOW_AIRFLOW_VENV", ROOT / ".venv-airflow"))
    return venv if venv.is_absolute() else ROOT / venv


def airflow_bin_dir() -> Path:
    """The Airflow venv's ``bin``; fails the test without it (skips with the opt-out variable)."""
    bin_dir = airflow_venv() / "bin"
    if not (bin_dir / "airflow").exists():
        message = f"no Airflow venv at {bin_dir.parent}: run scripts/airflow-venv.sh"
        if os.environ.get(SKIP_VARIABLE) == "1":
            pytest.skip(f"{message} ({SKIP_VARIABLE}=1)")
        pytest.fail(f"{message}, or set {SKIP_VARIABLE}=1 to skip the Airflow tests")
    return bin_dir


def base_env(airflow_home: Path, airflow_bin: Path) -> dict[str, str]:
    """This process's environment without Airflow or Glitchflow settings, plus a quiet Airflow."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIRFLOW", "GLITCHFLOW_", "VIRTUAL_ENV", "PYTHON"))
    }
    env.update(
        {
            "PATH": f"{airflow_bin}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
        }
    )
    return env


@dataclass
class Run:
    """What the driver printed: its ``RESULT`` and its whole output (the task logs)."""

    result: dict
    output: str
    returncode: int

    def state(self, task_id: str) -> str | None:
        """The final state of one task instance, or None if it never ran."""
        return self.result.get("tasks", {}).get(task_id, {}).get("state")


def parse_run(output: str, returncode: int) -> Run:
    """The driver's output as a `Run`; fails the test when it printed no result."""
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    if not lines:
        pytest.fail(f"the driver printed no RESULT (exit {returncode}):\n{output[-5000:]}")
    return Run(json.loads(lines[-1][len("RESULT ") :]), output, returncode)


@dataclass
class Airflow:
    """One test's Airflow: its own home (a copy of the migrated database) and environment."""

    bin: Path
    home: Path
    env: dict[str, str]

    def argv(self, *args: str) -> list[str]:
        return [str(self.bin / "python"), str(DRIVER), *args]

    def driver(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 240) -> Run:
        """Run ``driver.py ARGS`` to its end."""
        done = subprocess.run(
            self.argv(*args),
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return parse_run(done.stdout + done.stderr, done.returncode)

    async def start(self, *args: str) -> asyncio.subprocess.Process:
        """Start ``driver.py ARGS`` without waiting (output merged into stdout)."""
        return await asyncio.create_subprocess_exec(
            *self.argv(*args),
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )


def connection_uri(url: str, token: str | None = None) -> str:
    """``AIRFLOW_CONN_GLITCHFLOW_API`` for an API at ``url`` (``http://host:port``)."""
    host = url.split("://", 1)[1]
    return f"http://:{token}@{host}" if token else f"http://{host}"
