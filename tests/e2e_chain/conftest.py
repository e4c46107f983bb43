"""End-to-end chain fixtures: chunks, the buffer's folders on disk, extra API processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from ports import free_port

from glitchflow_stack import ManagedProcess

WRITER = "e2e-writer-token-0123456789"
ADMIN = "e2e-admin-token-0123456789"
SERVICE = "e2e-service-token-0123456789"
TOKENS_ENV = {
    "GLITCHFLOW_WRITER_TOKENS": WRITER,
    "GLITCHFLOW_ADMIN_TOKENS": ADMIN,
    "GLITCHFLOW_SERVICE_TOKEN": SERVICE,
    "GLITCHFLOW_LOG_LEVEL": "WARNING",
}


@dataclass(frozen=True)
class Auth:
    """Headers for writers and admins of a stack started with `TOKENS_ENV`."""

    writer: dict[str, str]
    admin: dict[str, str]


@pytest.fixture
def auth() -> Auth:
    """Bearer headers matching `TOKENS_ENV`."""
    json = {"Content-Type": "application/json"}
    return Auth(
        writer={**json, "Authorization": f"Bearer {WRITER}"},
        admin={"Authorization": f"Bearer {ADMIN}"},
    )


@pytest.fixture
def tokens_env() -> dict[str, str]:
    """Environment giving every service its tokens."""
    return dict(TOKENS_ENV)


def make_chunk(t0: float, n: int = 200, channel: str | None = None, seed: int = 0) -> bytes:
    """A chunk of ``n`` samples at 4096 Hz starting at GPS ``t0``."""
    import numpy as np

    h = np.random.default_rng(seed).normal(scale=1e-21, size=n)
    doc: dict[str, object] = {"h": h, "t": [t0, 1 / 4096]}
    if channel is not None:
        doc["channel"] = channel
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(frozen=True)
class Disk:
    """The buffer's folders under its DATA_DIR."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    def files(self) -> dict[str, int]:
        """Chunk files of the current batch and their sizes (temporary files excluded)."""
        if not self.data.exists():
            return {}
        return {
            p.name: p.stat().st_size
            for p in self.data.iterdir()
            if p.is_file() and p.suffix == ".json" and not p.name.startswith(".")
        }

    def stored(self, name: str) -> Path:
        """Where the chunk file ``name`` is: the data folder, or a sealed batch's folder."""
        sealed = sorted(self.archive.glob(f"sealed/*/{name}"))
        return sealed[0] if sealed else self.data / name

    def archives(self) -> dict[str, dict]:
        """Every archived batch folder and its manifest."""
        if not self.archive.exists():
            return {}
        return {
            d.name: orjson.loads((d / "manifest.json").read_bytes())
            for d in sorted(self.archive.iterdir())
            if d.is_dir() and (d / "manifest.json").exists()
        }

    def archived_files(self, name: str) -> set[str]:
        """Chunk files in one archive folder."""
        folder = self.archive / name
        return {
            p.name for p in folder.iterdir() if p.name != "manifest.json" and p.suffix == ".json"
        }


@pytest.fixture
def chunk() -> Callable[..., bytes]:
    """``chunk(t0, n=200, channel=None, seed=0)``: the bytes of a valid chunk."""
    return make_chunk


@pytest.fixture
def disk() -> Callable[[Path], Disk]:
    """``disk(data_dir)``: the buffer's folders under its DATA_DIR."""
    return Disk


@pytest.fixture
def extra_api() -> Iterator[Callable[[str, dict[str, str]], ManagedProcess]]:
    """``extra_api(logic_url, env)``: one more API process before the same logic (stopped after)."""
    started: list[ManagedProcess] = []

    def start(logic_url: str, env: dict[str, str]) -> ManagedProcess:
        port = free_port()
        proc = ManagedProcess(
            f"api{len(started) + 2}",
            [sys.executable, "-m", "glitchflow_api", "--host", "127.0.0.1", "--port", str(port)],
            f"http://127.0.0.1:{port}",
            env={**env, "GLITCHFLOW_DS_BURL": logic_url},
        )
        started.append(proc)
        proc.start()
        proc.wait_ready(30)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()
