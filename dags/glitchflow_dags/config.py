"""Settings of the Glitchflow DAG.

Two kinds, because the DAG file must parse without network:

- `DagSettings`, read when the DAG file is parsed, from the environment only (an Airflow Variable
  given as ``AIRFLOW_VAR_<NAME>`` counts): the runner (it shapes the graph), the sensor's interval
  and timeout, retries, and the pod settings of the Kubernetes runner.
- `run_setting`, read by a task when it runs: an Airflow Variable of that name, else the
  environment, else the default (the CLI, the archive root, the output folder, the API user).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

CONN_ID = "glitchflow_api"
"""The Airflow connection (HTTP) with the API's address and admin token (password)."""

RUNNERS = ("local", "kubernetes")
DATA_AFFINITY_DEFAULT = {"app.kubernetes.io/name": "databuffer"}
"""The labels of the buffer's pod (k8s/base), next to which the pods run by default."""


class SettingError(ValueError):
    """Raised when a setting has a value the DAG cannot use; the message names the variable."""


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        value = env.get(f"AIRFLOW_VAR_{name}")
    return value.strip() if value is not None and value.strip() else None


def _labels(env: Mapping[str, str], name: str) -> dict[str, str] | None:
    """``key=value,key=value`` labels; ``none`` for none."""
    raw = _env(env, name)
    if raw is None:
        return dict(DATA_AFFINITY_DEFAULT)
    if raw.lower() == "none":
        return None
    pairs = [part.strip().partition("=") for part in raw.split(",")]
    if any(not key.strip() or sep != "=" or not value.strip() for key, sep, value in pairs):
        raise SettingError(f"{name}={raw!r}: must be key=value[,key=value] or none")
    return {key.strip(): value.strip() for key, _, value in pairs}


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = _env(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r}: not a number") from None
    if not value >= minimum:
        raise SettingError(f"{name}={raw!r}: must be at least {minimum:g}")
    return value


@dataclass(frozen=True)
class DagSettings:
    """What the DAG file needs when it is parsed; see `from_env` for the variables."""

    runner: Literal["local", "kubernetes"] = "local"
    poke_interval: float = 30.0
    sensor_timeout: float = 7 * 24 * 3600.0
    retries: int = 3
    retry_delay: float = 30.0
    api_timeout: float = 30.0
    image: str = "glitchflow-datastore:0.1.0"
    trainer_image: str = "glitchflow-datastore:0.1.0"
    trainer_command: str = "glitchflow train-ref"
    namespace: str = "glitchflow"
    data_claim: str = "glitchflow-data"
    datasets_claim: str = "glitchflow-datasets"
    service_account: str | None = None
    cpu_request: str = "500m"
    memory_request: str = "1Gi"
    cpu_limit: str = "2"
    memory_limit: str = "4Gi"
    data_affinity: dict[str, str] | None = field(
        default_factory=lambda: dict(DATA_AFFINITY_DEFAULT)
    )
    archive_configmap: str | None = None
    archive_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DagSettings:
        """Read ``GLITCHFLOW_RUNNER``, ``GLITCHFLOW_POKE_INTERVAL``, ... (see docs/AIRFLOW.md).

        Raises
        ------
        SettingError
            A value is not usable; the message names the variable.
        """
        env = os.environ if env is None else env
        runner = (_env(env, "GLITCHFLOW_RUNNER") or "local").lower()
        if runner not in RUNNERS:
            raise SettingError(f"GLITCHFLOW_RUNNER={runner!r}: must be local or kubernetes")
        pods = {
            field: value
            for field, name in (
                ("image", "GLITCHFLOW_IMAGE"),
                ("trainer_image", "GLITCHFLOW_TRAINER_IMAGE"),
                ("trainer_command", "GLITCHFLOW_TRAINER_COMMAND"),
                ("namespace", "GLITCHFLOW_K8S_NAMESPACE"),
                ("data_claim", "GLITCHFLOW_DATA_CLAIM"),
                ("datasets_claim", "GLITCHFLOW_DATASETS_CLAIM"),
                ("service_account", "GLITCHFLOW_K8S_SERVICE_ACCOUNT"),
                ("cpu_request", "GLITCHFLOW_POD_CPU_REQUEST"),
                ("memory_request", "GLITCHFLOW_POD_MEMORY_REQUEST"),
                ("cpu_limit", "GLITCHFLOW_POD_CPU_LIMIT"),
                ("memory_limit", "GLITCHFLOW_POD_MEMORY_LIMIT"),
                ("archive_configmap", "GLITCHFLOW_ARCHIVE_CONFIGMAP"),
                ("archive_secret", "GLITCHFLOW_ARCHIVE_SECRET"),
            )
            if (value := _env(env, name)) is not None
        }
        if "image" in pods and "trainer_image" not in pods:
            pods["trainer_image"] = pods["image"]
        return cls(
            runner=runner,  # type: ignore[arg-type]
            poke_interval=_number(env, "GLITCHFLOW_POKE_INTERVAL", cls.poke_interval, 0.1),
            sensor_timeout=_number(env, "GLITCHFLOW_SENSOR_TIMEOUT", cls.sensor_timeout, 1),
            retries=int(_number(env, "GLITCHFLOW_RETRIES", cls.retries, 0)),
            retry_delay=_number(env, "GLITCHFLOW_RETRY_DELAY", cls.retry_delay, 0),
            api_timeout=_number(env, "GLITCHFLOW_API_TIMEOUT", cls.api_timeout, 0.1),
            data_affinity=_labels(env, "GLITCHFLOW_DATA_AFFINITY"),
            **pods,
        )


def run_setting(name: str, default: str | None = None) -> str | None:
    """At run time: the Airflow Variable ``name``, else the environment, else ``default``."""
    from airflow.sdk import Variable

    value = Variable.get(name, default=None)
    if value is None or not str(value).strip():
        value = os.environ.get(name)
    if value is None or not str(value).strip():
        return default
    return str(value).strip()
