"""Settings of the databuffer service (``GLITCHFLOW_`` variables, original names as aliases)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from glitchflow_archive.settings import ArchiveSettings
from glitchflow_core.auth import load_tokens, placeholder_tokens
from glitchflow_core.chunk import DEFAULT_MAX_SAMPLES
from glitchflow_core.settings import ServiceSettings, aliased, size_field


class Settings(ServiceSettings, ArchiveSettings):
    """Where the buffer keeps its files, how much it accepts at once, its token, and the object
    store its archives go to (`glitchflow_archive.ArchiveSettings`; unset: the local folder)."""

    data_dir: Path = aliased(Path("glitchflow-data/databuffer"), "data_dir")
    dataroot: Path | None = aliased(None, "dataroot", "DATAROOT")
    admroot: Path | None = aliased(None, "admroot", "ADMROOT")
    logroot: Path | None = aliased(None, "logroot", "LOGROOT")
    archiveroot: Path | None = aliased(None, "archiveroot")
    servurl: str | None = aliased(None, "servurl", "SERVURL")
    max_inflight: int = aliased(32, "max_inflight", "WCHSZ", ge=1, le=4096)
    max_samples: int = aliased(DEFAULT_MAX_SAMPLES, "max_samples", ge=1)
    max_body: int = aliased(32 * 1024 * 1024, "max_body")
    log_max_bytes: int = aliased(16 * 1024 * 1024, "log_max_bytes")
    log_backups: int = aliased(5, "log_backups", ge=0, le=100)
    service_token: str | None = aliased(None, "service_token")
    service_token_file: Path | None = aliased(None, "service_token_file")
    shutdown_timeout: float = aliased(30.0, "shutdown_timeout", gt=0)
    retry_after: int = aliased(1, "retry_after", ge=1, le=3600)

    @field_validator("max_body", "log_max_bytes", mode="before")
    @classmethod
    def _size(cls, value: object) -> int:
        size = size_field(value)
        if size < 1:
            raise ValueError("must be at least 1 byte")
        return size

    @field_validator("servurl")
    @classmethod
    def _servurl(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"SERVURL must be an http(s) URL like http://127.0.0.1:8080, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _tokens_usable(self) -> Settings:
        tokens = self.tokens()
        if self.environment == "production" and placeholder_tokens(tokens):
            raise ValueError(
                "SERVICE_TOKEN holds a placeholder or a token shorter than 12 characters"
            )
        return self

    def tokens(self) -> tuple[str, ...]:
        """The accepted service tokens (empty: the service runs open)."""
        return load_tokens(self.service_token, self.service_token_file)

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
