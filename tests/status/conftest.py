"""Status page fixtures: a stack with tokens, chunks with gaps, the page's JSON."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import orjson
import pytest
from seaweed import SeaweedS3

WRITER = "status-writer-token-0123456789"
ADMIN = "status-admin-token-0123456789"
SERVICE = "status-service-token-0123456789"
TOKENS = (WRITER, ADMIN, SERVICE)
TOKENS_ENV = {
    "GLITCHFLOW_WRITER_TOKENS": WRITER,
    "GLITCHFLOW_ADMIN_TOKENS": ADMIN,
    "GLITCHFLOW_SERVICE_TOKEN": SERVICE,
    "GLITCHFLOW_LOG_LEVEL": "WARNING",
    # The page's FROZEN view is of a batch held until its flush (rotate seals and goes on).
    "GLITCHFLOW_FREEZE_MODE": "hold",
}
ROTATE_ENV = {**TOKENS_ENV, "GLITCHFLOW_FREEZE_MODE": "rotate", "GLITCHFLOW_MAX_SEALED": "2"}
"""Rotate mode with room for two sealed batches (two 1024-sample chunks fill 40,000 bytes)."""
RATE = 4096
H1 = "H1:GDS-CALIB_STRAIN"
L1 = "L1:GDS-CALIB_STRAIN"


def chunk_body(t0: float, n: int = 1024, channel: str = H1, seed: int = 0) -> bytes:
    """A chunk of ``n`` samples at 4096 Hz from GPS ``t0``."""
    h = np.random.default_rng(seed).normal(scale=1e-21, size=n)
    return orjson.dumps(
        {"h": h, "t": [t0, 1 / RATE], "channel": channel}, option=orjson.OPT_SERIALIZE_NUMPY
    )


class Sender:
    """Posts chunks to an API as a writer."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url

    def send(self, t0: float, n: int = 1024, channel: str = H1, seed: int = 0) -> httpx.Response:
        return httpx.post(
            f"{self.api_url}/streamdata",
            content=chunk_body(t0, n, channel, seed),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {WRITER}"},
            timeout=30,
        )

    def flush(self) -> dict:
        """``/cleanbuf`` as an admin (the oldest sealed batch, else the current one)."""
        answer = httpx.post(
            f"{self.api_url}/cleanbuf",
            json={"msg": "status test"},
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stream(self, channel: str, t0: float, count: int, n: int = 1024) -> None:
        """``count`` contiguous chunks of ``channel`` from ``t0``."""
        for i in range(count):
            answer = self.send(t0 + i * n / RATE, n, channel, seed=i)
            assert answer.status_code == 201, answer.text


@pytest.fixture
def sender() -> Callable[[str], Sender]:
    return Sender


def store_env(s3: SeaweedS3, bucket: str) -> dict[str, str]:
    """The stack's settings with archives uploaded to ``bucket``, retried every half second."""
    return {
        **TOKENS_ENV,
        **s3.env(bucket),
        "GLITCHFLOW_ARCHIVE_RETRY_MAX_DELAY": "0.5",
        "GLITCHFLOW_ARCHIVE_S3_TIMEOUT": "1",
    }
