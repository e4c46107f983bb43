"""The Kubernetes runner: export and train as pods (KubernetesPodOperator).

Each pod mounts the buffer's data volume read-only at `DATA_MOUNT` (the archive is under
``archive/``) and the datasets volume at `DATASETS_MOUNT`, where the batch's dataset and model go
(``<archive folder>/dataset.h5``, ``<archive folder>/model/``). The batch id and folder are
arguments, so a pod's spec says which batch it works on. The train pod hands its report back
through the operator's XCom sidecar.

`manifest` renders an operator's pod offline (no cluster needed), for tests and for ``k8s/``.
Importing this module needs only Airflow with the cncf-kubernetes provider.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import models as k8s

from glitchflow_dags.config import DagSettings

DATA_MOUNT = "/data"
DATASETS_MOUNT = "/datasets"
XCOM_RETURN = "/airflow/xcom/return.json"
LABELS = {"app.kubernetes.io/part-of": "glitchflow", "app.kubernetes.io/component": "batch"}


def pod_paths(archive: str) -> dict[str, str]:
    """Archive root, dataset file and model folder of a batch, as the pods see them."""
    return {
        "archive_root": f"{DATA_MOUNT}/archive",
        "dataset": f"{DATASETS_MOUNT}/{archive}/dataset.h5",
        "model_dir": f"{DATASETS_MOUNT}/{archive}/model",
    }


def _common(settings: DagSettings) -> dict[str, Any]:
    """What both pods share: namespace, volumes, resources, a non-root read-only container."""
    return {
        "namespace": settings.namespace,
        "service_account_name": settings.service_account,
        "labels": LABELS,
        "volumes": [
            k8s.V1Volume(
                name="data",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.data_claim, read_only=True
                ),
            ),
            k8s.V1Volume(
                name="datasets",
                persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                    claim_name=settings.datasets_claim
                ),
            ),
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource()),
        ],
        "volume_mounts": [
            k8s.V1VolumeMount(name="data", mount_path=DATA_MOUNT, read_only=True),
            k8s.V1VolumeMount(name="datasets", mount_path=DATASETS_MOUNT),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),  # noqa: S108  gwpy's cache
        ],
        "env_vars": {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp"},  # noqa: S108
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": settings.cpu_request, "memory": settings.memory_request},
            limits={"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        ),
        "container_security_context": k8s.V1SecurityContext(
            run_as_non_root=True,
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            capabilities=k8s.V1Capabilities(drop=["ALL"]),
        ),
        "security_context": k8s.V1PodSecurityContext(run_as_non_root=True, run_as_user=10001),
        "on_finish_action": "delete_succeeded_pod",
        "get_logs": True,
    }


def export_operator(
    settings: DagSettings, batch: str, archive: str, task_id: str = "export_pod"
) -> KubernetesPodOperator:
    """``glitchflow export BATCH`` in a pod; ``batch`` and ``archive`` may be Jinja templates."""
    paths = pod_paths(archive)
    return KubernetesPodOperator(
        task_id=task_id,
        name="glitchflow-export",
        image=settings.image,
        cmds=["glitchflow"],
        arguments=[
            "export",
            batch,
            "--archive-root",
            paths["archive_root"],
            "--out",
            paths["dataset"],
        ],
        **_common(settings),
    )


def train_operator(
    settings: DagSettings, archive: str, task_id: str = "train_pod"
) -> KubernetesPodOperator:
    """The trainer in a pod: ``TRAINER_COMMAND --dataset D --out M``, its report pushed to XCom.

    The trainer image may be any image whose command takes ``--dataset`` and ``--out`` and writes
    ``report.json`` into the ``--out`` folder; ``glitchflow train-ref`` is the reference one.
    """
    paths = pod_paths(archive)
    script = (
        f'{settings.trainer_command} --dataset "$1" --out "$2" && cp "$2/report.json" {XCOM_RETURN}'
    )
    return KubernetesPodOperator(
        task_id=task_id,
        name="glitchflow-train",
        image=settings.trainer_image,
        cmds=["/bin/sh", "-c", script, "train"],
        arguments=[paths["dataset"], paths["model_dir"]],
        do_xcom_push=True,
        **_common(settings),
    )


def manifest(operator: KubernetesPodOperator) -> dict[str, Any]:
    """The operator's pod as a Kubernetes manifest (a dict), built offline."""
    from kubernetes.client import ApiClient

    pod = operator.build_pod_request_obj(dry_run=True)
    return ApiClient().sanitize_for_serialization(pod)
