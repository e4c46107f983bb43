"""What ``glitchflow up --airflow`` hands Airflow: home, DAGs, connection, settings."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from glitchflow_stack.airflow import DAGS, admin_token, airflow_env, connection_uri
from glitchflow_stack.cli import _parser


def test_connection_uri_carries_the_api_address_and_the_token_as_password() -> None:
    uri = urlsplit(connection_uri("http://127.0.0.1:8000", "tok/en:with@odd"))
    assert (uri.scheme, uri.hostname, uri.port) == ("http", "127.0.0.1", 8000)
    assert unquote(uri.password or "") == "tok/en:with@odd"
    assert connection_uri("http://127.0.0.1:8000", None) == "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("env", "token"),
    [
        ({}, None),
        ({"GLITCHFLOW_ADMIN_TOKENS": "first-admin-token, second"}, "first-admin-token"),
        ({"GLITCHFLOW_ADMIN_TOKENS": " "}, None),
    ],
)
def test_admin_token_is_the_first_configured_one(env: dict[str, str], token: str | None) -> None:
    assert admin_token(env) == token


def test_admin_token_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "admin"
    path.write_text("\nfile-admin-token\nother\n")
    assert admin_token({"GLITCHFLOW_ADMIN_TOKENS_FILE": str(path)}) == "file-admin-token"


def test_airflow_env_points_airflow_at_the_stack(tmp_path: Path) -> None:
    env = airflow_env(
        tmp_path / "bin",
        tmp_path / "data",
        "http://127.0.0.1:18000",
        "127.0.0.1",
        18090,
        env={"PATH": "/usr/bin", "GLITCHFLOW_ADMIN_TOKENS": "admin-token-0123456789"},
    )
    assert env["PATH"].split(":")[:2] == [str(tmp_path / "bin"), "/usr/bin"]
    assert env["AIRFLOW_HOME"] == str(tmp_path / "data" / "airflow")
    assert env["AIRFLOW__CORE__DAGS_FOLDER"] == str(DAGS)
    assert (DAGS / "glitchflow_batch.py").is_file()
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    assert env["AIRFLOW__CORE__PARALLELISM"] == "4"
    assert (env["AIRFLOW__API__HOST"], env["AIRFLOW__API__PORT"]) == ("127.0.0.1", "18090")
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:18090"
    assert env["AIRFLOW_CONN_GLITCHFLOW_API"] == "http://:admin-token-0123456789@127.0.0.1:18000"
    assert env["GLITCHFLOW_RUNNER"] == "local"
    assert env["GLITCHFLOW_ARCHIVE_ROOT"] == str(tmp_path / "data" / "archive")
    assert env["GLITCHFLOW_OUTPUT_DIR"] == str(tmp_path / "data" / "datasets")


def test_up_takes_airflow_options() -> None:
    args = _parser().parse_args(["up", "--airflow", "--airflow-port", "9999"])
    assert (args.airflow, args.airflow_port) == (True, 9999)
    default = _parser().parse_args(["up"])
    assert (default.airflow, default.airflow_port) == (False, 8090)
