"""Where strain comes from: GWOSC open data, local files read by gwpy, or the synthetic source.

Every source returns a gwpy `TimeSeriesDict` keyed by channel name. gwpy (and astropy under it)
takes seconds to import, so it is imported inside the functions that need it.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from gwclient.synthetic import DEFAULT_START, Glitch, synthetic_series

if TYPE_CHECKING:
    from gwpy.timeseries import TimeSeriesDict

GWOSC_URL = "https://gwosc.org"
SHIPPED_SAMPLE = "HLV-HW100916-968654552-1.hdf"
"""One second of H1, L1 and V1 strain at 16384 Hz from GPS 968654552, shipped with gwpy."""

_HDF5_SUFFIXES = (".hdf", ".hdf5", ".h5")
_TEXT_SUFFIXES = (".txt", ".dat", ".csv", ".gz")


class SourceError(Exception):
    """Raised when a source cannot give data; the message is one line meant for the user."""


class GwoscUnreachable(SourceError):
    """Raised when the GWOSC server cannot be reached (no network, DNS failure, timeout)."""


# -- GWOSC ---------------------------------------------------------------------------------------


def _unreachable(detail: str) -> GwoscUnreachable:
    return GwoscUnreachable(
        f"GWOSC ({GWOSC_URL}) is unreachable ({detail}); "
        "stream a local source instead: --file PATH or --synthetic"
    )


def check_gwosc_reachable(url: str = GWOSC_URL, timeout: float = 10.0) -> None:
    """Open a TCP connection to the GWOSC host, so a dead network fails fast and in bounded time.

    Raises
    ------
    GwoscUnreachable
        When the name does not resolve or the host does not answer within ``timeout`` seconds.
    """
    parts = urlparse(url)
    host = parts.hostname or "gwosc.org"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror as exc:
        raise _unreachable(f"cannot resolve {host}: {exc.strerror}") from exc
    except TimeoutError as exc:
        raise _unreachable(f"no answer from {host}:{port} within {timeout:g} s") from exc
    except OSError as exc:
        raise _unreachable(f"{host}:{port}: {exc.strerror or exc}") from exc


def _is_network_error(exc: BaseException) -> bool:
    import requests

    if isinstance(
        exc, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError
    ):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_network_error(e) for e in exc.exceptions)
    cause = exc.__cause__ or exc.__context__
    return cause is not None and _is_network_error(cause)


def fetch_gwosc(
    *,
    event: str | None = None,
    start: float | None = None,
    end: float | None = None,
    detectors: Sequence[str] = (),
    before: float = 16.0,
    after: float = 16.0,
    sample_rate: int = 4096,
    timeout: float = 30.0,
) -> TimeSeriesDict:
    """Open data from GWOSC around an event, or over a GPS span.

    Parameters
    ----------
    event : str, optional
        Event name, e.g. ``"GW150914"``; data span ``[gps - before, gps + after)``.
    start, end : float, optional
        GPS span, used when no ``event`` is given.
    detectors : sequence of str
        Interferometers (``"H1"``, ``"L1"``, ``"V1"``); default: those that saw the event,
        or H1 and L1 for a GPS span.
    sample_rate : int
        4096 or 16384 Hz (the rates GWOSC publishes).
    timeout : float
        Seconds to wait for the server before giving up.

    Raises
    ------
    GwoscUnreachable
        When GWOSC cannot be reached.
    SourceError
        When GWOSC has no such event or no data for the span.
    """
    check_gwosc_reachable(GWOSC_URL, timeout=min(timeout, 10.0))
    import requests
    from gwosc import datasets
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    try:
        if event is not None:
            gps = float(datasets.event_gps(event))
            start, end = gps - before, gps + after
            if not detectors:
                detectors = sorted(datasets.event_detectors(event))
        if start is None or end is None or not end > start:
            raise SourceError("a GPS span needs START < END")
        out = TimeSeriesDict()
        for ifo in detectors or ("H1", "L1"):
            series = TimeSeries.fetch_open_data(
                ifo, start, end, sample_rate=sample_rate, timeout=timeout
            )
            out[str(series.name or ifo)] = series
        return out
    except SourceError:
        raise
    except (requests.RequestException, OSError, ValueError, ExceptionGroup) as exc:
        if _is_network_error(exc):
            raise _unreachable(type(exc).__name__) from exc
        what = f"event {event}" if event else f"GPS {start}-{end}"
        raise SourceError(f"GWOSC has no data for {what}: {_one_line(exc)}") from exc


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# -- files ---------------------------------------------------------------------------------------


def shipped_sample_path() -> Path:
    """The real H1/L1/V1 strain file gwpy ships for its tests (1 s at 16384 Hz)."""
    import gwpy.testing

    return Path(gwpy.testing.__file__).parent / "data" / SHIPPED_SAMPLE


def _hdf5_series_names(path: Path) -> tuple[bool, list[str]]:
    """``(is_gwosc_format, dataset names holding series)`` of an HDF5 file."""
    import h5py

    names: list[str] = []
    with h5py.File(path, "r") as h5f:
        if "strain/Strain" in h5f:
            return True, []

        def visit(name: str, obj: object) -> None:
            attrs = getattr(obj, "attrs", {})
            if isinstance(obj, h5py.Dataset) and ("x0" in attrs or "xunit" in attrs):
                names.append(name)

        h5f.visititems(visit)
    return False, names


def read_file(
    path: str | Path, channels: Sequence[str] = (), format: str | None = None
) -> TimeSeriesDict:
    """Strain from a local file: GWOSC HDF5, gwpy HDF5, GWF (with a frame library), or text.

    Parameters
    ----------
    path : str or Path
        The file.
    channels : sequence of str
        Channels to read (default: all series in an HDF5 file; required for GWF). For a text file,
        which holds one unnamed series, a single name given here names it.
    format : str, optional
        A gwpy format name (``"hdf5"``, ``"hdf5.gwosc"``, ``"gwf"``, ``"txt"``), to skip detection.

    Raises
    ------
    SourceError
        When the file is missing, unreadable, or lacks a requested channel.
    """
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"no such file: {path}")
    suffix = path.suffix.lower()
    try:
        if format == "hdf5.gwosc" or (format is None and suffix in _HDF5_SUFFIXES):
            gwosc_format, names = (True, []) if format == "hdf5.gwosc" else _hdf5_series_names(path)
            if gwosc_format:
                series = TimeSeries.read(path, format="hdf5.gwosc")
                return TimeSeriesDict({str(series.name): series})
            wanted = list(channels) or names
            missing = sorted(set(wanted) - set(names))
            if missing:
                raise SourceError(f"{path.name} has no channel {missing[0]!r}; it holds {names}")
            if not wanted:
                raise SourceError(f"{path.name} holds no time series")
            return TimeSeriesDict.read(path, names=wanted, format="hdf5")
        if format == "gwf" or (format is None and suffix == ".gwf"):
            return _read_gwf(path, channels)
        if format in ("txt", "csv") or (format is None and suffix in _TEXT_SUFFIXES):
            if len(channels) > 1:
                raise SourceError("a text file holds one series: give at most one --channel")
            series = TimeSeries.read(path, format=format) if format else TimeSeries.read(path)
            name = channels[0] if channels else None
            series.name = name
            return TimeSeriesDict({name or "default": series})
        if channels:
            return TimeSeriesDict.read(path, list(channels), format=format)
        return TimeSeriesDict({path.stem: TimeSeries.read(path, format=format)})
    except SourceError:
        raise
    except ImportError as exc:
        raise SourceError(f"cannot read {path.name}: {_one_line(exc)}") from exc
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise SourceError(f"cannot read {path.name}: {_one_line(exc)}") from exc


def _read_gwf(path: Path, channels: Sequence[str]) -> TimeSeriesDict:
    from gwpy.timeseries import TimeSeriesDict

    try:
        if not channels:
            from gwpy.io.gwf import iter_channel_names

            channels = list(iter_channel_names(path))
        return TimeSeriesDict.read(path, list(channels), format="gwf")
    except ImportError as exc:
        raise SourceError(
            f"cannot read {path.name}: reading GWF needs a frame library "
            "(python-framel, python-lalframe or python-ldas-tools-framecpp); "
            "install one, or use an HDF5 or text file"
        ) from exc


# -- synthetic -----------------------------------------------------------------------------------


def synthetic_channel(detector: str) -> str:
    """The channel name of synthetic data, e.g. ``"H1:SYNTH-STRAIN"``."""
    return f"{detector}:SYNTH-STRAIN"


def synthetic(
    detectors: Sequence[str] = ("H1",),
    *,
    duration: float = 16.0,
    sample_rate: float = 4096.0,
    start: float = DEFAULT_START,
    seed: int = 0,
    glitches: int | Sequence[float] = 0,
) -> tuple[TimeSeriesDict, list[Glitch]]:
    """Coloured Gaussian noise for each detector, with sine-Gaussian glitches.

    Returns the series keyed by channel (``"H1:SYNTH-STRAIN"``, ...) and every injected glitch.
    See `gwclient.synthetic.synthetic_series` for the parameters; the data are reproducible.
    """
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

    out = TimeSeriesDict()
    injected: list[Glitch] = []
    for ifo in detectors:
        samples, planned = synthetic_series(
            ifo, duration, sample_rate, start=start, seed=seed, glitches=glitches
        )
        channel = synthetic_channel(ifo)
        out[channel] = TimeSeries(
            samples,
            t0=start,
            sample_rate=sample_rate,
            name=channel,
            channel=channel,
            unit="strain",
        )
        injected.extend(planned)
    return out, injected
