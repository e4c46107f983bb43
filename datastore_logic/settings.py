"""Settings of datastore_logic: where the buffer is, the freeze policy, gunicorn, tokens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import ByteSize, field_validator

from glitchflow_core.settings import ServiceSettings, aliased, http_url
from glitchflow_core.sizes import PositiveSize


class Settings(ServiceSettings):
    """Read once from ``GLITCHFLOW_*`` variables (or the original names), then passed in."""

    port: int = aliased(5000, "port", ge=1, le=65535)
    db_burl: str = aliased("http://127.0.0.1:8080", "db_burl", "DB_BURL")
    max_size: PositiveSize = aliased(ByteSize(64 * 1024 * 1024), "max_size", "MAX_SIZE")
    max_batch_age: float | None = aliased(None, "max_batch_age", gt=0)
    # What a full batch does (datastore_logic.policy): the logic owns the policy, every write
    # carries it to the buffer, which applies it under its lock, as it does MAX_SIZE.
    freeze_mode: Literal["hold", "rotate"] = aliased("rotate", "freeze_mode", "FREEZE_MODE")
    max_sealed: int = aliased(4, "max_sealed", "MAX_SEALED", ge=1, le=1000)
    upstream_timeout: float = aliased(10.0, "upstream_timeout", gt=0)
    # The logic hop relays bytes and waits on the buffer: threads give it concurrency, and extra
    # processes only compete with the buffer and the API for CPU (docs/PERFORMANCE.md).
    logic_workers: int = aliased(max(1, (os.cpu_count() or 2) // 2), "logic_workers", ge=1)
    logic_threads: int = aliased(8, "logic_threads", ge=1)
    graceful_timeout: int = aliased(30, "graceful_timeout", gt=0)
    prometheus_multiproc_dir: Path | None = aliased(
        None, "prometheus_multiproc_dir", "PROMETHEUS_MULTIPROC_DIR"
    )

    @field_validator("db_burl")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("max_batch_age", mode="before")
    @classmethod
    def _empty_age_is_none(cls, value: object) -> object:
        return None if value == "" else value
