"""The reference trainer: an isolation forest on whitened Q-transform features of a dataset.

Small, real and replaceable: it proves an exported dataset is usable and gives the DAG a model
and a report. Each channel's segments are Q-transformed (gwpy, whitened, median-normalised
energy on log-spaced frequencies); each window of ``window`` seconds becomes one feature vector,
the log of the largest tile energy in each frequency band. An `IsolationForest` learns what the
data usually looks like; the windows it finds hardest to explain are the glitch candidates.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from glitchflow_dataset.errors import DatasetError
from glitchflow_dataset.export import (
    CONDITIONED_GROUP,
    QTRANSFORM_GROUP,
    SEGMENTS_GROUP,
    atomic_output,
)

MODEL_FILE = "model.joblib"
REPORT_FILE = "report.json"
BANDS = 24
"""Log-spaced frequency rows of the Q-transform, one feature each."""
F_LOW = 16.0
F_HIGH = 1024.0
FDURATION = 2.0
"""Seconds of the whitening filter; half of it at each segment edge is not scored. A segment
shorter than ``4 * FDURATION`` gets a filter of a quarter of its length (`conditioning`)."""
FFT_LENGTH = 2.0
"""Seconds per FFT of the ASD the data is whitened by (gwpy's default at 1024 Hz and above);
a segment shorter than ``2 * FFT_LENGTH`` uses half its length, so it is still averaged."""
MIN_SAMPLES = 64
"""A segment with fewer samples cannot be whitened: it is skipped."""
_NOT_CHANNELS = {SEGMENTS_GROUP, CONDITIONED_GROUP, QTRANSFORM_GROUP}


@dataclass(frozen=True, slots=True)
class Window:
    """One scored window of one channel, and where its loudest tile is."""

    channel: str
    start: float
    end: float
    peak_time: float
    peak_frequency: float
    peak_energy: float


def read_dataset(path: Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The root attributes and each channel's raw segments (gwpy TimeSeries) of a dataset."""
    import h5py

    if not path.is_file():
        raise DatasetError(f"no dataset {path}")
    try:
        h5f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path} is not an HDF5 dataset ({exc})") from exc
    with h5f:
        from gwpy.timeseries import TimeSeriesDict

        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in h5f.attrs.items()}
        channels = [k for k in h5f if k not in _NOT_CHANNELS and isinstance(h5f[k], h5py.Group)]
        series = {ch: list(TimeSeriesDict.read(h5f, group=ch).values()) for ch in channels}
    if not series:
        raise DatasetError(f"{path} holds no channel")
    return attrs, series


def _finite_runs(series: Any) -> Iterator[Any]:
    """The parts of ``series`` without NaN (a dataset exported with ``--pad-gaps`` has them)."""
    finite = np.isfinite(series.value)
    if finite.all():
        yield series
        return
    edges = np.diff(np.concatenate(([0], finite.astype(np.int8), [0])))
    for lo, hi in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        yield series[lo:hi]


def conditioning(duration: float, sample_rate: float) -> tuple[float, float]:
    """Whitening filter length and ASD FFT length (seconds) for a segment of ``duration``.

    Long segments get `FDURATION` and gwpy's default FFT length; short ones (the 1-s strain
    files GWOSC and gwpy ship) a quarter and a half of their length.
    """
    default_fft = max(FFT_LENGTH, float(np.ceil(2048 / sample_rate)))
    return min(FDURATION, duration / 4), min(default_fft, duration / 2)


def scorable(duration: float, sample_rate: float, window: float) -> bool:
    """True when a segment of ``duration`` holds one whole ``window`` once its edges (half the
    whitening filter each side) are left out, and enough samples to be whitened."""
    fduration, _ = conditioning(duration, sample_rate)
    return duration * sample_rate >= MIN_SAMPLES and duration - fduration >= window - 1e-9


def window_features(series: Any, window: float) -> tuple[np.ndarray, list[Window]]:
    """Feature rows (log of the peak Q energy per band) and the windows they describe.

    Windows within half the whitening filter (`conditioning`) of the segment's edges are left
    out: the filter is not settled there.
    """
    fs = float(series.sample_rate.value)
    fduration, fftlength = conditioning(float(abs(series.span)), fs)
    frange = (F_LOW, min(F_HIGH, 0.45 * fs))
    with warnings.catch_warnings():
        # gwpy lowers the top frequency to what the lowest Q can resolve and says so; expected.
        warnings.filterwarnings("ignore", "upper frequency of .* is too high", UserWarning)
        qspec = series.q_transform(
            frange=frange,
            qrange=(4, 64),
            tres=window / 8,
            fres=BANDS,
            logf=True,
            whiten=True,
            fduration=fduration,
            fftlength=fftlength,
        )
    energy = np.asarray(qspec.value)  # (times, frequencies)
    times = np.asarray(qspec.times.value)
    freqs = np.asarray(qspec.frequencies.value)
    edge = fduration / 2
    start, stop = float(series.span[0]) + edge, float(series.span[1]) - edge
    rows, windows = [], []
    t = start
    while t + window <= stop + 1e-9:
        inside = (times >= t) & (times < t + window)
        if inside.any():
            block = energy[inside]
            rows.append(np.log(block.max(axis=0) + 1e-12))
            ti, fi = np.unravel_index(np.argmax(block), block.shape)
            windows.append(
                Window(
                    str(series.channel or series.name),
                    t,
                    t + window,
                    float(times[inside][ti]),
                    float(freqs[fi]),
                    float(block[ti, fi]),
                )
            )
        t += window
    return np.asarray(rows).reshape(-1, BANDS), windows


def train_reference(
    dataset: Path, out: Path, *, window: float = 0.5, top: int = 20, seed: int = 0
) -> dict[str, Any]:
    """Train the reference detector on ``dataset``; write ``model.joblib`` and ``report.json``.

    Parameters
    ----------
    dataset : Path
        An HDF5 file written by ``glitchflow export``.
    out : Path
        Folder for the model and the report (created).
    window : float
        Seconds per scored window.
    top : int
        How many candidates (highest anomaly scores) the report lists.
    seed : int
        Seed of the isolation forest: same data, same seed, same model.

    Returns
    -------
    dict
        The report.

    Raises
    ------
    DatasetError
        The dataset is unreadable or too short to score any window.
    """
    if not window > 0 or top < 1:
        raise DatasetError("--window must be > 0 and --top >= 1")
    attrs, channels = read_dataset(Path(dataset))
    import joblib
    import sklearn
    from sklearn.ensemble import IsolationForest

    rows, windows, skipped = [], [], []
    for channel, segments in channels.items():
        for segment in segments:
            for part in _finite_runs(segment):
                span = (float(part.span[0]), float(part.span[1]))
                if not scorable(span[1] - span[0], float(part.sample_rate.value), window):
                    skipped.append({"channel": channel, "start": span[0], "end": span[1]})
                    continue
                features, described = window_features(part, window)
                rows.append(features)
                windows.extend(described)
    if not windows:
        shortest = 4 * window / 3
        raise DatasetError(
            f"{dataset}: no segment long enough to score (each of the {len(skipped)} needs at "
            f"least {shortest:.3g} s and {MIN_SAMPLES} samples for --window {window:g})"
        )
    features = np.vstack(rows)
    model = IsolationForest(n_estimators=200, contamination="auto", random_state=seed)
    model.fit(features)
    scores = -model.score_samples(features)  # higher: more anomalous
    flagged = model.predict(features) == -1
    order = np.argsort(-scores, kind="stable")[:top]
    candidates = [
        {
            "channel": windows[i].channel,
            "gps": windows[i].peak_time,
            "window": [windows[i].start, windows[i].end],
            "score": float(scores[i]),
            "flagged": bool(flagged[i]),
            "peak_frequency": windows[i].peak_frequency,
            "peak_energy": windows[i].peak_energy,
        }
        for i in order
    ]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "window": window,
        "bands": BANDS,
        "frange": [F_LOW, F_HIGH],
        "fduration": FDURATION,
        "fftlength": FFT_LENGTH,
        "short_segments": "fduration a quarter, fftlength half of the segment",
        "qrange": [4, 64],
        "n_estimators": 200,
        "seed": seed,
    }
    with atomic_output(out / MODEL_FILE) as tmp:
        joblib.dump(
            {
                "model": model,
                "features": "log peak whitened Q energy per band",
                "params": params,
                "sklearn": sklearn.__version__,
            },
            tmp,
        )
    report = {
        "dataset": str(Path(dataset).resolve()),
        "batch": attrs.get("batch"),
        "archive": attrs.get("archive"),
        "channels": sorted(channels),
        "windows": len(windows),
        "flagged": int(flagged.sum()),
        "top": candidates,
        "skipped_segments": skipped,
        "model": str((out / MODEL_FILE).resolve()),
        "params": params,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    with atomic_output(out / REPORT_FILE) as tmp:
        tmp.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report
