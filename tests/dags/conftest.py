"""Fixtures of the DAG tests: the Airflow venv, a migrated metadata database, one home per test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from airflow_harness import Airflow, airflow_bin_dir, base_env


@pytest.fixture(scope="session")
def airflow_bin() -> Path:
    """The Airflow venv's ``bin`` (see `airflow_harness.airflow_bin_dir`)."""
    return airflow_bin_dir()


@pytest.fixture(scope="session")
def airflow_db(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated metadata database, made once a worker process; each test runs on its own copy."""
    home = tmp_path_factory.mktemp("airflow-home")
    subprocess.run(
        [str(airflow_bin / "airflow"), "db", "migrate"],
        env=base_env(home, airflow_bin),
        check=True,
        capture_output=True,
        timeout=300,
    )
    return home / "airflow.db"


@pytest.fixture
def airflow(airflow_bin: Path, airflow_db: Path, tmp_path: Path) -> Airflow:
    """A fresh Airflow home for this test; settings go into ``airflow.env``."""
    home = tmp_path / "airflow-home"
    home.mkdir()
    shutil.copy2(airflow_db, home / "airflow.db")
    env = base_env(home, airflow_bin)
    env.update(
        {
            "GLITCHFLOW_POKE_INTERVAL": "0.5",
            "GLITCHFLOW_SENSOR_TIMEOUT": "120",
            "GLITCHFLOW_RETRIES": "0",
            "GLITCHFLOW_API_TIMEOUT": "10",
        }
    )
    return Airflow(airflow_bin, home, env)
