"""The DAG file parses in Airflow's own DagBag, cheaply, with either runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from airflow_harness import Airflow, base_env

VARIANTS = {
    "local": {},
    "kubernetes": {"GLITCHFLOW_RUNNER": "kubernetes", "GLITCHFLOW_POKE_INTERVAL": "7"},
    "bad-interval": {"GLITCHFLOW_POKE_INTERVAL": "soon"},
    "bad-runner": {"GLITCHFLOW_RUNNER": "cloud"},
}


@pytest.fixture(scope="module")
def parsed(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each variant's DagBag, parsed in one Airflow process."""
    home = tmp_path_factory.mktemp("dagbag-home")
    airflow = Airflow(airflow_bin, home, base_env(home, airflow_bin))
    run = airflow.driver("dagbag", *(json.dumps(env) for env in VARIANTS.values()))
    return dict(zip(VARIANTS, run.result, strict=True))


def test_dag_file_imports_without_errors(parsed: dict[str, Any]) -> None:
    assert parsed["local"]["import_errors"] == {}
    assert list(parsed["local"]["dags"]) == ["glitchflow_batch"]


def test_dag_runs_one_batch_at_a_time_without_catchup(parsed: dict[str, Any]) -> None:
    dag = parsed["local"]["dags"]["glitchflow_batch"]
    assert dag["tasks"] == ["wait_for_frozen", "flush", "export", "train", "record"]
    assert dag["schedule"] == "@continuous"
    assert dag["max_active_runs"] == 1
    assert dag["catchup"] is False
    assert dag["sensor"] == {"mode": "reschedule", "poke_interval": 30.0}
    assert set(dag["retries"].values()) == {3}


def test_parsing_imports_no_client_library(parsed: dict[str, Any]) -> None:
    assert parsed["local"]["modules"] == []


def test_kubernetes_runner_runs_export_and_train_as_pods(parsed: dict[str, Any]) -> None:
    variant = parsed["kubernetes"]
    assert variant["import_errors"] == {}
    dag = variant["dags"]["glitchflow_batch"]
    assert dag["tasks"] == ["wait_for_frozen", "flush", "export_pod", "train_pod", "record"]
    assert dag["sensor"]["poke_interval"] == 7.0


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ("bad-interval", "GLITCHFLOW_POKE_INTERVAL='soon': not a number"),
        ("bad-runner", "GLITCHFLOW_RUNNER='cloud': must be local or kubernetes"),
    ],
)
def test_bad_setting_is_an_import_error_naming_it(
    parsed: dict[str, Any], variant: str, message: str
) -> None:
    errors = parsed[variant]["import_errors"]
    assert list(errors) == ["glitchflow_batch.py"]
    assert message in next(iter(errors.values()))
