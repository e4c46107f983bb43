"""/docs and /redoc in a real browser (Debian chromium via Playwright), API as a real process.

Every request the page makes is recorded: all must go to the API on 127.0.0.1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from chromium import needs_chromium
from ports import free_port

from glitchflow_stack import ManagedProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120), needs_chromium]


@pytest.fixture(scope="module")
def api_url() -> Iterator[str]:
    """The API alone (docs need no upstream): its /healthz answers, /readyz would not."""
    port = free_port()
    proc = ManagedProcess(
        "api",
        [sys.executable, "-m", "glitchflow_api", "--host", "127.0.0.1", "--port", str(port)],
        f"http://127.0.0.1:{port}",
        env={"GLITCHFLOW_DS_BURL": f"http://127.0.0.1:{free_port()}"},
    )
    proc.start()
    try:
        proc.wait_ready(30, path="/healthz")
        yield proc.url
    finally:
        proc.stop()


def open_page(browser, url: str, ready: str, shot: Path) -> tuple[list[str], list[str], object]:
    """Load ``url`` until ``ready`` shows; the URLs requested, console errors and the page."""
    page = browser.new_page()
    requested: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url, wait_until="networkidle")
    page.wait_for_selector(ready, timeout=20_000)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shot), full_page=False)
    return requested, errors, page


def outside(requested: list[str], api_url: str) -> list[str]:
    """Requests not to the API's own address (data: and blob: URLs are made in the page)."""
    own = urlsplit(api_url).netloc
    in_page = ("data:", f"blob:{api_url}/")
    return [url for url in requested if not url.startswith(in_page) and urlsplit(url).netloc != own]


OPERATIONS = ["/streamdata", "/train", "/cleanbuf", "/stats", "/dumpbuf", "/desc"]


def test_swagger_ui_lists_every_operation_offline(browser, api_url, tmp_path) -> None:
    requested, errors, page = open_page(
        browser, f"{api_url}/docs", ".opblock", tmp_path / "docs.png"
    )
    shown = page.locator(".opblock-summary-path").all_inner_texts()
    for path in OPERATIONS:
        assert any(text.replace("\u200b", "") == path for text in shown), (path, shown)
    assert outside(requested, api_url) == []
    assert any(url.endswith("/openapi.json") for url in requested)
    assert errors == []


def test_redoc_lists_every_operation_offline(browser, api_url, tmp_path) -> None:
    requested, errors, page = open_page(
        browser, f"{api_url}/redoc", "[data-section-id^='operation/']", tmp_path / "redoc.png"
    )
    text = page.inner_text("body")
    for path in OPERATIONS:
        assert path in text, path
    assert outside(requested, api_url) == []
    assert errors == []
