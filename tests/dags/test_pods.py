"""The Kubernetes runner's pods, built offline (``build_pod_request_obj(dry_run=True)``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from airflow_harness import Airflow, base_env

BATCH = "17"
ARCHIVE = "000017-20261202T190000Z"
SETTINGS = {
    "GLITCHFLOW_IMAGE": "registry.example.org/glitchflow:1.4.2",
    "GLITCHFLOW_TRAINER_IMAGE": "registry.example.org/trainer:0.9",
    "GLITCHFLOW_K8S_NAMESPACE": "gw-batches",
    "GLITCHFLOW_DATA_CLAIM": "buffer-data",
    "GLITCHFLOW_DATASETS_CLAIM": "gw-datasets",
    "GLITCHFLOW_POD_CPU_LIMIT": "3",
    "GLITCHFLOW_POD_MEMORY_REQUEST": "2Gi",
}


@pytest.fixture(scope="module")
def pods(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("pods-home")
    airflow = Airflow(airflow_bin, home, {**base_env(home, airflow_bin), **SETTINGS})
    return airflow.driver("pods", BATCH, ARCHIVE).result


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "base")


def test_export_pod_runs_the_image_on_the_batch(pods: dict[str, Any]) -> None:
    pod = pods["export"]
    assert pod["metadata"]["namespace"] == "gw-batches"
    assert container(pod)["image"] == "registry.example.org/glitchflow:1.4.2"
    assert container(pod)["command"] == ["glitchflow"]
    assert container(pod)["args"] == [
        "export",
        BATCH,
        "--archive-root",
        "/data/archive",
        "--out",
        f"/datasets/{ARCHIVE}/dataset.h5",
    ]


@pytest.mark.parametrize("step", ["export", "train"])
def test_pods_mount_the_data_volume_read_only(pods: dict[str, Any], step: str) -> None:
    pod = pods[step]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container(pod)["volumeMounts"]}
    claim = volumes["data"]["persistentVolumeClaim"]
    assert claim == {"claimName": "buffer-data", "readOnly": True}
    assert mounts["data"] == {"mountPath": "/data", "name": "data", "readOnly": True}
    assert volumes["datasets"]["persistentVolumeClaim"] == {"claimName": "gw-datasets"}
    assert not mounts["datasets"].get("readOnly", False)


@pytest.mark.parametrize("step", ["export", "train"])
def test_pods_have_resources_and_run_as_non_root(pods: dict[str, Any], step: str) -> None:
    base = container(pods[step])
    assert base["resources"] == {
        "requests": {"cpu": "500m", "memory": "2Gi"},
        "limits": {"cpu": "3", "memory": "4Gi"},
    }
    assert base["securityContext"]["runAsNonRoot"] is True
    assert base["securityContext"]["readOnlyRootFilesystem"] is True
    assert pods[step]["spec"]["restartPolicy"] == "Never"


def test_train_pod_trains_on_the_batchs_dataset_and_returns_the_report(
    pods: dict[str, Any],
) -> None:
    pod = pods["train"]
    base = container(pod)
    assert base["image"] == "registry.example.org/trainer:0.9"
    assert base["args"] == [f"/datasets/{ARCHIVE}/dataset.h5", f"/datasets/{ARCHIVE}/model"]
    script = base["command"][2]
    assert script.startswith('glitchflow train-ref --dataset "$1" --out "$2"')
    assert 'cp "$2/report.json" /airflow/xcom/return.json' in script
    sidecars = [c["name"] for c in pod["spec"]["containers"] if c["name"] != "base"]
    assert sidecars == ["airflow-xcom-sidecar"]
