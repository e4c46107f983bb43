"""The manifests agree with the code: settings, ports, probe paths, images, policies, Airflow."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from k8s.manifests import (
    K8S,
    NAMESPACE,
    OVERLAYS,
    OWN_IMAGES,
    ROOT,
    SERVICES,
    arg_value,
    base_env,
    container_env,
    find,
    labels_match,
    localize,
    one,
    pod_templates,
    secret_data,
    service_containers,
)
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Load a service's settings class from the environment; print its values and the variable names
# it reads (so that a misspelt variable, silently ignored by pydantic-settings, is caught).
SETTINGS_PROBE = """
import json, sys
from importlib import import_module

from pydantic import AliasChoices

cls = import_module(sys.argv[1]).Settings
settings = cls()
prefix = cls.model_config.get("env_prefix", "")
names = set()
for field, info in cls.model_fields.items():
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        names.update(c for c in alias.choices if isinstance(c, str))
    elif isinstance(alias, str):
        names.add(alias)
    else:
        names.add((prefix + field).upper())
print(json.dumps({"values": json.loads(settings.model_dump_json()), "names": sorted(names)}))
"""

# Variables a container may carry that are not read by the settings class: who reads them.
OTHER_READERS = {
    "GLITCHFLOW_LOGIC_WORKERS": ROOT / "datastore_logic" / "gunicorn.conf.py",
    "GLITCHFLOW_LOGIC_THREADS": ROOT / "datastore_logic" / "gunicorn.conf.py",
    "PROMETHEUS_MULTIPROC_DIR": ROOT / "datastore_logic" / "gunicorn.conf.py",
}


def load_settings(module: str, env: dict[str, str]) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE, module],
        env={**base_env(), **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"{module} refuses the manifest's env:\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_accepts_its_container_environment(rendered, overlay, tmp_path) -> None:
    docs = rendered[overlay]
    seen = set()
    for name, spec, container in service_containers(docs):
        local = localize(docs, spec, container, tmp_path / name)
        loaded = load_settings(SERVICES[name], local.env)
        for var in local.env:
            if var.startswith("GLITCHFLOW_") or var in OTHER_READERS:
                reader = OTHER_READERS.get(var)
                assert var in loaded["names"] or (reader and var in reader.read_text()), (
                    f"{name}: {var} is read by nobody"
                )
        # Tokens are configured (from the Secret's files), so no service runs open.
        tokens = [k for k in local.env if k.endswith(("TOKEN_FILE", "TOKENS_FILE"))]
        assert tokens, f"{name}: no token configured"
        for var in tokens:
            assert Path(local.env[var]).read_text().strip(), var
        # Every path a setting names is on a volume, not on the read-only root filesystem.
        plain = {v["name"]: v.get("value") for v in container.get("env", [])}
        configmap = one(docs, "ConfigMap", f"{name}-config")["data"]
        for var, value in {**configmap, **plain}.items():
            if value and value.startswith("/"):
                mounts = [m["mountPath"] for m in container["volumeMounts"]]
                assert any(value == m or value.startswith(m + "/") for m in mounts), (
                    f"{name}: {var}={value} is not on a volume"
                )
        seen.add(name)
    assert seen == set(SERVICES)


def test_the_buffer_keeps_data_and_state_on_its_claims(rendered, tmp_path) -> None:
    docs = rendered["prod"]
    sts = one(docs, "StatefulSet", "databuffer")
    spec = sts["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert claims <= set(mounts)
    local = localize(docs, spec, container, tmp_path)
    values = load_settings(SERVICES["databuffer"], local.env)["values"]
    data_dir = Path(values["data_dir"])
    adm = Path(values["admroot"] or data_dir / "adm")
    assert data_dir.is_relative_to(local.path(mounts["data"]))
    assert adm.is_relative_to(local.path(mounts["adm"]))


def _routes(service: str) -> set[str]:
    """The paths the service's app serves, from its route table."""
    if service == "databuffer":
        from databuffer.routes import ROUTES

        return {r.path for r in ROUTES}
    if service == "datastore-logic":
        from datastore_logic import create_app
        from datastore_logic.settings import Settings

        return {r.rule for r in create_app(Settings()).url_map.iter_rules()}
    from glitchflow_api import create_app
    from glitchflow_api.settings import Settings

    app = create_app(Settings())
    # Routes of included routers are not listed as such by newer FastAPI: the OpenAPI paths are.
    gets = {path for path, ops in app.openapi()["paths"].items() if "get" in ops}
    return gets | {r.path for r in app.routes if hasattr(r, "path")}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_probes_and_services_match_the_apps(rendered, overlay) -> None:
    docs = rendered[overlay]
    services = {s["metadata"]["name"]: s for s in find(docs, "Service")}
    for name, _spec, container in service_containers(docs):
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert int(arg_value(container["args"], "--port")) == ports["http"]
        assert arg_value(container["args"], "--host") == "0.0.0.0"
        routes = _routes(name)
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe in container:
                get = container[probe]["httpGet"]
                assert get["path"] in routes, f"{name} {probe}: {get['path']}"
                assert get["port"] in ports or get["port"] in ports.values()
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        service = services[name]
        assert labels_match({"matchLabels": service["spec"]["selector"]}, _pod_labels(docs, name))
        for port in service["spec"]["ports"]:
            target = port["targetPort"]
            assert (ports[target] if isinstance(target, str) else target) in ports.values()


def _pod_labels(docs, workload: str) -> dict[str, str]:
    for doc, template in pod_templates(docs):
        if doc["metadata"]["name"] == workload:
            return template["metadata"]["labels"]
    raise AssertionError(workload)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_upstream_url_names_a_service_and_its_port(rendered, overlay) -> None:
    docs = rendered[overlay]
    services = {s["metadata"]["name"]: s for s in find(docs, "Service")}
    urls = 0
    for doc in find(docs, "ConfigMap"):
        for value in doc["data"].values():
            if value.startswith("http"):
                parts = urlsplit(value)
                service, _, rest = parts.hostname.partition(".")
                assert rest in ("", NAMESPACE, f"{NAMESPACE}.svc", f"{NAMESPACE}.svc.cluster.local")
                assert parts.port in {p["port"] for p in services[service]["spec"]["ports"]}
                urls += 1
    assert urls >= 2


def _prestop_seconds(container: dict[str, Any]) -> float:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return float(command[1])


def _python_constant(path: Path, name: str) -> float:
    """A literal ``name = N`` assignment or ``name=N`` keyword in a module's source."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return float(ast.literal_eval(node.value))
        if isinstance(node, ast.keyword) and node.arg == name:
            return float(ast.literal_eval(node.value))
    raise AssertionError(f"no {name} in {path}")


def test_termination_grace_covers_the_graceful_shutdown(rendered, tmp_path) -> None:
    docs = rendered["prod"]
    # Where a service's settings have no shutdown timeout, the literal its server is started with.
    in_source = {
        "datastore-logic": (ROOT / "datastore_logic" / "gunicorn.conf.py", "graceful_timeout"),
        "glitchflow-api": (ROOT / "glitchflow_api" / "__main__.py", "timeout_graceful_shutdown"),
    }
    for name, spec, container in service_containers(docs):
        local = localize(docs, spec, container, tmp_path / name)
        values = load_settings(SERVICES[name], local.env)["values"]
        shutdown = values.get("shutdown_timeout") or values.get("graceful_timeout")
        if shutdown is None:
            shutdown = _python_constant(*in_source[name])
        need = _prestop_seconds(container) + shutdown
        assert spec["terminationGracePeriodSeconds"] > need, name


# ------------------------------------------------------------------------------------ images


def _images(rendered) -> dict[str, list[dict[str, Any]]]:
    """Image name -> the containers that run it (overlays and the Airflow pod template)."""
    out: dict[str, list[dict[str, Any]]] = {}
    templates = [yaml.safe_load((K8S / "airflow" / "job-pod-template.yaml").read_text())]
    for docs in [rendered["dev"], rendered["prod"], templates]:
        for _workload, template in pod_templates(docs):
            for container in template["spec"]["containers"]:
                if not container["image"].startswith(OWN_IMAGES):
                    continue  # a third-party image (the dev S3 store)
                name = container["image"].rsplit("/", 1)[-1].split(":")[0]
                out.setdefault(name, []).append(container)
    return out


def _dockerfile(name: str) -> tuple[str, list[str]]:
    path = K8S / "images" / name / "Dockerfile"
    assert path.exists(), f"image {name}: no {path.relative_to(ROOT)}"
    text = path.read_text()
    (cmd,) = re.findall(r"^CMD (\[.*\])$", text, re.M)
    return text, json.loads(cmd)


def test_every_image_has_its_dockerfile_and_runs_the_manifest_command(rendered) -> None:
    images = _images(rendered)
    assert {"databuffer", "logic", "api", "gwclient", "dataset"} <= set(images)
    values = yaml.safe_load((K8S / "airflow" / "values.yaml").read_text())
    helm_image = next(e["value"] for e in values["env"] if e["name"] == "GLITCHFLOW_IMAGE")
    assert helm_image.rsplit("/", 1)[-1].split(":")[0] in images
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, containers in images.items():
        text, cmd = _dockerfile(name)
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2, f"{name}: not multi-stage"
        assert re.search(r"^FROM \S+ AS wheels$", text, re.M)
        assert re.search(r"^ARG PYTHON_IMAGE=python:\d+\.\d+\.\d+-slim-\w+$", text, re.M), name
        assert re.search(r"^USER 10001:10001$", text, re.M), name
        for container in containers:
            command = container["command"] + container.get("args", [])
            assert command[0] in scripts, f"{name}: {command[0]} is no console script"
            if "ports" in container:  # a service: the image starts it just like the manifest
                assert cmd == command, name
                assert f"EXPOSE {container['ports'][0]['containerPort']}" in text
            else:
                assert cmd[0] == command[0], name
            # The code the command runs is in the image.
            package = scripts[command[0]].split(":")[0].split(".")[0]
            assert f"COPY {package}/" in text or "COPY . ." in text, f"{name}: no {package}/"


def _closure(requirements: list[Requirement]) -> set[str]:
    """The distributions installing ``requirements`` brings (from this environment's metadata)."""
    seen: set[str] = set()
    todo = [(r.name, frozenset(r.extras)) for r in requirements]
    while todo:
        name, extras = todo.pop()
        key = canonicalize_name(name)
        if (key, extras) in seen:
            continue
        seen.add((key, extras))
        for line in md.requires(name) or []:
            req = Requirement(line)
            env_extras = extras or {""}
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in env_extras):
                todo.append((req.name, frozenset(req.extras)))
    return {name for name, _ in seen}


# What each image's process imports when it starts (its app built, its server's modules loaded).
STARTUP_IMPORTS = {
    "databuffer": (
        "databuffer.__main__ databuffer.app uvicorn.loops.uvloop "
        "uvicorn.protocols.http.httptools_impl",
        "databuffer.app:create_app",
    ),
    "logic": (
        "datastore_logic.__main__ gunicorn.app.wsgiapp gunicorn.workers.gthread",
        "datastore_logic:create_app",
    ),
    "api": ("glitchflow_api.__main__ uvicorn.loops.uvloop", "glitchflow_api:create_app"),
    "gwclient": ("gwclient.cli gwclient.sources gwclient.sender gwclient.synthetic", None),
}
IMPORT_PROBE = """
import importlib, importlib.metadata as md, json, sys
for name in sys.argv[1].split():
    importlib.import_module(name)
if sys.argv[2] != "-":
    module, _, factory = sys.argv[2].partition(":")
    getattr(importlib.import_module(module), factory)()
top = md.packages_distributions()
print(json.dumps(sorted({d for m in list(sys.modules) for d in top.get(m.split(".")[0], [])})))
"""


@pytest.mark.parametrize("image", sorted(STARTUP_IMPORTS))
def test_image_requirements_cover_what_the_process_imports(image, tmp_path) -> None:
    lines = (K8S / "images" / image / "requirements.txt").read_text().splitlines()
    wanted = [Requirement(c) for c in (line.split("#", 1)[0].strip() for line in lines) if c]
    project = [
        Requirement(d)
        for d in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ]
    declared = {canonicalize_name(r.name): r for r in project}
    project_closure = _closure(project)
    for req in wanted:
        key = canonicalize_name(req.name)
        assert key in project_closure, f"{image}: {req.name} is not a project dependency"
        if key in declared:  # the same range as pyproject.toml
            assert str(req.specifier) == str(declared[key].specifier), req
            assert req.extras == declared[key].extras, req
    modules, factory = STARTUP_IMPORTS[image]
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, modules, factory or "-"],
        env={**base_env(), "GLITCHFLOW_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = {canonicalize_name(d) for d in json.loads(result.stdout.splitlines()[-1])}
    # The project's own wheel, and what this venv's site hooks import (not in an image's venv).
    loaded -= {"glitchflow-datastore", "setuptools", "pip"}
    missing = loaded - _closure(wanted)
    assert missing == set(), f"{image} imports {sorted(missing)}, not in its requirements.txt"


# ------------------------------------------------------------------------- network policies


def _pods(docs) -> dict[str, dict[str, str]]:
    return {w["metadata"]["name"]: t["metadata"]["labels"] for w, t in pod_templates(docs)}


def _selected(policy_peer: dict[str, Any], pods: dict[str, dict[str, str]]) -> set[str]:
    """The namespace's pods a peer selects (a peer with a namespaceSelector selects none here)."""
    if "namespaceSelector" in policy_peer or "ipBlock" in policy_peer:
        return set()
    return {n for n, labels in pods.items() if labels_match(policy_peer["podSelector"], labels)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_select_the_pods_they_mean(rendered, overlay) -> None:
    docs = rendered[overlay]
    pods = _pods(docs)
    policies = {p["metadata"]["name"]: p["spec"] for p in find(docs, "NetworkPolicy")}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    every_pod = _pods(rendered["dev"]) | pods  # dev has every kind of pod (the gwclient jobs too)
    for name, spec in policies.items():
        if spec["podSelector"]:
            selected = _selected({"podSelector": spec["podSelector"]}, every_pod)
            assert selected, f"{name} selects no pod"

    def ingress_from(target: str) -> tuple[set[str], list[dict], set[int]]:
        inside: set[str] = set()
        outside: list[dict] = []
        ports: set[int] = set()
        for spec in policies.values():
            if not labels_match(spec["podSelector"], pods[target]):
                continue
            for rule in spec.get("ingress", []):
                for peer in rule["from"]:
                    inside |= _selected(peer, pods)
                    if "namespaceSelector" in peer:
                        outside.append(peer)
                ports |= {p["port"] for p in rule.get("ports", [])}
        return inside, outside, ports

    container_port = {n: c["ports"][0]["containerPort"] for n, _s, c in service_containers(docs)}
    buffer_in, buffer_out, buffer_ports = ingress_from("databuffer")
    assert buffer_in == {"datastore-logic"} and buffer_out == []
    assert buffer_ports == {container_port["databuffer"]}
    logic_in, logic_out, logic_ports = ingress_from("datastore-logic")
    assert logic_in == {"glitchflow-api"} and logic_ports == {container_port["datastore-logic"]}
    assert [_airflow_workers(p) for p in logic_out] == [True]
    api_in, api_out, api_ports = ingress_from("glitchflow-api")
    assert api_ports == {container_port["glitchflow-api"]}
    gwclients = {n for n in pods if n.startswith("gwclient-")}
    assert api_in == gwclients, "only the client pods reach the API from inside"
    assert any(_airflow_workers(p) for p in api_out)
    if overlay == "dev":
        assert len(gwclients) == 3


def _airflow_workers(peer: dict[str, Any]) -> bool:
    """Whether a peer selects the worker pods of the Helm release that values.yaml describes."""
    values_text = (K8S / "airflow" / "values.yaml").read_text()
    release = re.search(r"helm upgrade --install (\S+) ", values_text).group(1)
    namespace = re.search(r"--namespace (\S+)", values_text).group(1)
    airflow = yaml.safe_load(values_text)
    assert airflow["executor"] == "KubernetesExecutor"  # each task in a worker pod
    # The chart labels its worker pods tier=airflow, component=worker, release=<release>.
    labels = {"tier": "airflow", "component": "worker", "release": release}
    ns_labels = {"kubernetes.io/metadata.name": namespace}
    return labels_match(peer.get("namespaceSelector", {}), ns_labels) and labels_match(
        peer.get("podSelector", {}), labels
    )


# ------------------------------------------------------------------------------------ airflow


def test_airflow_may_start_the_job_pods_and_they_find_their_volumes(rendered) -> None:
    docs = rendered["prod"]
    values = yaml.safe_load((K8S / "airflow" / "values.yaml").read_text())
    worker_sa = values["workers"]["serviceAccount"]["name"]
    binding = one(docs, "RoleBinding", "airflow-pod-launcher")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": worker_sa, "namespace": "airflow"}
    ]
    role = one(docs, "Role", binding["roleRef"]["name"])
    allowed = {(res, verb) for r in role["rules"] for res in r["resources"] for verb in r["verbs"]}
    for verb in ("create", "get", "list", "watch", "delete"):
        assert ("pods", verb) in allowed
    assert ("pods/log", "get") in allowed

    pod = yaml.safe_load((K8S / "airflow" / "job-pod-template.yaml").read_text())
    assert pod["metadata"]["namespace"] == NAMESPACE
    assert one(docs, "ServiceAccount", pod["spec"]["serviceAccountName"])
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["GLITCHFLOW_K8S_NAMESPACE"] == NAMESPACE
    assert env["GLITCHFLOW_K8S_SERVICE_ACCOUNT"] == pod["spec"]["serviceAccountName"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == env["GLITCHFLOW_IMAGE"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # The buffer's data claim, read-only: the claim of StatefulSet pod databuffer-0.
    sts = one(docs, "StatefulSet", "databuffer")
    data_claim = volumes["data"]["persistentVolumeClaim"]
    assert data_claim["claimName"] == f"data-{sts['metadata']['name']}-0"
    assert "data" in {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert data_claim["readOnly"] is True and mounts["data"]["readOnly"] is True
    assert env["GLITCHFLOW_DATA_CLAIM"] == data_claim["claimName"]
    datasets = volumes["datasets"]["persistentVolumeClaim"]["claimName"]
    assert one(docs, "PersistentVolumeClaim", datasets)
    assert env["GLITCHFLOW_DATASETS_CLAIM"] == datasets
    assert not mounts["datasets"].get("readOnly")
    # ReadWriteOnce: next to the buffer.
    (term,) = pod["spec"]["affinity"]["podAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert labels_match(term["labelSelector"], _pods(docs)["databuffer"])


def test_airflow_gets_its_connection_from_a_secret_and_dags_from_git(rendered, tree) -> None:
    docs = rendered["airflow"]
    values = yaml.safe_load((K8S / "airflow" / "values.yaml").read_text())
    assert values["dags"]["gitSync"]["enabled"] is True
    assert values["dags"]["gitSync"]["subPath"] == "dags"
    pinned = ROOT / "dags" / "requirements-airflow.txt"
    if pinned.exists():  # the Airflow the DAG is tested with (dags/ lands from its own branch)
        version = re.search(r"^apache-airflow==(\S+)$", pinned.read_text(), re.M).group(1)
        assert values["airflowVersion"] == values["defaultAirflowTag"] == version
    (ref,) = [s for s in values["secret"] if s["envName"] == "AIRFLOW_CONN_GLITCHFLOW_API"]
    secret = one(docs, "Secret", ref["secretName"])
    assert secret["metadata"]["namespace"] == "airflow"
    conn = json.loads(secret_data(docs, ref["secretName"])[ref["secretKey"]])
    assert conn["password"] == tree.tokens.admin
    service, _, rest = conn["host"].partition(".")
    assert rest == f"{NAMESPACE}.svc.cluster.local"
    ports = {p["port"] for p in one(rendered["prod"], "Service", service)["spec"]["ports"]}
    assert conn["port"] in ports and service == "glitchflow-api"
    mounted = {v["configMap"]["name"] for v in values["volumes"] if "configMap" in v}
    assert {cm["metadata"]["name"] for cm in find(docs, "ConfigMap")} >= mounted


@pytest.mark.slow
@pytest.mark.parametrize("image", ["databuffer", "logic", "api", "gwclient"])
def test_image_sources_build_a_wheel_with_the_command_it_runs(image, tmp_path) -> None:
    """What the Dockerfile copies into its wheels stage builds, and the wheel holds the command's
    code and data (templates, gunicorn.conf.py), not the other services'."""
    text, cmd = _dockerfile(image)
    src = tmp_path / "src"
    src.mkdir()
    copied = [line.split()[1:-1] for line in re.findall(r"^COPY (?!--).*$", text, re.M)]
    for source in (s.rstrip("/") for sources in copied for s in sources):
        if source.startswith("k8s/"):
            continue
        path = ROOT / source
        if path.is_dir():
            shutil.copytree(path, src / source, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / source)
    result = subprocess.run(
        # With this environment's setuptools (a test extra): an isolated build would download it,
        # and a broken download failed the test.
        [
            *(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"),
            *("--no-build-isolation", "-w", str(tmp_path), str(src)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    packages = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    module = re.search(rf"^{re.escape(cmd[0])} = (\S+):", scripts, re.M).group(1)
    assert module.split(".")[0] in packages
    # The buffer uploads archives through the archive store library (docs/CONFIGURATION.md).
    libraries = {"glitchflow_archive"} if image == "databuffer" else set()
    assert packages <= {"glitchflow_core", module.split(".")[0], *libraries}, packages
    if image == "logic":
        assert "datastore_logic/gunicorn.conf.py" in names
        assert any(n.startswith("datastore_logic/templates/") for n in names)


# ------------------------------------------------------------------ archive store (archive-s3)

JOB_POD = K8S / "airflow" / "job-pod-template.yaml"


def _store(docs) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dev S3 store's StatefulSet and container (overlays/dev-s3)."""
    sts = one(docs, "StatefulSet", "archive-s3")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    return sts, container


def test_the_buffer_archives_to_the_store_with_the_stores_keys(rendered, tree, tmp_path) -> None:
    docs = rendered["dev-s3"]
    ((_, spec, buffer),) = [s for s in service_containers(docs) if s[0] == "databuffer"]
    values = load_settings(SERVICES["databuffer"], localize(docs, spec, buffer, tmp_path).env)
    values = values["values"]
    # The endpoint is the store's Service, whose port leads to the store's S3 port.
    endpoint = urlsplit(values["archive_s3_endpoint"])
    service = one(docs, "Service", endpoint.hostname)
    sts, store = _store(docs)
    assert labels_match(
        {"matchLabels": service["spec"]["selector"]}, sts["spec"]["template"]["metadata"]["labels"]
    )
    (port,) = [p for p in service["spec"]["ports"] if p["port"] == endpoint.port]
    assert {p["name"]: p["containerPort"] for p in store["ports"]}[port["targetPort"]] == 8333
    assert "-s3.port=8333" in store["args"]
    # The keys come from the Secret (never the ConfigMap), the same the store's identity uses.
    assert values["archive_s3_access_key_id"] == tree.tokens.s3_key_id
    assert values["archive_s3_secret_access_key"] == tree.tokens.s3_secret
    _plain, from_secrets = container_env(docs, store)
    assert from_secrets["AWS_ACCESS_KEY_ID"] == tree.tokens.s3_key_id
    assert from_secrets["AWS_SECRET_ACCESS_KEY"] == tree.tokens.s3_secret
    configmap = one(docs, "ConfigMap", "glitchflow-archive-s3")["data"]
    assert not [k for k in configmap if re.search(r"KEY_ID|SECRET", k)]
    # The store makes at start the bucket the buffer uploads to.
    (bucket_var,) = [e for e in store["env"] if e["name"] == "S3_BUCKET"]
    ref = bucket_var["valueFrom"]["configMapKeyRef"]
    assert ref["name"] == "glitchflow-archive-s3"
    assert configmap[ref["key"]] == values["archive_s3_bucket"]
    assert "-bucket=$(S3_BUCKET)" in store["args"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_without_the_component_archives_stay_local(rendered, overlay, tmp_path) -> None:
    docs = rendered[overlay]
    ((_, spec, buffer),) = [s for s in service_containers(docs) if s[0] == "databuffer"]
    values = load_settings(SERVICES["databuffer"], localize(docs, spec, buffer, tmp_path).env)
    assert values["values"]["archive_s3_bucket"] is None
    assert not find(docs, "ConfigMap", "glitchflow-archive-s3")


def test_only_the_buffer_and_the_job_pods_reach_the_store(rendered) -> None:
    docs = rendered["dev-s3"]
    pods = _pods(docs)
    pods["job"] = yaml.safe_load(JOB_POD.read_text())["metadata"]["labels"]
    policies = [p["spec"] for p in find(docs, "NetworkPolicy")]
    _sts, store = _store(docs)
    store_port = store["ports"][0]["containerPort"]

    admitted: set[str] = set()
    ports: set[int] = set()
    for spec in policies:
        if labels_match(spec["podSelector"], pods["archive-s3"]):
            for rule in spec.get("ingress", []):
                for peer in rule["from"]:
                    assert "namespaceSelector" not in peer and "ipBlock" not in peer
                    admitted |= _selected(peer, pods)
                ports |= {p["port"] for p in rule["ports"]}
    assert admitted == {"databuffer", "job"}
    assert ports == {store_port}

    may_reach: set[str] = set()
    for spec in policies:
        for rule in spec.get("egress", []):
            if any(
                "podSelector" in peer
                and "namespaceSelector" not in peer
                and labels_match(peer["podSelector"], pods["archive-s3"])
                for peer in rule["to"]
            ):
                assert {p["port"] for p in rule["ports"]} == {store_port}
                may_reach |= {
                    n for n, labels in pods.items() if labels_match(spec["podSelector"], labels)
                }
    assert may_reach == {"databuffer", "job"}
