"""Export of archived batches to gwpy HDF5: bit-exact read-back, gaps, conditioning."""

from __future__ import annotations

import h5py
import numpy as np
import orjson
import pytest
from dataset.conftest import GWPY_WARNING, archive_batch, drop, samples_equal
from gwpy.segments import DataQualityDict
from gwpy.timeseries import TimeSeries, TimeSeriesDict

from glitchflow_archive import LocalArchive
from glitchflow_dataset.cli import main
from glitchflow_dataset.condition import Conditioning
from glitchflow_dataset.errors import DatasetError
from glitchflow_dataset.export import export_batch
from glitchflow_dataset.segments import join_segments
from gwclient import sources
from gwclient.chunks import chunk_array, plan_chunks

pytestmark = pytest.mark.filterwarnings(GWPY_WARNING)

START = 1_400_000_000.0


def test_shipped_strain_reads_back_bit_exact_at_its_gps_times(tmp_path, shipped):
    folder = archive_batch(tmp_path / "store", plan_chunks(shipped, 0.25))
    out = tmp_path / "hlv.h5"
    assert main(["export", "1", "--archive-root", str(folder.parent), "--out", str(out)]) == 0

    for name, series in shipped.items():
        read = TimeSeriesDict.read(out, group=name)
        assert list(read) == ["0000"]
        got = read["0000"]
        assert samples_equal(got.value, series.value)
        assert got.t0.value == series.t0.value and got.dt.value == series.dt.value
        assert str(got.channel) == name and str(got.unit) == "strain"
        single = TimeSeries.read(out, path=f"{name}/0000")
        assert samples_equal(single.value, series.value)
    with h5py.File(out) as h5f:
        assert h5f.attrs["batch"] == 1 and h5f.attrs["chunks"] == 12
        assert orjson.loads(h5f.attrs["channels"]) == sorted(shipped)
        assert h5f.attrs["conditioning"] == "none"


def _synthetic_with_gaps():
    source, _ = sources.synthetic(["H1", "L1"], duration=8, sample_rate=512, seed=2)
    chunks = plan_chunks(source, 1.0)
    # H1 loses seconds 2 and 5-6; L1 loses nothing.
    return source, drop(chunks, "H1:SYNTH-STRAIN", 2, 5, 6)


def test_gaps_split_a_channel_into_segments_never_closed(tmp_path):
    source, chunks = _synthetic_with_gaps()
    folder = archive_batch(tmp_path / "store", chunks)
    out = tmp_path / "gaps.h5"
    assert main(["export", str(folder), "--out", str(out)]) == 0

    h1 = TimeSeriesDict.read(out, group="H1:SYNTH-STRAIN")
    raw = source["H1:SYNTH-STRAIN"].value
    spans = [(0, 2), (3, 5), (7, 8)]
    assert list(h1) == ["0000", "0001", "0002"]
    for (lo, hi), series in zip(spans, h1.values(), strict=True):
        assert series.t0.value == START + lo and series.duration.value == hi - lo
        assert samples_equal(series.value, raw[lo * 512 : hi * 512])
    l1 = TimeSeriesDict.read(out, group="L1:SYNTH-STRAIN")
    assert samples_equal(l1["0000"].value, source["L1:SYNTH-STRAIN"].value)

    flags = DataQualityDict.read(out, path="segments")
    active = [(float(a), float(b)) for a, b in flags["H1:SYNTH-STRAIN"].active]
    assert active == [(START + lo, START + hi) for lo, hi in spans]
    assert [tuple(map(float, s)) for s in flags["H1:SYNTH-STRAIN"].known] == [(START, START + 8)]


def test_pad_gaps_fills_gaps_with_nan_only_when_asked(tmp_path):
    source, chunks = _synthetic_with_gaps()
    folder = archive_batch(tmp_path / "store", chunks)
    out = tmp_path / "padded.h5"
    assert main(["export", str(folder), "--out", str(out), "--pad-gaps"]) == 0

    series = TimeSeries.read(out, path="H1:SYNTH-STRAIN/0000")
    raw = source["H1:SYNTH-STRAIN"].value
    assert series.t0.value == START and series.value.shape == raw.shape
    missing = np.zeros(raw.shape, bool)
    missing[2 * 512 : 3 * 512] = missing[5 * 512 : 7 * 512] = True
    assert np.isnan(series.value[missing]).all()
    assert samples_equal(series.value[~missing], raw[~missing])
    with h5py.File(out) as h5f:
        assert bool(h5f.attrs["pad_gaps"]) is True
    flags = DataQualityDict.read(out, path="segments")
    assert len(flags["H1:SYNTH-STRAIN"].active) == 3  # the true segments are still recorded


def test_overlapping_chunks_are_refused_not_merged():
    h = np.arange(8.0)
    first = next(chunk_array(h, START, 0.25, "H1:X-Y", chunk_seconds=2))
    second = next(chunk_array(h, START + 1.0, 0.25, "H1:X-Y", chunk_seconds=2))
    from glitchflow_core.chunk import parse_chunk

    with pytest.raises(DatasetError, match="overlap at GPS"):
        join_segments([parse_chunk(first.body()), parse_chunk(second.body())])


def test_conditioning_writes_conditioned_series_tiles_and_says_what_was_done(tmp_path):
    source, _ = sources.synthetic(["H1"], duration=16, sample_rate=1024, seed=1)
    folder = archive_batch(tmp_path / "store", plan_chunks(source, 1.0))
    config = tmp_path / "cond.toml"
    config.write_text(
        "[resample]\nrate = 512\n[bandpass]\nlow = 20\nhigh = 150\n"
        "[whiten]\nfftlength = 2\n[qtransform]\nfrange = [20, 200]\nfres = 5\n"
    )
    out = tmp_path / "cond.h5"
    assert main(["export", str(folder), "--out", str(out), "--condition", str(config)]) == 0

    raw = TimeSeries.read(out, path="H1:SYNTH-STRAIN/0000")
    assert samples_equal(raw.value, source["H1:SYNTH-STRAIN"].value)  # raw kept as streamed
    cond = TimeSeries.read(out, path="conditioned/H1:SYNTH-STRAIN/0000")
    assert cond.sample_rate.value == 512 and cond.t0.value == START
    # Whitened data have unit variance in band; raw strain is ~1e-21.
    assert 0.05 < float(np.std(cond.value[1024:-1024])) < 20
    from gwpy.spectrogram import Spectrogram

    tiles = Spectrogram.read(out, path="qtransform/H1:SYNTH-STRAIN/0000")
    freqs = tiles.frequencies.value
    assert freqs[0] == pytest.approx(20) and freqs[1] - freqs[0] == pytest.approx(5)
    assert tiles.times.value[0] == START and tiles.shape[0] > 100
    with h5py.File(out) as h5f:
        steps = h5f.attrs["conditioning"]
        assert steps.startswith("resample(rate=512 Hz) -> bandpass(20-150 Hz) -> whiten(")
        assert "qtransform(frange=20-200 Hz" in steps
        assert orjson.loads(h5f.attrs["conditioning_config"])["bandpass"] == {
            "low": 20.0,
            "high": 150.0,
        }
        assert h5f["conditioned"].attrs["conditioning"] == steps


def test_conditioning_skips_a_segment_too_short_and_records_it(tmp_path):
    source, _ = sources.synthetic(["H1"], duration=1, sample_rate=256, seed=1)
    folder = archive_batch(tmp_path / "store", plan_chunks(source, 0.5))
    store, ref = LocalArchive.open_folder(folder)
    conditioning = Conditioning.model_validate({"whiten": {"fftlength": 4}})
    summary = export_batch(store, ref, tmp_path / "short.h5", conditioning=conditioning)
    assert summary.skipped and summary.skipped[0].startswith("conditioned/H1:SYNTH-STRAIN/0000")
    with h5py.File(tmp_path / "short.h5") as h5f:
        assert "conditioned" not in h5f
        assert orjson.loads(h5f.attrs["conditioning_skipped"]) == summary.skipped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"bandpass": {"low": 300, "high": 20}}', "bandpass: Value error, needs 0 < low < high"),
        ('{"smooth": {}}', "smooth: Extra inputs are not permitted"),
        ('{"resample": {"rate": -1}}', "resample: Value error, rate must be > 0"),
        ("{not json", "not valid TOML/JSON"),
    ],
)
def test_bad_conditioning_config_is_one_line_naming_the_field(tmp_path, text, message, capsys):
    config = tmp_path / "cond.json"
    config.write_text(text)
    out = tmp_path / "o.h5"
    assert main(["export", "1", "--out", str(out), "--condition", str(config)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()
