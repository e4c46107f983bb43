"""Reading a batch in several processes: the same chunks, the same errors as one process.

`read_batch` forks only in a process without other threads, and a test run leaves threads
behind (servers of earlier tests), so what must fork runs in a fresh interpreter: the command
line, or a short script.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from dataset.conftest import GWPY_WARNING, archive_batch, drop, run_cli, samples_equal
from gwpy.timeseries import TimeSeriesDict

from glitchflow_archive import LocalArchive
from glitchflow_dataset.reader import plan_slices
from gwclient import sources
from gwclient.chunks import plan_chunks

pytestmark = pytest.mark.filterwarnings(GWPY_WARNING)

WORKERS = 3


@pytest.fixture(scope="module")
def gappy(tmp_path_factory) -> tuple[TimeSeriesDict, Path]:
    """Two channels, 8 s at 512 Hz in 1-s chunks, H1 missing seconds 2 and 5: the source and
    the archived batch folder."""
    source, _ = sources.synthetic(["H1", "L1"], duration=8, sample_rate=512, seed=3)
    chunks = drop(plan_chunks(source, 1.0), "H1:SYNTH-STRAIN", 2, 5)
    return source, archive_batch(tmp_path_factory.mktemp("gappy"), chunks)


def _open(folder: Path):
    store, ref = LocalArchive.open_folder(folder)
    return store, ref, store.read_manifest(ref)


PRELUDE = """
import os, sys
from pathlib import Path
from glitchflow_archive import LocalArchive
from glitchflow_dataset.reader import plan_slices, read_batch, read_chunks
store, ref = LocalArchive.open_folder(Path(sys.argv[1]))
manifest = store.read_manifest(ref)
"""


def in_fresh_process(code: str, folder: Path) -> str:
    """What ``code`` prints, run after `PRELUDE` in a fresh interpreter (no threads)."""
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + code, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_local_batch_is_cut_into_one_slice_per_process_in_manifest_order(gappy):
    code = """
slices = plan_slices(store, ref, manifest, 3)
print(len(slices), [e for part in slices for e in part] == list(manifest.files))
"""
    assert in_fresh_process(code, gappy[1]) == "3 True"
    store, ref, manifest = _open(gappy[1])
    assert plan_slices(store, ref, manifest, 1) == [list(manifest.files)]
    # One process unless told otherwise.
    assert plan_slices(store, ref, manifest) == [list(manifest.files)]


def test_processes_read_the_same_chunks_as_one_process(gappy):
    code = """
alone = list(read_chunks(store, ref, manifest))
together = read_batch(store, ref, manifest, workers=3)
print([c.identity for c in together] == [c.identity for c in alone])
print(all(a.h.dtype == b.h.dtype == "float64" and a.h.tobytes() == b.h.tobytes()
          for a, b in zip(together, alone, strict=True)))
# The last slice's samples came through a worker's pipe: views into one received array.
print(together[-1].h.base is not None and together[-1].h.base is together[-2].h.base)
"""
    assert in_fresh_process(code, gappy[1]).split() == ["True", "True", "True"]


def test_export_in_processes_reads_back_bit_exact(tmp_path, gappy):
    source, folder = gappy
    out = tmp_path / "b.h5"
    done = run_cli("export", str(folder), "--out", str(out), "--workers", str(WORKERS))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exported batch 1 (14 chunks, ")
    for name, series in source.items():
        read = TimeSeriesDict.read(out, group=name)
        got = np.concatenate([read[key].value for key in sorted(read)])
        expected = series.value
        if name == "H1:SYNTH-STRAIN":
            kept = np.ones(8, dtype=bool)
            kept[[2, 5]] = False
            expected = expected.reshape(8, 512)[kept].ravel()
            assert sorted(read) == ["0000", "0001", "0002"]
        assert samples_equal(got, expected)


def _manifest(folder: Path) -> dict:
    return orjson.loads((folder / "manifest.json").read_bytes())


def _flip(folder: Path, index: int) -> None:
    path = folder / _manifest(folder)["files"][index]["name"]
    data = bytearray(path.read_bytes())
    data[20] = ord("7") if data[20] != ord("7") else ord("3")
    path.write_bytes(bytes(data))


def _truncate(folder: Path, index: int) -> None:
    path = folder / _manifest(folder)["files"][index]["name"]
    path.write_bytes(path.read_bytes()[:-10])


def _not_a_chunk(folder: Path, index: int) -> None:
    doc = _manifest(folder)
    data = b'{"h": [], "t": [1, 1]}'
    (folder / doc["files"][index]["name"]).write_bytes(data)
    doc["files"][index].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    (folder / "manifest.json").write_bytes(orjson.dumps(doc))


def _remove(folder: Path, index: int) -> None:
    (folder / _manifest(folder)["files"][index]["name"]).unlink()


DAMAGE: list[tuple[str, Callable[[Path, int], None], str]] = [
    ("sha256 differs", _flip, "does not match its manifest sha256"),
    ("size differs", _truncate, "bytes, the manifest says "),
    ("not a chunk", _not_a_chunk, "is not a valid chunk (h: must hold at least"),
    ("file missing", _remove, "is in the manifest but missing"),
]


@pytest.mark.parametrize(("damage", "message"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
@pytest.mark.parametrize("where", ["first slice", "last slice", "two slices"])
def test_a_damaged_file_gives_the_error_of_one_process(tmp_path, gappy, damage, message, where):
    folder = tmp_path / gappy[1].name
    shutil.copytree(gappy[1], folder)
    count = len(_manifest(folder)["files"])
    # The first bad file in manifest order is the one named, whichever process reads it.
    indices = {"first slice": [1], "last slice": [count - 1], "two slices": [count - 2, 6]}
    for index in indices[where]:
        damage(folder, index)
    out = tmp_path / "out" / "b.h5"
    out.parent.mkdir()
    alone = run_cli("export", str(folder), "--out", str(out), "--workers", "1")
    together = run_cli("export", str(folder), "--out", str(out), "--workers", str(WORKERS))
    assert together.returncode == alone.returncode == 2
    assert message in together.stderr and together.stderr.count("\n") == 1, together.stderr
    assert together.stderr == alone.stderr
    assert list(out.parent.iterdir()) == []


def test_a_reader_process_that_dies_is_named_with_its_status(gappy):
    code = """
from glitchflow_dataset.errors import DatasetError

class DyingReader(LocalArchive):
    # Reads end any process but the one that made it.
    parent = os.getpid()

    def read_checked(self, ref, entry):
        if os.getpid() != self.parent:
            os._exit(3)
        return super().read_checked(ref, entry)

try:
    read_batch(DyingReader(store.root), ref, manifest, workers=3)
except DatasetError as exc:
    print(exc)
"""
    out = in_fresh_process(code, gappy[1])
    assert out == f"batch {gappy[1].name}: a reader process died (exit status 3)"
