"""A full disk under the buffer: 507 ``DISK_FULL``, no partial file, counters unchanged, the
service stays up, ``/readyz`` says why it is not ready, and all comes back when space returns.

Two ways: ENOSPC injected where the storage really writes (``os.write`` after half a chunk,
``os.fsync``, ``os.replace``, only for files in the buffer's data folder) in an app built by the
factory; and a real 8 MiB tmpfs under the three services as processes, filled by chunks until the
buffer refuses one (skipped where this machine does not allow a mount).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from databuffer.app import create_app
from databuffer.settings import Settings
from glitchflow_core.chunk import parse_chunk

JSON = {"Content-Type": "application/json"}
GiB = 1024**3
MiB = 1024**2


def chunk(t0: float, n: int = 64, seed: int = 0) -> bytes:
    h = np.random.default_rng(seed).normal(scale=1e-21, size=n)
    return orjson.dumps({"h": h, "t": [t0, 1 / 4096]}, option=orjson.OPT_SERIALIZE_NUMPY)


def stored_files(data: Path) -> dict[str, int]:
    """Every file in the data folder, temporary ones included, and its size."""
    return {p.name: p.stat().st_size for p in data.iterdir()}


def assert_counters_match_files(stat: dict, data: Path) -> None:
    files = stored_files(data)
    assert not [name for name in files if name.startswith(".")], f"temporary file left: {files}"
    assert (stat["n_itm"], stat["buff_size"]) == (len(files), sum(files.values()))
    for name in files:  # every stored file is a whole chunk
        parse_chunk((data / name).read_bytes(), 10**6)


# --------------------------------------------------------------------------- injected ENOSPC


def _enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _in(folder: Path, fd: int) -> bool:
    return os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder) + os.sep)


def inject(point: str, data: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Make the storage's own writes into ``data`` fail with ENOSPC at ``point``; returns the
    function that removes the fault (space returns)."""
    real = {"write": os.write, "fsync": os.fsync, "replace": os.replace}

    def write(fd: int, content: bytes) -> int:
        if _in(data, fd):
            real["write"](fd, bytes(content[: len(content) // 2]))  # half of it reached the disk
            raise _enospc()
        return real["write"](fd, content)

    def fsync(fd: int) -> None:
        if _in(data, fd):
            raise _enospc()
        real["fsync"](fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).parent == data:
            raise _enospc()
        real["replace"](src, dst)

    monkeypatch.setattr(os, point, {"write": write, "fsync": fsync, "replace": replace}[point])
    return lambda: monkeypatch.setattr(os, point, real[point])


@pytest.fixture
async def buffer_app(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Path]]:
    """The buffer built by its factory; the largest chunk is 1 GiB, so the volume must have
    that much free (and a chunk's worth freed meanwhile would end the disk-full state early)."""
    if shutil.disk_usage(tmp_path).free < 4 * GiB:
        pytest.skip("needs 4 GiB free next to the test's folder")
    app = create_app(Settings(data_dir=tmp_path / "buffer", max_body=GiB))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://databuffer") as client,
    ):
        yield client, app.state.settings.data_root


@pytest.mark.parametrize("point", ["write", "fsync", "replace"])
async def test_injected_enospc_is_507_and_the_buffer_recovers(
    buffer_app: tuple[httpx.AsyncClient, Path], monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    client, data = buffer_app
    assert (await client.post("/sendF", content=chunk(1e9), headers=JSON)).status_code == 201
    before = (await client.get("/stat")).json()
    files = stored_files(data)
    space_returns = inject(point, data, monkeypatch)

    refused = await client.post("/sendF", content=chunk(1e9 + 1), headers=JSON)
    assert (refused.status_code, refused.json()) == (507, {"resp": "DISK_FULL"})
    assert stored_files(data) == files
    assert (await client.get("/stat")).json() == before
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {
        "resp": "NOT_READY",
        "detail": "disk full: the last write found no space left,"
        " and no chunk's worth was freed since",
    }
    # Up: it answers, reads work, the refusal is logged and counted.
    assert (await client.get("/healthz")).status_code == 200
    log = (await client.get("/dumpLogF")).json()["log"]
    assert log[-1]["event"] == "disk_full"
    metrics = (await client.get("/metrics")).text
    assert 'glitchflow_refusals_total{reason="disk_full"} 1.0' in metrics

    space_returns()
    again = await client.post("/sendF", content=chunk(1e9 + 1), headers=JSON)
    assert again.status_code == 201, "the refused chunk was not remembered as stored"
    assert (await client.get("/readyz")).status_code == 200
    after = (await client.get("/stat")).json()
    assert (after["n_itm"], after["buff_size"]) == (2, before["buff_size"] + len(chunk(1e9 + 1)))
    assert_counters_match_files(after, data)


# --------------------------------------------------------------------------- a real full volume


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for the test (root only), unmounted after."""
    mountpoint = tmp_path / "volume"
    mountpoint.mkdir()
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mount.stderr.strip() or 'not allowed'}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _wait_status(url: str, status: int, timeout: float = 20) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.get(url, timeout=5)
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.mark.e2e
def test_real_full_volume_refuses_with_507_and_recovers(small_volume: Path, stack_factory) -> None:
    ballast = small_volume / "ballast"
    ballast.write_bytes(b"\0" * (3 * MiB))  # what the operator frees later
    env = {"GLITCHFLOW_MAX_BODY": "256KiB", "GLITCHFLOW_LOG_LEVEL": "WARNING"}
    stack, layout = stack_factory(data_dir=small_volume / "buffer", env=env)
    data = small_volume / "buffer" / "data"
    api = httpx.Client(base_url=layout.api_url, timeout=30)
    n = 8192  # about 190 kB of JSON a chunk
    created = 0
    with api:
        for i in range(200):
            answer = api.post("/streamdata", content=chunk(1e9 + i * 2, n, seed=i), headers=JSON)
            if answer.status_code != 201:
                break
            created += 1
        else:
            pytest.fail("an 8 MiB volume took 200 chunks of 190 kB")
        assert created > 0
        assert (answer.status_code, answer.json()["resp"]) == (507, "DISK_FULL"), answer.text
        refused = i
        stat = httpx.get(layout.buffer_url + "/stat", timeout=5).json()
        assert stat["n_itm"] == created
        assert_counters_match_files(stat, data)
        ready = httpx.get(layout.buffer_url + "/readyz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["detail"].startswith("disk full: "), ready.text
        # The logic sees it too; everything still answers.
        assert httpx.get(layout.logic_url + "/readyz", timeout=5).status_code == 503
        for proc in stack.processes:
            assert proc.alive()
            assert httpx.get(proc.url + "/healthz", timeout=5).status_code == 200
        # Still full: refused again, nothing changes.
        again = api.post(
            "/streamdata", content=chunk(1e9 + refused * 2, n, seed=refused), headers=JSON
        )
        assert again.status_code == 507
        assert httpx.get(layout.buffer_url + "/stat", timeout=5).json() == stat

        ballast.unlink()  # space returns
        assert _wait_status(layout.buffer_url + "/readyz", 200).status_code == 200
        stored = api.post(
            "/streamdata", content=chunk(1e9 + refused * 2, n, seed=refused), headers=JSON
        )
        assert stored.status_code == 201, stored.text
        stat = httpx.get(layout.buffer_url + "/stat", timeout=5).json()
        assert stat["n_itm"] == created + 1
        assert_counters_match_files(stat, data)
