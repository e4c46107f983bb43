"""k8s/ renders, every object is valid for the pinned Kubernetes version, and meets the rules."""

from __future__ import annotations

import base64
import re
from typing import Any

import kubernetes_validate
import pytest
import yaml
from k8s.manifests import (
    K8S,
    K8S_VERSION,
    NAMESPACE,
    OVERLAYS,
    OWN_IMAGES,
    PROJECT_VERSION,
    Tokens,
    find,
    make_tree,
    one,
    pod_templates,
    render,
)

POD_TEMPLATE = K8S / "airflow" / "job-pod-template.yaml"


def _all_objects(rendered: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    out = [(name, doc) for name, docs in rendered.items() for doc in docs]
    out.append(("airflow pod template", yaml.safe_load(POD_TEMPLATE.read_text())))
    return out


def test_every_object_is_valid_for_the_pinned_kubernetes_version(rendered) -> None:
    errors = []
    for where, doc in _all_objects(rendered):
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert errors == []


def test_a_misspelt_field_is_caught(rendered) -> None:
    """The validation is strict: it would catch a typo in a manifest."""
    sts = dict(one(rendered["dev"], "StatefulSet", "databuffer"))
    sts["spec"] = {**sts["spec"], "replica": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_has_the_services_in_the_namespace(rendered, overlay) -> None:
    docs = rendered[overlay]
    assert one(docs, "Namespace", NAMESPACE)
    for doc in docs:
        if doc["kind"] not in ("Namespace",):
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]
    buffer = one(docs, "StatefulSet", "databuffer")
    assert buffer["spec"]["replicas"] == 1
    assert buffer["spec"]["serviceName"] == "databuffer"
    assert one(docs, "Service", "databuffer")["spec"]["clusterIP"] == "None"
    claims = {c["metadata"]["name"] for c in buffer["spec"]["volumeClaimTemplates"]}
    assert claims == {"data", "adm"}
    assert buffer["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 10001
    for name in ("datastore-logic", "glitchflow-api"):
        assert one(docs, "Deployment", name)
        assert one(docs, "Service", name)
    assert one(docs, "PodDisruptionBudget", "glitchflow-api")


def test_dev_is_small_and_prod_is_large(rendered) -> None:
    dev, prod = rendered["dev"], rendered["prod"]
    assert one(dev, "Deployment", "glitchflow-api")["spec"]["replicas"] == 1
    assert one(prod, "Deployment", "glitchflow-api")["spec"]["replicas"] >= 3
    hpa = one(prod, "HorizontalPodAutoscaler", "glitchflow-api")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "glitchflow-api"
    assert hpa["spec"]["minReplicas"] >= 2
    assert not find(dev, "HorizontalPodAutoscaler") and not find(dev, "Ingress")
    ingress = one(prod, "Ingress", "glitchflow-api")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "glitchflow-api"
    assert backend["port"]["name"] in {
        p["name"] for p in one(prod, "Service", "glitchflow-api")["spec"]["ports"]
    }
    assert ingress["spec"]["rules"][0]["host"] == ingress["spec"]["tls"][0]["hosts"][0]
    assert "HOST" not in ingress["spec"]["rules"][0]["host"]

    def sizes(docs):
        sts = one(docs, "StatefulSet", "databuffer")
        claims = sts["spec"]["volumeClaimTemplates"] + find(docs, "PersistentVolumeClaim")
        return {
            c["metadata"]["name"]: _gib(c["spec"]["resources"]["requests"]["storage"])
            for c in claims
        }

    small, large = sizes(dev), sizes(prod)
    assert small.keys() == large.keys()
    assert all(small[name] < large[name] for name in small), (small, large)
    # prod's storage class is set once (cluster-settings.yaml) and lands on every claim.
    settings = yaml.safe_load((K8S / "overlays/prod/cluster-settings.yaml").read_text())
    sts = one(prod, "StatefulSet", "databuffer")
    for claim in sts["spec"]["volumeClaimTemplates"] + find(prod, "PersistentVolumeClaim"):
        assert claim["spec"]["storageClassName"] == settings["data"]["storageClassName"]
    assert not find(prod, "ConfigMap", "cluster-settings"), "local-config must not be applied"


def _gib(quantity: str) -> float:
    number, unit = re.fullmatch(r"(\d+)([MG]i)", quantity).groups()
    return int(number) / (1024 if unit == "Mi" else 1)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down_and_sized(rendered, overlay) -> None:
    pods = list(pod_templates(rendered[overlay]))
    pods.append((None, {"spec": yaml.safe_load(POD_TEMPLATE.read_text())["spec"]}))
    assert len(pods) >= 4
    for _workload, template in pods:
        spec = template["spec"]
        pod_ctx = spec["securityContext"]
        assert pod_ctx["runAsNonRoot"] is True
        assert pod_ctx["runAsUser"] != 0
        assert pod_ctx["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec.get("automountServiceAccountToken") is False
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"]["drop"] == ["ALL"]
            assert not ctx.get("privileged")
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) >= {"cpu", "memory"}, container["name"]
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{container['name']}: /tmp"
            image = container["image"]
            if image.startswith(OWN_IMAGES):
                assert re.fullmatch(r"[\w./-]+:\d+\.\d+\.\d+", image), image
                assert image.rsplit(":", 1)[1] == PROJECT_VERSION
            else:  # a third-party image, pinned to a release
                assert re.fullmatch(r"[\w./-]+:\d+(\.\d+)+", image), image


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_secrets_are_referenced_never_inlined(rendered, tree, overlay) -> None:
    docs = rendered[overlay]
    tokens = tree.tokens.all()
    secret_names = {d["metadata"]["name"] for d in find(docs, "Secret")}
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        leaked = [t for t in tokens if t in text or base64.b64encode(t.encode()).decode() in text]
        assert leaked == [], f"{doc['kind']}/{doc['metadata']['name']} holds a token"
    for doc in find(docs, "ConfigMap"):
        for key in doc["data"]:
            assert not re.search(r"TOKENS?$|PASSWORD|SECRET", key), f"{key} in a ConfigMap"
    referenced = 0
    for _workload, template in pod_templates(docs):
        spec = template["spec"]
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                assert name in secret_names, name
                data = one(docs, "Secret", name.rsplit("-", 1)[0])["data"]
                assert {i["key"] for i in volume["secret"].get("items", [])} <= set(data)
                referenced += 1
        for container in spec["containers"]:
            for var in container.get("env", []):
                if re.search(r"TOKEN|PASSWORD|SECRET", var["name"]):
                    assert "value" not in var, f"{var['name']} inlined"
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secret_names
                    secret = one(docs, "Secret", ref["name"].rsplit("-", 1)[0])
                    assert ref["key"] in secret["data"]
                    referenced += 1
    assert referenced >= 3


def test_no_real_secret_is_committed() -> None:
    """Only the templates are in git: k8s/.gitignore keeps the filled-in copies out."""
    ignored = (K8S / ".gitignore").read_text().split()
    assert "/overlays/*/secrets/" in ignored and "/airflow/secrets/" in ignored
    for example in (K8S / "secrets.example").iterdir():
        if example.suffix != ".txt":
            assert example.read_text().strip() == "change-me", example.name
    for example in (K8S / "airflow" / "connections.example").iterdir():
        assert '"password": "change-me"' in example.read_text()


def test_the_overlays_need_their_secret_files(tmp_path) -> None:
    """Without the operator's secret files there is nothing to deploy (no silent default)."""
    tree = make_tree(tmp_path, Tokens())
    (tree.root / "overlays" / "prod" / "secrets" / "service-token").unlink()
    with pytest.raises(AssertionError, match="service-token"):
        render(tree.root / "overlays" / "prod")
