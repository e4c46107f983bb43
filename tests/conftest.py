"""Fixtures shared by every test folder: the real stack on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from chromium import launched

from glitchflow_stack import Layout, Stack, free_port, service_processes


def _layout() -> Layout:
    return Layout("127.0.0.1", free_port(), free_port(), free_port())


@pytest.fixture
def stack_factory(tmp_path: Path) -> Iterator[Callable[..., tuple[Stack, Layout]]]:
    """Start the three services as real processes on free 127.0.0.1 ports; all stopped at teardown.

    Call it as ``stack, layout = stack_factory(max_size=4000, env={...}, logic_workers=2)``.
    """
    started: list[Stack] = []

    def start(
        *,
        max_size: int = 64 * 1024 * 1024,
        env: Mapping[str, str] | None = None,
        logic_workers: int = 2,
        api_workers: int = 1,
        data_dir: Path | None = None,
    ) -> tuple[Stack, Layout]:
        layout = _layout()
        stack = Stack(
            service_processes(
                layout,
                data_dir or tmp_path / f"data{len(started)}",
                max_size,
                logic_workers=logic_workers,
                api_workers=api_workers,
                env=env,
            )
        )
        started.append(stack)
        stack.start()
        return stack, layout

    yield start
    for stack in reversed(started):
        stack.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless chromium for a browser test module (skipped, saying why, without chromium)."""
    with launched() as browser:
        yield browser
