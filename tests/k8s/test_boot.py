"""Boot the dev overlay: each service started with its container's command, arguments and
environment as rendered, cluster names mapped to 127.0.0.1 and free ports, volumes to folders;
then a gwclient Job's container streams, and the batch is frozen and flushed through the API.
The dev-s3 overlay boots its SeaweedFS store first, and the flushed batch goes to its bucket."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import yaml
from botocore.exceptions import BotoCoreError, ClientError
from k8s.manifests import (
    K8S,
    NAMESPACE,
    arg_value,
    base_env,
    console_script,
    container_env,
    find,
    localize,
    one,
    pod_templates,
    secret_data,
    service_containers,
)
from ports import free_port
from seaweed import PORT_FLAGS, weed_binary

from glitchflow_archive import S3Archive, S3Location

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(300)]

START_ORDER = ("databuffer", "datastore-logic", "glitchflow-api")


class Process:
    """One container's command run here, with exactly the environment it was given."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                argv,
                env={**base_env(), **env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def wait_ready(self, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, f"{self.name} exited:\n{self.output()}"
                try:
                    if client.get(url).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"{self.name} not ready at {url}:\n{self.output()}")

    def terminate(self, timeout: float) -> int:
        """SIGTERM, as the kubelet sends it; the exit status (killed after ``timeout``)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            return -9


def _hosts(docs, local_port: dict[str, int]) -> dict[str, str]:
    """``http://<cluster name>:<service port>`` -> ``http://127.0.0.1:<local port>``."""
    hosts = {}
    for service in find(docs, "Service"):
        name = service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            for dns in (
                f"{name}.{NAMESPACE}.svc.cluster.local",
                f"{name}.{NAMESPACE}.svc",
                f"{name}.{NAMESPACE}",
                name,
            ):
                hosts[f"http://{dns}:{port['port']}"] = f"http://127.0.0.1:{local_port[name]}"
    return hosts


def _local_args(args: list[str], port: int) -> list[str]:
    """The container's arguments, listening on 127.0.0.1 and a free port instead."""
    out = list(args)
    out[out.index("--host") + 1] = "127.0.0.1"
    out[out.index("--port") + 1] = str(port)
    return out


def _chunk(t0: float, seed: int, n: int = 16384) -> bytes:
    h = np.random.default_rng(seed).normal(scale=1e-21, size=n)
    return orjson.dumps({"h": h, "t": [t0, 1 / n]}, option=orjson.OPT_SERIALIZE_NUMPY)


def _configmap_refs(docs, container: dict) -> dict[str, str]:
    """The container's variables taken from one ConfigMap key each (configMapKeyRef)."""
    out = {}
    for var in container.get("env", []):
        ref = var.get("valueFrom", {}).get("configMapKeyRef")
        if ref:
            out[var["name"]] = one(docs, "ConfigMap", ref["name"])["data"][ref["key"]]
    return out


def _start_store(docs, tmp: Path, port: int) -> tuple[Process, S3Location]:
    """overlays/dev-s3's store, ``weed mini`` with its container's arguments and environment (the
    identity from the Secret, the bucket from the ConfigMap); data in a folder, S3 on ``port``."""
    sts = one(docs, "StatefulSet", "archive-s3")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["weed"]
    env = {**container_env(docs, container)[1], **_configmap_refs(docs, container)}
    args = []
    for arg in container["args"]:
        arg = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], arg)  # as the kubelet does
        flag, _, _value = arg.partition("=")
        local = {
            "-dir": f"-dir={tmp / 'archive-s3'}",
            "-ip.bind": "-ip.bind=127.0.0.1",
            "-s3.port": f"-s3.port={port}",
        }
        args.append(local.get(flag, arg))
    # In its pod weed mini has the ports to itself; here other tests run too.
    args += [f"-{flag}={free_port()}" for flag in PORT_FLAGS if flag != "s3.port"]
    (tmp / "archive-s3").mkdir()
    proc = Process("archive-s3", [weed_binary(), *args], env, tmp / "archive-s3.log")
    store = S3Location(
        endpoint=f"http://127.0.0.1:{port}",
        bucket=env["S3_BUCKET"],
        access_key_id=env["AWS_ACCESS_KEY_ID"],
        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    client = S3Archive(store).client
    deadline = time.monotonic() + 60
    while True:  # ready once the bucket the arguments name is there
        assert proc.proc.poll() is None, f"weed exited:\n{proc.output()}"
        try:
            if store.bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}:
                return proc, store
        except (BotoCoreError, ClientError) as exc:  # not up yet
            assert time.monotonic() < deadline, f"store not up: {exc}\n{proc.output()}"
        time.sleep(0.2)


def _headers(docs) -> tuple[dict[str, str], dict[str, str]]:
    """A writer's and an admin's headers, with the tokens of the Secret glitchflow-tokens."""
    tokens = secret_data(docs, "glitchflow-tokens")
    writer = {
        "Authorization": f"Bearer {tokens['writer-tokens'].splitlines()[0]}",
        "Content-Type": "application/json",
    }
    admin = {"Authorization": f"Bearer {tokens['admin-tokens'].splitlines()[0]}"}
    return writer, admin


def _fill_until_frozen(api: httpx.Client, writer: dict[str, str]) -> int:
    """Stream chunks up to the overlay's MAX_SIZE; the index of the one that froze the batch."""
    for i in range(200):
        answer = api.post("/streamdata", content=_chunk(2e9 + i, i), headers=writer)
        assert answer.status_code == 201, answer.text
        if answer.json()["body"]["frozen"]:
            return i
    raise AssertionError("the batch never froze")


def _run_job(container: dict, args: list[str], env: dict[str, str]) -> None:
    """The job pod's command with ``args`` here, to its successful end."""
    run = subprocess.run(
        [str(console_script(container["command"][0])), *args],
        env={**base_env(), **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture
def booted(rendered, tmp_path, request) -> Iterator[dict]:
    docs = rendered[getattr(request, "param", "dev")]
    services = {name: (spec, c) for name, spec, c in service_containers(docs)}
    local_port = {s["metadata"]["name"]: free_port() for s in find(docs, "Service")}
    hosts = _hosts(docs, local_port)
    started: dict[str, Process] = {}
    locals_ = {}
    store = None
    try:
        if find(docs, "StatefulSet", "archive-s3"):
            started["archive-s3"], store = _start_store(docs, tmp_path, local_port["archive-s3"])
        for name in START_ORDER:
            spec, container = services[name]
            local = localize(docs, spec, container, tmp_path / name, hosts)
            argv = [str(console_script(container["command"][0])), *container["command"][1:]]
            argv += _local_args(container["args"], local_port[name])
            proc = Process(name, argv, local.env, tmp_path / f"{name}.log")
            started[name] = proc
            probe = container["readinessProbe"]["httpGet"]["path"]
            proc.wait_ready(f"http://127.0.0.1:{local_port[name]}{probe}")
            locals_[name] = local
        yield {
            "docs": docs,
            "hosts": hosts,
            "api": f"http://127.0.0.1:{local_port['glitchflow-api']}",
            "buffer": f"http://127.0.0.1:{local_port['databuffer']}",
            "store": store,
            "processes": started,
            "local": locals_,
            "services": services,
            "tmp": tmp_path,
        }
    finally:
        for proc in reversed(started.values()):
            proc.terminate(timeout=5)


def test_stream_freeze_flush_through_the_dev_manifests(booted) -> None:
    docs, tmp = booted["docs"], booted["tmp"]
    writer, admin = _headers(docs)

    # A gwclient Job's container streams its detector's strain through the API.
    (_job, template) = next(
        (w, t) for w, t in pod_templates(docs) if w["metadata"]["name"] == "gwclient-h1"
    )
    (container,) = template["spec"]["containers"]
    local = localize(docs, template["spec"], container, tmp / "gwclient", booted["hosts"])
    argv = [str(console_script(container["command"][0])), *container["command"][1:]]
    run = subprocess.run(
        argv + container["args"],
        env={**base_env(), **local.env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    chunks = int(float(arg_value(container["args"], "--duration")))
    with httpx.Client(base_url=booted["api"], timeout=30) as api:
        stats = api.get("/stats").json()
        assert stats["n_itm"] == chunks, stats

        # Fill the batch up to the overlay's MAX_SIZE: it freezes.
        i = _fill_until_frozen(api, writer)
        # FREEZE_MODE=rotate, the manifests' default: the full batch is sealed and the next
        # chunk opens the next batch at once.
        assert api.post("/streamdata", content=_chunk(3e9, 0), headers=writer).status_code == 201

        train = api.post("/train", json={"user": "airflow"}, headers=admin)
        assert train.status_code == 200 and train.json()["resp"] == "FROZEN", train.text
        assert train.json()["n_f"] == chunks + i + 1
        clean = api.post("/cleanbuf", json={"msg": "trained"}, headers=admin)
        assert clean.status_code == 200 and clean.json()["resp"] == "CLEANED", clean.text
        archive = clean.json()["archive"]
        assert api.get("/desc").json()["resp"] == "OPERATIONAL"
        assert api.post("/streamdata", content=_chunk(4e9, 1), headers=writer).status_code == 201

    # The files landed on the buffer's volumes: chunks and archive on "data", state on "adm".
    buffer = booted["local"]["databuffer"]
    mounts = {
        m["name"]: m["mountPath"] for m in booted["services"]["databuffer"][1]["volumeMounts"]
    }
    data = buffer.path(mounts["data"])
    archived = list(data.rglob(f"{archive}/manifest.json"))
    assert len(archived) == 1, sorted(p.relative_to(data) for p in data.rglob("*"))[:20]
    assert any(buffer.path(mounts["adm"]).iterdir()), "no state on the adm volume"

    # The export and training pods of the Airflow DAG, with the pod spec of k8s/airflow: their
    # "data" claim is the buffer's (data-databuffer-0), read where the buffer wrote it.
    pod = yaml.safe_load((K8S / "airflow" / "job-pod-template.yaml").read_text())
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims["data"] == "data-databuffer-0"
    (container,) = pod["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    folders = {mounts["data"]: data, mounts["datasets"]: tmp / "datasets", "/tmp": tmp / "job-tmp"}
    for folder in folders.values():
        folder.mkdir(exist_ok=True)

    def local(arg: str) -> str:
        for path, folder in folders.items():
            if arg.startswith(path + "/"):
                return str(folder) + arg[len(path) :]
        return arg

    env = {e["name"]: local(e["value"]) for e in container["env"]}
    export = [a.replace("BATCH", archive).replace("ARCHIVE", archive) for a in container["args"]]
    out = Path(local(export[export.index("--out") + 1]))
    model = out.parent / "model"
    # KNOWN GAP (reported): `glitchflow export` refuses an --out whose folder does not exist, and
    # the DAG's export pod (same arguments) does not create /datasets/<archive>/ first.
    out.parent.mkdir(parents=True)
    train = ["train-ref", "--dataset", str(out), "--out", str(model)]
    for args in ([local(a) for a in export], train):
        _run_job(container, args, env)
    assert out.stat().st_size > 0
    assert (model / "report.json").exists()

    # SIGTERM, as the kubelet sends it: each stops within its grace period, not killed (uvicorn
    # re-raises the signal once it has shut down gracefully, so -15 is a clean end too).
    for name in reversed(START_ORDER):
        spec = booted["services"][name][0]
        status = booted["processes"][name].terminate(spec["terminationGracePeriodSeconds"])
        assert status in (0, -signal.SIGTERM), (
            f"{name} exited {status}:\n{booted['processes'][name].output()}"
        )


@pytest.mark.parametrize("booted", ["dev-s3"], indirect=True)
def test_dev_s3_uploads_the_flushed_batch_and_the_export_reads_it_there(booted) -> None:
    docs, tmp = booted["docs"], booted["tmp"]
    writer, admin = _headers(docs)
    with httpx.Client(base_url=booted["api"], timeout=30) as api:
        _fill_until_frozen(api, writer)
        assert api.post("/train", json={"user": "airflow"}, headers=admin).status_code == 200
        clean = api.post("/cleanbuf", json={"msg": "trained"}, headers=admin)
        assert clean.status_code == 200 and clean.json()["resp"] == "CLEANED", clean.text
        archive = clean.json()["archive"]

    # The buffer uploads it to the store's bucket, then keeps only its manifest and marker.
    service = secret_data(docs, "glitchflow-tokens")["service-token"].splitlines()[0]
    reader = {"Authorization": f"Bearer {service}"}  # the buffer's listings need its token
    with httpx.Client(base_url=booted["buffer"], timeout=10, headers=reader) as buffer:
        deadline = time.monotonic() + 60
        while True:
            listed = buffer.get("/batches", params={"limit": 100}).json()
            upload = next(b["upload"] for b in listed["batches"] if b["archive"] == archive)
            if upload["state"] == "uploaded":
                break
            assert time.monotonic() < deadline, upload
            time.sleep(0.2)
    prefix = one(docs, "ConfigMap", "glitchflow-archive-s3")["data"]["GLITCHFLOW_ARCHIVE_S3_PREFIX"]
    store = S3Archive(dataclasses.replace(booted["store"], prefix=prefix))
    assert archive in [batch.name for batch in store.list_batches()]
    mounts = {
        m["name"]: m["mountPath"] for m in booted["services"]["databuffer"][1]["volumeMounts"]
    }
    data = booted["local"]["databuffer"].path(mounts["data"])
    (folder,) = data.rglob(f"{archive}/manifest.json")
    assert sorted(p.name for p in folder.parent.iterdir()) == ["manifest.json", "uploaded.json"]

    # The export pod, with the store's settings and keys as the DAG gives them (the buffer's
    # ConfigMap and Secret: tests/dags/test_pods.py), reads the batch from the bucket.
    pod = yaml.safe_load((K8S / "airflow" / "job-pod-template.yaml").read_text())
    (container,) = pod["spec"]["containers"]
    (buffer_container,) = [c for n, _s, c in service_containers(docs) if n == "databuffer"]
    archive_env = {
        **one(docs, "ConfigMap", "glitchflow-archive-s3")["data"],
        **{
            var["name"]: secret_data(docs, "glitchflow-archive-s3")[
                var["valueFrom"]["secretKeyRef"]["key"]
            ]
            for var in buffer_container["env"]
            if var["name"].startswith("GLITCHFLOW_ARCHIVE_")
        },
    }
    for cluster, local in booted["hosts"].items():
        archive_env = {k: v.replace(cluster, local) for k, v in archive_env.items()}
    out = tmp / "datasets" / archive / "dataset.h5"
    out.parent.mkdir(parents=True)
    job_tmp = tmp / "job-tmp"
    job_tmp.mkdir()
    export = ["export", archive, "--archive-root", str(data / "archive"), "--out", str(out)]
    _run_job(container, export, {"HOME": str(job_tmp), "MPLCONFIGDIR": str(job_tmp), **archive_env})
    assert out.stat().st_size > 0
