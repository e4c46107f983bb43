"""The chain of three services under faults: started per test, stopped after."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.harness import Chain


@pytest.fixture
def chain_factory(tmp_path: Path) -> Iterator[Callable[..., Chain]]:
    """``chain_factory(max_size=..., freeze_mode=..., max_sealed=None, env=None)``: a started
    `Chain` with its data under ``tmp_path``; every one stopped at teardown."""
    started: list[Chain] = []

    def start(**kwargs: Any) -> Chain:
        chain = Chain(tmp_path / f"buffer{len(started)}", **kwargs)
        started.append(chain)
        return chain.start()

    yield start
    for chain in started:
        chain.stop()
