"""``glitchflow up --airflow --demo``: the services, the demo stream and Airflow standalone.

One whole cycle on one machine, as a user runs it: the demo fills the buffer until a batch is
sealed (rotate mode, the default), the DAG (unpaused, run by Airflow's own scheduler) takes that
batch, exports and trains, the trainer's report appears and its results are recorded with the
batch (``/batches``), and Ctrl-C stops everything, Airflow's whole process group included.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from ports import free_port

from glitchflow_stack.airflow import processes_with
from glitchflow_stack.supervisor import ManagedProcess

T = TypeVar("T")
CYCLE_TIMEOUT = 400.0
"""Seconds for Airflow to start (~25 s alone, more on a busy machine) and one cycle to finish."""

# Airflow's start and the cycle have their own bound: the default 300 s would cut it short.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(2 * CYCLE_TIMEOUT)]


def admin_headers(url: str, airflow_home: Path) -> dict[str, str]:
    """A bearer header for the UI's generated ``admin`` user."""
    passwords = json.loads(
        (airflow_home / "simple_auth_manager_passwords.json.generated").read_text()
    )
    answer = httpx.post(
        f"{url}/auth/token", json={"username": "admin", "password": passwords["admin"]}, timeout=30
    )
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def wait_for(what: str, check: Callable[[], T], timeout: float, proc: ManagedProcess) -> T:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.alive(), f"glitchflow up exited:\n{proc.output()[-5000:]}"
        result = check()
        if result:
            return result
        time.sleep(1)
    pytest.fail(f"{what} not within {timeout:.0f} s:\n{proc.output()[-5000:]}")


def test_up_with_airflow_runs_a_whole_cycle_and_stops_cleanly(
    airflow_bin: Path, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    ports = {name: free_port() for name in ("api", "logic", "buffer", "airflow")}
    proc = ManagedProcess(
        "up",
        [
            sys.executable,
            "-m",
            "glitchflow_stack",
            "up",
            "--airflow",
            "--demo",
            "--max-size",
            "3MiB",
            "--data-dir",
            str(data_dir),
            *(arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))),
        ],
        f"http://127.0.0.1:{ports['airflow']}",
        env={"GLITCHFLOW_POKE_INTERVAL": "1", "GLITCHFLOW_AIRFLOW_VENV": str(airflow_bin.parent)},
    )
    airflow_home = data_dir / "airflow"
    proc.start()
    try:
        proc.wait_ready(CYCLE_TIMEOUT, path="/api/v2/monitor/health")
        headers = admin_headers(proc.url, airflow_home)
        dags = httpx.get(f"{proc.url}/api/v2/dags", headers=headers, timeout=30).json()["dags"]
        assert [(d["dag_id"], d["is_paused"]) for d in dags] == [("glitchflow_batch", False)]

        reports = wait_for(
            "the trainer's report",
            lambda: sorted((data_dir / "datasets").glob("*/model/report.json")),
            CYCLE_TIMEOUT,
            proc,
        )
        archive = reports[0].parent.parent.name
        assert (data_dir / "archive" / archive / "manifest.json").is_file()
        assert (data_dir / "datasets" / archive / "dataset.h5").is_file()
        report = json.loads(reports[0].read_text())
        assert report["windows"] > 0
        api = f"http://127.0.0.1:{ports['api']}"

        def recorded() -> dict | None:
            listed = httpx.get(f"{api}/batches", timeout=30).json()["batches"]
            return next((b["results"] for b in listed if b["archive"] == archive), None)

        results = wait_for("the batch's recorded results", recorded, 120, proc)
        assert results["dataset"] == str(data_dir / "datasets" / archive / "dataset.h5")
        assert results["report"]["windows"] == report["windows"]
        assert results["report"]["flagged"] == report["flagged"]
        assert httpx.get(f"{api}/desc", timeout=30).json()["resp"] == "OPERATIONAL"
        assert processes_with("AIRFLOW_HOME", str(airflow_home))
    finally:
        proc.signal(signal.SIGINT)
        status = proc.proc.wait(timeout=60) if proc.proc else None
        proc.stop()

    assert status == 0, proc.output()[-5000:]
    assert processes_with("AIRFLOW_HOME", str(airflow_home)) == []
    assert not os.path.exists(f"/proc/{proc.pid}")
