"""Fixtures shared by every test folder: the real stack on loopback, a real S3 server."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from chromium import launched
from ports import free_port

from glitchflow_stack import Layout, Stack, service_processes

if TYPE_CHECKING:
    from seaweed import SeaweedS3


FIRST = (
    "tests/dags/test_e2e.py",
    "tests/dags/test_protocol.py",
    "tests/dags/test_up_airflow.py",
    "tests/reliability/test_crash.py",
    "tests/reliability/test_torture.py",
    "tests/dags/",
    "tests/reliability/",
)
"""Modules that take minutes each (a whole DAG run, Airflow's start, kill -9 and torture runs),
slowest first: handed out before the others, so that no worker is left with one at the end."""

ONE_BY_ONE = ("tests/dags/test_protocol.py",)
"""Modules without module-scoped fixtures whose tests take minutes in all: handed out a test at a
time (each DAG test makes its own Airflow home)."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """With pytest-xdist (addopts: 3 workers), hand out whole modules, the slowest first.

    A module's tests share its module-scoped fixtures (a started stack, a browser), made once on
    the worker that runs the module (``--dist loadscope``). ``xdist_group`` marks cannot group
    tests any other way: pytest 9.2 ignores the node ids pytest-xdist 3.8 rewrites for them
    (pytest-dev/pytest-xdist#1386).
    """
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SlowestFirst(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if nodeid.startswith(ONE_BY_ONE) else super()._split_scope(nodeid)

        def _assign_work_unit(self, node: object) -> None:
            slow = [unit for unit in self.workqueue if unit.startswith(FIRST)]
            slow.sort(key=lambda unit: next(i for i, p in enumerate(FIRST) if unit.startswith(p)))
            for unit in reversed(slow):
                self.workqueue.move_to_end(unit, last=False)
            super()._assign_work_unit(node)

    return SlowestFirst(config, log)


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


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One ``weed mini`` (a real S3 server) for the session, stopped after; started on first use."""
    from seaweed import SeaweedS3  # boto3 is imported only by the sessions that need it

    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3(seaweed: SeaweedS3) -> Iterator[SeaweedS3]:
    """The session's server, running (a fault test may have stopped it)."""
    seaweed.ensure_running()
    yield seaweed
    seaweed.ensure_running()


@pytest.fixture
def bucket(s3: SeaweedS3) -> str:
    """A fresh bucket of the session's server."""
    return s3.new_bucket()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless chromium for a browser test module (skipped, saying why, without chromium)."""
    with launched() as browser:
        yield browser
