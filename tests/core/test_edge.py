"""The request edge's input helpers and error answers, without a framework."""

from __future__ import annotations

import orjson
import pytest

from glitchflow_core.edge import (
    BodyReader,
    InvalidInput,
    Refused,
    TooLarge,
    Unauthorized,
    UnsupportedMediaType,
    answer,
    bounded_int,
    read_body_sync,
    request_object,
    require_media,
)


@pytest.mark.parametrize(("raw", "expected"), [(None, 7), ("0", 0), ("10", 10), ("007", 7)])
def test_bounded_int_reads_ascii_digits(raw: str | None, expected: int) -> None:
    assert bounded_int(raw, "limit", 0, 10, 7) == expected


@pytest.mark.parametrize("raw", ["", "11", "-1", "+1", " 1", "1_0", "²", "1.0", "ten"])
def test_bounded_int_refuses_naming_the_parameter(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        bounded_int(raw, "limit", 0, 10)
    assert (info.value.status, info.value.field) == (422, "limit")
    assert info.value.reason == "must be an integer from 0 to 10"


@pytest.mark.parametrize(
    "media", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_media_types_pass(media: str) -> None:
    require_media(media)


@pytest.mark.parametrize("media", ["text/plain", "application/jsonx", None, ""])
def test_other_media_types_are_415(media: str | None) -> None:
    with pytest.raises(UnsupportedMediaType) as info:
        require_media(media)
    assert info.value.status == 415


def test_empty_media_type_may_be_allowed() -> None:
    require_media("", empty_ok=True)


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(TooLarge):
        BodyReader(10, "11")


def test_chunked_body_stops_one_read_past_the_limit() -> None:
    reads: list[int] = []

    def read(size: int) -> bytes:
        reads.append(size)
        return b"x" * size

    with pytest.raises(TooLarge) as info:
        read_body_sync({}, read, 100)
    assert sum(reads) == 101  # never more than one byte past the limit
    assert info.value.body()["detail"] == {"field": "body", "reason": "is larger than 100 bytes"}


def test_declared_body_is_read_in_one_call() -> None:
    reads: list[int] = []

    def read(size: int) -> bytes:
        reads.append(size)
        return b"y" * size

    assert read_body_sync({"content-length": "50"}, read, 100) == b"y" * 50
    assert reads == [50]


def test_bad_content_length_is_400() -> None:
    with pytest.raises(InvalidInput) as info:
        BodyReader(10, "ten")
    assert (info.value.status, info.value.field) == (400, "content-length")


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"", "is required"), (b"{", "is not valid JSON"), (b"[1]", "must be a JSON object")],
)
def test_request_object_names_the_body(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        request_object(body)
    assert (info.value.field, info.value.reason) == ("body", reason)


def test_answers_carry_status_body_and_headers() -> None:
    assert answer(Unauthorized()) == (
        401,
        orjson.dumps({"resp": "UNAUTHORIZED", "detail": "a valid bearer token is required"}),
        {"WWW-Authenticate": "Bearer"},
    )
    frozen = Refused(503, "FROZEN", retry_after=5, batch=3)
    assert answer(frozen) == (503, b'{"resp":"FROZEN","batch":3}', {"Retry-After": "5"})
