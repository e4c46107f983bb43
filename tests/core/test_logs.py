"""`configure_logging`: JSON lines on stderr, the access log quiet when asked."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from glitchflow_core.logs import access, configure_logging, log_request
from glitchflow_core.settings import ServiceSettings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back the root logger and the access logger as pytest had them."""
    root = logging.getLogger()
    handlers, level, access_level = root.handlers[:], root.level, access.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    access.setLevel(access_level)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("access_log", [True, False])
def test_access_lines_only_when_the_access_log_is_on(capsys, access_log: bool) -> None:
    log = configure_logging("svc", "INFO", access_log=access_log)
    log_request("GET", "/stats", 200, 0.001)
    log.info("started")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == (
        ["request", "started"] if access_log else ["started"]
    )
    if access_log:
        assert lines[0]["logger"] == "glitchflow.request" and lines[0]["path"] == "/stats"


@pytest.mark.usefixtures("restore_logging")
def test_a_quiet_access_log_still_passes_its_warnings(capsys) -> None:
    configure_logging("svc", "INFO", access_log=False)
    access.warning("slow request")
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "slow request"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False), ("0", False)])
def test_access_log_setting_reads_glitchflow_access_log(monkeypatch, value, expected) -> None:
    monkeypatch.setenv("GLITCHFLOW_ACCESS_LOG", value)
    assert ServiceSettings().access_log is expected
