"""The settings base every service extends: project-prefixed variables, original names as aliases.

Read once by the service's entry point (`load_settings`) and passed in; tests build their own.
A bad value ends the process with one line naming the variable and the value, exit status 2.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    ByteSize,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from glitchflow_core.auth import load_tokens, placeholder_tokens
from glitchflow_core.chunk import (
    DEFAULT_MAX_CHUNKS,
    DEFAULT_MAX_DT,
    DEFAULT_MAX_SAMPLES,
    DEFAULT_MIN_DT,
    Chunk,
    parse_binary_chunk,
    parse_chunk,
)
from glitchflow_core.sizes import PositiveSize

ENV_PREFIX = "GLITCHFLOW_"
EXIT_BAD_SETTING = 2
S = TypeVar("S", bound="ServiceSettings")


def aliased(default: Any, name: str, *originals: str, **kwargs: Any) -> Any:
    """A field read from ``GLITCHFLOW_<NAME>`` or one of the original variable names.

    The field's own name stays accepted too, so tests can write ``Settings(max_size=100)``.
    """
    choices = AliasChoices(ENV_PREFIX + name.upper(), *originals, name)
    return Field(default, validation_alias=choices, **kwargs)


class ServiceSettings(BaseSettings):
    """What every service's settings have in common: address, token, body limit, log level."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True, frozen=True
    )

    environment: Literal["dev", "production"] = aliased("dev", "environment")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = aliased("INFO", "log_level")
    access_log: bool = aliased(True, "access_log")
    host: str = aliased("127.0.0.1", "host")
    port: int = aliased(8000, "port", ge=1, le=65535)
    service_token: str | None = aliased(None, "service_token")
    service_token_file: Path | None = aliased(None, "service_token_file")
    reader_tokens: str | None = aliased(None, "reader_tokens")
    reader_tokens_file: Path | None = aliased(None, "reader_tokens_file")
    # /readyz, /metrics and the status page are open by default (the NetworkPolicy guards them).
    status_needs_token: bool = aliased(False, "status_needs_token")
    max_body: PositiveSize = aliased(ByteSize(32 * 1024 * 1024), "max_body")
    # A body must arrive whole within this many seconds (408 past it), so that a client that
    # sends slowly cannot hold a connection and a worker for as long as it likes.
    body_timeout: float = aliased(60.0, "body_timeout", gt=0, le=3600)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("service_token_file", "reader_tokens_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        return readable_file(value)

    @model_validator(mode="after")
    def _no_placeholder_in_production(self) -> ServiceSettings:
        if self.environment == "production":
            for name, tokens in self.token_sets().items():
                if placeholder_tokens(tokens):
                    raise ValueError(
                        f"{name} holds a placeholder or a token shorter than 12 characters"
                    )
        return self

    def service_tokens(self) -> tuple[str, ...]:
        """The service tokens: accepted from the caller, and the first sent on to the next hop."""
        return load_tokens(self.service_token, self.service_token_file)

    def reader_token_set(self) -> tuple[str, ...]:
        """Tokens allowed to read what lists or dumps stored data (`glitchflow_core.access`)."""
        return load_tokens(self.reader_tokens, self.reader_tokens_file)

    def token_sets(self) -> dict[str, tuple[str, ...]]:
        """Every configured token set by variable name (checked for placeholders in production)."""
        return {"SERVICE_TOKEN": self.service_tokens(), "READER_TOKENS": self.reader_token_set()}


class ChunkSettings(ServiceSettings):
    """Limits of the services that validate chunks (the API and the buffer)."""

    max_samples: int = aliased(DEFAULT_MAX_SAMPLES, "max_samples", ge=1)
    min_dt: float = aliased(DEFAULT_MIN_DT, "min_dt", gt=0)
    max_dt: float = aliased(DEFAULT_MAX_DT, "max_dt", gt=0, allow_inf_nan=False)
    max_chunks: int = aliased(DEFAULT_MAX_CHUNKS, "max_chunks", ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _dt_range(self) -> ChunkSettings:
        if self.min_dt > self.max_dt:
            raise ValueError("MIN_DT must not be larger than MAX_DT")
        return self

    def parse_chunk(self, body: bytes) -> Chunk:
        """`glitchflow_core.chunk.parse_chunk` with these limits."""
        return parse_chunk(body, self.max_samples, min_dt=self.min_dt, max_dt=self.max_dt)

    def parse_binary_chunk(
        self, body: bytes, channel: str | None, t0: str | None, dt: str | None
    ) -> Chunk:
        """`glitchflow_core.chunk.parse_binary_chunk` with these limits."""
        return parse_binary_chunk(
            body, channel, t0, dt, self.max_samples, min_dt=self.min_dt, max_dt=self.max_dt
        )


def http_url(value: str) -> str:
    """An ``http(s)://host[:port]`` base URL without its trailing slash, else `ValueError`."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL like http://127.0.0.1:8080")
    return value.rstrip("/")


def readable_file(value: Path | None) -> Path | None:
    """Refuse a token file that cannot be read, at start-up rather than on the first request."""
    if value is not None:
        try:
            value.read_bytes()
        except OSError as exc:
            raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    return value


# --------------------------------------------------------------------------- start-up


def bad_setting(prog: str, variable: str, value: object, reason: str) -> NoReturn:
    """End the process: one line naming the variable and its value, exit status 2."""
    print(f"{prog}: bad setting {variable}={value!s}: {reason}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_SETTING)


def variable_name(settings_class: type[BaseSettings], field: str) -> str:
    """The variable a field (named by its name or any alias) was read from.

    The first of its names set in the environment, else its project-prefixed name.
    """
    for name, info in settings_class.model_fields.items():
        alias = info.validation_alias
        choices = [str(c) for c in alias.choices] if isinstance(alias, AliasChoices) else []
        if field == name or field in choices:
            for choice in choices:
                if choice in os.environ:
                    return choice
            return choices[0] if choices else ENV_PREFIX + name.upper()
    return field


def load_settings(settings_class: type[S], prog: str) -> S:
    """The settings from the environment, or `bad_setting` for the first bad value."""
    try:
        return settings_class()
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = [str(part) for part in error.get("loc", ())]
        if loc:
            name = variable_name(settings_class, loc[0])
            value = os.environ.get(name, error.get("input"))
        else:  # a rule over several fields: its message names them
            name, value = "settings", "(several)"
        reason = str(error["msg"]).removeprefix("Value error, ")
        bad_setting(prog, name, value, reason)


def bind_socket(prog: str, host: str, port: int, source: str) -> socket.socket:
    """A listening socket on ``host:port``, or `bad_setting` naming ``source`` when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        bad_setting(prog, source, f"{host}:{port}", exc.strerror or str(exc))
    sock.listen(2048)
    return sock


def check_port_free(prog: str, host: str, port: int, source: str) -> None:
    """`bad_setting` unless ``host:port`` can be bound now (for servers that bind it themselves)."""
    bind_socket(prog, host, port, source).close()
