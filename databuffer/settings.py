"""Settings of the databuffer service (``GLITCHFLOW_`` variables, original names as aliases)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import ByteSize, field_validator, model_validator

from glitchflow_core.settings import ChunkSettings, aliased
from glitchflow_core.sizes import PositiveSize


def listen_address(value: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (the original's form) or ``http://host:port``."""
    text = value.strip()
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be host:port, e.g. 127.0.0.1:38080")
    else:
        parts = urlsplit("//" + text)
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None or port == 0:
        raise ValueError("must be host:port, e.g. 127.0.0.1:38080")
    return parts.hostname, port


class Settings(ChunkSettings):
    """Where the buffer listens and keeps its files, how much it accepts at once, its token."""

    port: int = aliased(8080, "port", ge=1, le=65535)
    servurl: str | None = aliased(None, "servurl", "SERVURL")
    data_dir: Path = aliased(Path("glitchflow-data/databuffer"), "data_dir")
    dataroot: Path | None = aliased(None, "dataroot", "DATAROOT")
    admroot: Path | None = aliased(None, "admroot", "ADMROOT")
    logroot: Path | None = aliased(None, "logroot", "LOGROOT")
    archiveroot: Path | None = aliased(None, "archiveroot")
    max_inflight: int = aliased(32, "max_inflight", "WCHSZ", ge=1, le=4096)
    log_max_bytes: PositiveSize = aliased(ByteSize(16 * 1024 * 1024), "log_max_bytes")
    log_backups: int = aliased(5, "log_backups", ge=0, le=100)
    shutdown_timeout: float = aliased(30.0, "shutdown_timeout", gt=0)
    retry_after: int = aliased(1, "retry_after", ge=1, le=3600)
    max_read_seconds: float = aliased(600.0, "max_read_seconds", gt=0, le=86400)

    @field_validator("servurl")
    @classmethod
    def _servurl(cls, value: str | None) -> str | None:
        if value is not None:
            listen_address(value)
        return value

    @model_validator(mode="after")
    def _servurl_sets_address(self) -> Settings:
        # The original buffer listens on SERVURL; explicit GLITCHFLOW_HOST/PORT win over it.
        if self.servurl is not None:
            host, port = listen_address(self.servurl)
            if "host" not in self.model_fields_set:
                object.__setattr__(self, "host", host)
            if "port" not in self.model_fields_set:
                object.__setattr__(self, "port", port)
        return self

    @property
    def data_root(self) -> Path:
        """Chunk files of the current batch."""
        return self.dataroot or self.data_dir / "data"

    @property
    def adm_root(self) -> Path:
        """``StatDesc.json`` and ``Dsstat.json``."""
        return self.admroot or self.data_dir / "adm"

    @property
    def log_root(self) -> Path:
        """``LogStream.json`` and its rotated backups."""
        return self.logroot or self.data_dir / "log"

    @property
    def archive_root(self) -> Path:
        """Flushed batches."""
        return self.archiveroot or self.data_dir / "archive"
