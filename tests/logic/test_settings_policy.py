"""datastore_logic settings and the freeze policy, without HTTP."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from pydantic import ValidationError

from datastore_logic.policy import Policy, flush_answer
from datastore_logic.settings import Settings


@pytest.mark.parametrize(
    ("raw", "expected"), [(2000, 2000), ("2000", 2000), ("64MiB", 64 * 2**20), ("1GB", 10**9)]
)
def test_max_size_accepts_bytes_and_units(raw: object, expected: int) -> None:
    assert Settings(max_size=raw).max_size == expected


@pytest.mark.parametrize("raw", [-1, 0, "lots", "12XB", True])
def test_max_size_refuses_nonsense(raw: object) -> None:
    with pytest.raises(ValidationError, match="max_size"):
        Settings(max_size=raw)


def test_original_variable_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_SIZE", "2MiB")
    monkeypatch.setenv("DB_BURL", "http://buffer:8080/")
    settings = Settings()
    assert settings.max_size == 2 * 2**20
    assert settings.db_burl == "http://buffer:8080"


def test_prefixed_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLITCHFLOW_MAX_BATCH_AGE", "90")
    monkeypatch.setenv("GLITCHFLOW_UPSTREAM_TIMEOUT", "2.5")
    settings = Settings()
    assert settings.max_batch_age == 90.0
    assert settings.upstream_timeout == 2.5


@pytest.mark.parametrize("url", ["ftp://buffer:8080", "buffer:8080", "http://"])
def test_buffer_url_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError, match=r"db_burl\n.*must be an http"):
        Settings(db_burl=url)


@pytest.mark.parametrize("field", ["max_batch_age", "upstream_timeout"])
def test_seconds_must_be_positive(field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: 0})


def test_placeholder_service_token_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(environment="production", service_token="changeme")


def test_placeholder_service_token_allowed_in_dev() -> None:
    assert Settings(service_token="changeme").service_tokens() == ("changeme",)


def test_service_token_read_from_file(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text("a-long-service-token-0123\n")
    assert Settings(service_token_file=path).service_tokens() == ("a-long-service-token-0123",)


def test_missing_token_file_refused_at_start(tmp_path) -> None:
    with pytest.raises(ValidationError, match="cannot be read"):
        Settings(service_token_file=tmp_path / "absent")


def test_write_params_carry_threshold_age_and_mode() -> None:
    rotate = {"mode": "rotate", "max_sealed": "4"}
    assert Policy(2000).write_params() == {"freeze_at": "2000", **rotate}
    assert Policy(2000, 90.0).write_params() == {"freeze_at": "2000", "max_age": "90", **rotate}
    assert Policy(2000, 0.5, "hold").write_params() == {
        "freeze_at": "2000",
        "max_age": "0.5",
        "mode": "hold",
    }
    assert Policy(2000, None, "rotate", 9).write_params()["max_sealed"] == "9"


def test_freeze_request_asks_for_a_conditional_freeze() -> None:
    assert Policy(2000).freeze_request("airflow") == {
        "dstatus": "FROZEN",
        "user": "airflow",
        "if_size_at_least": 2000,
        "mode": "rotate",
        "max_sealed": 4,
    }
    assert Policy(2000, freeze_mode="hold").freeze_request("airflow") == {
        "dstatus": "FROZEN",
        "user": "airflow",
        "if_size_at_least": 2000,
        "mode": "hold",
    }


def test_freeze_mode_and_max_sealed_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().freeze_mode, Settings().max_sealed) == ("rotate", 4)
    monkeypatch.setenv("FREEZE_MODE", "hold")
    monkeypatch.setenv("MAX_SEALED", "2")
    assert (Settings().freeze_mode, Settings().max_sealed) == ("hold", 2)
    monkeypatch.setenv("GLITCHFLOW_FREEZE_MODE", "rotate")
    assert Settings().freeze_mode == "rotate"


def test_freeze_answer_passes_the_sealed_batch_archive_on() -> None:
    answer = Policy(2000).freeze_answer(
        {"resp": "FROZEN", "n_itm": 3, "buff_size": 2100, "batch": 7, "archive": "a", "sealed": 2}
    )
    assert answer == {
        "resp": "FROZEN",
        "n_f": 3,
        "bt_wrt": 2100,
        "batch": 7,
        "archive": "a",
        "sealed": 2,
    }


def test_freeze_answer_frozen_names_counts_and_batch() -> None:
    answer = Policy(2000).freeze_answer(
        {"resp": "FROZEN", "n_itm": 3, "buff_size": 2100, "batch": 7}
    )
    assert answer == {"resp": "FROZEN", "n_f": 3, "bt_wrt": 2100, "batch": 7}


def test_freeze_answer_waiting_names_threshold() -> None:
    answer = Policy(2000).freeze_answer(
        {"resp": "WAITING", "n_itm": 1, "buff_size": 10, "batch": 7}
    )
    assert answer == {"resp": "WAITING", "n_f": 1, "bt_wrt": 10, "max_size": 2000, "batch": 7}


@pytest.mark.parametrize(
    "answer",
    [
        {"resp": "FROZEN"},
        {"resp": "BUSY", "n_itm": 1, "buff_size": 1},
        {"resp": "WAITING", "n_itm": "1", "buff_size": 1},
        {},
    ],
)
def test_freeze_answer_refuses_anything_else(answer: dict) -> None:
    assert Policy(2000).freeze_answer(answer) is None


def test_fill_ratio_is_capped() -> None:
    assert Policy(2000).fill_ratio(500) == 0.25
    assert Policy(2000).fill_ratio(5000) == 1.0


def test_flush_answer_only_for_cleaned() -> None:
    body = {"resp": "CLEANED", "batch": 2, "archive": "000002-20261122T101500Z", "n_f": 3}
    assert flush_answer(body) == {
        "resp": "CLEANED",
        "batch": 2,
        "archive": "000002-20261122T101500Z",
        "body": body,
    }
    assert flush_answer({"resp": "NOT_FROZEN"}) is None


def test_gunicorn_config_reads_the_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    from datastore_logic.__main__ import CONFIG

    monkeypatch.setenv("GLITCHFLOW_HOST", "0.0.0.0")
    monkeypatch.setenv("GLITCHFLOW_PORT", "5123")
    monkeypatch.setenv("GLITCHFLOW_LOGIC_WORKERS", "3")
    monkeypatch.setenv("GLITCHFLOW_LOGIC_THREADS", "5")
    monkeypatch.setenv("GLITCHFLOW_GRACEFUL_TIMEOUT", "7")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(CONFIG))
    assert (config["bind"], config["workers"], config["threads"]) == ("0.0.0.0:5123", 3, 5)
    assert config["graceful_timeout"] == 7
    assert config["metrics_dir"] == str(tmp_path)
