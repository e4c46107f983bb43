"""Reading a batch in several processes: the same chunks, the same errors as one process."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import pytest
from dataset.conftest import GWPY_WARNING, archive_batch, drop, samples_equal
from gwpy.timeseries import TimeSeriesDict

from glitchflow_archive import ArchiveError, LocalArchive
from glitchflow_dataset.errors import DatasetError
from glitchflow_dataset.export import export_batch
from glitchflow_dataset.reader import plan_slices, read_batch, read_chunks
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


def test_a_local_batch_is_cut_into_one_slice_per_process_in_manifest_order(gappy):
    store, ref, manifest = _open(gappy[1])
    slices = plan_slices(store, ref, manifest, WORKERS)
    assert len(slices) == WORKERS
    assert [e for part in slices for e in part] == list(manifest.files)
    assert plan_slices(store, ref, manifest, 1) == [list(manifest.files)]
    # A small batch stays in one process unless told otherwise.
    assert len(plan_slices(store, ref, manifest)) == 1


def test_processes_read_the_same_chunks_as_one_process(gappy):
    store, ref, manifest = _open(gappy[1])
    alone = list(read_chunks(store, ref, manifest))
    together = read_batch(store, ref, manifest, workers=WORKERS)
    assert [c.identity for c in together] == [c.identity for c in alone]
    for mine, theirs in zip(together, alone, strict=True):
        assert mine.h.dtype == np.float64 and mine.h.tobytes() == theirs.h.tobytes()
    # The last slice's samples came through a worker's pipe: views into one received array.
    assert together[-1].h.base is not None and together[-1].h.base is together[-2].h.base


def test_export_in_processes_reads_back_bit_exact(tmp_path, gappy):
    source, folder = gappy
    store, ref = LocalArchive.open_folder(folder)
    out = tmp_path / "b.h5"
    summary = export_batch(store, ref, out, workers=WORKERS)
    assert summary.chunks == 14
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


DAMAGE: list[tuple[str, Callable[[Path, int], None], type[Exception], str]] = [
    ("sha256 differs", _flip, ArchiveError, "does not match its manifest sha256"),
    ("size differs", _truncate, ArchiveError, "bytes, the manifest says "),
    ("not a chunk", _not_a_chunk, DatasetError, "is not a valid chunk (h: must hold at least"),
    ("file missing", _remove, ArchiveError, "is in the manifest but missing"),
]


@pytest.mark.parametrize(
    ("damage", "error", "message"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE]
)
@pytest.mark.parametrize("where", ["first slice", "last slice", "two slices"])
def test_a_damaged_file_gives_the_error_of_one_process(
    tmp_path, gappy, damage, error, message, where
):
    folder = tmp_path / gappy[1].name
    shutil.copytree(gappy[1], folder)
    count = len(_manifest(folder)["files"])
    # The first bad file in manifest order is the one named, whichever process reads it.
    indices = {"first slice": [1], "last slice": [count - 1], "two slices": [count - 2, 6]}
    for index in indices[where]:
        damage(folder, index)
    store, ref, manifest = _open(folder)
    with pytest.raises(error) as alone:
        list(read_chunks(store, ref, manifest))
    out = tmp_path / "out" / "b.h5"
    out.parent.mkdir()
    with pytest.raises(error) as together:
        export_batch(store, ref, out, workers=WORKERS)
    assert message in str(together.value)
    assert str(together.value) == str(alone.value)
    assert list(out.parent.iterdir()) == []


class DyingReader(LocalArchive):
    """A local archive whose reads end any process but the one that made it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.parent = os.getpid()

    def read_checked(self, ref, entry):
        if os.getpid() != self.parent:
            os._exit(3)
        return super().read_checked(ref, entry)


def test_a_reader_process_that_dies_is_named_with_its_status(gappy):
    _, ref, manifest = _open(gappy[1])
    store = DyingReader(gappy[1].parent)
    with pytest.raises(DatasetError, match=r"a reader process died \(exit status 3\)"):
        read_batch(store, ref, manifest, workers=WORKERS)
