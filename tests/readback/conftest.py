"""The read-back tests' data: the real H1/L1/V1 second that ships with gwpy, and bit-exact checks.

gwpy is imported once here (its astropy deprecation is nothing of ours).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

with warnings.catch_warnings():
    # gwpy 4.1 reads astropy's deprecated COPY_IF_NEEDED once, at import: import it here, once,
    # so that test modules can import gwpy at their top.
    warnings.filterwarnings("ignore", "COPY_IF_NEEDED is no longer needed")
    import gwpy
    from gwpy.timeseries import TimeSeries, TimeSeriesDict

GWPY_WARNINGS = pytest.mark.filterwarnings(
    "ignore:COPY_IF_NEEDED is no longer needed"
    ":astropy.utils.exceptions.AstropyPendingDeprecationWarning"
)
"""What gwpy's reading and writing warn about (astropy's, nothing of ours)."""
HLV = Path(gwpy.__file__).parent / "testing" / "data" / "HLV-HW100916-968654552-1.hdf"
CHANNELS = ["H1:LDAS-STRAIN", "L1:LDAS-STRAIN", "V1:h_16384Hz"]
T0 = 968654552.0
DT = 1 / 16384
CHUNK = 2048  # samples per chunk: 1/8 s


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` hold the same float64 values, bit for bit."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.array_equal(a.view(np.uint64), b.view(np.uint64))


def expected(series: TimeSeries, start: float, end: float) -> np.ndarray:
    """The samples of ``series`` (from `T0`) whose times are in ``[start, end)``."""
    times = T0 + np.arange(len(series)) * DT
    return series.value[(times >= start) & (times < end)]


def read_hdf5(api_url: str, channel: str, start: float, end: float, how: str, folder: Path):
    """``GET /data`` as HDF5 (``how``: ``format`` parameter or ``accept`` header), read by gwpy."""
    params: dict[str, object] = {"channel": channel, "start": start, "end": end}
    headers = {}
    if how == "format":
        params["format"] = "hdf5"
    else:
        headers["Accept"] = "application/x-hdf5"
    answer = httpx.get(f"{api_url}/data", params=params, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-hdf5"
    path = folder / f"{how}.h5"
    path.write_bytes(answer.content)
    return TimeSeries.read(path, path=f"{channel}/0000")


@pytest.fixture(scope="session")
def original() -> TimeSeriesDict:
    """The second of strain as gwpy reads it from the file."""
    return TimeSeriesDict.read(HLV, CHANNELS)
