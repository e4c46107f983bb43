"""Sources: the real strain file shipped with gwpy, the synthetic source, GWOSC unreachable."""

from __future__ import annotations

import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from gwclient import sources
from gwclient.chunks import plan_chunks
from gwclient.synthetic import DETECTOR_SCALE, aligo_psd, synthetic_series

# gwpy 4.1 still reads astropy's COPY_IF_NEEDED, which astropy 8 deprecates; nothing of ours.
pytestmark = pytest.mark.filterwarnings(
    "ignore:COPY_IF_NEEDED is no longer needed"
    ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
)

SHIPPED_CHANNELS = ["H1:LDAS-STRAIN", "L1:LDAS-STRAIN", "V1:h_16384Hz"]
SHIPPED_GPS = 968654552.0


def test_shipped_file_is_read_with_all_three_channels():
    path = sources.shipped_sample_path()
    data = sources.read_file(path)
    assert list(data) == SHIPPED_CHANNELS
    with h5py.File(path, "r") as h5f:
        for name, series in data.items():
            assert series.t0.value == SHIPPED_GPS
            assert series.sample_rate.value == 16384
            assert np.asarray(series.value).tobytes() == h5f[name][()].tobytes()


def test_shipped_file_chunks_carry_the_channel_names():
    chunks = plan_chunks(sources.read_file(sources.shipped_sample_path()), 0.25)
    assert len(chunks) == 12
    assert {c.channel for c in chunks} == set(SHIPPED_CHANNELS)
    assert sorted({c.t0 for c in chunks}) == [SHIPPED_GPS + k * 0.25 for k in range(4)]


def test_file_channels_can_be_chosen():
    data = sources.read_file(sources.shipped_sample_path(), ["V1:h_16384Hz"])
    assert list(data) == ["V1:h_16384Hz"]


def test_unknown_channel_is_named_in_the_error():
    with pytest.raises(sources.SourceError, match="X1:NOPE"):
        sources.read_file(sources.shipped_sample_path(), ["X1:NOPE"])


def test_missing_file_is_a_source_error(tmp_path):
    with pytest.raises(sources.SourceError, match="no such file"):
        sources.read_file(tmp_path / "absent.hdf5")


def test_gwosc_format_hdf5_is_read(tmp_path):
    path = tmp_path / "L-L1_GWOSC_4KHZ_R1-1126259447-32.hdf5"
    samples = np.random.default_rng(3).normal(size=4096) * 1e-21
    with h5py.File(path, "w") as h5f:
        ds = h5f.create_dataset("strain/Strain", data=samples)
        ds.attrs.update({"Xstart": 1126259447, "Xspacing": 1 / 4096, "Xunits": "second"})
        ds.attrs["Yunits"] = "strain"
        h5f.create_dataset("meta/Detector", data=b"L1")
        h5f.create_dataset("meta/Description", data=b"Strain data time series from LIGO")
    data = sources.read_file(path)
    ((name, series),) = data.items()
    assert name.startswith("L1:")
    assert series.t0.value == 1126259447
    assert np.asarray(series.value).tobytes() == samples.tobytes()


def test_gwpy_hdf5_written_by_gwpy_is_read_back(tmp_path):
    data, _ = sources.synthetic(["H1", "L1"], duration=1, sample_rate=512)
    path = tmp_path / "synthetic.h5"
    data.write(path, format="hdf5")
    again = sources.read_file(path)
    assert list(again) == list(data)
    for name in data:
        assert np.asarray(again[name].value).tobytes() == np.asarray(data[name].value).tobytes()


def test_text_file_is_named_by_the_channel_given(tmp_path):
    from gwpy.timeseries import TimeSeries

    path = tmp_path / "strain.txt"
    TimeSeries(np.arange(8.0), t0=100, dt=0.25).write(path)
    data = sources.read_file(path, ["H1:TEXT-STRAIN"])
    ((name, _series),) = data.items()
    assert name == "H1:TEXT-STRAIN"
    (chunk,) = plan_chunks(data, 2.0)
    assert (chunk.channel, chunk.t0, chunk.dt, chunk.h.tolist()) == (
        "H1:TEXT-STRAIN",
        100.0,
        0.25,
        list(np.arange(8.0)),
    )


def test_gwf_without_a_frame_library_says_what_to_install():
    gwf = sources.shipped_sample_path().with_suffix(".gwf")
    try:
        import framel  # noqa: F401
    except ImportError:
        with pytest.raises(sources.SourceError, match="frame library"):
            sources.read_file(gwf, ["H1:LDAS-STRAIN"])
    else:  # pragma: no cover - only where python-framel is installed
        assert list(sources.read_file(gwf, ["H1:LDAS-STRAIN"])) == ["H1:LDAS-STRAIN"]


# -- synthetic ------------------------------------------------------------------------------------


def test_synthetic_is_reproducible_by_seed():
    a, _ = synthetic_series("H1", 4, 2048, seed=7, glitches=2)
    b, _ = synthetic_series("H1", 4, 2048, seed=7, glitches=2)
    c, _ = synthetic_series("H1", 4, 2048, seed=8, glitches=2)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_synthetic_detector_does_not_depend_on_the_others_asked_for():
    alone, _ = sources.synthetic(["L1"], duration=1, sample_rate=1024, seed=5)
    both, _ = sources.synthetic(["H1", "L1"], duration=1, sample_rate=1024, seed=5)
    assert list(both) == ["H1:SYNTH-STRAIN", "L1:SYNTH-STRAIN"]
    assert alone["L1:SYNTH-STRAIN"].value.tobytes() == both["L1:SYNTH-STRAIN"].value.tobytes()
    assert not np.array_equal(both["H1:SYNTH-STRAIN"].value, both["L1:SYNTH-STRAIN"].value)


def test_synthetic_glitches_are_where_stated():
    start, rate = 1_000_000_000.0, 4096
    clean, none = synthetic_series("H1", 8, rate, start=start, seed=1)
    loud, glitches = synthetic_series("H1", 8, rate, start=start, seed=1, glitches=3)
    assert none == [] and len(glitches) == 3
    added = loud - clean  # glitches are drawn apart from the noise, which is unchanged
    times = start + np.arange(added.size) / rate
    for glitch in glitches:
        assert start + 0.5 <= glitch.time <= start + 7.5
        near = np.abs(times - glitch.time) < 4 * glitch.tau
        assert np.abs(added[near]).max() > 0.5 * glitch.amplitude
        np.testing.assert_allclose(added[near], glitch.waveform(times[near]), rtol=0, atol=1e-30)
    far = np.ones(added.size, dtype=bool)
    for glitch in glitches:
        far &= np.abs(times - glitch.time) > 10 * glitch.tau
    assert np.abs(added[far]).max() < 1e-30


def test_synthetic_glitches_at_given_times():
    _, glitches = synthetic_series("V1", 4, 1024, start=10.0, seed=0, glitches=[11.0, 12.5])
    assert [g.time for g in glitches] == [11.0, 12.5]


def welch(x: np.ndarray, fs: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """One-sided PSD averaged over Hann-windowed halves-overlapping segments (numpy only)."""
    window = np.hanning(nperseg)
    starts = range(0, x.size - nperseg + 1, nperseg // 2)
    spectra = [np.abs(np.fft.rfft(window * x[i : i + nperseg])) ** 2 for i in starts]
    psd = 2 * np.mean(spectra, axis=0) / (fs * np.sum(window**2))
    return np.fft.rfftfreq(nperseg, 1 / fs), psd


def test_synthetic_noise_follows_the_design_curve():
    rate = 4096
    samples, _ = synthetic_series("H1", 64, rate, seed=2)
    freqs, psd = welch(samples, fs=rate, nperseg=4 * rate)
    for f in (30.0, 60.0, 100.0, 200.0, 400.0, 1000.0):
        measured = psd[np.argmin(np.abs(freqs - f))]
        assert 0.5 < measured / (DETECTOR_SCALE["H1"] ** 2 * aligo_psd(f)) < 2.0, f


@pytest.mark.parametrize("rate", [100.0, 1000.0, 16384.0, 333.3])
def test_synthetic_any_sample_rate_and_duration(rate):
    data, _ = sources.synthetic(["H1"], duration=1.5, sample_rate=rate, start=5.0, glitches=1)
    series = data["H1:SYNTH-STRAIN"]
    assert len(series) == round(1.5 * rate)
    assert series.t0.value == 5.0
    assert np.isfinite(series.value).all()
    assert str(series.channel) == "H1:SYNTH-STRAIN"


# -- GWOSC ----------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_gwosc_unreachable_is_one_clear_line_and_a_non_zero_exit():
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "gwclient", "--event", "GW150914", "--detector", "L1"],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert time.monotonic() - started < 45
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "GWOSC" in lines[0] and "unreachable" in lines[0]
    assert "--file" in lines[0] and "--synthetic" in lines[0]
    assert done.stdout == ""


def test_gwosc_unreachable_from_python_raises_its_own_error():
    with pytest.raises(sources.GwoscUnreachable, match="unreachable"):
        sources.fetch_gwosc(start=1126259446, end=1126259478, detectors=["H1"], timeout=5)


def test_original_gwid_variable_selects_the_event(monkeypatch):
    from gwclient import cli

    monkeypatch.setenv("GWID", "GW150914")
    monkeypatch.setenv("DTCID", "L1")
    monkeypatch.setenv("INF", "-13")
    monkeypatch.setenv("SUP", "16")
    args = cli.build_parser().parse_args([])
    with pytest.raises(sources.GwoscUnreachable):
        cli.load_source(args)
    assert cli.main([]) == cli.EXIT_SOURCE
