"""Settings helpers: project-prefixed variables, with the original value names as aliases."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from glitchflow_core.sizes import parse_size

ENV_PREFIX = "GLITCHFLOW_"


def aliased(default: Any, name: str, *originals: str, **kwargs: Any) -> Any:
    """A settings field read from ``GLITCHFLOW_<NAME>`` or one of the original variable names.

    The field's own name stays accepted too, so tests can write ``Settings(max_size=100)``.
    """
    choices = AliasChoices(ENV_PREFIX + name.upper(), *originals)
    return Field(default, validation_alias=choices, **kwargs)


class ServiceSettings(BaseSettings):
    """What every service's settings have in common."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", populate_by_name=True, frozen=True
    )

    environment: Literal["dev", "production"] = aliased("dev", "environment")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = aliased("INFO", "log_level")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def size_field(value: object) -> int:
    """Validator body for byte sizes: ``2000``, ``64MiB``, ``1GB``."""
    if not isinstance(value, int | float | str):
        raise ValueError("a size must be a number of bytes or a string like 64MiB")
    return parse_size(value)
