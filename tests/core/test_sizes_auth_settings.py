"""Sizes, tokens and settings helpers of the shared core."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from glitchflow_core.auth import bearer_token, load_tokens, placeholder_tokens, token_matches
from glitchflow_core.settings import ServiceSettings, aliased
from glitchflow_core.sizes import Size, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2000", 2000),
        (2000, 2000),
        ("64MiB", 64 * 1024**2),
        ("64 mib", 64 * 1024**2),
        ("1GB", 10**9),
        ("1.5kB", 1500),
        ("0", 0),
        ("1e11", 10**11),
        ("8MiB", 8 * 1024**2),
        (1e3, 1000),
    ],
)
def test_parse_size_accepts_common_forms(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-5", -5, "12 parsecs", "MiB", "", "8 MiBs", True])
def test_parse_size_refuses_nonsense(text: str | int) -> None:
    with pytest.raises(ValueError):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(512) == "512 B"
    assert format_size(64 * 1024**2) == "64.0 MiB"


def test_tokens_from_string_and_file(tmp_path: Path) -> None:
    secret = tmp_path / "tokens"
    secret.write_text("# writers\nfile-token-aaaaaaaa\n\n  other-token-bbbbbbbb  # comment\n")
    tokens = load_tokens("inline-token-1234, second-token-5678", secret)
    assert tokens == (
        "inline-token-1234",
        "second-token-5678",
        "file-token-aaaaaaaa",
        "other-token-bbbbbbbb",
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc ", "abc"),
        ("Basic abc", None),
        ("Bearer", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_token_matches_only_exact_tokens() -> None:
    accepted = ("alpha-token-1234", "beta-token-5678")
    assert token_matches("beta-token-5678", accepted)
    assert not token_matches("beta-token-567", accepted)
    assert not token_matches(None, accepted)
    assert not token_matches("anything", ())


def test_placeholder_tokens_are_spotted() -> None:
    assert placeholder_tokens(["changeme", "short", "a-long-random-token-value"]) == [
        "changeme",
        "short",
    ]


class _Settings(ServiceSettings):
    max_size: Size = aliased(1000, "max_size", "MAX_SIZE")


def test_original_variable_is_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SIZE", "64MiB")
    assert _Settings().max_size == 64 * 1024**2


def test_prefixed_variable_wins_over_the_original(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SIZE", "64MiB")
    monkeypatch.setenv("GLITCHFLOW_MAX_SIZE", "2000")
    assert _Settings().max_size == 2000


def test_field_name_works_in_code() -> None:
    assert _Settings(max_size="1GB").max_size == 10**9


def test_negative_size_is_refused_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHFLOW_MAX_SIZE", "-1")
    with pytest.raises(ValidationError, match="GLITCHFLOW_MAX_SIZE"):
        _Settings()
