"""The README and docs/: links stay inside the repository, every `glitchflow up` option is told."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from glitchflow_stack.cli import add_up_options

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_point_to_files_in_the_repository(page: Path) -> None:
    text = page.read_text()
    assert "`../" not in text, "a path outside the repository"
    for target in LINK.findall(text):
        path = (page.parent / target.split("#")[0]).resolve()
        assert "://" not in target, f"{target} leaves the repository"
        assert path.is_relative_to(ROOT), f"{target} leaves the repository"
        assert path.exists(), f"{target} does not exist"


def test_readme_documents_every_up_option() -> None:
    parser = argparse.ArgumentParser()
    add_up_options(parser)
    readme = (ROOT / "README.md").read_text()
    options = [o for a in parser._actions for o in a.option_strings if o.startswith("--")]
    assert "--no-demo" in options
    for option in options:
        if option != "--help":
            assert f"`{option}" in readme, f"{option} is not in the README"


def test_readme_documents_the_curl_scripts_options() -> None:
    readme = (ROOT / "README.md").read_text()
    for text in ("--url URL", "--help", "GLITCHFLOW_URL", "GLITCHFLOW_TOKEN"):
        assert text in readme
