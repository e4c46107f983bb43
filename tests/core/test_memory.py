"""glibc keeps the memory of freed request bodies for reuse once a service tuned malloc."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from glitchflow_core import memory

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the thresholds are glibc's"
)

# Frees a 4 MB buffer (ten chunks' worth) and prints how much free memory malloc's heaps hold.
PROBE = """
import ctypes, sys
from glitchflow_core.memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
class Info(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
body = bytearray(4_000_000)
del body
print(libc.mallinfo2().fordblks)
"""


def free_heap_after_a_large_body(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


def test_freed_body_stays_in_the_heap_once_tuned() -> None:
    # By default glibc maps a 4 MB block on its own and unmaps it when freed.
    assert free_heap_after_a_large_body("default") < 1_000_000
    assert free_heap_after_a_large_body("tuned") >= 4_000_000


def test_thresholds_reach_child_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name, raising=False)
    assert memory.keep_freed_memory()
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == str(memory.MMAP_THRESHOLD)
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == str(memory.TRIM_THRESHOLD)


def test_operator_thresholds_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "1048576")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert not memory.keep_freed_memory()
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "1048576"
    assert "MALLOC_MMAP_THRESHOLD_" not in os.environ
