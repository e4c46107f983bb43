"""glitchflow_api settings: aliases, limits, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from glitchflow_api.settings import Settings


def test_original_ds_burl_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DS_BURL", "http://logic:5000/")
    assert Settings().ds_burl == "http://logic:5000"


def test_prefixed_limits_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHFLOW_MAX_BODY", "1MiB")
    monkeypatch.setenv("GLITCHFLOW_MAX_SAMPLES", "16384")
    settings = Settings()
    assert (settings.max_body, settings.max_samples) == (2**20, 16384)


@pytest.mark.parametrize(("field", "value"), [("max_body", "-5"), ("max_samples", 0)])
def test_limits_must_be_positive(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_logic_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match=r"ds_burl\n.*must be an http"):
        Settings(ds_burl="logic:5000")


def test_tokens_from_string_and_file(tmp_path: Path) -> None:
    path = tmp_path / "admins"
    path.write_text("# admins\nadmin-token-aaaaaaaaaa\n\nadmin-token-bbbbbbbbbb  # ops\n")
    settings = Settings(
        writer_tokens="w-token-1111111111,w-token-2222222222", admin_tokens_file=path
    )
    assert settings.writer_token_set() == ("w-token-1111111111", "w-token-2222222222")
    assert settings.admin_token_set() == ("admin-token-aaaaaaaaaa", "admin-token-bbbbbbbbbb")


@pytest.mark.parametrize("field", ["writer_tokens", "admin_tokens", "service_token"])
def test_placeholder_tokens_refused_in_production(field: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", **{field: "changeme"})


def test_placeholder_tokens_allowed_in_dev() -> None:
    assert Settings(admin_tokens="changeme").admin_token_set() == ("changeme",)


def test_unreadable_token_file_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"writer_tokens_file\n.*cannot be read"):
        Settings(writer_tokens_file=tmp_path / "absent")


def test_upstream_timeout_default_outlasts_the_logic_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    # datastore_logic waits 10 s for the buffer; the API must wait longer to relay its answer.
    monkeypatch.delenv("GLITCHFLOW_UPSTREAM_TIMEOUT", raising=False)
    assert Settings().upstream_timeout == 15.0
