"""The real service as a process: kill -9 in a write loop, restart, nothing acknowledged lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
from ports import free_port

ROOT = Path(__file__).resolve().parents[2]
DT = 1.0 / 4096
T0 = 1_126_259_462.0

pytestmark = pytest.mark.e2e


def start_buffer(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "GLITCHFLOW_DATA_DIR": str(data_dir), "GLITCHFLOW_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "databuffer", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        try:
            if httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("databuffer did not answer /healthz")


def stop(proc: subprocess.Popen[bytes], sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=15)
    finally:
        if proc.stderr:
            proc.stderr.close()


def chunk_body(i: int) -> bytes:
    h = (np.random.default_rng(i).standard_normal(256) * 1e-21).tolist()
    return orjson.dumps({"h": h, "t": [T0 + i * 0.1, DT], "channel": "H1:GWOSC-4KHZ_R1_STRAIN"})


def files_in(folder: Path) -> dict[str, int]:
    return {
        p.name: p.stat().st_size
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.name != "manifest.json"
    }


def test_kill_9_during_writes_loses_no_acknowledged_chunk(tmp_path: Path) -> None:
    proc, url = start_buffer(tmp_path)
    freeze_at = 40 * len(chunk_body(0))
    acked: dict[str, int] = {}  # file -> batch acknowledged in
    stop_loop = threading.Event()

    def write_loop() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            for i in range(5000):
                if stop_loop.is_set():
                    return
                try:
                    response = client.post(
                        f"/sendF?freeze_at={freeze_at}",
                        content=chunk_body(i),
                        headers={"content-type": "application/json"},
                    )
                    if response.status_code in (200, 201):
                        doc = response.json()
                        acked[doc["file"]] = doc["batch"]
                    elif response.status_code == 503:
                        client.post("/cleanall", json={"msg": "test"})
                    else:
                        raise AssertionError(f"unexpected {response.status_code}: {response.text}")
                except httpx.TransportError:
                    return  # the server was killed

    loop = threading.Thread(target=write_loop)
    loop.start()
    deadline = time.monotonic() + 20
    while len(acked) < 150 and time.monotonic() < deadline and loop.is_alive():
        time.sleep(0.01)
    assert stop(proc, signal.SIGKILL) == -signal.SIGKILL
    loop.join(timeout=10)
    stop_loop.set()
    assert len(acked) >= 150

    proc, url = start_buffer(tmp_path)
    try:
        stat = httpx.get(f"{url}/stat").json()
        live = files_in(tmp_path / "data")
        assert (stat["n_itm"], stat["buff_size"]) == (len(live), sum(live.values()))
        assert not [p for p in (tmp_path / "data").iterdir() if p.name.startswith(".")]
        listed = httpx.get(f"{url}/dumpF", params={"limit": 100_000}).json()
        assert sorted(listed["nmlist"]) == sorted(live)

        where: dict[str, list[int]] = {name: [stat["batch"]] for name in live}
        batches = httpx.get(f"{url}/batches", params={"limit": 1000}).json()["batches"]
        assert batches, "the loop froze and flushed at least once"
        for manifest in batches:
            for name in files_in(tmp_path / "archive" / manifest["archive"]):
                where.setdefault(name, []).append(manifest["batch"])
        missing = [name for name in acked if name not in where]
        assert missing == []
        assert {n: b for n, b in where.items() if len(b) != 1} == {}
        assert {n: where[n][0] for n in acked} == acked
        # The restarted service keeps working on the recovered state.
        again = httpx.post(
            f"{url}/sendF", content=chunk_body(0), headers={"content-type": "application/json"}
        )
        assert again.status_code in (200, 503)
    finally:
        # uvicorn re-raises SIGTERM once its graceful shutdown is done.
        assert stop(proc, signal.SIGTERM) in (0, -signal.SIGTERM)
    last = orjson.loads((tmp_path / "log" / "LogStream.json").read_bytes().splitlines()[-1])
    assert last["event"] == "stop"
    assert last["n_itm"] == len(files_in(tmp_path / "data"))


def test_sigterm_finishes_a_write_in_flight(tmp_path: Path) -> None:
    """A chunk still uploading when SIGTERM arrives is stored and acknowledged, then the
    process exits; after a restart the chunk is there and counted."""
    proc, url = start_buffer(tmp_path)
    port = int(url.rsplit(":", 1)[1])
    body = chunk_body(7)
    head = (
        f"POST /sendF HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head + body[:100])
        time.sleep(1.0)  # generous: the server has parsed the head and waits for the body
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None, "the process must wait for the write in flight"
        sock.sendall(body[100:])
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 201"), answer[:300]
    stored = orjson.loads(rest.split(b"\r\n\r\n", 1)[1])["file"]
    assert stop(proc, signal.SIGTERM) in (0, -signal.SIGTERM)
    proc, url = start_buffer(tmp_path)
    try:
        stat = httpx.get(f"{url}/stat").json()
        assert (stat["n_itm"], stat["buff_size"]) == (1, len(body))
        assert files_in(tmp_path / "data") == {stored: len(body)}
    finally:
        stop(proc, signal.SIGTERM)


def test_kill_9_during_rotating_writes_keeps_every_chunk_in_one_batch(tmp_path: Path) -> None:
    """Rotate mode, a writer and a flusher at once, kill -9 across several seals and flushes:
    after the restart every acknowledged chunk is in exactly one batch (being filled, sealed or
    archived), the batch it was acknowledged in, and the sealed queue matches its folders."""
    proc, url = start_buffer(tmp_path)
    freeze_at = 30 * len(chunk_body(0))
    params = {"freeze_at": str(freeze_at), "mode": "rotate", "max_sealed": "3"}
    acked: dict[str, int] = {}  # file -> batch acknowledged in
    killed = threading.Event()

    def write_loop() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            for i in range(5000):
                try:
                    response = client.post(
                        "/sendF",
                        params=params,
                        content=chunk_body(i),
                        headers={"content-type": "application/json"},
                    )
                except httpx.TransportError:
                    return  # the server was killed
                if response.status_code in (200, 201):
                    acked[response.json()["file"]] = response.json()["batch"]
                elif response.status_code != 503:
                    raise AssertionError(f"unexpected {response.status_code}: {response.text}")

    def flush_loop() -> None:
        with httpx.Client(base_url=url, timeout=5) as client:
            while not killed.is_set():
                try:
                    client.post("/cleanall", json={"msg": "test"})
                except httpx.TransportError:
                    return
                time.sleep(0.05)

    threads = [threading.Thread(target=write_loop), threading.Thread(target=flush_loop)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while len(acked) < 300 and time.monotonic() < deadline and threads[0].is_alive():
        time.sleep(0.01)
    killed.set()
    assert stop(proc, signal.SIGKILL) == -signal.SIGKILL
    for thread in threads:
        thread.join(timeout=10)
    assert len(acked) >= 300 and max(acked.values()) >= 6, "too few seals to mean anything"

    proc, url = start_buffer(tmp_path)
    try:
        stat = httpx.get(f"{url}/stat").json()
        live = files_in(tmp_path / "data")
        assert (stat["n_itm"], stat["buff_size"]) == (len(live), sum(live.values()))
        where: dict[str, list[int]] = {name: [stat["batch"]] for name in live}
        listing = httpx.get(f"{url}/batches", params={"limit": 1000}).json()
        for sealed in listing["sealed"]:
            folder = tmp_path / "archive" / "sealed" / f"{sealed['batch']:06d}"
            held = {k: v for k, v in files_in(folder).items() if k != "sealed.json"}
            assert (sealed["n_f"], sealed["bt_wrt"]) == (len(held), sum(held.values()))
            for name in held:
                where.setdefault(name, []).append(sealed["batch"])
        assert listing["batches"], "the flusher archived at least one batch"
        for manifest in listing["batches"]:
            for name in files_in(tmp_path / "archive" / manifest["archive"]):
                where.setdefault(name, []).append(manifest["batch"])
        assert [name for name in acked if name not in where] == []
        assert {n: b for n, b in where.items() if len(b) != 1} == {}
        assert {n: where[n][0] for n in acked} == acked
        assert httpx.get(f"{url}/dstat").json()["sealed"] == listing["sealed"]
        # The restarted service keeps rotating on the recovered queue.
        again = httpx.post(
            f"{url}/sendF",
            params=params,
            content=chunk_body(0),
            headers={"content-type": "application/json"},
        )
        assert again.status_code in (200, 503)
    finally:
        assert stop(proc, signal.SIGTERM) in (0, -signal.SIGTERM)
