"""The Kubernetes runner: export and train as pods (KubernetesPodOperator).

Each pod mounts the buffer's data volume read-only at `DATA_MOUNT` (the archive is under
``archive/``) and the datasets volume at `DATASETS_MOUNT`, where the batch's dataset and model go
(``<archive folder>/dataset.h5``, ``<archive folder>/model/``). The batch id and folder are
arguments, so a pod's spec says which batch it works on. The train pod hands its report back
through the operator's XCom sidecar.

The pods are locked down as the ``restricted`` Pod Security Standard of namespace glitchflow asks
(uid `RUN_AS`, ``fsGroup`` so that they may write the datasets volume, seccomp, no capabilities,
the XCom sidecar too) and, the data volume being ReadWriteOnce, scheduled next to the pod that
holds it (``GLITCHFLOW_DATA_AFFINITY``). ``k8s/airflow/job-pod-template.yaml`` is the export pod
written out; tests/dags/test_pods.py holds the two together. With the archive tier in object
storage, the pods take its settings from a ConfigMap and its keys from a Secret
(``GLITCHFLOW_ARCHIVE_CONFIGMAP``, ``GLITCHFLOW_ARCHIVE_SECRET``), as the buffer does.

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
ARCHIVE_SECRET_KEYS = {
    "GLITCHFLOW_ARCHIVE_S3_ACCESS_KEY_ID": "access-key-id",
    "GLITCHFLOW_ARCHIVE_S3_SECRET_ACCESS_KEY": "secret-access-key",
}
"""The archive store's keys: the variables the pods get and the keys of the Secret they come from
(the Secret of ``k8s/components/archive-s3``, which gives the buffer the same two)."""
XCOM_RETURN = "/airflow/xcom/return.json"
LABELS = {
    "app.kubernetes.io/part-of": "glitchflow",
    "app.kubernetes.io/name": "glitchflow-batch",
    "app.kubernetes.io/component": "batch",
}
RUN_AS = 10001
"""The uid, gid and fsGroup of the images (``USER 10001:10001``) and of every glitchflow pod."""
TMP_SIZE = "4Gi"
"""Room for gwpy's and matplotlib's caches in ``/tmp`` (the root filesystem is read-only)."""


def pod_paths(archive: str) -> dict[str, str]:
    """Archive root, dataset file and model folder of a batch, as the pods see them."""
    return {
        "archive_root": f"{DATA_MOUNT}/archive",
        "dataset": f"{DATASETS_MOUNT}/{archive}/dataset.h5",
        "model_dir": f"{DATASETS_MOUNT}/{archive}/model",
    }


def _locked_down() -> k8s.V1SecurityContext:
    """A container's context: read-only root, no privilege escalation, no capabilities."""
    return k8s.V1SecurityContext(
        run_as_non_root=True,
        read_only_root_filesystem=True,
        allow_privilege_escalation=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
    )


def _affinity(selector: dict[str, str] | None) -> k8s.V1Affinity | None:
    """On the node of the pod ``selector`` matches (the one holding the ReadWriteOnce volume)."""
    if not selector:
        return None
    term = k8s.V1PodAffinityTerm(
        topology_key="kubernetes.io/hostname",
        label_selector=k8s.V1LabelSelector(match_labels=selector),
    )
    return k8s.V1Affinity(
        pod_affinity=k8s.V1PodAffinity(required_during_scheduling_ignored_during_execution=[term])
    )


def _env(settings: DagSettings) -> list[k8s.V1EnvVar]:
    """Caches in /tmp, and the archive store's keys from its Secret (when configured)."""
    env = [
        k8s.V1EnvVar(name="HOME", value="/tmp"),  # noqa: S108  gwpy's and astropy's caches
        k8s.V1EnvVar(name="MPLCONFIGDIR", value="/tmp"),  # noqa: S108
    ]
    if settings.archive_secret:
        for name, key in ARCHIVE_SECRET_KEYS.items():
            ref = k8s.V1SecretKeySelector(name=settings.archive_secret, key=key)
            env.append(k8s.V1EnvVar(name=name, value_from=k8s.V1EnvVarSource(secret_key_ref=ref)))
    return env


def _env_from(settings: DagSettings) -> list[k8s.V1EnvFromSource]:
    """The archive store's settings, from its ConfigMap (when configured)."""
    if not settings.archive_configmap:
        return []
    source = k8s.V1ConfigMapEnvSource(name=settings.archive_configmap)
    return [k8s.V1EnvFromSource(config_map_ref=source)]


def _common(settings: DagSettings) -> dict[str, Any]:
    """What both pods share: namespace, volumes, resources, a non-root read-only container."""
    return {
        "namespace": settings.namespace,
        "service_account_name": settings.service_account,
        "automount_service_account_token": False,
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
            k8s.V1Volume(name="tmp", empty_dir=k8s.V1EmptyDirVolumeSource(size_limit=TMP_SIZE)),
        ],
        "volume_mounts": [
            k8s.V1VolumeMount(name="data", mount_path=DATA_MOUNT, read_only=True),
            k8s.V1VolumeMount(name="datasets", mount_path=DATASETS_MOUNT),
            k8s.V1VolumeMount(name="tmp", mount_path="/tmp"),  # noqa: S108  gwpy's cache
        ],
        "env_vars": _env(settings),
        "env_from": _env_from(settings),
        "container_resources": k8s.V1ResourceRequirements(
            requests={"cpu": settings.cpu_request, "memory": settings.memory_request},
            limits={"cpu": settings.cpu_limit, "memory": settings.memory_limit},
        ),
        "container_security_context": _locked_down(),
        "xcom_sidecar_container_security_context": _locked_down(),
        "security_context": k8s.V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
        ),
        "affinity": _affinity(settings.data_affinity),
        # No Service's address in the environment (the template's enableServiceLinks: false).
        "full_pod_spec": k8s.V1Pod(spec=k8s.V1PodSpec(containers=[], enable_service_links=False)),
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
