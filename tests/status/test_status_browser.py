"""The status page in a real browser: Debian's chromium driven by Playwright.

Skipped only where chromium is not installed (``apt-get install -y chromium``; ``.ci/run`` does it).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect
from status.conftest import H1, L1, ROTATE_ENV, TOKENS, TOKENS_ENV, store_env

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags chromium reaches for Google's hosts on its own.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-results"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="chromium is not installed (apt-get install -y chromium)"
    ),
]


class Watched:
    """A page with every console error, page error and request URL it produced."""

    def __init__(self, page) -> None:
        self.page = page
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.navigations = 0
        page.on(
            "console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None
        )
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.on("request", lambda request: self.requests.append(request.url))
        page.on("framenavigated", self._navigated)

    def _navigated(self, frame) -> None:
        if frame == self.page.main_frame:
            self.navigations += 1

    def outside_hosts(self) -> list[str]:
        """Requests to anywhere but 127.0.0.1."""
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme != "data" and urlsplit(url).hostname != "127.0.0.1"
        ]


@pytest.fixture
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def watched(browser) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    yield Watched(context.new_page())
    context.close()


def open_page(page, url: str) -> None:
    """Open the status page at ``url`` and wait until it has drawn its numbers."""
    page.goto(url)
    page.wait_for_selector('[data-field="chunks"]')


def number(text: str) -> int:
    return int(re.sub(r"[^0-9]", "", text))


def screenshot(page, request: pytest.FixtureRequest, name: str) -> Path:
    folder = OUTPUT / re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path


def test_page_loads_offline_and_its_numbers_equal_stats(
    stack_factory, sender, watched, request
) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    send = sender(layout.api_url)
    t0 = 1_400_000_000.0
    send.stream(H1, t0, 2)
    send.stream(H1, t0 + 3.0, 2)  # a gap of 2.5 s in H1
    send.stream(L1, t0, 3)
    page = watched.page
    open_page(page, f"{layout.api_url}/dspage")
    stats = httpx.get(f"{layout.api_url}/stats", timeout=30).json()
    assert number(page.text_content('[data-field="chunks"]')) == stats["n_itm"] == 7
    assert number(page.text_content('[data-field="bytes"]')) == stats["buff_size"]
    assert page.text_content("#state") == "OPERATIONAL"
    # The gap is drawn, and wide enough to see.
    gap = page.locator(f'.channel[data-channel="{H1}"] rect.gap')
    assert gap.count() == 1
    assert gap.is_visible()
    box = gap.bounding_box()
    assert box is not None and box["width"] >= 2
    assert page.locator(f'.channel[data-channel="{L1}"] rect.gap').count() == 0
    # Stored chunks by identity, not by encoded file name.
    rows = page.locator("#chunks tbody tr")
    assert rows.count() == 7
    assert H1 in rows.first.text_content() and "%3A" not in page.content()
    shot = screenshot(page, request, "status.png")
    assert shot.stat().st_size > 10_000
    page.wait_for_timeout(2500)  # one poll at least
    assert watched.errors == []
    assert watched.outside_hosts() == []
    assert any(url.endswith("/status?page=1") for url in watched.requests)
    for token in TOKENS:
        assert token not in page.content()


def test_page_updates_without_reload_when_chunks_arrive(stack_factory, sender, watched) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    send = sender(layout.api_url)
    send.stream(H1, 1_400_000_000.0, 1)
    page = watched.page
    open_page(page, f"{layout.api_url}/dspage")
    assert number(page.text_content('[data-field="chunks"]')) == 1
    page.evaluate("window.__same_document = true")
    send.stream(H1, 1_400_000_000.25, 4)
    expect(page.locator('[data-field="chunks"]')).to_have_text("5", timeout=15_000)
    assert page.evaluate("window.__same_document") is True
    assert watched.navigations == 1
    assert watched.errors == []


def fill_a_batch_under_the_page(stack_factory, sender, watched, env: dict[str, str]):
    """Open the page on a batch of one chunk, then send the chunk that fills it (40,000 bytes)."""
    _, layout = stack_factory(max_size=40_000, env=env)
    send = sender(layout.api_url)
    send.stream(H1, 1_400_000_000.0, 1)
    page = watched.page
    open_page(page, f"{layout.api_url}/dspage")
    assert page.text_content("#state") == "OPERATIONAL"
    send.stream(H1, 1_400_000_000.25, 1)
    return page


def test_page_shows_frozen_and_what_frees_it(stack_factory, sender, watched, request) -> None:
    page = fill_a_batch_under_the_page(stack_factory, sender, watched, TOKENS_ENV)  # hold
    expect(page.locator("#state")).to_have_text("FROZEN", timeout=15_000)
    hint = page.text_content("#frozen-hint")
    assert "Frozen for" in hint and "/cleanbuf" in hint and "DAG" in hint
    screenshot(page, request, "frozen.png")
    assert watched.errors == []


def test_page_says_when_the_buffer_is_down_and_data_stale(stack_factory, sender, watched) -> None:
    stack, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    sender(layout.api_url).stream(H1, 1_400_000_000.0, 1)
    page = watched.page
    open_page(page, f"{layout.logic_url}/")
    stack.processes[0].stop()  # the databuffer
    page.wait_for_selector("#problem:not(.hidden)", timeout=15_000)
    assert "UPSTREAM_UNREACHABLE" in page.text_content("#problem")
    page.wait_for_selector("#stale:not(.hidden)", timeout=15_000)
    assert "stale" in page.text_content("#stale")


def test_page_is_readable_on_a_phone(stack_factory, sender, browser, request) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=TOKENS_ENV)
    sender(layout.api_url).stream(H1, 1_400_000_000.0, 2)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    open_page(page, f"{layout.api_url}/dspage")
    # Nothing but the tables' own scrolling boxes is wider than the screen.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    screenshot(page, request, "phone.png")
    context.close()


def test_page_shows_the_sealed_queue_after_a_seal(stack_factory, sender, watched, request) -> None:
    page = fill_a_batch_under_the_page(stack_factory, sender, watched, ROTATE_ENV)
    # Batch 1 is sealed and ingest goes on in batch 2.
    expect(page.locator('[data-field="sealed"]')).to_have_text("1 of 2", timeout=15_000)
    assert page.text_content("#state") == "OPERATIONAL"
    row = page.locator("#sealed tbody tr")
    assert row.count() == 1 and row.first.get_attribute("data-batch") == "1"
    assert "000001-" in row.first.text_content()
    assert "waiting for training" in page.text_content('.card:has([data-field="sealed"]) .sub')
    assert page.text_content('[data-field="ingest pause"]') == "none now"
    assert number(page.text_content('[data-field="chunks"]')) == 0  # batch 2, empty
    screenshot(page, request, "sealed.png")
    assert watched.errors == []


def test_page_shows_the_upload_problem_when_the_store_is_down(
    stack_factory, sender, watched, request, s3, bucket
) -> None:
    _, layout = stack_factory(max_size=10_000_000, env=store_env(s3, bucket))
    send = sender(layout.api_url)
    page = watched.page
    open_page(page, f"{layout.api_url}/dspage")
    expect(page.locator("#store")).to_have_attribute("data-reachable", "true", timeout=15_000)
    s3.kill()
    send.stream(H1, 1_400_000_000.0, 2)
    archive = send.flush()["archive"]
    problem = page.locator("#store-problem")
    expect(problem).to_be_visible(timeout=15_000)
    assert "Object store unreachable" in problem.text_content()
    assert f"s3://{bucket}/" in problem.text_content()
    note = page.locator('[data-upload="retrying"]')
    expect(note).to_be_visible(timeout=15_000)
    assert archive in page.text_content("table")
    expect(page.locator('[data-field="pending-uploads"]')).to_have_text("1")
    screenshot(page, request, "store-down.png")

    s3.start()
    uploaded = page.locator('[data-upload="uploaded"]')
    expect(uploaded).to_be_visible(timeout=30_000)
    assert "verified" in uploaded.text_content()
    expect(problem).to_have_count(0)
    assert "last error" in page.text_content("#store")
    assert watched.errors == []
    assert watched.outside_hosts() == []
