"""The buffer process builds its app with the collector off and freezes what start-up made."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from databuffer.__main__ import build_long_lived


@pytest.fixture
def clean_gc() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.enable()


def test_start_up_objects_are_frozen_and_collection_resumes(clean_gc: None) -> None:
    seen_enabled = []

    def build() -> list[dict[str, int]]:
        seen_enabled.append(gc.isenabled())
        return [{"chunk": i} for i in range(5_000)]

    index = build_long_lived(build)

    assert seen_enabled == [False]
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(index)
    # A full collection no longer walks them: they are in no generation.
    walked = {id(obj) for obj in gc.get_objects()}
    assert not any(id(entry) in walked for entry in index)


def test_collector_back_on_when_the_build_fails(clean_gc: None) -> None:
    def build() -> None:
        raise OSError("data folder unreadable")

    with pytest.raises(OSError, match="unreadable"):
        build_long_lived(build)
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0
