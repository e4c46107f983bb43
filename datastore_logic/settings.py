"""Settings of datastore_logic: where the buffer is, the freeze policy, tokens and limits."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from glitchflow_core.auth import load_tokens, placeholder_tokens
from glitchflow_core.settings import ServiceSettings, aliased, size_field


class Settings(ServiceSettings):
    """Read once from ``GLITCHFLOW_*`` variables (or the original names), then passed in."""

    db_burl: str = aliased("http://127.0.0.1:8080", "db_burl", "DB_BURL")
    max_size: int = aliased(64 * 1024 * 1024, "max_size", "MAX_SIZE")
    max_batch_age: float | None = aliased(None, "max_batch_age")
    service_token: str | None = aliased(None, "service_token")
    service_token_file: Path | None = aliased(None, "service_token_file")
    upstream_timeout: float = aliased(10.0, "upstream_timeout")
    max_body: int = aliased(32 * 1024 * 1024, "max_body")

    @field_validator("db_burl")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"DB_BURL must be an http(s) URL like http://127.0.0.1:8080, not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("max_size", "max_body", mode="before")
    @classmethod
    def _size(cls, value: object) -> int:
        return size_field(value)

    @field_validator("max_size", "max_body")
    @classmethod
    def _positive_size(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be a positive number of bytes")
        return value

    @field_validator("max_batch_age", mode="before")
    @classmethod
    def _empty_age_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("max_batch_age", "upstream_timeout")
    @classmethod
    def _positive_seconds(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @model_validator(mode="after")
    def _no_placeholder_in_production(self) -> Settings:
        try:
            tokens = self.service_tokens()
        except OSError as exc:
            raise ValueError(f"SERVICE_TOKEN_FILE cannot be read: {exc}") from exc
        if self.environment == "production" and placeholder_tokens(tokens):
            raise ValueError("SERVICE_TOKEN is a placeholder or shorter than 12 characters")
        return self

    def service_tokens(self) -> tuple[str, ...]:
        """The service tokens accepted from the API (the first is sent on to the buffer)."""
        return load_tokens(self.service_token, self.service_token_file)
