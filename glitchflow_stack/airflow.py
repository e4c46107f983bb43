"""``glitchflow up --airflow``: Airflow standalone beside the services, with the batch DAG.

Airflow runs from its own virtual environment (``.venv-airflow``, made on first use by
``scripts/airflow-venv.sh``: about a minute), with its home under the data folder, the repository's
``dags/`` folder, the ``glitchflow_api`` connection to the local API and the DAG's settings in its
environment. It listens on the services' host only, runs 4 task slots, loads no examples, and is
stopped with its whole process group.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import quote

from glitchflow_core.auth import load_tokens
from glitchflow_stack.supervisor import ManagedProcess, ServiceFailed

REPO = Path(__file__).resolve().parents[1]
VENV_SCRIPT = REPO / "scripts" / "airflow-venv.sh"
DAGS = REPO / "dags"
HEALTH = "/api/v2/monitor/health"
READY_TIMEOUT = 180.0
"""Seconds Airflow standalone may take to answer its health check (about 25 s on 2 cores)."""
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def airflow_venv() -> Path:
    """The Airflow venv: ``$GLITCHFLOW_AIRFLOW_VENV`` or ``.venv-airflow`` in the repository."""
    venv = Path(os.environ.get("GLITCHFLOW_AIRFLOW_VENV", REPO / ".venv-airflow"))
    return venv if venv.is_absolute() else REPO / venv


def ensure_venv() -> Path:
    """Create or update the Airflow venv (a no-op when up to date); its ``bin`` folder.

    Raises
    ------
    ServiceFailed
        The repository's ``scripts/airflow-venv.sh`` is missing or failed.
    """
    if not VENV_SCRIPT.is_file() or not DAGS.is_dir():
        raise ServiceFailed(f"--airflow needs a clone of the repository ({VENV_SCRIPT} missing)")
    done = subprocess.run(["bash", str(VENV_SCRIPT)], check=False)
    if done.returncode != 0:
        raise ServiceFailed(f"scripts/airflow-venv.sh failed with status {done.returncode}")
    return airflow_venv() / "bin"


def connection_uri(api_url: str, token: str | None) -> str:
    """``AIRFLOW_CONN_GLITCHFLOW_API``: the API's address, with the admin token as password."""
    host = api_url.split("://", 1)[1]
    return f"http://:{quote(token, safe='')}@{host}" if token else f"http://{host}"


def admin_token(env: Mapping[str, str]) -> str | None:
    """The first admin token the API was given (``GLITCHFLOW_ADMIN_TOKENS[_FILE]``), if any."""
    path = env.get("GLITCHFLOW_ADMIN_TOKENS_FILE")
    tokens = load_tokens(env.get("GLITCHFLOW_ADMIN_TOKENS"), Path(path) if path else None)
    return tokens[0] if tokens else None


def airflow_env(
    bin_dir: Path,
    data_dir: Path,
    api_url: str,
    host: str,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """What ``airflow standalone`` needs on top of ``env`` (this process's environment)."""
    env = os.environ if env is None else env
    glitchflow = Path(sys.executable).with_name("glitchflow")
    return {
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        "AIRFLOW_HOME": str(data_dir / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__PARALLELISM": "4",
        # The demo shows a whole cycle without a click; a paused DAG would wait for one.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__API__HOST": host,
        "AIRFLOW__API__PORT": str(port),
        # Task processes reach the execution API at BASE_URL/execution/ (default localhost:8080).
        "AIRFLOW__API__BASE_URL": f"http://{host}:{port}",
        "AIRFLOW_CONN_GLITCHFLOW_API": connection_uri(api_url, admin_token(env)),
        "GLITCHFLOW_RUNNER": "local",
        "GLITCHFLOW_CLI": str(glitchflow) if glitchflow.exists() else "glitchflow",
        "GLITCHFLOW_ARCHIVE_ROOT": str(data_dir / "archive"),
        "GLITCHFLOW_OUTPUT_DIR": str(data_dir / "datasets"),
        "GLITCHFLOW_POKE_INTERVAL": env.get("GLITCHFLOW_POKE_INTERVAL", "5"),
    }


def airflow_process(
    data_dir: Path,
    api_url: str,
    host: str,
    port: int,
    *,
    bin_dir: Path | None = None,
    echo: Callable[[str], None] | None = None,
) -> ManagedProcess:
    """``airflow standalone`` as a managed process (not started); ready when healthy."""
    bin_dir = bin_dir or airflow_venv() / "bin"
    (data_dir / "airflow").mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        "airflow",
        [str(bin_dir / "airflow"), "standalone"],
        f"http://{host}:{port}",
        env=airflow_env(bin_dir, data_dir, api_url, host, port),
        echo=echo,
        keep_lines=5000,
    )


def start_airflow(proc: ManagedProcess, timeout: float = READY_TIMEOUT) -> None:
    """Start Airflow and wait until its health check answers; stop it if it does not."""
    proc.start()
    try:
        proc.wait_ready(timeout, path=HEALTH)
    except BaseException:
        proc.stop()
        raise


def run_airflow(data_dir: Path, api_url: str, host: str, port: int) -> ManagedProcess:
    """For ``glitchflow up --airflow``: the venv made if needed, Airflow started and healthy.

    Airflow's own output goes to ``DATA_DIR/airflow/standalone.log`` (it is verbose).

    Raises
    ------
    ServiceFailed
        The venv could not be made, or Airflow exited or was not healthy in `READY_TIMEOUT`.
    """
    bin_dir = ensure_venv()
    (data_dir / "airflow").mkdir(parents=True, exist_ok=True)
    # A logger, not an open file: logging closes its handlers when the process exits.
    log = logging.getLogger("glitchflow_stack.airflow.output")
    log.propagate = False
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(data_dir / "airflow" / "standalone.log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    proc = airflow_process(data_dir, api_url, host, port, bin_dir=bin_dir, echo=log.info)
    start_airflow(proc)
    return proc


def airflow_lines(data_dir: Path, host: str, port: int) -> str:
    """The lines ``glitchflow up`` prints about Airflow once it is ready."""
    return (
        f"  Airflow    http://{host}:{port}  (DAG glitchflow_batch; user admin, password in "
        f"{data_dir / 'airflow' / PASSWORDS_FILE})\n"
        f"  datasets   {data_dir / 'datasets'}  (per batch: dataset.h5, model/report.json)\n"
    )
