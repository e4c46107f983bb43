"""Debian's chromium driven by Playwright, for the browser tests: one launch, one skip rule.

The tests skip only where chromium is not installed (``apt-get install -y chromium``; ``.ci/run``
does it). The fixture ``browser`` of tests/conftest.py launches it once per test module.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

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
MISSING = f"no chromium at {CHROMIUM} (apt-get install -y chromium)"

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING)
"""Mark of a browser test module: skipped, saying why, where chromium is not installed."""


@contextmanager
def launched() -> Iterator[Any]:
    """A headless chromium (a Playwright ``Browser``), closed on exit; skips without chromium."""
    if not CHROMIUM.exists():
        pytest.skip(MISSING)
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
