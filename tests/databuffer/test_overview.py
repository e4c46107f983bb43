"""The engine's status overview: kept as chunks arrive, never a listing of the data folder."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from databuffer.errors import Conflict
from databuffer.overview import PREVIEW_POINTS, strain_preview
from databuffer.storage import Storage
from glitchflow_core.chunk import Chunk

DT = 1 / 4096
H1 = "H1:GDS-CALIB_STRAIN"
L1 = "L1:GDS-CALIB_STRAIN"


def chunk(t0: float, n: int = 256, channel: str = H1, seed: int = 0) -> Chunk:
    h = np.random.default_rng(seed).normal(size=n)
    return Chunk(h=h, t0=t0, dt=DT, channel=channel)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def test_overview_of_an_empty_buffer(storage: Storage) -> None:
    doc = storage.overview(50)
    assert doc["stat"] == {"n_itm": 0, "buff_size": 0, "batch": 1, "dstatus": "OPERATIONAL"}
    assert doc["channels"] == []
    assert doc["chunks"] == {"items": [], "total": 0, "offset": 0, "limit": 50}
    assert doc["archives"] == {"items": [], "total": 0}
    assert doc["rate"]["chunks"] == 0
    assert doc["frozen_for_s"] is None


def test_channels_span_gaps_and_refused_overlaps(storage: Storage) -> None:
    t0 = 1_400_000_000.0
    for start in (t0, t0 + 256 * DT, t0 + 1.0):  # a gap from t0 + 0.125 to t0 + 1
        storage.write(chunk(start))
    storage.write(chunk(t0, channel=L1))
    with pytest.raises(Conflict):
        storage.write(chunk(t0 + 10 * DT, seed=7))
    doc = storage.overview(50)
    h1, l1 = doc["channels"]
    assert (h1["channel"], h1["n_itm"], h1["start"], h1["end"]) == (H1, 3, t0, t0 + 1.0 + 256 * DT)
    assert h1["sample_rate"] == 4096
    assert (h1["gap_count"], h1["gaps"]) == (1, [[t0 + 512 * DT, t0 + 1.0]])
    assert h1["gap_s"] == pytest.approx(1.0 - 512 * DT)
    assert h1["covered_s"] == pytest.approx(3 * 256 * DT)
    assert (h1["refused"], h1["refused_spans"]) == (1, [[t0 + 10 * DT, t0 + 266 * DT]])
    assert (l1["channel"], l1["gap_count"], l1["refused"]) == (L1, 0, 0)
    assert h1["recent"]["t0"] == t0 + 1.0
    assert h1["recent"]["n"] == 256


def test_chunks_page_names_channel_start_and_samples(storage: Storage) -> None:
    t0 = 1_400_000_000.0
    for i in range(5):
        storage.write(chunk(t0 + i * 256 * DT, n=256))
    doc = storage.overview(2, offset=2)
    items = doc["chunks"]["items"]
    assert [(c["channel"], c["t0"], c["n"], c["dt"]) for c in items] == [
        (H1, t0 + 2 * 256 * DT, 256, DT),
        (H1, t0 + 3 * 256 * DT, 256, DT),
    ]
    assert all(c["bytes"] > 0 for c in items)
    assert doc["chunks"]["total"] == 5


def test_rate_and_frozen_time_follow_the_clock(open_storage: Callable[..., Storage]) -> None:
    clock = Clock()
    storage = open_storage(clock=clock)
    for i in range(6):
        storage.write(chunk(1_400_000_000.0 + i * 256 * DT, n=256))
    storage.freeze_if("airflow")
    clock.now += 42
    doc = storage.overview(10)
    assert doc["rate"]["chunks"] == 6
    assert doc["rate"]["realtime"] == pytest.approx(6 * 256 * DT / 60)
    assert doc["frozen_for_s"] == pytest.approx(42)
    assert doc["state"]["user"] == "airflow"
    clock.now += 61
    assert storage.overview(10)["rate"]["chunks"] == 0


def test_archived_batches_are_summarised_without_their_file_lists(storage: Storage) -> None:
    storage.write(chunk(1_400_000_000.0))
    storage.write(chunk(1_400_000_000.0, channel=L1))
    storage.flush("done", force=True)
    doc = storage.overview(10)
    (archived,) = doc["archives"]["items"]
    assert doc["archives"]["total"] == 1
    assert (archived["batch"], archived["n_itm"]) == (1, 2)
    assert set(archived["channels"]) == {H1, L1}
    assert "files" not in archived
    assert doc["channels"] == []


def test_overview_never_lists_the_data_folder(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(20):
        storage.write(chunk(1_400_000_000.0 + i, n=64))
    data = str(storage.data_dir)
    real_scandir, real_listdir = os.scandir, os.listdir

    def scandir(path: object = ".") -> object:
        assert str(path) != data, "overview listed the data folder"
        return real_scandir(path)  # type: ignore[arg-type]

    def listdir(path: object = ".") -> list[str]:
        assert str(path) != data, "overview listed the data folder"
        return real_listdir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "listdir", listdir)
    assert storage.overview(50)["chunks"]["total"] == 20
    assert isinstance(Path(data), Path)


def test_strain_preview_keeps_every_sample_of_a_short_chunk() -> None:
    h = np.arange(100, dtype=float)
    preview = strain_preview(h, 10.0, DT)
    assert preview["min"] == preview["max"] == h.tolist()
    assert preview["step"] == 1


def test_strain_preview_of_a_long_chunk_keeps_its_extremes() -> None:
    h = np.zeros(16_384)
    h[1234] = 5.0  # a glitch
    h[9999] = -3.0
    preview = strain_preview(h, 10.0, DT)
    assert len(preview["max"]) == PREVIEW_POINTS
    assert max(preview["max"]) == 5.0 and min(preview["min"]) == -3.0


def test_strain_spectrum_peaks_at_a_sine_frequency() -> None:
    t = np.arange(4096) * DT
    preview = strain_preview(np.sin(2 * np.pi * 200 * t), 0.0, DT)
    spectrum = preview["asd"]
    peak = spectrum["f"][int(np.argmax(spectrum["asd"]))]
    assert 180 < peak < 220
