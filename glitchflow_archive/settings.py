"""Where archives go: the S3-compatible store's settings, shared by the buffer and the batch tools.

Unset (no ``GLITCHFLOW_ARCHIVE_S3_BUCKET``), archives stay in the local folder. Credentials come
from ``GLITCHFLOW_ARCHIVE_S3_ACCESS_KEY_ID`` / ``..._SECRET_ACCESS_KEY``, or from a file in the
AWS shared-credentials form (``GLITCHFLOW_ARCHIVE_S3_CREDENTIALS_FILE``, a mounted Secret), or
else from boto3's own chain (``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

from pydantic import field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from glitchflow_core.settings import ENV_PREFIX, aliased, http_url

DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Location:
    """An S3-compatible bucket and how to reach it."""

    endpoint: str
    bucket: str
    prefix: str = ""
    region: str = DEFAULT_REGION
    access_key_id: str | None = None
    secret_access_key: str | None = None
    credentials_file: Path | None = None
    timeout: float = 5.0

    @property
    def key_prefix(self) -> str:
        """The prefix under which batches are, ending in ``/`` unless empty."""
        prefix = self.prefix.strip("/")
        return f"{prefix}/" if prefix else ""

    def credentials(self) -> tuple[str | None, str | None]:
        """The key id and secret: given, else from the credentials file, else (None, None)."""
        if self.access_key_id and self.secret_access_key:
            return self.access_key_id, self.secret_access_key
        if self.credentials_file is not None:
            return read_credentials_file(self.credentials_file)
        return None, None


def read_credentials_file(path: Path) -> tuple[str, str]:
    """``aws_access_key_id`` and ``aws_secret_access_key`` of the first section of an AWS
    shared-credentials file.

    Raises
    ------
    ValueError
        The file cannot be read or lacks either key.
    """
    parser = configparser.ConfigParser()
    try:
        parser.read_string(path.read_text())
    except (OSError, configparser.Error) as exc:
        raise ValueError(f"cannot read credentials file {path}: {exc}") from None
    for section in parser.sections():
        key_id = parser[section].get("aws_access_key_id")
        secret = parser[section].get("aws_secret_access_key")
        if key_id and secret:
            return key_id, secret
    raise ValueError(f"{path} has no aws_access_key_id and aws_secret_access_key")


class ArchiveSettings(BaseSettings):
    """The object-store fields (``GLITCHFLOW_ARCHIVE_*``); a service's settings class adds them by
    inheriting this next to the core base, the batch tools read it alone."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    archive_s3_endpoint: str | None = aliased(None, "archive_s3_endpoint")
    archive_s3_bucket: str | None = aliased(None, "archive_s3_bucket")
    archive_s3_prefix: str = aliased("", "archive_s3_prefix")
    archive_s3_region: str = aliased(DEFAULT_REGION, "archive_s3_region")
    archive_s3_access_key_id: str | None = aliased(None, "archive_s3_access_key_id")
    archive_s3_secret_access_key: str | None = aliased(None, "archive_s3_secret_access_key")
    archive_s3_credentials_file: Path | None = aliased(None, "archive_s3_credentials_file")
    archive_s3_timeout: float = aliased(5.0, "archive_s3_timeout", gt=0, le=600)
    archive_keep_local: bool = aliased(False, "archive_keep_local")
    archive_retry_max_delay: float = aliased(30.0, "archive_retry_max_delay", gt=0, le=3600)

    @field_validator("archive_s3_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return http_url(value) if value else None

    @field_validator("archive_s3_credentials_file")
    @classmethod
    def _credentials_file(cls, value: Path | None) -> Path | None:
        if value is not None:
            read_credentials_file(value)
        return value

    @model_validator(mode="after")
    def _bucket_with_endpoint(self) -> ArchiveSettings:
        if self.archive_s3_bucket and not self.archive_s3_endpoint:
            raise ValueError(f"{ENV_PREFIX}ARCHIVE_S3_BUCKET needs {ENV_PREFIX}ARCHIVE_S3_ENDPOINT")
        if bool(self.archive_s3_access_key_id) != bool(self.archive_s3_secret_access_key):
            raise ValueError(
                f"{ENV_PREFIX}ARCHIVE_S3_ACCESS_KEY_ID and ..._SECRET_ACCESS_KEY go together"
            )
        return self

    def s3_location(self) -> S3Location | None:
        """The configured bucket, or None: archives stay in the local folder."""
        if not self.archive_s3_bucket or not self.archive_s3_endpoint:
            return None
        return S3Location(
            endpoint=self.archive_s3_endpoint,
            bucket=self.archive_s3_bucket,
            prefix=self.archive_s3_prefix,
            region=self.archive_s3_region,
            access_key_id=self.archive_s3_access_key_id,
            secret_access_key=self.archive_s3_secret_access_key,
            credentials_file=self.archive_s3_credentials_file,
            timeout=self.archive_s3_timeout,
        )
