"""The Kubernetes runner's pods, built offline (``build_pod_request_obj(dry_run=True)``), and
the same pods with the Helm values' settings against ``k8s/airflow/job-pod-template.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from airflow_harness import Airflow, base_env

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "k8s" / "airflow" / "job-pod-template.yaml"
VALUES = ROOT / "k8s" / "airflow" / "values.yaml"
ARCHIVE_COMPONENT = ROOT / "k8s" / "components" / "archive-s3"
XCOM = {"xcom", "airflow-xcom-sidecar"}

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
    "GLITCHFLOW_DATA_AFFINITY": "none",
    "GLITCHFLOW_ARCHIVE_CONFIGMAP": "glitchflow-archive-s3",
    "GLITCHFLOW_ARCHIVE_SECRET": "glitchflow-archive-s3",
}


def build_pods(airflow_bin: Path, home: Path, settings: dict[str, str]) -> dict[str, Any]:
    """``{"export": pod, "train": pod}`` as the DAG's operators build them with ``settings``."""
    airflow = Airflow(airflow_bin, home, {**base_env(home, airflow_bin), **settings})
    return airflow.driver("pods", BATCH, ARCHIVE).result


@pytest.fixture(scope="module")
def pods(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_pods(airflow_bin, tmp_path_factory.mktemp("pods-home"), SETTINGS)


@pytest.fixture(scope="module")
def helm_pods(airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The pods with the settings k8s/airflow/values.yaml gives Airflow."""
    values = yaml.safe_load(VALUES.read_text())
    settings = {e["name"]: e["value"] for e in values["env"]}
    return build_pods(airflow_bin, tmp_path_factory.mktemp("helm-pods-home"), settings)


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


def without_xcom(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Volumes, mounts or containers other than the XCom sidecar's."""
    return [item for item in items if item["name"] not in XCOM]


@pytest.mark.parametrize("step", ["export", "train"])
def test_pods_agree_with_the_job_pod_template(helm_pods: dict[str, Any], step: str) -> None:
    template = yaml.safe_load(TEMPLATE.read_text())
    pod = helm_pods[step]
    assert pod["metadata"]["namespace"] == template["metadata"]["namespace"]
    assert pod["metadata"]["labels"].items() >= template["metadata"]["labels"].items()
    for key in (
        "securityContext",  # fsGroup, uid/gid, seccomp
        "affinity",  # next to the buffer: its data volume is ReadWriteOnce
        "serviceAccountName",
        "automountServiceAccountToken",
        "enableServiceLinks",
        "restartPolicy",
    ):
        assert pod["spec"].get(key) == template["spec"][key], key
    # The same volumes: the data claim read-only, the datasets claim, /tmp.
    assert without_xcom(pod["spec"]["volumes"]) == template["spec"]["volumes"]
    (want,) = template["spec"]["containers"]
    base = container(pod)
    assert without_xcom(base["volumeMounts"]) == want["volumeMounts"]
    for key in ("image", "resources", "securityContext", "env"):
        assert base[key] == want[key], key
    if step == "export":
        args = [a.replace("BATCH", BATCH).replace("ARCHIVE", ARCHIVE) for a in want["args"]]
        assert (base["command"], base["args"]) == (want["command"], args)
    # Every container is locked down as the template's, the XCom sidecar too (the namespace
    # enforces the restricted Pod Security Standard).
    for other in pod["spec"]["containers"]:
        assert other["securityContext"] == want["securityContext"], other["name"]


def test_pods_without_affinity_and_with_the_archive_store(pods: dict[str, Any]) -> None:
    """``GLITCHFLOW_DATA_AFFINITY=none`` (ReadWriteMany), and the archive store's settings and
    keys as the archive-s3 component gives them to the buffer."""
    # The component's JSON patch of the buffer's container: what it adds to envFrom and env.
    patch = yaml.safe_load((ARCHIVE_COMPONENT / "databuffer-archive-s3.yaml").read_text())
    added = {op["path"].rsplit("/containers/0/", 1)[1]: op["value"] for op in patch}
    buffer = {"envFrom": [added["envFrom/-"]], "env": added["env"]}
    for step in ("export", "train"):
        pod = pods[step]
        assert not pod["spec"].get("affinity")  # none, or the operator's empty one
        base = container(pod)
        assert base["envFrom"] == [{"configMapRef": {"name": "glitchflow-archive-s3"}}]
        assert buffer["envFrom"] == base["envFrom"]
        keys = [e for e in base["env"] if "valueFrom" in e]
        assert keys == buffer["env"]
        assert {e["valueFrom"]["secretKeyRef"]["name"] for e in keys} == {"glitchflow-archive-s3"}
