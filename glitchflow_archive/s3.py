"""Archived batches in an S3-compatible bucket: ``s3://<bucket>/<prefix><batch name>/<file>``.

boto3 rather than obstore: PutObject takes ``ChecksumSHA256`` (the server refuses a body that
does not match it) and HeadObject returns it, so a batch is verified against its manifest's
sha256 with one HEAD per file instead of reading every byte back; boto3 and its error codes are
what every S3-compatible server (SeaweedFS, MinIO, Ceph, AWS) is tested against. It is imported
only when a bucket is configured, so the services start as fast as before without one.

A batch is complete when its ``manifest.json`` is there: the uploader puts it last, and
`S3Archive.names` lists only batches that have one (the others are `incomplete_names`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from glitchflow_archive.store import (
    MANIFEST,
    ArchiveError,
    BatchNotFound,
    FileMismatch,
    StoredObject,
    WritableStore,
)

if TYPE_CHECKING:
    from glitchflow_archive.settings import S3Location

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_TRY_AGAIN = {"SlowDown", "RequestTimeout", "InternalError", "ServiceUnavailable"}


class StoreUnavailable(ArchiveError):
    """Raised when the object store cannot be reached or answers with a server error (5xx,
    a timeout, a refused connection): worth trying again later."""


class StoreRefused(ArchiveError):
    """Raised when the object store refuses a request for good (no such bucket, bad
    credentials, access denied): retrying will not help until the settings change."""


def sha256_b64(hex_digest: str) -> str:
    """The base64 form of a hex sha256, as S3's ``x-amz-checksum-sha256`` carries it."""
    return base64.b64encode(bytes.fromhex(hex_digest)).decode("ascii")


class S3Archive(WritableStore):
    """Archived batches under a prefix of an S3-compatible bucket.

    Parameters
    ----------
    location : S3Location
        Endpoint, bucket, prefix, region, credentials and timeouts.
    client : optional
        A boto3 S3 client; built from ``location`` when not given.
    """

    def __init__(self, location: S3Location, client: Any = None) -> None:
        self.bucket = location.bucket
        self.prefix = location.key_prefix
        self.endpoint = location.endpoint
        self.client = client if client is not None else make_client(location)

    # ----------------------------------------------------------------- keys

    def _key(self, name: str, file: str = "") -> str:
        if not name or "/" in name or name.startswith(".") or "/" in file:
            raise BatchNotFound(f"{name!r} is not an archived batch name")
        return f"{self.prefix}{name}/{file}"

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.prefix}{name}"

    # ----------------------------------------------------------------- listing

    def _batch_prefixes(self) -> list[str]:
        names: list[str] = []
        for page in self._pages(Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", ()):
                names.append(common["Prefix"][len(self.prefix) :].rstrip("/"))
        return names

    def names(self) -> list[str]:
        """Batches whose manifest is in the bucket: a batch being uploaded is not listed."""
        return [n for n in self._batch_prefixes() if self.head(n, MANIFEST) is not None]

    def incomplete_names(self) -> list[str]:
        """Batches with files but no manifest yet: an upload under way or interrupted."""
        # Some servers (SeaweedFS) keep an emptied folder as a prefix: only files count.
        return [
            n
            for n in self._batch_prefixes()
            if self.head(n, MANIFEST) is None and self.list_files(n)
        ]

    def list_files(self, name: str) -> list[str]:
        key = self._key(name)
        files = []
        for page in self._pages(Bucket=self.bucket, Prefix=key):
            files.extend(obj["Key"][len(key) :] for obj in page.get("Contents", ()))
        return [f for f in files if f and "/" not in f]

    # ----------------------------------------------------------------- objects

    def read_bytes(self, name: str, file: str) -> bytes:
        try:
            answer = self._call(
                self.client.get_object, Bucket=self.bucket, Key=self._key(name, file)
            )
            return self._call(answer["Body"].read)
        except _Missing as exc:
            raise FileNotFoundError(f"{self.location(name)}/{file}") from exc

    def head(self, name: str, file: str) -> StoredObject | None:
        """Size and stored sha256 (hex) of ``file`` in batch ``name``; None when absent."""
        try:
            answer = self._call(
                self.client.head_object,
                Bucket=self.bucket,
                Key=self._key(name, file),
                ChecksumMode="ENABLED",
            )
        except _Missing:
            return None
        checksum = answer.get("ChecksumSHA256")
        digest = base64.b64decode(checksum).hex() if checksum else None
        return StoredObject(int(answer["ContentLength"]), digest)

    def put(self, name: str, file: str, data: bytes, sha256: str | None = None) -> None:
        """Store ``data`` as ``file`` of batch ``name``; the server checks it against ``sha256``."""
        digest = sha256 or hashlib.sha256(data).hexdigest()
        self._call(
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(name, file),
            Body=data,
            ChecksumSHA256=sha256_b64(digest),
            ContentType="application/json",
        )

    def delete(self, name: str) -> None:
        """Remove every object of batch ``name``, its manifest first (so it is never listed
        half-removed)."""
        files = self.list_files(name)
        for file in sorted(files, key=lambda f: f != MANIFEST):
            self._call(self.client.delete_object, Bucket=self.bucket, Key=self._key(name, file))

    def check_reachable(self) -> None:
        """Raise `StoreUnavailable` or `StoreRefused` unless the bucket answers."""
        try:
            self._call(self.client.head_bucket, Bucket=self.bucket)
        except _Missing as exc:
            raise StoreRefused(f"{self.endpoint} has no bucket {self.bucket}") from exc

    # ----------------------------------------------------------------- errors

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """The pages of a ``list_objects_v2`` listing, each fetched through `_call`."""
        pages = iter(self.client.get_paginator("list_objects_v2").paginate(**kwargs))
        while True:
            page = self._call(next, pages, None)
            if page is None:
                return
            yield page

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(...)`` with botocore's errors turned into this package's (`_Missing` for 404)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            if code in _NOT_FOUND and code != "NoSuchBucket":
                raise _Missing(code) from exc
            message = error.get("Message", "")
            what = f"{self.endpoint} bucket {self.bucket}: {code or status} {message}"
            if code == "BadDigest":
                raise FileMismatch(what.strip()) from exc
            if status >= 500 or code in _TRY_AGAIN:
                raise StoreUnavailable(what.strip()) from exc
            raise StoreRefused(what.strip()) from exc
        except BotoCoreError as exc:
            raise StoreUnavailable(f"{self.endpoint} unreachable: {exc}") from exc


class _Missing(Exception):
    """Internal: the object (or bucket) is not there; callers turn it into their answer."""


def make_client(location: S3Location) -> Any:
    """A boto3 S3 client for ``location``: path-style addressing, short timeouts, no retries of
    its own (the caller's retry policy decides)."""
    import boto3
    from botocore.config import Config

    key_id, secret = location.credentials()
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=location.timeout,
        read_timeout=location.timeout,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=location.endpoint,
        region_name=location.region,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=config,
    )
