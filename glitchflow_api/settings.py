"""Settings of glitchflow_api: where datastore_logic is, tokens and limits."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from glitchflow_core.auth import load_tokens, placeholder_tokens
from glitchflow_core.chunk import DEFAULT_MAX_SAMPLES
from glitchflow_core.settings import ServiceSettings, aliased, size_field


class Settings(ServiceSettings):
    """Read once from ``GLITCHFLOW_*`` variables (or the original names), then passed in."""

    ds_burl: str = aliased("http://127.0.0.1:5000", "ds_burl", "DS_BURL")
    writer_tokens: str | None = aliased(None, "writer_tokens")
    writer_tokens_file: Path | None = aliased(None, "writer_tokens_file")
    admin_tokens: str | None = aliased(None, "admin_tokens")
    admin_tokens_file: Path | None = aliased(None, "admin_tokens_file")
    service_token: str | None = aliased(None, "service_token")
    service_token_file: Path | None = aliased(None, "service_token_file")
    max_samples: int = aliased(DEFAULT_MAX_SAMPLES, "max_samples")
    max_body: int = aliased(32 * 1024 * 1024, "max_body")
    # Longer than datastore_logic's own (10 s) on purpose: when the buffer hangs, the logic times
    # out first and says so (504, upstream "databuffer"), and the API relays that answer instead of
    # giving up at the same moment and blaming datastore_logic.
    upstream_timeout: float = aliased(15.0, "upstream_timeout")

    @field_validator("ds_burl")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"DS_BURL must be an http(s) URL like http://127.0.0.1:5000, not {value!r}"
            )
        return value.rstrip("/")

    @field_validator("max_body", mode="before")
    @classmethod
    def _size(cls, value: object) -> int:
        return size_field(value)

    @field_validator("max_body", "max_samples")
    @classmethod
    def _positive(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("must be positive")
        return value

    @field_validator("upstream_timeout")
    @classmethod
    def _positive_seconds(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("must be a positive number of seconds")
        return value

    @model_validator(mode="after")
    def _readable_and_real_tokens(self) -> Settings:
        for name, load in (
            ("WRITER_TOKENS", self.writer_token_set),
            ("ADMIN_TOKENS", self.admin_token_set),
            ("SERVICE_TOKEN", self.service_tokens),
        ):
            try:
                tokens = load()
            except OSError as exc:
                raise ValueError(f"{name}_FILE cannot be read: {exc}") from exc
            if self.environment == "production" and placeholder_tokens(tokens):
                raise ValueError(
                    f"{name} holds a placeholder or a token shorter than 12 characters"
                )
        return self

    def writer_token_set(self) -> tuple[str, ...]:
        """Tokens allowed to write (``/streamdata``)."""
        return load_tokens(self.writer_tokens, self.writer_tokens_file)

    def admin_token_set(self) -> tuple[str, ...]:
        """Tokens allowed to freeze and flush (and to write)."""
        return load_tokens(self.admin_tokens, self.admin_tokens_file)

    def service_tokens(self) -> tuple[str, ...]:
        """The token sent to datastore_logic (the first one)."""
        return load_tokens(self.service_token, self.service_token_file)
