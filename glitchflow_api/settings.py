"""Settings of glitchflow_api: where datastore_logic is, writer and admin tokens, limits."""

from __future__ import annotations

from pathlib import Path

from pydantic import field_validator

from glitchflow_core.auth import load_tokens
from glitchflow_core.settings import ChunkSettings, aliased, http_url, readable_file


class Settings(ChunkSettings):
    """Read once from ``GLITCHFLOW_*`` variables (or the original names), then passed in."""

    port: int = aliased(8000, "port", ge=1, le=65535)
    ds_burl: str = aliased("http://127.0.0.1:5000", "ds_burl", "DS_BURL")
    writer_tokens: str | None = aliased(None, "writer_tokens")
    writer_tokens_file: Path | None = aliased(None, "writer_tokens_file")
    admin_tokens: str | None = aliased(None, "admin_tokens")
    admin_tokens_file: Path | None = aliased(None, "admin_tokens_file")
    # Longer than datastore_logic's own (10 s) on purpose: when the buffer hangs, the logic times
    # out first and says so (504, upstream "databuffer"), and the API relays that answer instead of
    # giving up at the same moment and blaming datastore_logic.
    upstream_timeout: float = aliased(15.0, "upstream_timeout", gt=0)

    @field_validator("ds_burl")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value)

    @field_validator("writer_tokens_file", "admin_tokens_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        return readable_file(value)

    def writer_token_set(self) -> tuple[str, ...]:
        """Tokens allowed to write (``/streamdata``)."""
        return load_tokens(self.writer_tokens, self.writer_tokens_file)

    def admin_token_set(self) -> tuple[str, ...]:
        """Tokens allowed to freeze and flush (and to write)."""
        return load_tokens(self.admin_tokens, self.admin_tokens_file)

    def token_sets(self) -> dict[str, tuple[str, ...]]:
        return {
            "WRITER_TOKENS": self.writer_token_set(),
            "ADMIN_TOKENS": self.admin_token_set(),
            **super().token_sets(),
        }
